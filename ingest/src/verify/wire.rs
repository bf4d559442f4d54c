//! Reading a request the way the schemes share: header text, Unix
//! timestamps, and a timestamp's distance from arrival.

use axum::http::HeaderMap;

use super::VerifyFailure;

/// Reads a header as trimmed UTF-8 text.
pub(crate) fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Parses a Unix timestamp in seconds (or milliseconds, if it is that large)
/// into milliseconds.
pub(crate) fn parse_unix_ms(text: &str) -> Option<i64> {
    let n: i64 = text.parse().ok()?;
    if n <= 0 {
        return None;
    }
    // 10^11 seconds is the year 5138: anything larger is milliseconds.
    if n >= 100_000_000_000 {
        Some(n)
    } else {
        n.checked_mul(1000)
    }
}

/// Checks a sender timestamp (Unix ms) against arrival; returns the skew.
pub(crate) fn check_skew(
    sent_ms: i64,
    now_ms: i64,
    tolerance_ms: i64,
) -> Result<i64, VerifyFailure> {
    let skew_ms = sent_ms.saturating_sub(now_ms);
    if skew_ms.saturating_abs() > tolerance_ms {
        return Err(VerifyFailure::StaleTimestamp { skew_ms });
    }
    Ok(skew_ms)
}

/// A tolerance in seconds, as milliseconds.
pub(crate) fn tolerance_ms(tolerance_secs: u64) -> i64 {
    i64::try_from(tolerance_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}
