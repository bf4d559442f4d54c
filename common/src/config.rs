//! Configuration loading: a TOML file per service, then environment overrides.
//!
//! Every service reads its settings the same way (12-factor): an optional TOML
//! file, then variables named `<PREFIX>__<section>__<key>` that override single
//! values (`INGEST__KAFKA__BROKERS=kafka:9092`). Values from the environment are
//! parsed as TOML scalars when they look like one (numbers, booleans) and kept as
//! strings otherwise. Secrets are never read from here into logs: services log
//! only the non-secret parts of their settings.

use std::path::Path;

use serde::de::DeserializeOwned;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The path that was tried.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {path} is not valid TOML: {source}")]
    Parse {
        /// The path that was read.
        path: String,
        /// The parse error.
        source: Box<toml::de::Error>,
    },
    /// An environment override points through a value that is not a table.
    #[error("environment variable {var} overrides `{key}`, which is not a table in the config")]
    NotATable {
        /// The variable name.
        var: String,
        /// The dotted key path that was blocked.
        key: String,
    },
    /// The merged configuration does not fit the service's settings.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Loads a service's settings from `path` (if any) and the environment.
///
/// `prefix` is the service's variable prefix, e.g. `INGEST`.
pub fn load<T: DeserializeOwned>(prefix: &str, path: Option<&Path>) -> Result<T, ConfigError> {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    load_from(prefix, path, &vars)
}

/// Same as [`load`] with an explicit list of environment variables (for tests).
pub fn load_from<T: DeserializeOwned>(
    prefix: &str,
    path: Option<&Path>,
    vars: &[(String, String)],
) -> Result<T, ConfigError> {
    let mut root = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?;
            text.parse::<toml::Table>()
                .map_err(|source| ConfigError::Parse {
                    path: path.display().to_string(),
                    source: Box::new(source),
                })?
        }
        None => toml::Table::new(),
    };
    apply_env_overrides(&mut root, prefix, vars)?;
    toml::Value::Table(root)
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Invalid(invalid_text(&e)))
}

/// The deserializer's message with the key it concerns (toml puts the key
/// on a line of its own, `in `raw_metadata``), on one line: an operator
/// who set `INGEST__RAW_METADATA=bogus` is told which setting is wrong.
fn invalid_text(error: &toml::de::Error) -> String {
    error
        .to_string()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Applies `<PREFIX>__a__b=value` variables onto the TOML tree.
fn apply_env_overrides(
    root: &mut toml::Table,
    prefix: &str,
    vars: &[(String, String)],
) -> Result<(), ConfigError> {
    let wanted = format!("{prefix}__");
    let mut overrides: Vec<&(String, String)> = vars
        .iter()
        .filter(|(k, _)| k.starts_with(&wanted))
        .collect();
    // Deterministic order: shorter paths first, so a table set by a short
    // path can be refined by a longer one.
    overrides.sort();
    for (var, raw) in overrides {
        let path: Vec<String> = var[wanted.len()..]
            .split("__")
            .map(|part| part.to_ascii_lowercase())
            .collect();
        let Some((last, parents)) = path.split_last() else {
            continue;
        };
        let mut table = &mut *root;
        for (depth, part) in parents.iter().enumerate() {
            let entry = table
                .entry(part.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = entry.as_table_mut().ok_or_else(|| ConfigError::NotATable {
                var: var.clone(),
                key: path[..=depth].join("."),
            })?;
        }
        let _previous = table.insert(last.clone(), scalar_from_env(raw));
    }
    Ok(())
}

/// Interprets an environment value: integers, floats and booleans as such,
/// anything else as a string.
fn scalar_from_env(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if let Ok(f) = raw.parse::<f64>()
        && raw.contains('.')
    {
        return toml::Value::Float(f);
    }
    match raw {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Kafka {
        brokers: String,
        #[serde(default)]
        linger_ms: u64,
    }

    #[derive(Debug, Deserialize)]
    struct Settings {
        kafka: Kafka,
        #[serde(default)]
        name: String,
    }

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_builds_nested_values_without_a_file() {
        let s: Settings = load_from(
            "SVC",
            None,
            &vars(&[
                ("SVC__KAFKA__BROKERS", "k:9092"),
                ("SVC__KAFKA__LINGER_MS", "5"),
                ("OTHER__NAME", "ignored"),
            ]),
        )
        .expect("loads");
        assert_eq!(s.kafka.brokers, "k:9092");
        assert_eq!(s.kafka.linger_ms, 5);
        assert_eq!(s.name, "");
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = std::env::temp_dir().join(format!("cfgtest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let file = dir.join("svc.toml");
        std::fs::write(&file, "name = \"a\"\n[kafka]\nbrokers = \"file:1\"\n").expect("write");
        let s: Settings =
            load_from("SVC", Some(&file), &vars(&[("SVC__NAME", "b")])).expect("loads");
        assert_eq!(s.kafka.brokers, "file:1");
        assert_eq!(s.name, "b");
    }

    #[test]
    fn an_invalid_value_names_its_key() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(rename_all = "kebab-case")]
        enum Layout {
            OneHeader,
            Headers,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct S {
            raw_metadata: Layout,
        }
        let error = load_from::<S>("INGEST", None, &vars(&[("INGEST__RAW_METADATA", "bogus")]))
            .expect_err("not a layout")
            .to_string();
        assert_eq!(
            error,
            "invalid configuration: unknown variant `bogus`, expected `one-header` or `headers` \
             in `raw_metadata`"
        );
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let err = load_from::<Settings>("SVC", Some(Path::new("/nonexistent/x.toml")), &[])
            .expect_err("must fail");
        assert!(err.to_string().contains("/nonexistent/x.toml"), "{err}");
    }

    #[test]
    fn override_through_a_scalar_is_rejected() {
        let err = load_from::<Settings>(
            "SVC",
            None,
            &vars(&[("SVC__NAME", "x"), ("SVC__NAME__DEEP", "y")]),
        )
        .expect_err("must fail");
        assert!(matches!(err, ConfigError::NotATable { .. }), "{err}");
    }
}
