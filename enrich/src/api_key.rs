//! The Fluximmo API key: read from a file (`[api] key_file`, a mounted
//! secret) or an environment variable (`[api] key_env`), never from the
//! settings themselves, and never printed: [`ApiKey`]'s `Debug` hides it,
//! and errors name where it was read ([`KeySource`]), not what it is.

use std::path::Path;

use crate::outcome::KeySource;

/// An API key; shown as `ApiKey(…)`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// The key, for the `x-api-key` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(…)")
    }
}

/// What the configuration says about the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLookup {
    /// A key, and where it was read.
    Found(ApiKey, KeySource),
    /// No key configured: enrichment is off.
    Off,
}

/// Reads the key: the file when `file` is set (its first line, trimmed; a
/// missing, unreadable or empty file is an error, since the operator asked
/// for it), else the variable `env_name` from `env` (unset or blank: off).
pub fn lookup(
    file: Option<&Path>,
    env_name: &str,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<KeyLookup> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read the API key file {}: {e}", path.display()))?;
        let key = text.lines().next().unwrap_or_default().trim();
        anyhow::ensure!(
            !key.is_empty(),
            "the API key file {} is empty",
            path.display()
        );
        return checked(key, KeySource::File(path.to_path_buf()));
    }
    match env(env_name).as_deref().map(str::trim) {
        None | Some("") => Ok(KeyLookup::Off),
        Some(key) => checked(key, KeySource::Env(env_name.to_string())),
    }
}

/// A key that can go in an HTTP header.
fn checked(key: &str, source: KeySource) -> anyhow::Result<KeyLookup> {
    anyhow::ensure!(
        key.bytes().all(|b| b.is_ascii_graphic()),
        "the API key read from {source} holds characters an HTTP header cannot carry"
    );
    Ok(KeyLookup::Found(ApiKey(key.to_string()), source))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with(value: Option<&str>) -> impl Fn(&str) -> Option<String> {
        let value = value.map(str::to_string);
        move |name| {
            (name == "FLUXIMMO_API_KEY")
                .then(|| value.clone())
                .flatten()
        }
    }

    #[test]
    fn no_key_means_off_and_a_blank_one_too() {
        assert_eq!(
            lookup(None, "FLUXIMMO_API_KEY", env_with(None)).expect("off"),
            KeyLookup::Off
        );
        assert_eq!(
            lookup(None, "FLUXIMMO_API_KEY", env_with(Some("  "))).expect("off"),
            KeyLookup::Off
        );
    }

    #[test]
    fn the_key_comes_from_the_variable_or_the_file_and_never_shows() {
        let found = lookup(None, "FLUXIMMO_API_KEY", env_with(Some("s3cret"))).expect("found");
        let KeyLookup::Found(key, source) = &found else {
            panic!("no key");
        };
        assert_eq!(key.expose(), "s3cret");
        assert_eq!(source, &KeySource::Env("FLUXIMMO_API_KEY".into()));
        assert!(!format!("{found:?}").contains("s3cret"));

        let dir = std::env::temp_dir().join(format!("enrich-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("key");
        std::fs::write(&file, "from-file\n").expect("write");
        let from_file = lookup(Some(&file), "FLUXIMMO_API_KEY", env_with(Some("s3cret")))
            .expect("the file wins");
        assert!(
            matches!(&from_file, KeyLookup::Found(k, KeySource::File(_)) if k.expose() == "from-file")
        );
        std::fs::write(&file, "\n").expect("write");
        let empty = lookup(Some(&file), "X", env_with(None)).expect_err("empty file");
        assert!(empty.to_string().contains("empty"), "{empty}");
        let missing = lookup(Some(&dir.join("none")), "X", env_with(None)).expect_err("missing");
        assert!(missing.to_string().contains("cannot read"), "{missing}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_key_a_header_cannot_carry_is_refused_without_showing_it() {
        let error =
            lookup(None, "FLUXIMMO_API_KEY", env_with(Some("bad\u{7f}key"))).expect_err("refused");
        assert!(!error.to_string().contains("bad"), "{error}");
    }
}
