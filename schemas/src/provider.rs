//! The schema's [`Provider`] enum and the pipeline's one list of providers,
//! [`ProviderKind`]: normalize builds the first from the second, the sink
//! reads the second back. Both conversions are exhaustive matches, and a
//! test checks the `.avsc`'s symbols against [`ProviderKind::ALL`], so a new
//! provider cannot reach the schema half-added.

use contract::ProviderKind;

use crate::Provider;

impl From<ProviderKind> for Provider {
    fn from(kind: ProviderKind) -> Self {
        match kind {
            ProviderKind::Generic => Self::Generic,
            ProviderKind::Fluximmo => Self::Fluximmo,
            ProviderKind::StreamEstate => Self::StreamEstate,
            ProviderKind::Immoteur => Self::Immoteur,
            ProviderKind::StandardWebhooks => Self::StandardWebhooks,
        }
    }
}

impl Provider {
    /// The pipeline's provider kind, or `None` for [`Provider::Unknown`]
    /// (a symbol this reader does not know).
    pub fn kind(self) -> Option<ProviderKind> {
        match self {
            Self::Generic => Some(ProviderKind::Generic),
            Self::Fluximmo => Some(ProviderKind::Fluximmo),
            Self::StreamEstate => Some(ProviderKind::StreamEstate),
            Self::Immoteur => Some(ProviderKind::Immoteur),
            Self::StandardWebhooks => Some(ProviderKind::StandardWebhooks),
            Self::Unknown => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_converts_and_back_under_its_avro_symbol() {
        for &kind in ProviderKind::ALL {
            let provider = Provider::from(kind);
            assert_eq!(provider.kind(), Some(kind));
            assert_eq!(
                serde_json::to_value(provider).expect("serializes"),
                serde_json::Value::from(kind.avro_symbol())
            );
        }
        assert_eq!(Provider::Unknown.kind(), None);
    }

    #[test]
    fn the_avsc_lists_every_kind_then_unknown() {
        let schema: serde_json::Value =
            serde_json::from_str(crate::PROPERTY_EVENT_AVSC).expect("schema is JSON");
        let provider = schema["fields"]
            .as_array()
            .and_then(|fields| fields.iter().find(|f| f["name"] == "provider"))
            .expect("a `provider` field");
        let symbols: Vec<&str> = provider["type"]["symbols"]
            .as_array()
            .expect("an enum")
            .iter()
            .filter_map(serde_json::Value::as_str)
            .collect();
        let mut expected: Vec<&str> = ProviderKind::ALL
            .iter()
            .map(|kind| kind.avro_symbol())
            .collect();
        expected.push("unknown");
        assert_eq!(
            symbols, expected,
            "avro/property_event.avsc's Provider symbols must be ProviderKind::ALL's, then `unknown`"
        );
    }
}
