//! Request verification: the checks a source requires, run on the raw bytes.
//!
//! Each scheme is one file implementing [`Check`]; a source's checks must all
//! pass. Verification runs in two phases so that a stranger's request costs
//! little: [`SourceVerifier::verify_head`] runs before the body is read and
//! decides everything the headers, the query and the peer address can
//! (address allowlist, bearer and secret tokens, Immoteur's headers, and the
//! timestamp and signature syntax of the signing schemes); only a request
//! that passes it has its body read, and [`SourceVerifier::verify_body`]
//! then checks the signatures over the raw bytes. What that costs depends on
//! our configuration (the number of secrets), never on the sender: each
//! secret's MAC is computed once per request and compared with every
//! candidate signature, and the number of candidates is capped.
//!
//! Verification fails closed: a source without a check that proves a
//! credential or an allowed address, or a check without a secret, is refused
//! at start unless the source says `unverified = true`; so are short
//! secrets, long tolerances and catch-all networks unless the source allows
//! them by name (see [`crate::settings::SourceSettings`]). Failures carry a
//! reason for metrics and logs but the response never says which secret was
//! close. Secrets are compared in constant time, and every configured secret
//! is always tried.
//!
//! One file, one job. Each `pub mod` below is one scheme: its settings,
//! which implement [`Scheme`] (the check they build at start, with its
//! fail-closed refusals, and what `ingest-send` signs for it), and its
//! [`Check`]. `scheme` lists the schemes as configured ([`CheckSettings`]),
//! `check` is what every check shares, `source_verifier` runs a source's
//! checks together, and `config_error`, `fail_closed`, `wire` and `crypto`
//! hold what the schemes share at start and on a request.

pub mod bearer;
pub mod hmac_timestamp;
pub mod immoteur_headers;
pub mod secret_token;
pub mod source_address;
pub mod standard_webhooks;

mod check;
mod config_error;
mod crypto;
mod fail_closed;
mod scheme;
mod source_verifier;
mod wire;

pub use check::{Check, Head, RequestView, Verdict, VerifyFailure};
pub use config_error::CheckConfigError;
pub use fail_closed::{MAX_TOLERANCE_SECS, MIN_SECRET_BYTES};
pub use scheme::{Built, CheckSettings, Env, Scheme};
pub use source_verifier::{HeadVerdicts, SourceVerifier};
