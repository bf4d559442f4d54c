//! The loop kit every consumer stage (normalize, dedupe, sink) is wired
//! from, so the three loops share one behaviour for what they have in
//! common:
//!
//! - [`Cancel`]: the one stop signal, for threads and tasks alike; every
//!   wait in a loop is a wait that a stop cuts short.
//! - [`RetryPolicy`]: one jittered, capped exponential backoff that gives up
//!   on stop, after a configurable number of attempts, or at once on an
//!   error its caller calls fatal.
//! - [`BatchWindow`]: one batching rule (up to `max_records`, at most
//!   `max_wait` after the first record) over one set of batch settings.
//! - [`Liveness`]: progress and problems a loop reports, which `/health`
//!   turns into 503 when the loop has made no progress for too long while
//!   it has lag, or has stopped on a problem an operator must fix.
//! - [`record_span`]: the per-record span that continues the webhook's
//!   trace.

mod batch_window;
mod cancel;
mod liveness;
mod record_span;
mod retry;

pub use batch_window::BatchWindow;
pub use cancel::Cancel;
pub use liveness::{Health, Liveness};
pub use record_span::record_span;
pub use retry::{GaveUp, RetryPolicy, Verdict};
