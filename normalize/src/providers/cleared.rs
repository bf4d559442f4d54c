//! What an event explicitly clears: `PropertyEvent.cleared_fields`.
//!
//! A property's state is merged field by field from its events, and a
//! snapshot field an event does not carry is unknown: merging the event
//! leaves the known value alone. So a `None` in a snapshot says nothing,
//! and a field the provider explicitly says is empty is listed by its path
//! (`price`, `location.city`, `pictures`: the snapshot's field names, and
//! `location.<field>`), which lets the merge erase it.
//!
//! A parser reads each field through [`Cleared::note`] (or [`Cleared::one`],
//! [`Cleared::either`]) with the JSON values it reads the field from. The
//! field is cleared when it comes out unset, none of those values holds
//! anything, and at least one is an explicit empty: `null`, a blank string,
//! `[]`, or a `null` object above it ([`super::json::child`]). An absent
//! key clears nothing (the provider did not say), and neither does a value
//! of the wrong type (the provider said something we cannot read, not
//! "empty").
//!
//! Kinds (property type, transaction kind) go through [`Cleared::kind`],
//! which keeps the enum and the provider's own value in agreement.

use schemas::{PropertyType, TransactionType};
use serde_json::Value;

use super::json::{is_empty, text};

/// The snapshot paths one event clears, in the order they were noted.
#[derive(Debug, Default)]
pub(crate) struct Cleared(Vec<String>);

impl Cleared {
    /// `value`, noting `path` as cleared when `value` is unset, none of
    /// `sources` holds anything and at least one is an explicit empty.
    pub(crate) fn note<T>(
        &mut self,
        path: &'static str,
        sources: &[Option<&Value>],
        value: Option<T>,
    ) -> Option<T> {
        if value.is_none()
            && sources.iter().any(|source| is_empty(*source))
            && sources
                .iter()
                .all(|source| source.is_none() || is_empty(*source))
        {
            self.clear(path);
        }
        value
    }

    /// [`Self::note`] of a field read from one value with `read`.
    pub(crate) fn one<T>(
        &mut self,
        path: &'static str,
        source: Option<&Value>,
        read: impl FnOnce(Option<&Value>) -> Option<T>,
    ) -> Option<T> {
        let value = read(source);
        self.note(path, &[source], value)
    }

    /// [`Self::note`] of a field read with `read` from `first`, else from
    /// `second` (a key and its alias, a nested value and a plain one).
    pub(crate) fn either<T>(
        &mut self,
        path: &'static str,
        [first, second]: [Option<&Value>; 2],
        read: impl Fn(Option<&Value>) -> Option<T>,
    ) -> Option<T> {
        let value = read(first).or_else(|| read(second));
        self.note(path, &[first, second], value)
    }

    /// Notes `path` as cleared, once.
    pub(crate) fn clear(&mut self, path: &'static str) {
        if !self.has(path) {
            self.0.push(path.to_string());
        }
    }

    /// Whether `path` is noted as cleared.
    pub(crate) fn has(&self, path: &str) -> bool {
        self.0.iter().any(|cleared| cleared == path)
    }

    /// A provider's kind, read from `source` and mapped with `map`, and the
    /// provider's own value (`paths`: the enum's path, then the provider
    /// value's):
    /// - sent empty: both are cleared;
    /// - mapped to a symbol that says it (`house`, `sale`): the provider
    ///   value is cleared, so one left by an earlier event of an unmapped
    ///   kind does not contradict the enum in the property's state;
    /// - mapped to `other` or `unknown`: the provider's text, verbatim (a
    ///   code as its digits); `unknown` is also cleared, so that the enum
    ///   does not keep an earlier kind beside the new provider value;
    /// - absent, or not text: neither is carried.
    pub(crate) fn kind<K: Kind>(
        &mut self,
        (path, provider_path): (&'static str, &'static str),
        source: Option<&Value>,
        map: impl FnOnce(Option<&Value>) -> K,
    ) -> (K, Option<String>) {
        if is_empty(source) {
            self.clear(path);
            self.clear(provider_path);
            return (K::UNKNOWN, None);
        }
        let Some(verbatim) = text(source) else {
            return (K::UNKNOWN, None);
        };
        let kind = map(source);
        if !kind.keeps_provider_value() {
            self.clear(provider_path);
            return (kind, None);
        }
        if kind == K::UNKNOWN {
            self.clear(path);
        }
        (kind, Some(verbatim))
    }

