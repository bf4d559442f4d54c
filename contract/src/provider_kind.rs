//! [`ProviderKind`]: the one list of providers. The `provider_kinds!` table
//! below generates the enum, [`ProviderKind::ALL`], and both spellings of
//! each kind: its name (a source's `provider` setting and the `provider`
//! Kafka header, kebab-case) and its Avro symbol (the schema's `Provider`
//! enum, snake_case), so no list can drift from another.

use std::fmt;
use std::str::FromStr;

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

/// Reads a kind by its name, refusing others with serde's "unknown variant"
/// error (which lists every name).
impl<'de> Deserialize<'de> for ProviderKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        name.parse()
            .map_err(|_| serde::de::Error::unknown_variant(&name, Self::NAMES))
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
}
