//! Text sanity: NUL characters are removed from every text of an event.
//!
//! JSON may carry `\u0000` inside a string, and Avro stores it, but
//! PostgreSQL's `text` and `jsonb` cannot: the sink would refuse the event
//! while the state writer took it, and `properties.latest` and PostgreSQL
//! would disagree about the property. A NUL is never information in a
//! listing, so it is dropped here, once, before anything downstream sees
//! the event (a replay of the same record gives the same event).
//!
//! JSON cannot hold a raw NUL byte inside a string, so a body without the
//! escape `\u0000` has none and costs one scan; only the others take the
//! slow path, which walks the event as a JSON value.

use schemas::PropertyEvent;

/// Whether a JSON body may hold a NUL character in one of its strings.
pub fn may_hold_nul(body: &[u8]) -> bool {
    body.windows(6).any(|w| w == b"\\u0000")
}

/// Removes every NUL character from the texts of `event`; returns whether
/// it removed any.
pub fn strip_nul(event: &mut PropertyEvent) -> bool {
    let Ok(mut value) = serde_json::to_value(&*event) else {
        return false;
    };
    if !strip_value(&mut value) {
        return false;
    }
    match serde_json::from_value(value) {
        Ok(stripped) => {
            *event = stripped;
            true
        }
        Err(_) => false,
    }
}

/// [`strip_nul`] on each of `events` when `body` may hold a NUL; returns
/// how many events had one.
pub fn strip_nul_from(events: &mut [PropertyEvent], body: &[u8]) -> usize {
    if !may_hold_nul(body) {
        return 0;
    }
    events
        .iter_mut()
        .map(strip_nul)
        .filter(|stripped| *stripped)
        .count()
}

fn strip_value(value: &mut serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) if s.contains('\0') => {
            s.retain(|c| c != '\0');
            true
        }
        serde_json::Value::Array(items) => {
            items.iter_mut().fold(false, |any, v| strip_value(v) | any)
        }
        serde_json::Value::Object(map) => {
            map.values_mut().fold(false, |any, v| strip_value(v) | any)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_in_any_text_is_removed_and_the_rest_kept() {
        let mut event = schemas::sample::price_change();
        let before = event.clone();
        if let Some(p) = event.property.as_mut() {
            p.location.address = Some("2 Bad\0Street".into());
            p.pictures = Some(vec!["a\0.jpg".into()]);
        }
        event.provider_property_id = "id\0".into();
        assert!(strip_nul(&mut event));
        let p = event.property.as_ref().expect("a snapshot");
        assert_eq!(p.location.address.as_deref(), Some("2 BadStreet"));
        assert_eq!(p.pictures.as_deref(), Some(&["a.jpg".to_string()][..]));
        assert_eq!(event.provider_property_id, "id");
        assert_eq!(
            p.price,
            before.property.as_ref().and_then(|b| b.price),
            "the rest is kept"
        );
    }

    #[test]
    fn an_event_without_nul_is_untouched() {
        let mut event = schemas::sample::price_change();
        let before = event.clone();
        assert!(!strip_nul(&mut event));
        assert_eq!(event, before);
    }

    #[test]
    fn only_a_body_with_the_escape_takes_the_slow_path() {
        assert!(may_hold_nul(br#"{"a":"x\u0000y"}"#));
        assert!(!may_hold_nul(br#"{"a":"x\u0001y"}"#));
        let mut events = vec![schemas::sample::price_change()];
        assert_eq!(strip_nul_from(&mut events, b"{}"), 0);
    }
}
