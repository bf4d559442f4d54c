//! The raw record's metadata in one header: what ingest knows about an
//! accepted request (source, provider, arrival time, request id, the
//! verification verdict, trace context, the provider's event and delivery
//! ids), written as the single [`crate::headers::INGEST_META`] header of a
//! `webhooks.raw` record instead of one header per field.
//!
//! Why: the local durable broker (nisshi on `sqlite://`) stores every header
//! as a row of its own, so ten headers cost more than the record itself
//! (BENCHMARKS.md, "What the durable broker charges"). One header keeps the
//! cost of the metadata to one row.
//!
//! The value is `application/x-www-form-urlencoded` (`name=value&...`), the
//! names being the per-field header names of [`crate::headers`] and the
//! values the same text those headers held, so any language reads it with
//! its standard library (Python: `urllib.parse.parse_qsl(value,
//! keep_blank_values=True)`; a field may be empty, as `verify-key` is for
//! an Immoteur or an unverified source, and `parse_qsl` drops empty fields
//! unless told to keep them). Readers take the fields from this header when
//! the record has it (a record carrying both layouts is read from this
//! header alone) and otherwise from the headers of the fields' own names:
//! records written by an ingest set to `raw_metadata = "headers"`, or
//! before this header existed, read the same.

use std::borrow::Cow;

/// Encodes `fields` (name, value), in order, as the header's value.
pub fn encode<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in fields {
        let _ = serializer.append_pair(name, value);
    }
    serializer.finish()
}

/// A parsed header value: its fields in order. Values are borrowed from
/// the header where they needed no decoding.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IngestMeta<'a> {
    fields: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> IngestMeta<'a> {
    /// Parses a header value. Bytes that are not UTF-8 after decoding are
    /// replaced, as the form encoding defines; a malformed pair is kept
    /// with what it says (a name without `=` has an empty value).
    pub fn parse(value: &'a [u8]) -> Self {
        Self {
            fields: form_urlencoded::parse(value).collect(),
        }
    }

    /// The first value of `name`, if the header has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_ref())
    }

    /// The fields, in order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (n.as_ref(), v.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_come_back_as_written_in_order() {
        let value = encode([
            ("source", "generic"),
            ("content-type", "application/json; charset=utf-8"),
            ("event-id", "a&b=c %2F é"),
            ("verify-key", ""),
        ]);
        let meta = IngestMeta::parse(value.as_bytes());
        assert_eq!(
            meta.fields().collect::<Vec<_>>(),
            [
                ("source", "generic"),
                ("content-type", "application/json; charset=utf-8"),
                ("event-id", "a&b=c %2F é"),
                ("verify-key", ""),
            ]
        );
        assert_eq!(meta.get("event-id"), Some("a&b=c %2F é"));
        assert_eq!(meta.get("delivery-id"), None);
    }

    /// An empty value is written as `name=` and read back present and
    /// empty: a reader must keep blank values (`verify-key` of an Immoteur
    /// or unverified source).
    #[test]
    fn an_empty_value_stays_a_present_field() {
        let value = encode([("verify-scheme", "none"), ("verify-key", "")]);
        assert_eq!(value, "verify-scheme=none&verify-key=");
        assert_eq!(
            IngestMeta::parse(value.as_bytes()).get("verify-key"),
            Some("")
        );
    }

    /// A provider's id cannot add or replace a field: `&`, `=`, `+`, `%`
    /// and spaces are escaped, and the id reads back byte for byte.
    #[test]
    fn a_value_cannot_smuggle_a_field() {
        for id in [
            "x&provider=stream-estate",
            "x&source=other&event-id=y",
            "a+b %2B %zz %",
            "=&&==",
            " leading and trailing ",
            "tab\there",
        ] {
            let value = encode([
                ("source", "std"),
                ("provider", "standard-webhooks"),
                ("event-id", id),
            ]);
            let meta = IngestMeta::parse(value.as_bytes());
            assert_eq!(
                meta.fields().collect::<Vec<_>>(),
                [
                    ("source", "std"),
                    ("provider", "standard-webhooks"),
                    ("event-id", id)
                ],
                "{value}"
            );
        }
    }

    #[test]
    fn plain_values_are_not_escaped() {
        let value = encode([("received-at", "1700000000000"), ("source", "immo-teur_1")]);
        assert_eq!(value, "received-at=1700000000000&source=immo-teur_1");
    }

    #[test]
    fn the_first_of_a_repeated_name_wins_and_junk_does_not_panic() {
        let meta = IngestMeta::parse(b"source=a&source=b&&=x&novalue&%zz=%ff");
        assert_eq!(meta.get("source"), Some("a"));
        assert_eq!(meta.get("novalue"), Some(""));
        assert_eq!(meta.get(""), Some("x"));
        assert_eq!(meta.get("%zz"), Some("\u{fffd}"));
    }
}
