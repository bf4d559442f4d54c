//! Lenient readers over `serde_json::Value`, shared by the parsers: numbers
//! that arrive as strings, ids that arrive as numbers, RFC 3339 times,
//! booleans as text, JSON-LD ids, URL hosts, country codes and energy
//! classes; and the two that tell an explicit empty from an absent key
//! ([`child`], [`is_empty`]).

use schemas::EnergyClass;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::ParseError;

/// The body as a JSON object: anything else is not a webhook we know.
pub(crate) fn body_object(body: &[u8]) -> Result<Value, ParseError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(ParseError::InvalidField {
            field: "(body)",
            reason: "expected a JSON object".to_string(),
        })
    }
}

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

/// A boolean, or a string/number holding one (`"true"`, `"1"`, `0`...).
pub(crate) fn boolean(value: Option<&Value>) -> Option<bool> {
    match value? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|f| f != 0.0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "oui" => Some(true),
            "false" | "0" | "no" | "non" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A DPE/GES letter class ([`EnergyClass::from_letter`]) from [`text`].
pub(crate) fn energy_class(value: Option<&Value>) -> Option<EnergyClass> {
    text(value).map(|letter| EnergyClass::from_letter(&letter))
}

/// Lower-cased [`text`], for provider vocabularies (statuses, kinds).
pub(crate) fn lower(value: Option<&Value>) -> Option<String> {
    text(value).map(|s| s.to_lowercase())
}

/// The last segment of a JSON-LD id such as `/properties/<uuid>`, or the
/// value itself when it has no slash.
pub(crate) fn id_segment(value: Option<&Value>) -> Option<String> {
    let id = text(value)?;
    id.rsplit('/')
        .find(|segment| !segment.is_empty())
        .map(str::to_string)
}

/// The non-empty strings of an array; anything else in it is skipped.
pub(crate) fn strings(value: Option<&Value>) -> Option<Vec<String>> {
    let list: Vec<String> = value?
        .as_array()?
        .iter()
        .filter_map(|v| text(Some(v)))
        .collect();
    (!list.is_empty()).then_some(list)
}

/// Checks that `value`, when it is an array, has at most `max` items;
/// anything else (absent, null, another type) passes: the parsers skip it.
pub(crate) fn at_most_items(
    value: Option<&Value>,
    field: &'static str,
    max: usize,
) -> Result<(), ParseError> {
    match value {
        Some(Value::Array(items)) if items.len() > max => Err(ParseError::TooManyItems {
            field,
            count: items.len(),
            max,
        }),
        _ => Ok(()),
    }
}

/// `key` of `parent` when it is an object. A `null` parent gives `null`: the
/// provider said the whole object is empty, so each field under it is an
/// explicit null too ([`super::cleared`]); the readers above treat it as
/// absent, so values are unchanged.
pub(crate) fn child<'a>(parent: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    static NULL: Value = Value::Null;
    match parent? {
        Value::Null => Some(&NULL),
        value => value.get(key),
    }
}

/// Whether the provider sent `value` and it says "nothing": `null`, a blank
/// string or an empty array. Absent is not empty (the provider said
/// nothing), and neither is a value of the wrong type (unusable, not empty).
pub(crate) fn is_empty(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(Value::Array(items)) => items.is_empty(),
        _ => false,
    }
}