    /// The list for `cleared_fields`: `None` when nothing is cleared.
    pub(crate) fn into_fields(self) -> Option<Vec<String>> {
        (!self.0.is_empty()).then_some(self.0)
    }
}

/// A snapshot enum a provider's vocabulary maps to.
pub(crate) trait Kind: Copy + PartialEq {
    /// The symbol of a kind not known.
    const UNKNOWN: Self;
    /// Whether the symbol does not say the provider's kind (`other`,
    /// `unknown`), so the provider's own value is kept beside it.
    fn keeps_provider_value(self) -> bool;
}

impl Kind for PropertyType {
    const UNKNOWN: Self = Self::Unknown;
    fn keeps_provider_value(self) -> bool {
        matches!(self, Self::Other | Self::Unknown)
    }
}

impl Kind for TransactionType {
    const UNKNOWN: Self = Self::Unknown;
    fn keeps_provider_value(self) -> bool {
        self == Self::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::json::{child, number};
    use serde_json::json;

    const PATHS: (&str, &str) = ("property_type", "provider_property_type");

    fn read(body: &Value) -> (Option<f64>, Option<Vec<String>>) {
        let mut cleared = Cleared::default();
        let price = body.get("price");
        let value = cleared.either(
            "price",
            [child(price, "current"), price.filter(|p| !p.is_object())],
            number,
        );
        (value, cleared.into_fields())
    }

    #[test]
    fn only_an_explicit_empty_with_nothing_beside_it_clears_a_field() {
        let cleared = Some(vec!["price".to_string()]);
        assert_eq!(read(&json!({"price": null})), (None, cleared.clone()));
        assert_eq!(read(&json!({"price": ""})), (None, cleared.clone()));
        assert_eq!(read(&json!({"price": {"current": null}})), (None, cleared));
        assert_eq!(read(&json!({})), (None, None), "absent says nothing");
        assert_eq!(read(&json!({"price": {}})), (None, None));
        assert_eq!(read(&json!({"price": "n/a"})), (None, None), "unusable");
        assert_eq!(read(&json!({"price": {"current": 5}})), (Some(5.0), None));
        assert_eq!(read(&json!({"price": 7})), (Some(7.0), None));
    }

    fn kind(body: Value) -> (PropertyType, Option<String>, Option<Vec<String>>) {
        let mut cleared = Cleared::default();
        let (kind, verbatim) =
            cleared.kind(PATHS, body.get("type"), |v| match text(v).as_deref() {
                Some("house") => PropertyType::House,
                Some("?") => PropertyType::Unknown,
                Some(_) => PropertyType::Other,
                None => PropertyType::Unknown,
            });
        (kind, verbatim, cleared.into_fields())
    }

    #[test]
    fn a_kind_and_the_providers_value_always_agree() {
        let names = |list: &[&str]| Some(list.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            kind(json!({"type": "house"})),
            (
                PropertyType::House,
                None,
                names(&["provider_property_type"])
            )
        );
        assert_eq!(
            kind(json!({"type": "Castle"})),
            (PropertyType::Other, Some("Castle".into()), None)
        );
        assert_eq!(
            kind(json!({"type": "?"})),
            (
                PropertyType::Unknown,
                Some("?".into()),
                names(&["property_type"])
            )
        );
        assert_eq!(
            kind(json!({"type": 42})),
            (PropertyType::Other, Some("42".into()), None)
        );
        assert_eq!(
            kind(json!({"type": null})),
            (
                PropertyType::Unknown,
                None,
                names(&["property_type", "provider_property_type"])
            )
        );
        assert_eq!(kind(json!({})), (PropertyType::Unknown, None, None));
        assert_eq!(
            kind(json!({"type": {"x": 1}})),
            (PropertyType::Unknown, None, None)
        );
    }

    #[test]
    fn a_path_is_listed_once_and_nothing_cleared_is_none() {
        let mut cleared = Cleared::default();
        cleared.clear("pictures");
        cleared.clear("pictures");
        assert!(cleared.has("pictures") && !cleared.has("price"));
        assert_eq!(cleared.into_fields(), Some(vec!["pictures".to_string()]));
        assert_eq!(Cleared::default().into_fields(), None);
    }
}
