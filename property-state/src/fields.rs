//! The snapshot's fields, one entry each, by path: what the merge walks.
//!
//! A field is *carried* by an event when its value is known (an `Option`
//! that is `Some`, a finite number, an enum that is not `Unknown`) or when
//! the event lists its path in `cleared_fields` (the provider explicitly
//! said it is empty). A field an event does not carry is unknown and never
//! erases what a state knows. Paths are the Avro field names, with
//! `location.` before the location's fields.

use schemas::{
    Advert, EnergyClass, PricePoint, PropertySnapshot, PropertyType, Station, TransactionType,
};

/// One snapshot field.
#[derive(Clone, Copy)]
pub struct Field {
    /// Its path (`price`, `location.city`).
    pub path: &'static str,
    known: fn(&PropertySnapshot) -> bool,
    copy: fn(&PropertySnapshot, &mut PropertySnapshot),
    clear: fn(&mut PropertySnapshot),
    same: fn(&PropertySnapshot, &PropertySnapshot) -> bool,
    tie_key: fn(&PropertySnapshot) -> String,
}

impl std::fmt::Debug for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.path)
    }
}

impl Field {
    /// Whether `snapshot` holds a known value for this field.
    pub fn is_known(&self, snapshot: &PropertySnapshot) -> bool {
        (self.known)(snapshot)
    }

    /// Sets this field of `to` to its value in `from`.
    pub fn copy(&self, from: &PropertySnapshot, to: &mut PropertySnapshot) {
        (self.copy)(from, to);
    }

    /// Whether this field has the same value in `a` and `b`.
    pub fn same(&self, a: &PropertySnapshot, b: &PropertySnapshot) -> bool {
        (self.same)(a, b)
    }

    /// A total order on this field's values, for two event versions whose
    /// ranks tie (one dedupe key, time and normalizer version, different
    /// data): the greater value wins, so the state does not depend on which
    /// came first. Its `Debug` text: distinct values print differently.
    pub fn tie_key(&self, snapshot: &PropertySnapshot) -> String {
        (self.tie_key)(snapshot)
    }

    /// Makes this field of `snapshot` empty (null, or `Unknown`).
    pub fn clear(&self, snapshot: &mut PropertySnapshot) {
        (self.clear)(snapshot);
    }
}

/// A field value that can be known or not.
trait Known {
    fn known(&self) -> bool;
    fn empty() -> Self;
}

macro_rules! known_when_some {
    ($($t:ty),*) => {$(
        impl Known for Option<$t> {
            fn known(&self) -> bool {
                self.is_some()
            }
            fn empty() -> Self {
                None
            }
        }
    )*};
}

known_when_some!(
    String,
    i32,
    i64,
    bool,
    EnergyClass,
    Vec<String>,
    Vec<PricePoint>,
    Vec<Station>,
    Vec<Advert>
);

impl Known for Option<f64> {
    /// A NaN or infinite number is no value (and would never compare equal).
    fn known(&self) -> bool {
        self.is_some_and(f64::is_finite)
    }
    fn empty() -> Self {
        None
    }
}

impl Known for TransactionType {
    fn known(&self) -> bool {
        *self != Self::Unknown
    }
    fn empty() -> Self {
        Self::Unknown
    }
}

impl Known for PropertyType {
    fn known(&self) -> bool {
        *self != Self::Unknown
    }
    fn empty() -> Self {
        Self::Unknown
    }
}

macro_rules! field {
    ($path:expr, $($member:ident).+) => {
        Field {
            path: $path,
            known: |s| Known::known(&s.$($member).+),
            copy: |from, to| to.$($member).+ = from.$($member).+.clone(),
            clear: |s| s.$($member).+ = Known::empty(),
            same: |a, b| a.$($member).+ == b.$($member).+,
            tie_key: |s| format!("{:?}", s.$($member).+),
        }
    };
}

