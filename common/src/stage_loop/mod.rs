//! The loop kit every consumer stage (normalize, dedupe, the state writer,
//! the sink) is wired from, so the loops share one behaviour for what they
//! have in common:
//!
//! - [`Cancel`]: the one stop signal, for threads and tasks alike; every
//!   wait in a loop is a wait that a stop cuts short.
//! - [`RetryPolicy`]: one jittered, capped exponential backoff that gives up
//!   on stop, after a configurable number of attempts, or at once on an
//!   error its caller calls fatal.
//! - [`BatchWindow`]: one batching rule (up to `max_records`, at most
//!   `max_wait` after the first record) over one set of batch settings;
//!   [`poll_batch`] reads a batch by it.
//! - [`Liveness`]: progress and problems a loop reports, which `/health`
//!   turns into 503 when the loop has made no progress for too long while
//!   it has lag, or has stopped on a problem an operator must fix.
//! - [`record_span`]: the per-record span that continues the webhook's
//!   trace.
//!
//! And for the stages that write output-first, co-partitioned with their
//! input, and restore a state per input partition from topics (dedupe and
//! the state writer):
//!
//! - [`Partitions`] and [`PausingContext`]: the per-partition states, and
//!   the rebalance callback that pauses what it assigns until its state is
//!   restored and drops what it revokes;
//! - [`read_to_end`] and [`restore_pending`]: restoring outside the
//!   callback while the consumer keeps polling;
//! - [`Fence`], [`FencingSettings`] and [`check_ownership`]: keeping a
//!   stalled owner from writing once the group moved its partitions;
//! - [`partition_watch`]: stopping when a co-partitioned topic's partition
//!   count changes under the stage;
//! - [`CoPartitioned`]: all of the above around one group consumer.

mod batch_window;
mod cancel;
mod co_partitioned;
mod fence;
mod fence_bounds;
mod liveness;
mod ownership;
pub mod partition_watch;
mod partitions;
mod poll_batch;
mod read_to_end;
mod rebalance;
mod record_span;
mod restoring;
mod retry;

pub use batch_window::BatchWindow;
pub use cancel::Cancel;
pub use co_partitioned::CoPartitioned;
pub use fence::{Abandon, BeforeWrite, Fence};
pub use fence_bounds::{
    FencingSettings, MAX_POLL_INTERVAL_MS, millis_setting, output_first_producer,
};
pub use liveness::{Health, Liveness};
pub use ownership::{check_ownership, first_offsets};
pub use partitions::{Partitions, RestoreTicket};
pub use poll_batch::{Polled, poll_batch};
pub use read_to_end::{Progress, STALL_DEADLINE, read_to_end};
pub use rebalance::PausingContext;
pub use record_span::{record_span, record_span_continuing};
pub use restoring::{Restored, Restoring, assigned, restore_pending, resume_offset};
pub use retry::{GaveUp, RetryPolicy, Verdict};
