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
//! anything, and at least one is an explicit empty: `null`, a blank string
//! or `[]`. An absent key clears nothing (the provider did not say), and
//! neither does a value of the wrong type (the provider said something we
//! cannot read, not "empty").

use serde_json::Value;

use super::json::is_empty;

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

    /// The list for `cleared_fields`: `None` when nothing is cleared.
    pub(crate) fn into_fields(self) -> Option<Vec<String>> {
        (!self.0.is_empty()).then_some(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::json::number;
    use serde_json::json;

    fn read(body: &Value) -> (Option<f64>, Option<Vec<String>>) {
        let mut cleared = Cleared::default();
        let price = body.get("price");
        let value = cleared.either(
            "price",
            [
                price.and_then(|p| p.get("current")),
                price.filter(|p| !p.is_object()),
            ],
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
