//! Sink: lands unique property events in PostgreSQL, each exactly once.
//!
//! [`rows`] maps a `PropertyEvent` to table rows (pure); [`migrate`] applies
//! the versioned SQL files; [`store`] is the [`store::Sink`] trait and its
//! PostgreSQL implementation; [`runner`] is the consume-write loop and states
//! its exactly-once argument.

pub mod migrate;
pub mod rows;
pub mod runner;
pub mod settings;
pub mod statements;
pub mod store;
