//! The cryptography the schemes share: an HMAC-SHA256 keyed with a secret,
//! and a token compared in constant time with every configured one.

use hmac::{Hmac, KeyInit};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::settings::SecretBytes;

/// An HMAC-SHA256 keyed with `secret`.
pub(crate) fn new_mac(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; this cannot fail for SHA-256.
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

/// The label of the secret equal to `provided`, compared in constant time.
///
/// Both sides are hashed first so the comparison takes the same time whatever
/// the lengths, and every secret is compared (no early exit on a match).
pub(crate) fn match_token<'a>(
    provided: &[u8],
    secrets: &'a [(String, SecretBytes)],
) -> Option<&'a str> {
    let provided = Sha256::digest(provided);
    let mut matched = None;
    for (label, secret) in secrets {
        let expected = Sha256::digest(secret.expose());
        if bool::from(provided.as_slice().ct_eq(expected.as_slice())) && matched.is_none() {
            matched = Some(label.as_str());
        }
    }
    matched
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_by_label_whatever_their_length() {
        let secrets = vec![
            ("new".to_string(), SecretBytes::new(b"tok-new".to_vec())),
            (
                "old".to_string(),
                SecretBytes::new(b"tok-old-longer".to_vec()),
            ),
        ];
        assert_eq!(match_token(b"tok-old-longer", &secrets), Some("old"));
        assert_eq!(match_token(b"tok-new", &secrets), Some("new"));
        assert_eq!(match_token(b"tok-ne", &secrets), None);
        assert_eq!(match_token(b"", &secrets), None);
    }
}
