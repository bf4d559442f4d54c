//! [`CheckSettings`]: a source's check as configured, one variant per
//! scheme, each wrapping the settings type of that scheme's file; and the
//! [`Scheme`] trait those settings implement, so that building a source's
//! checks and signing for them is one loop over [`CheckSettings::scheme`].

use serde::Deserialize;

use super::bearer::BearerSettings;
use super::hmac_timestamp::HmacSha256Settings;
use super::immoteur_headers::ImmoteurHeadersSettings;
use super::secret_token::SecretTokenSettings;
use super::source_address::SourceAddressSettings;
use super::standard_webhooks::StandardWebhooksSettings;
use super::{Check, CheckConfigError};
use crate::send::{SignRequest, Signed};
use crate::settings::SourceSettings;

/// A verification check, by kind. Each kind is one file in `src/verify/`.
///
/// Each kind's settings refuse unknown fields themselves: on an internally
/// tagged enum, `deny_unknown_fields` reaches struct variants only.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CheckSettings {
    /// Hex HMAC-SHA256(secret, timestamp + body) in a header.
    HmacSha256(HmacSha256Settings),
    /// Standard Webhooks: `v1` base64 HMAC-SHA256 of `id.timestamp.body`
    /// keyed with `whsec_<base64>` secrets, or `v1a` ed25519 signatures
    /// checked with `whpk_<base64>` public keys.
    StandardWebhooks(StandardWebhooksSettings),
    /// `Authorization: Bearer <token>`.
    Bearer(BearerSettings),
    /// Immoteur's delivery headers: event, delivery and service ids (UUIDs)
    /// and a Unix-seconds timestamp within the tolerance. Added by default to
    /// every `immoteur` source; configure it only to change the tolerance.
    ImmoteurHeaders(ImmoteurHeadersSettings),
    /// A shared secret token in a header or a query parameter.
    SecretToken(SecretTokenSettings),
    /// The sender's address must be in one of the CIDRs.
    SourceAddress(SourceAddressSettings),
}

impl CheckSettings {
    /// The scheme these settings configure.
    pub fn scheme(&self) -> &dyn Scheme {
        match self {
            Self::HmacSha256(settings) => settings,
            Self::StandardWebhooks(settings) => settings,
            Self::Bearer(settings) => settings,
            Self::ImmoteurHeaders(settings) => settings,
            Self::SecretToken(settings) => settings,
            Self::SourceAddress(settings) => settings,
        }
    }
}

