//! A property's state, defined once: the pure merge both the state writer
//! (`properties.latest`) and the sink (PostgreSQL's `properties`) use, so
//! the two hold the same state.
//!
//! [`merge`] folds one `PropertyEvent` into a `PropertyState` per field:
//! [`carried`] says which fields an event carries (a field it does not
//! carry is unknown, never null), [`version`] orders events for a field
//! independently of arrival, and [`fields`] is the table of snapshot
//! fields the merge walks. The merge is commutative, associative and
//! idempotent (property tests in `tests/merge_laws.rs`): the same events in
//! any order, with duplicates, redeliveries and replays, give the same
//! state. A state too large for one record of `properties.latest` has its
//! largest values withheld there ([`withhold`]).

pub mod carried;
pub mod fields;
pub mod merge;
pub mod version;
pub mod withhold;

pub use merge::{Merged, diff, join, merge, merge_all, state_of};
pub use version::version_key;
