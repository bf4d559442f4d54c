//! [`ProviderKind`]: the one list of providers. The `provider_kinds!` table
//! below generates the enum, [`ProviderKind::ALL`], and both spellings of
//! each kind: its name (a source's `provider` setting and the `provider`
//! Kafka header, kebab-case) and its Avro symbol (the schema's `Provider`
//! enum, snake_case), so no list can drift from another.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, DeserializeSeed, EnumAccess, VariantAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// Generates [`ProviderKind`] from one table of `Variant => "name", "avro_symbol"`.
macro_rules! provider_kinds {
    ($( $(#[doc = $doc:literal])* $variant:ident => $name:literal, $avro:literal; )+) => {
        /// A provider the pipeline has a parser for.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ProviderKind {
            $( $(#[doc = $doc])* $variant, )+
        }

        impl ProviderKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [ProviderKind] = &[$(Self::$variant),+];

            /// Every kind's name, in the order of [`Self::ALL`].
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// The kind's name as configured (a source's `provider`) and as
            /// sent in the `provider` Kafka header.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                }
            }

            /// The kind's symbol in the Avro schema's `Provider` enum.
            pub const fn avro_symbol(self) -> &'static str {
                match self {
                    $(Self::$variant => $avro,)+
                }
            }
        }
    };
}

provider_kinds! {
    /// The generic HMAC "real-estate platform" envelope.
    Generic => "generic", "generic";
    /// Fluximmo alerts.
    Fluximmo => "fluximmo", "fluximmo";
    /// Stream.estate (notif.immo).
    StreamEstate => "stream-estate", "stream_estate";
    /// Immoteur property notifications.
    Immoteur => "immoteur", "immoteur";
    /// Any Standard Webhooks sender (parsed as the generic envelope).
    StandardWebhooks => "standard-webhooks", "standard_webhooks";
}

/// A name that is no [`ProviderKind`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownProviderKind(pub String);

impl fmt::Display for UnknownProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown provider `{}`, expected one of {}",
            self.0,
            ProviderKind::NAMES.join(", ")
        )
    }
}

impl std::error::Error for UnknownProviderKind {}

impl FromStr for ProviderKind {
    type Err = UnknownProviderKind;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| UnknownProviderKind(name.to_string()))
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads a kind as serde reads a derived unit-only enum (what ingest's
/// settings did before this type): by its name, as a string or as the key
/// of a one-entry table, refusing others with serde's "unknown variant"
/// error (which lists every name) and anything else with the format's own
/// message for an enum, so the same settings are accepted and refused.
impl<'de> Deserialize<'de> for ProviderKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_enum("ProviderKind", Self::NAMES, KindVisitor)
    }
}

/// The enum: its variant, which must be a unit.
struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = ProviderKind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("enum ProviderKind")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<ProviderKind, A::Error> {
        let (kind, variant) = data.variant_seed(NameVisitor)?;
        variant.unit_variant()?;
        Ok(kind)
    }
}

/// The variant: a kind's name (or, in formats that write it so, its index).
struct NameVisitor;

