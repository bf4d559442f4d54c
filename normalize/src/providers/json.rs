//! Lenient readers over `serde_json::Value`, shared by the parsers: numbers
//! that arrive as strings, ids that arrive as numbers, RFC 3339 times.

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::ParseError;

/// A number, or a string holding one.
pub(crate) fn number(value: Option<&Value>) -> Option<f64> {
    match value? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|f| f.is_finite())
}

/// A whole number that fits an Avro `int`, or a string holding one.
pub(crate) fn int(value: Option<&Value>) -> Option<i32> {
    let f = number(value)?;
    if f.fract() == 0.0 && f >= f64::from(i32::MIN) && f <= f64::from(i32::MAX) {
        // In range and integral: the cast is exact.
        #[allow(clippy::cast_possible_truncation)]
        Some(f as i32)
    } else {
        None
    }
}

/// A non-empty string, or a number rendered as text (ids).
pub(crate) fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An RFC 3339 time as Unix milliseconds.
pub(crate) fn rfc3339_ms(value: Option<&Value>, field: &'static str) -> Result<i64, ParseError> {
    let raw = value
        .and_then(Value::as_str)
        .ok_or(ParseError::MissingField(field))?;
    let parsed = OffsetDateTime::parse(raw, &Rfc3339).map_err(|e| ParseError::InvalidField {
        field,
        reason: format!("`{raw}` is not an RFC 3339 time ({e})"),
    })?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).map_err(|_| ParseError::InvalidField {
        field,
        reason: format!("`{raw}` is out of range"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_accept_strings_and_reject_junk() {
        assert_eq!(number(Some(&json!(12.5))), Some(12.5));
        assert_eq!(number(Some(&json!(" -2.81 "))), Some(-2.81));
        assert_eq!(number(Some(&json!("abc"))), None);
        assert_eq!(number(Some(&json!(null))), None);
        assert_eq!(int(Some(&json!("3"))), Some(3));
        assert_eq!(int(Some(&json!(2.5))), None);
        assert_eq!(int(Some(&json!(1e12))), None);
    }

    #[test]
    fn times_parse_or_say_why() {
        assert_eq!(
            rfc3339_ms(Some(&json!("2023-06-15T10:30:00Z")), "t"),
            Ok(1_686_825_000_000)
        );
        assert_eq!(rfc3339_ms(None, "t"), Err(ParseError::MissingField("t")));
        assert!(matches!(
            rfc3339_ms(Some(&json!("yesterday")), "t"),
            Err(ParseError::InvalidField { field: "t", .. })
        ));
    }
}
