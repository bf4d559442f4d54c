//! Test helpers shared by the provider parsers' unit tests: a fixed raw
//! context, the fixtures, and golden-file comparison.
//!
//! Golden files live in `normalize/tests/golden/`. Run the tests with
//! `UPDATE_GOLDEN=1` to rewrite them, then review the diff field by field.

use std::path::PathBuf;

use schemas::PropertyEvent;

use super::{Limits, ParseError, RawContext};

/// The context every parser test uses; `received_at` is 2026-01-01T00:00:00Z.
pub(crate) fn context(provider: &'static str) -> RawContext<'static> {
    RawContext {
        source: provider,
        provider: provider
            .parse()
            .unwrap_or_else(|e| panic!("test context: {e}")),
        event_id: None,
        received_at_ms: 1_767_225_600_000,
        topic: "webhooks.raw",
        partition: 1,
        offset: 7,
        limits: Limits::default(),
    }
}

/// Every `location.<field>` path of `cleared_fields`, in `Location`'s order.
pub(crate) const LOCATION_PATHS: [&str; 9] = [
    "location.address",
    "location.city",
    "location.postcode",
    "location.insee_code",
    "location.department",
    "location.region",
    "location.country",
    "location.latitude",
    "location.longitude",
];

/// A fixture from `tests/fixtures/` at the workspace root.
pub(crate) fn fixture(path: &str) -> Vec<u8> {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("cannot read {}: {e}", full.display()))
}

/// Compares `events` with `tests/golden/<name>.json` (as JSON values), and
/// checks that every event fits the schema.
pub(crate) fn assert_golden(name: &str, events: &[PropertyEvent]) {
    assert_golden_json(name, &events);
    for event in events {
        if let Err(e) = schemas::encode_datum(event) {
            panic!("event does not fit the schema: {e}");
        }
    }
}

/// Compares `value`, serialized, with `tests/golden/<name>.json` (as JSON
/// values); `UPDATE_GOLDEN=1` rewrites the file instead.
pub(crate) fn assert_golden_json(name: &str, value: &impl serde::Serialize) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.json"));
    let actual = serde_json::to_value(value).unwrap_or_else(|e| panic!("serialize: {e}"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let text = serde_json::to_string_pretty(&actual).unwrap_or_default() + "\n";
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); run with UPDATE_GOLDEN=1",
            path.display()
        )
    });
    let expected: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(actual, expected, "differs from {}", path.display());
}

/// What a hostile body must give: this many events, or an error of this kind.
#[derive(Debug)]
pub(crate) enum Expect {
    /// Parses into exactly this many events.
    Events(usize),
    /// Fails with this `ParseError::kind()`.
    Kind(&'static str),
    /// Fails with exactly this error.
    Error(ParseError),
}

/// Runs `parse` over each hostile body and checks its outcome.
pub(crate) fn check_hostile(
    parse: fn(&RawContext<'_>, &[u8]) -> Result<Vec<PropertyEvent>, ParseError>,
    context: &RawContext<'_>,
    cases: &[(&str, Vec<u8>, Expect)],
) {
    for (name, body, expect) in cases {
        let got = parse(context, body);
        match (expect, &got) {
            (Expect::Events(n), Ok(events)) => {
                assert_eq!(events.len(), *n, "{name}");
                for event in events {
                    assert!(schemas::encode_datum(event).is_ok(), "{name}: fits schema");
                }
            }
            (Expect::Kind(kind), Err(e)) => assert_eq!(e.kind(), *kind, "{name}: {e}"),
            (Expect::Error(expected), Err(e)) => assert_eq!(e, expected, "{name}"),
            _ => panic!("{name}: expected {expect:?}, got {got:?}"),
        }
    }
}

/// `{"a":{"a":...}}` nested `depth` times around `inner`.
pub(crate) fn nested(depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", "{\"a\":".repeat(depth), "}".repeat(depth))
}
