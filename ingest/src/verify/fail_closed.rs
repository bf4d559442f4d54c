//! The start-time refusals the schemes share: a check's secrets are loaded
//! once (an empty list, a missing or empty secret fails closed), and short
//! secrets and long tolerances are refused unless the source allows them by
//! name.

use super::CheckConfigError;
use crate::send::SignRequest;
use crate::settings::{SecretBytes, SecretSettings, SourceSettings};

/// Shortest secret or token accepted without `allow_short_secrets`, bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// Longest timestamp tolerance accepted without `allow_long_tolerance`, s.
pub const MAX_TOLERANCE_SECS: u64 = 3600;

/// The tolerance of a timestamped check that sets none, seconds.
pub(crate) fn default_tolerance_secs() -> u64 {
    300
}

/// Refuses a secret shorter than [`MIN_SECRET_BYTES`] unless the source
/// allows short secrets.
pub(crate) fn check_secret_length(
    source: &SourceSettings,
    scheme: &'static str,
    label: &str,
    secret: &[u8],
) -> Result<(), CheckConfigError> {
    if secret.len() < MIN_SECRET_BYTES && !source.allow_short_secrets {
        return Err(CheckConfigError::ShortSecret {
            source_name: source.name.clone(),
            scheme,
            label: label.to_string(),
            len: secret.len(),
        });
    }
    Ok(())
}

/// Refuses a tolerance over [`MAX_TOLERANCE_SECS`] unless the source allows
/// long tolerances: a captured request could be replayed for that long.
pub(crate) fn check_tolerance(
    source: &SourceSettings,
    scheme: &'static str,
    tolerance_secs: u64,
) -> Result<(), CheckConfigError> {
    if tolerance_secs > MAX_TOLERANCE_SECS && !source.allow_long_tolerance {
        return Err(CheckConfigError::Invalid(
            source.name.clone(),
            scheme,
            format!(
                "`tolerance_secs = {tolerance_secs}` lets a captured request be replayed that long; \
                 use at most {MAX_TOLERANCE_SECS}, or set `allow_long_tolerance = true` on the source"
            ),
        ));
    }
    Ok(())
}

/// Loads a check's labelled secrets and refuses short ones (unless the
/// source allows them); an empty list fails closed.
pub(crate) fn load_checked_secrets(
    source: &SourceSettings,
    scheme: &'static str,
    secrets: &[SecretSettings],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, SecretBytes)>, CheckConfigError> {
    let loaded = load_secrets(&source.name, scheme, secrets, env)?;
    for (label, secret) in &loaded {
        check_secret_length(source, scheme, label, secret.expose())?;
    }
    Ok(loaded)
}

/// Loads the first of a check's secrets (the current one in a rotation),
/// to sign with; an empty list fails closed.
pub(crate) fn load_first(
    request: &SignRequest<'_>,
    scheme: &'static str,
    secrets: &[SecretSettings],
) -> Result<SecretBytes, CheckConfigError> {
    let source = request.source.name.as_str();
    let first = secrets.get(..1).unwrap_or(&[]);
    let mut loaded = load_secrets(source, scheme, first, request.env)?;
    loaded
        .pop()
        .map(|(_, secret)| secret)
        .ok_or_else(|| CheckConfigError::NoSecret(source.to_string(), scheme))
}

/// Loads a check's labelled secrets; an empty list fails closed.
pub(crate) fn load_secrets(
    source: &str,
    scheme: &'static str,
    secrets: &[SecretSettings],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, SecretBytes)>, CheckConfigError> {
    if secrets.is_empty() {
        return Err(CheckConfigError::NoSecret(source.to_string(), scheme));
    }
    secrets
        .iter()
        .map(|secret| {
            secret
                .load(env)
                .map(|bytes| (secret.label.clone(), bytes))
                .map_err(|error| CheckConfigError::Secret {
                    source_name: source.to_string(),
                    error,
                })
        })
        .collect()
}