impl<'de> DeserializeSeed<'de> for NameVisitor {
    type Value = ProviderKind;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<ProviderKind, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl Visitor<'_> for NameVisitor {
    type Value = ProviderKind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("variant identifier")
    }

    fn visit_u64<E: de::Error>(self, index: u64) -> Result<ProviderKind, E> {
        usize::try_from(index)
            .ok()
            .and_then(|index| ProviderKind::ALL.get(index))
            .copied()
            .ok_or_else(|| {
                let expected = format!("variant index 0 <= i < {}", ProviderKind::ALL.len());
                E::invalid_value(de::Unexpected::Unsigned(index), &expected.as_str())
            })
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<ProviderKind, E> {
        name.parse()
            .map_err(|_| E::unknown_variant(name, ProviderKind::NAMES))
    }

    fn visit_bytes<E: de::Error>(self, name: &[u8]) -> Result<ProviderKind, E> {
        match std::str::from_utf8(name) {
            Ok(name) => self.visit_str(name),
            Err(_) => Err(E::unknown_variant(
                &String::from_utf8_lossy(name),
                ProviderKind::NAMES,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_name() {
        assert_eq!(ProviderKind::ALL.len(), ProviderKind::NAMES.len());
        for &kind in ProviderKind::ALL {
            assert_eq!(kind.as_str().parse::<ProviderKind>(), Ok(kind));
            assert_eq!(kind.to_string(), kind.as_str());
            assert_eq!(kind.avro_symbol(), kind.as_str().replace('-', "_"));
        }
    }

    #[test]
    fn the_first_kinds_keep_their_configured_spellings() {
        // Renaming a kind breaks every configuration that names it.
        for (kind, name) in [
            (ProviderKind::Generic, "generic"),
            (ProviderKind::Fluximmo, "fluximmo"),
            (ProviderKind::StreamEstate, "stream-estate"),
            (ProviderKind::Immoteur, "immoteur"),
            (ProviderKind::StandardWebhooks, "standard-webhooks"),
        ] {
            assert_eq!(kind.as_str(), name);
        }
    }

    #[test]
    fn an_unknown_name_is_refused_with_every_known_one() {
        let error = "zillow".parse::<ProviderKind>().expect_err("unknown");
        assert_eq!(
            error.to_string(),
            format!(
                "unknown provider `zillow`, expected one of {}",
                ProviderKind::NAMES.join(", ")
            )
        );
        assert!(
            error
                .to_string()
                .contains("generic, fluximmo, stream-estate")
        );
        let error = serde_json::from_str::<ProviderKind>(r#""zillow""#).expect_err("unknown");
        assert!(
            error
                .to_string()
                .starts_with("unknown variant `zillow`, expected one of `generic`, `fluximmo`"),
            "{error}"
        );
        assert_eq!(
            serde_json::from_str::<ProviderKind>(r#""stream-estate""#).expect("known"),
            ProviderKind::StreamEstate
        );
    }

    /// What serde derives for a unit-only enum renamed to kebab-case: how
    /// ingest read `provider` before `ProviderKind` (b9f8a70).
    #[derive(Debug, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    enum Derived {
        Generic,
        Fluximmo,
        StreamEstate,
        Immoteur,
        StandardWebhooks,
    }

    /// `provider = <value>` in a TOML source, read both ways.
    fn from_toml(value: &str) -> (Result<String, String>, Result<String, String>) {
        #[derive(Debug, Deserialize)]
        struct Old {
            provider: Derived,
        }
        #[derive(Debug, Deserialize)]
        struct New {
            provider: ProviderKind,
        }
        let text = format!("provider = {value}");
        let old = toml::from_str::<Old>(&text)
            .map(|old| format!("{:?}", old.provider))
            .map_err(|e| e.message().to_string());
        let new = toml::from_str::<New>(&text)
            .map(|new| format!("{:?}", new.provider))
            .map_err(|e| e.message().to_string());
        (old, new)
    }

    /// Every `provider` value ingest's TOML accepted before is accepted as
    /// the same kind, and every one it refused is refused with the same
    /// message (an unknown name's lists the kinds added since too).
    #[test]
    fn a_provider_is_read_as_the_derived_enum_read_it() {
        for value in [
            r#""generic""#,
            r#""stream-estate""#,
            r#""standard-webhooks""#,
            "{ generic = {} }",
            "{ immoteur = {} }",
            "{ generic = 1 }",
            "{ generic = {}, fluximmo = {} }",
            "{}",
            r#"{ zillow = {} }"#,
            r#""zillow""#,
            r#""Generic""#,
            r#""stream_estate""#,
            r#""""#,
            "5",
            "-1",
            "true",
            "1.5",
            r#"["generic"]"#,
            "1979-05-27",
        ] {
            let (old, new) = from_toml(value);
            match (&old, &new) {
                (Err(old), Err(new)) if old.starts_with("unknown variant") => {
                    assert!(new.starts_with(old.as_str()), "{value}: {old} / {new}");
                }
                _ => assert_eq!(old, new, "provider = {value}"),
            }
        }
        for value in [
            serde_json::json!("fluximmo"),
            serde_json::json!({ "fluximmo": null }),
            serde_json::json!({ "fluximmo": 1 }),
            serde_json::json!(0),
            serde_json::json!(null),
            serde_json::json!([]),
        ] {
            let old = serde_json::from_value::<Derived>(value.clone())
                .map(|old| format!("{old:?}"))
                .map_err(|e| e.to_string());
            let new = serde_json::from_value::<ProviderKind>(value.clone())
                .map(|new| format!("{new:?}"))
                .map_err(|e| e.to_string());
            assert_eq!(old, new, "{value}");
        }
    }
}
