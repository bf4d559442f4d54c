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
//! escape `\u0000` has none and costs one scan; only the others (and
//! records whose headers hold a NUL) take the slow path, which walks the
//! event's texts.

use schemas::{Advert, FieldChange, Lineage, Location, PropertyEvent, PropertySnapshot, Station};

/// Whether a JSON body may hold a NUL character in one of its strings.
pub fn may_hold_nul(body: &[u8]) -> bool {
    body.windows(6).any(|w| w == b"\\u0000")
}

/// Removes every NUL character from the texts of `event`; returns whether
/// it removed any. Walks the event's texts themselves (a serde round trip
/// through JSON would turn a non-finite number into null); every struct is
/// destructured without `..`, so a new field does not compile until it is
/// placed here.
pub fn strip_nul(event: &mut PropertyEvent) -> bool {
    let PropertyEvent {
        event_id,
        dedupe_key,
        source,
        provider: _,
        provider_property_id,
        property_key,
        event_type: _,
        occurred_at: _,
        received_at: _,
        alert_id,
        provider_event_type,
        change,
        property,
        lineage,
        cleared_fields,
        occurred_at_claimed: _,
        unchanged: _,
    } = event;
    let mut any = false;
    for text in [
        event_id,
        dedupe_key,
        source,
        provider_property_id,
        property_key,
    ] {
        any |= strip(text);
    }
    any |= strip_opt(alert_id) | strip_opt(provider_event_type) | strip_list(cleared_fields);
    if let Some(change) = change {
        any |= strip_change(change);
    }
    if let Some(property) = property {
        any |= strip_snapshot(property);
    }
    let Lineage {
        raw_topic,
        raw_partition: _,
        raw_offset: _,
        normalizer_version,
    } = lineage;
    any | strip(raw_topic) | strip(normalizer_version)
}

fn strip_change(change: &mut FieldChange) -> bool {
    let FieldChange {
        field,
        old_value,
        new_value,
        percent: _,
        old_number: _,
        new_number: _,
    } = change;
    strip(field) | strip_opt(old_value) | strip_opt(new_value)
}

fn strip_snapshot(p: &mut PropertySnapshot) -> bool {
    let PropertySnapshot {
        transaction_type: _,
        provider_transaction_type,
        property_type: _,
        provider_property_type,
        title,
        description,
        price: _,
        currency,
        price_per_m2: _,
        price_scope,
        price_change_percent: _,
        price_change_since_listed_percent: _,
        surface_m2: _,
        land_surface_m2: _,
        rooms: _,
        bedrooms: _,
        bathrooms: _,
        floor: _,
        furnished: _,
        status,
        sold_price: _,
        sold_at: _,
        location,
        first_seen_at: _,
        last_seen_at: _,
        price_history: _,
        elevator: _,
        terrace: _,
        balcony: _,
        garden: _,
        parking: _,
        orientation,
        construction_year: _,
        renovation_year: _,
        dpe_class: _,
        dpe_value: _,
        ges_class: _,
        ges_value: _,
        pictures,
        stations,
        adverts,
    } = p;
    let mut any = strip_all([
        provider_transaction_type,
        provider_property_type,
        title,
        description,
        currency,
        price_scope,
        status,
        orientation,
    ]);
    any |= strip_location(location) | strip_list(pictures);
    for station in stations.iter_mut().flatten() {
        let Station { name, lines } = station;
        any |= strip(name);
        any |= lines.iter_mut().fold(false, |a, l| strip(l) | a);
    }
    for advert in adverts.iter_mut().flatten() {
        any |= strip_advert(advert);
    }
    any
}

fn strip_location(location: &mut Location) -> bool {
    let Location {
        address,
        city,
        postcode,
        insee_code,
        iris_code,
        department,
        region,
        country,
        latitude: _,
        longitude: _,
    } = location;
    strip_all([
        address, city, postcode, insee_code, iris_code, department, region, country,
    ])
}

fn strip_advert(advert: &mut Advert) -> bool {
    let Advert {
        advert_id,
        title,
        url,
        source_domain,
        publisher_name,
        publisher_type,
        publisher_is_professional: _,
        publisher_id,
        price: _,
        price_history: _,
        status,
        published_at: _,
        updated_at: _,
    } = advert;
    strip_all([
        advert_id,
        title,
        url,
        source_domain,
        publisher_name,
        publisher_type,
        publisher_id,
        status,
    ])
}

/// Removes the NULs of one text; whether there were any.
fn strip(text: &mut String) -> bool {
    let had = text.contains('\0');
    if had {
        text.retain(|c| c != '\0');
    }
    had
}

fn strip_opt(text: &mut Option<String>) -> bool {
    text.as_mut().is_some_and(strip)
}

/// [`strip_opt`] on each of `texts` (all of them: no short circuit).
fn strip_all<'a>(texts: impl IntoIterator<Item = &'a mut Option<String>>) -> bool {
    texts
        .into_iter()
        .fold(false, |any, text| strip_opt(text) | any)
}

fn strip_list(texts: &mut Option<Vec<String>>) -> bool {
    texts
        .iter_mut()
        .flatten()
        .fold(false, |any, text| strip(text) | any)
}

/// [`strip_nul`] on each of `events` when `body` may hold a NUL or one of
/// the `headers` the events' texts come from (`source`, `event-id`: any
/// producer to the raw topic can write a NUL there) holds one; returns how
/// many events had one.
pub fn strip_nul_from(events: &mut [PropertyEvent], body: &[u8], headers: &[&str]) -> usize {
    if !may_hold_nul(body) && !headers.iter().any(|h| h.contains('\0')) {
        return 0;
    }
    events
        .iter_mut()
        .map(strip_nul)
        .filter(|stripped| *stripped)
        .count()
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
        assert_eq!(strip_nul_from(&mut events, b"{}", &["generic"]), 0);
    }
}
