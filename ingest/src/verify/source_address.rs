//! Source-address allowlist: the sender's address must be in one of the
//! configured CIDRs (Stream.estate publishes its two sending addresses).
//!
//! The sender is the direct TCP peer, unless that peer is a configured
//! trusted proxy: then `X-Forwarded-For` is read right to left, skipping
//! trusted proxies, and the first other address is the sender. A header
//! from any other peer is ignored, so it cannot be spoofed. A refusal is a
//! 403, not a 401: no credential would help.

use std::net::IpAddr;

use serde::Deserialize;

use super::{
    Built, Check, CheckConfigError, Env, Head, RequestView, Scheme, Verdict, VerifyFailure,
};
use crate::send::{SignRequest, Signed};
use crate::settings::SourceSettings;

/// Scheme name reported in `verify-scheme`.
pub const SCHEME: &str = "source-address";

/// A `source-address` check as configured: the sender's address must be in
/// one of the CIDRs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceAddressSettings {
    /// Allowed networks, e.g. `178.238.226.136/32` (a bare address is a /32 or /128).
    pub allow: Vec<String>,
    /// Direct peers whose `X-Forwarded-For` is believed (reverse proxies).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

impl Scheme for SourceAddressSettings {
    /// Refuses an empty allowlist, a text that is no CIDR, and a network
    /// that matches every address unless the source allows it.
    fn build(&self, source: &SourceSettings, _env: Env<'_>) -> Result<Built, CheckConfigError> {
        Ok(Built::Address(Box::new(SourceAddressCheck::new(
            &source.name,
            &self.allow,
            &self.trusted_proxies,
            source.allow_any_address,
        )?)))
    }

    /// A passing check proves an allowed address.
    fn proves_sender(&self) -> bool {
        true
    }

    /// Nothing: no header makes an address allowed; send from an allowed
    /// address.
    fn sign(&self, _request: &SignRequest<'_>, _out: &mut Signed) -> Result<(), CheckConfigError> {
        Ok(())
    }
}

/// An IP network, `address/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
    text: String,
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `v6::/n`, or a bare address (a single host).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let network: IpAddr = addr.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then(|| Self {
            network,
            prefix,
            text: text.to_string(),
        })
    }

    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The configured check.
#[derive(Debug)]
pub struct SourceAddressCheck {
    allow: Vec<Cidr>,
    trusted_proxies: Vec<Cidr>,
}

fn parse_all(
    source: &str,
    field: &str,
    list: &[String],
    allow_any_address: bool,
) -> Result<Vec<Cidr>, CheckConfigError> {
    list.iter()
        .map(|text| {
            let cidr = Cidr::parse(text).ok_or_else(|| {
                CheckConfigError::Invalid(
                    source.to_string(),
                    SCHEME,
                    format!("`{text}` in `{field}` is not an address or CIDR"),
                )
            })?;
            if cidr.prefix == 0 && !allow_any_address {
                return Err(CheckConfigError::Invalid(
                    source.to_string(),
                    SCHEME,
                    format!(
                        "`{text}` in `{field}` matches every address; list the sender's networks, \
                         or set `allow_any_address = true` on the source"
                    ),
                ));
            }
            Ok(cidr)
        })
        .collect()
}

impl SourceAddressCheck {
    /// A check from CIDR texts; an empty allowlist fails closed, and so does
    /// a network that matches every address (`0.0.0.0/0`, `::/0`) unless
    /// `allow_any_address` says it is meant.
    pub fn new(
        source: &str,
        allow: &[String],
        trusted_proxies: &[String],
        allow_any_address: bool,
    ) -> Result<Self, CheckConfigError> {
        if allow.is_empty() {
            return Err(CheckConfigError::Invalid(
                source.to_string(),
                SCHEME,
                "`allow` lists no network".into(),
            ));
        }
        Ok(Self {
            allow: parse_all(source, "allow", allow, allow_any_address)?,
            trusted_proxies: parse_all(
                source,
                "trusted_proxies",
                trusted_proxies,
                allow_any_address,
            )?,
        })
    }

    fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|c| c.contains(ip))
    }

    /// The sender's address as this check sees it.
    fn sender(&self, request: &RequestView<'_>) -> Result<IpAddr, VerifyFailure> {
        let peer = request.peer.ok_or(VerifyFailure::AddressNotAllowed)?;
        if !self.is_trusted_proxy(peer) {
            return Ok(peer);
        }
        let mut hops: Vec<&str> = Vec::new();
        for value in request.headers.get_all("x-forwarded-for") {
            let text = value
                .to_str()
                .map_err(|_| VerifyFailure::MalformedHeader("x-forwarded-for".into()))?;
            hops.extend(text.split(',').map(str::trim).filter(|h| !h.is_empty()));
        }
        for hop in hops.iter().rev() {
            let ip: IpAddr = hop
                .parse()
                .map_err(|_| VerifyFailure::MalformedHeader("x-forwarded-for".into()))?;
            if !self.is_trusted_proxy(ip) {
                return Ok(ip);
            }
        }
        Ok(peer)
    }
}

