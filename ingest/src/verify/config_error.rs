//! [`CheckConfigError`]: why a source's configuration cannot be turned into
//! checks. Ingest refuses to start on one, and `ingest-send` refuses to sign.

use super::fail_closed::MIN_SECRET_BYTES;
use crate::settings::SecretError;

/// A source's configuration cannot be turned into checks.
#[derive(Debug, thiserror::Error)]
pub enum CheckConfigError {
    /// No check and not explicitly unverified.
    #[error(
        "source `{0}` has no verification check; add one or set `unverified = true` explicitly"
    )]
    NoCheck(String),
    /// A check lists no secret.
    #[error("source `{0}`: check `{1}` has no secret")]
    NoSecret(String, &'static str),
    /// A secret cannot be loaded.
    #[error("source `{source_name}`: {error}")]
    Secret {
        /// Source name.
        source_name: String,
        /// The secret's error.
        error: SecretError,
    },
    /// A check's settings are not usable.
    #[error("source `{0}`: check `{1}`: {2}")]
    Invalid(String, &'static str, String),
    /// The source's checks prove neither a credential nor an address.
    #[error(
        "source `{0}`: `immoteur-headers` proves no credential (anyone can send well-formed \
         headers); add a `bearer` check with Immoteur's token"
    )]
    NoCredential(String),
    /// A secret is too short to resist guessing.
    #[error(
        "source `{source_name}`: check `{scheme}`: secret `{label}` is {len} bytes; use at least \
         {MIN_SECRET_BYTES} random bytes, or set `allow_short_secrets = true` on the source"
    )]
    ShortSecret {
        /// Source name.
        source_name: String,
        /// Scheme of the check.
        scheme: &'static str,
        /// The secret's label.
        label: String,
        /// Its length, bytes.
        len: usize,
    },
}