/// Looks an environment variable up, for secrets set as `env = "VAR"`.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// One scheme's settings: how they become a check at start, with the
/// scheme's fail-closed refusals, and what `ingest-send` adds to a request
/// so that the check passes.
pub trait Scheme {
    /// The check these settings configure for `source`, its secrets loaded
    /// through `env`, or why the configuration is refused.
    fn build(&self, source: &SourceSettings, env: Env<'_>) -> Result<Built, CheckConfigError>;

    /// Whether passing the check proves a credential or an allowed address;
    /// a source needs one such check unless it says `unverified = true`.
    fn proves_sender(&self) -> bool;

    /// Adds to `out` what makes `request` pass the check, signed with the
    /// first secret configured (the current one in a rotation). Required, so
    /// a new scheme says what `ingest-send` sends for it (possibly nothing,
    /// with the reason).
    fn sign(&self, request: &SignRequest<'_>, out: &mut Signed) -> Result<(), CheckConfigError>;
}

/// A check built from its settings, by when it runs.
#[derive(Debug)]
pub enum Built {
    /// A check of the sender's address: runs before every other check, so
    /// a refused address is a 403 whatever else the request carries.
    Address(Box<dyn Check>),
    /// Any other check: runs in the order configured.
    Request(Box<dyn Check>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::IngestSettings;

    /// Every kind, once with only what it requires and once with every field.
    const KINDS: &[(&str, &str, &str)] = &[
        (
            "hmac-sha256",
            r#"secrets = [{ label = "s", value = "v" }]"#,
            r#"secrets = [{ label = "s", env = "E" }], tolerance_secs = 60, signature_header = "X-Sig", timestamp_header = "X-Ts""#,
        ),
        (
            "standard-webhooks",
            r#"secrets = [{ label = "s", value = "whsec_AAAA" }]"#,
            r#"secrets = [{ label = "s", file = "/run/secrets/s" }], tolerance_secs = 60"#,
        ),
        (
            "bearer",
            r#"tokens = [{ label = "t", value = "v" }]"#,
            r#"tokens = [{ label = "t", value = "v" }, { label = "u", env = "E" }]"#,
        ),
        ("immoteur-headers", "", "tolerance_secs = 60"),
        (
            "secret-token",
            r#"tokens = [{ label = "t", value = "v" }]"#,
            r#"tokens = [{ label = "t", value = "v" }], header = "X-Token", query = "token""#,
        ),
        (
            "source-address",
            r#"allow = ["1.2.3.4/32"]"#,
            r#"allow = ["1.2.3.4/32"], trusted_proxies = ["10.0.0.0/8"]"#,
        ),
    ];

    fn parse(kind: &str, fields: &str) -> Result<CheckSettings, String> {
        #[derive(Debug, Deserialize)]
        struct One {
            check: CheckSettings,
        }
        let fields = if fields.is_empty() {
            String::new()
        } else {
            format!(", {fields}")
        };
        toml::from_str::<One>(&format!("check = {{ kind = \"{kind}\"{fields} }}"))
            .map(|one| one.check)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_kind_parses_with_its_defaults_or_every_field_set() {
        for (kind, required, all) in KINDS {
            for fields in [required, all] {
                let check = parse(kind, fields).unwrap_or_else(|e| panic!("{kind}: {e}"));
                let parsed_kind = match check {
                    CheckSettings::HmacSha256(_) => "hmac-sha256",
                    CheckSettings::StandardWebhooks(_) => "standard-webhooks",
                    CheckSettings::Bearer(_) => "bearer",
                    CheckSettings::ImmoteurHeaders(_) => "immoteur-headers",
                    CheckSettings::SecretToken(_) => "secret-token",
                    CheckSettings::SourceAddress(_) => "source-address",
                };
                assert_eq!(parsed_kind, *kind);
            }
        }
        let Ok(CheckSettings::HmacSha256(hmac)) = parse(KINDS[0].0, KINDS[0].1) else {
            panic!("hmac-sha256 parses");
        };
        assert_eq!(hmac.tolerance_secs, 300);
        assert_eq!(hmac.signature_header, "x-webhook-signature");
        assert_eq!(hmac.timestamp_header, "x-webhook-timestamp");
        let Ok(CheckSettings::StandardWebhooks(standard)) = parse(KINDS[1].0, KINDS[1].1) else {
            panic!("standard-webhooks parses");
        };
        assert_eq!(standard.tolerance_secs, 300);
        let Ok(CheckSettings::ImmoteurHeaders(immoteur)) = parse(KINDS[3].0, KINDS[3].1) else {
            panic!("immoteur-headers parses");
        };
        assert_eq!(immoteur.tolerance_secs, 300);
        let Ok(CheckSettings::SecretToken(token)) = parse(KINDS[4].0, KINDS[4].1) else {
            panic!("secret-token parses");
        };
        assert_eq!((token.header, token.query), (None, None));
        let Ok(CheckSettings::SourceAddress(address)) = parse(KINDS[5].0, KINDS[5].1) else {
            panic!("source-address parses");
        };
        assert!(address.trusted_proxies.is_empty());
    }

    #[test]
    fn an_unknown_field_is_refused_in_every_kind() {
        for (kind, required, all) in KINDS {
            for fields in [required, all] {
                let fields = [*fields, "bogus = 1"].join(", ");
                let fields = fields.trim_start_matches(", ");
                let refused = parse(kind, fields).expect_err("an unknown field is refused");
                assert!(
                    refused.contains("unknown field `bogus`"),
                    "{kind}: {refused}"
                );
            }
        }
        // A field of another kind is as unknown as any.
        let refused = parse("bearer", r#"tokens = [], tolerance_secs = 5"#).expect_err("refused");
        assert!(
            refused.contains("unknown field `tolerance_secs`, expected `tokens`"),
            "{refused}"
        );
    }

    #[test]
    fn a_missing_required_field_or_an_unknown_kind_is_refused() {
        for (kind, required, _) in KINDS {
            if !required.is_empty() {
                let refused = parse(kind, "").expect_err("a required field is missing");
                assert!(refused.contains("missing field"), "{kind}: {refused}");
            }
        }
        let refused = parse("hmac", "").expect_err("no such kind");
        assert!(refused.contains("unknown variant `hmac`"), "{refused}");
        let refused = toml::from_str::<IngestSettings>(
            "[[sources]]\nname = \"x\"\nprovider = \"generic\"\nchecks = [{ secrets = [] }]\n",
        )
        .expect_err("no kind");
        assert!(
            refused.to_string().contains("missing field `kind`"),
            "{refused}"
        );
    }

    #[test]
    fn the_shipped_configurations_parse() {
        for (file, text) in [
            ("ingest.toml", include_str!("../../../config/ingest.toml")),
            (
                "ingest.compose.toml",
                include_str!("../../../config/ingest.compose.toml"),
            ),
        ] {
            let settings: IngestSettings =
                toml::from_str(text).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(
                settings.sources.iter().all(|s| !s.checks.is_empty()),
                "{file}: every shipped source has checks"
            );
        }
    }
}