/// The items of `value` when it is an array, else none.
pub(crate) fn items(value: Option<&Value>) -> &[Value] {
    value.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// An optional RFC 3339 time: absent or null is `None`, unparseable is `None`
/// too (for descriptive times whose loss does not make the event wrong).
pub(crate) fn optional_time(value: Option<&Value>) -> Option<i64> {
    rfc3339_ms(value.filter(|v| !v.is_null()), "").ok()
}

/// An optional RFC 3339 time that must be right when it is sent: absent or
/// empty ([`is_empty`]) is `None`; anything else that is not an RFC 3339
/// string is an error naming `field` (for times an event is about).
pub(crate) fn checked_time(
    value: Option<&Value>,
    field: &'static str,
) -> Result<Option<i64>, ParseError> {
    match value {
        None => Ok(None),
        Some(v) if is_empty(Some(v)) => Ok(None),
        Some(Value::String(_)) => rfc3339_ms(value, field).map(Some),
        Some(other) => Err(ParseError::InvalidField {
            field,
            reason: format!("`{other}` is not an RFC 3339 time"),
        }),
    }
}

/// The first of `candidates` that is present (not absent, not null), as
/// Unix ms. A present but unparseable time is an error, not skipped: the
/// event time would be wrong. None present: `MissingField` of the first.
pub(crate) fn first_time(candidates: &[(Option<&Value>, &'static str)]) -> Result<i64, ParseError> {
    for (value, field) in candidates {
        if let Some(v) = value.filter(|v| !v.is_null()) {
            return rfc3339_ms(Some(v), field);
        }
    }
    Err(ParseError::MissingField(
        candidates.first().map_or("time", |(_, field)| field),
    ))
}

/// The host of an http(s) URL, without `www.`.
pub(crate) fn url_host(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let host = rest
        .split(['/', '?', '#', ':'])
        .next()?
        .to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host).to_string();
    (!host.is_empty()).then_some(host)
}

/// An ISO 3166-1 alpha-2 code from a name, numeric or alpha code the
/// providers use; `None` when it is not one we can tell.
pub(crate) fn country_code(value: Option<&Value>) -> Option<String> {
    let raw = text(value)?;
    match raw.to_lowercase().as_str() {
        "france" | "fr" | "fra" | "250" => Some("FR".to_string()),
        code if code.len() == 2 && code.chars().all(|c| c.is_ascii_alphabetic()) => {
            Some(code.to_ascii_uppercase())
        }
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
    fn booleans_ids_and_hosts_are_read_leniently() {
        assert_eq!(boolean(Some(&json!("true"))), Some(true));
        assert_eq!(boolean(Some(&json!(0))), Some(false));
        assert_eq!(boolean(Some(&json!("peut-être"))), None);
        assert_eq!(
            id_segment(Some(&json!("/properties/a2fe"))),
            Some("a2fe".into())
        );
        assert_eq!(id_segment(Some(&json!("/"))), None);
        assert_eq!(
            url_host("https://www.Century21.fr/x?y"),
            Some("century21.fr".into())
        );
        assert_eq!(url_host("ftp://x"), None);
        assert_eq!(country_code(Some(&json!("france"))), Some("FR".into()));
        assert_eq!(country_code(Some(&json!("Atlantis"))), None);
    }

    #[test]
    fn arrays_over_the_limit_are_named_and_other_values_pass() {
        assert_eq!(at_most_items(Some(&json!([1, 2])), "f", 2), Ok(()));
        assert_eq!(
            at_most_items(Some(&json!([1, 2, 3])), "f", 2),
            Err(ParseError::TooManyItems {
                field: "f",
                count: 3,
                max: 2
            })
        );
        assert_eq!(at_most_items(Some(&json!("abc")), "f", 0), Ok(()));
        assert_eq!(at_most_items(None, "f", 0), Ok(()));
        assert_eq!(items(Some(&json!([1]))).len(), 1);
        assert!(items(Some(&json!({"a": 1}))).is_empty());
    }

    #[test]
    fn a_null_parent_makes_its_fields_null_and_empties_are_told_from_absence() {
        let body = json!({"a": null, "b": {"c": 1}, "d": "x"});
        assert_eq!(child(body.get("a"), "c"), Some(&Value::Null));
        assert_eq!(child(body.get("b"), "c"), Some(&json!(1)));
        assert_eq!(child(body.get("b"), "z"), None);
        assert_eq!(child(body.get("d"), "c"), None);
        assert_eq!(child(None, "c"), None);
        for empty in [json!(null), json!(""), json!("  "), json!([])] {
            assert!(is_empty(Some(&empty)), "{empty}");
        }
        for not_empty in [json!(0), json!(false), json!("x"), json!([null]), json!({})] {
            assert!(!is_empty(Some(&not_empty)), "{not_empty}");
        }
        assert!(!is_empty(None));
    }

    #[test]
    fn the_first_present_time_wins_and_a_bad_one_is_an_error() {
        let good = json!("2024-03-26T10:39:41+01:00");
        let bad = json!("soon");
        assert_eq!(
            first_time(&[(None, "a"), (Some(&json!(null)), "b"), (Some(&good), "c")]),
            Ok(1_711_445_981_000)
        );
        assert!(matches!(
            first_time(&[(Some(&bad), "a"), (Some(&good), "b")]),
            Err(ParseError::InvalidField { field: "a", .. })
        ));
        assert_eq!(
            first_time(&[(None, "a")]),
            Err(ParseError::MissingField("a"))
        );
    }

    #[test]
    fn a_checked_time_may_be_absent_or_empty_but_not_wrong() {
        assert_eq!(checked_time(None, "t"), Ok(None));
        assert_eq!(checked_time(Some(&json!(null)), "t"), Ok(None));
        assert_eq!(checked_time(Some(&json!("")), "t"), Ok(None));
        assert_eq!(
            checked_time(Some(&json!("2023-06-15T10:30:00Z")), "t"),
            Ok(Some(1_686_825_000_000))
        );
        for wrong in [json!("yesterday"), json!(1_686_825_000), json!({})] {
            assert!(
                matches!(
                    checked_time(Some(&wrong), "t"),
                    Err(ParseError::InvalidField { field: "t", .. })
                ),
                "{wrong}"
            );
        }
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
