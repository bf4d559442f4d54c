//! Sink: lands unique property events in PostgreSQL, each exactly once.
//!
//! [`write_behind`] is the write-behind protocol and [`writer_schemas`]
//! the writer-schema cache, both pure; [`writer`] commits a batch and
//! dead-letters the rows the store refuses, over any store.
//! [`rows`] maps a `PropertyEvent` to table rows (pure); [`migrate`] applies
//! the versioned SQL files; [`store`] is the [`store::Sink`] trait and its
//! PostgreSQL implementation; [`runner`] is the consume-write loop and states
//! its exactly-once argument.

pub mod batch;
#[cfg(test)]
mod fake;
pub mod migrate;
pub mod rows;
pub mod runner;
pub mod settings;
pub mod statements;
pub mod store;
pub mod write_behind;
pub mod writer;
pub mod writer_schemas;