/// Every snapshot field, in the schema's order.
pub const FIELDS: &[Field] = &[
    field!("transaction_type", transaction_type),
    field!("provider_transaction_type", provider_transaction_type),
    field!("property_type", property_type),
    field!("provider_property_type", provider_property_type),
    field!("title", title),
    field!("description", description),
    field!("price", price),
    field!("currency", currency),
    field!("price_per_m2", price_per_m2),
    field!("price_scope", price_scope),
    field!("price_change_percent", price_change_percent),
    field!(
        "price_change_since_listed_percent",
        price_change_since_listed_percent
    ),
    field!("surface_m2", surface_m2),
    field!("land_surface_m2", land_surface_m2),
    field!("rooms", rooms),
    field!("bedrooms", bedrooms),
    field!("bathrooms", bathrooms),
    field!("floor", floor),
    field!("furnished", furnished),
    field!("status", status),
    field!("sold_price", sold_price),
    field!("sold_at", sold_at),
    field!("location.address", location.address),
    field!("location.city", location.city),
    field!("location.postcode", location.postcode),
    field!("location.insee_code", location.insee_code),
    field!("location.iris_code", location.iris_code),
    field!("location.department", location.department),
    field!("location.region", location.region),
    field!("location.country", location.country),
    field!("location.latitude", location.latitude),
    field!("location.longitude", location.longitude),
    field!("first_seen_at", first_seen_at),
    field!("last_seen_at", last_seen_at),
    field!("price_history", price_history),
    field!("elevator", elevator),
    field!("terrace", terrace),
    field!("balcony", balcony),
    field!("garden", garden),
    field!("parking", parking),
    field!("orientation", orientation),
    field!("construction_year", construction_year),
    field!("renovation_year", renovation_year),
    field!("dpe_class", dpe_class),
    field!("dpe_value", dpe_value),
    field!("ges_class", ges_class),
    field!("ges_value", ges_value),
    field!("pictures", pictures),
    field!("stations", stations),
    field!("adverts", adverts),
];

/// The field at `path`.
pub fn field(path: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paths the Avro schema defines: the snapshot's fields, with the
    /// location record's fields under `location.`.
    fn schema_paths() -> Vec<String> {
        let event: serde_json::Value =
            serde_json::from_str(schemas::PROPERTY_EVENT_AVSC).expect("the schema is JSON");
        let named = |record: &serde_json::Value, name: &str| {
            record["fields"]
                .as_array()
                .and_then(|fields| fields.iter().find(|f| f["name"] == name))
                .cloned()
                .unwrap_or_else(|| panic!("no field {name}"))
        };
        let snapshot = named(&event, "property")["type"][1].clone();
        let mut paths = Vec::new();
        for f in snapshot["fields"].as_array().into_iter().flatten() {
            let name = f["name"].as_str().unwrap_or_default();
            if name == "location" {
                for l in f["type"]["fields"].as_array().into_iter().flatten() {
                    paths.push(format!(
                        "location.{}",
                        l["name"].as_str().unwrap_or_default()
                    ));
                }
            } else {
                paths.push(name.to_string());
            }
        }
        paths
    }

    #[test]
    fn the_table_lists_every_schema_field_once_in_order() {
        let table: Vec<String> = FIELDS.iter().map(|f| f.path.to_string()).collect();
        assert_eq!(table, schema_paths());
    }

    #[test]
    fn copy_and_clear_touch_only_their_field() {
        let full = schemas::sample::price_change()
            .property
            .expect("the sample has a snapshot");
        for f in FIELDS {
            let mut copy = PropertySnapshot::empty();
            f.copy(&full, &mut copy);
            for other in FIELDS {
                let expected = other.path == f.path && other.is_known(&full);
                assert_eq!(
                    other.is_known(&copy),
                    expected,
                    "{} then {}",
                    f.path,
                    other.path
                );
            }
            let mut cleared = full.clone();
            f.clear(&mut cleared);
            assert!(!f.is_known(&cleared), "{}", f.path);
        }
    }

    #[test]
    fn a_nan_is_not_a_value() {
        let mut s = PropertySnapshot::empty();
        s.price = Some(f64::NAN);
        assert!(field("price").is_some_and(|f| !f.is_known(&s)));
    }
}