impl Check for SourceAddressCheck {
    fn verify_head(&self, request: &RequestView<'_>) -> Result<Head, VerifyFailure> {
        self.verify(request).map(Head::Verified)
    }

    fn verify(&self, request: &RequestView<'_>) -> Result<Verdict, VerifyFailure> {
        let sender = self.sender(request)?;
        match self.allow.iter().find(|c| c.contains(sender)) {
            Some(cidr) => Ok(Verdict::new(SCHEME, cidr.text.clone())),
            None => Err(VerifyFailure::AddressNotAllowed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn check() -> SourceAddressCheck {
        SourceAddressCheck::new(
            "se",
            &["178.238.226.136".into(), "144.76.91.183/32".into()],
            &["10.0.0.0/8".into()],
            false,
        )
        .expect("valid")
    }

    fn run(peer: &str, xff: Option<&str>) -> Result<Verdict, VerifyFailure> {
        let mut h = HeaderMap::new();
        if let Some(v) = xff {
            let _ = h.insert("x-forwarded-for", HeaderValue::from_str(v).expect("ascii"));
        }
        check().verify(&RequestView {
            headers: &h,
            body: b"{}",
            now_ms: 0,
            peer: Some(peer.parse().expect("ip")),
            query: &[],
        })
    }

    #[test]
    fn cidrs_contain_their_addresses_only() {
        let net = Cidr::parse("192.168.4.0/22").expect("cidr");
        assert!(net.contains("192.168.7.255".parse().expect("ip")));
        assert!(!net.contains("192.168.8.0".parse().expect("ip")));
        assert!(net.contains("::ffff:192.168.5.1".parse().expect("ip")));
        let v6 = Cidr::parse("2001:db8::/32").expect("cidr");
        assert!(v6.contains("2001:db8:ffff::1".parse().expect("ip")));
        assert!(!v6.contains("2001:db9::1".parse().expect("ip")));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .expect("cidr")
                .contains("8.8.8.8".parse().expect("ip"))
        );
        assert_eq!(Cidr::parse("10.0.0.0/33"), None);
        assert_eq!(Cidr::parse("not-an-ip"), None);
    }

    #[test]
    fn a_listed_peer_is_allowed_and_reported() {
        assert_eq!(
            run("144.76.91.183", None).expect("allowed").key_label,
            "144.76.91.183/32"
        );
        assert_eq!(
            run("144.76.91.184", None),
            Err(VerifyFailure::AddressNotAllowed)
        );
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        assert_eq!(
            run("10.1.2.3", Some("178.238.226.136"))
                .expect("via proxy")
                .key_label,
            "178.238.226.136"
        );
        assert_eq!(
            run("10.1.2.3", Some("178.238.226.136, 10.9.9.9"))
                .expect("two proxies")
                .key_label,
            "178.238.226.136"
        );
        assert_eq!(
            run("203.0.113.7", Some("178.238.226.136")),
            Err(VerifyFailure::AddressNotAllowed),
            "spoofed header from an untrusted peer"
        );
        assert_eq!(
            run("10.1.2.3", Some("178.238.226.136, 203.0.113.7")),
            Err(VerifyFailure::AddressNotAllowed),
            "only the hop the trusted proxy saw counts"
        );
        assert_eq!(
            run("10.1.2.3", Some("garbage")),
            Err(VerifyFailure::MalformedHeader("x-forwarded-for".into()))
        );
    }

    #[test]
    fn an_empty_or_invalid_allowlist_is_a_start_error() {
        assert!(SourceAddressCheck::new("se", &[], &[], false).is_err());
        assert!(SourceAddressCheck::new("se", &["1.2.3.4/40".into()], &[], false).is_err());
    }

    #[test]
    fn catch_all_networks_are_refused_unless_allowed_by_name() {
        for (allow, proxies) in [
            (vec!["0.0.0.0/0".to_string()], vec![]),
            (vec!["::/0".to_string()], vec![]),
            (vec!["1.2.3.4".to_string()], vec!["0.0.0.0/0".to_string()]),
        ] {
            let refused = SourceAddressCheck::new("se", &allow, &proxies, false)
                .expect_err("a catch-all network is refused");
            assert!(
                refused.to_string().contains("allow_any_address"),
                "{refused}"
            );
            assert!(SourceAddressCheck::new("se", &allow, &proxies, true).is_ok());
        }
    }
}
