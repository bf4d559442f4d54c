//! docker-compose.yml cannot run here (no Docker engine), so what can be
//! checked without one is checked: the file is valid for Compose, every
//! environment variable a service gets is one its settings accept, the
//! consumers can scale, the topic setup reads the same catalogue as the
//! local stack, and every command is a binary this workspace builds.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::de::DeserializeOwned;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// The secrets compose requires from the user's environment, with values
/// for the test (compose refuses to resolve the file without them).
const COMPOSE_SECRETS: [(&str, &str); 4] = [
    ("GENERIC_WEBHOOK_SECRET", "compose-test-generic-secret"),
    ("FLUXIMMO_WEBHOOK_TOKEN", "compose-test-fluximmo-token"),
    ("IMMOTEUR_WEBHOOK_TOKEN", "compose-test-immoteur-token"),
    (
        "STANDARD_WEBHOOK_SECRET",
        "whsec_Y29tcG9zZS10ZXN0LXN0YW5kYXJkLWtleQ==",
    ),
];

fn docker_compose(args: &[&str]) -> std::process::Output {
    Command::new("docker-compose")
        .arg("-f")
        .arg(root().join("docker-compose.yml"))
        .args(args)
        .envs(COMPOSE_SECRETS)
        .output()
        .expect("docker-compose is installed by scripts/install-deps.sh")
}

/// The compose file as Compose resolves it, as JSON.
fn resolved() -> Value {
    let output = docker_compose(&["--profile", "tracing", "config"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Debian's docker-compose brings python3-yaml; use it to turn YAML into JSON.
    let mut python = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("Debian's python3");
    python
        .stdin
        .take()
        .expect("stdin")
        .write_all(&output.stdout)
        .expect("write YAML");
    let json = python.wait_with_output().expect("python output");
    assert!(json.status.success());
    serde_json::from_slice(&json.stdout).expect("JSON")
}

#[test]
fn the_compose_file_is_valid_with_and_without_the_tracing_profile() {
    for args in [
        vec!["config", "-q"],
        vec!["--profile", "tracing", "config", "-q"],
    ] {
        let output = docker_compose(&args);
        assert!(
            output.status.success(),
            "docker-compose {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Variables a service may get that are not its settings.
const OTHER_VARIABLES: [&str; 5] = [
    // Read by enrich as its API key (`[api] key_env`), never a setting.
    "FLUXIMMO_API_KEY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "LOG_FORMAT",
    "RUST_LOG",
];

fn check_environment<T: DeserializeOwned>(compose: &Value, service: &str, prefix: &str) {
    let spec = &compose["services"][service];
    let command: Vec<&str> = spec["command"]
        .as_array()
        .unwrap_or_else(|| panic!("{service} has a command list"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let config_in_image = command
        .iter()
        .position(|a| *a == "--config")
        .and_then(|i| command.get(i + 1))
        .unwrap_or_else(|| panic!("{service} passes --config"));
    let file = root()
        .join("config")
        .join(Path::new(config_in_image).file_name().expect("a file name"));
    assert!(
        config_in_image.starts_with("/etc/estate/") && file.exists(),
        "{service}: {config_in_image} is copied from {}",
        file.display()
    );
    let environment = spec["environment"].as_object().cloned().unwrap_or_default();
    let mut vars = Vec::new();
    for (name, value) in environment {
        if OTHER_VARIABLES.contains(&name.as_str())
            || COMPOSE_SECRETS.iter().any(|(secret, _)| *secret == name)
        {
            continue;
        }
        assert!(
            name.starts_with(&format!("{prefix}__")),
            "{service}: `{name}` is neither a {prefix}__ setting nor a known variable"
        );
        vars.push((
            name,
            value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_string),
        ));
    }
    if let Err(e) = common::config::load_from::<T>(prefix, Some(&file), &vars) {
        panic!("{service}: the binary would refuse its compose environment: {e}");
    }
}

#[test]
fn every_services_environment_is_accepted_by_its_settings() {
    let compose = resolved();
    check_environment::<ingest::settings::IngestSettings>(&compose, "ingest", "INGEST");
    check_environment::<normalize::settings::NormalizeSettings>(&compose, "normalize", "NORMALIZE");
    check_environment::<dedupe::settings::DedupeSettings>(&compose, "dedupe", "DEDUPE");
    check_environment::<state_writer::settings::StateWriterSettings>(
        &compose,
        "state-writer",
        "STATE_WRITER",
    );
    check_environment::<enrich::settings::EnrichSettings>(&compose, "enrich", "ENRICH");
    check_environment::<sink::settings::SinkSettings>(&compose, "sink", "SINK");
}

#[test]
fn compose_ingest_reads_every_secret_from_the_environment_and_allows_no_loopback() {
    let compose = resolved();
    let spec = &compose["services"]["ingest"];
    let environment = spec["environment"].as_object().cloned().unwrap_or_default();
    let text = std::fs::read_to_string(root().join("config/ingest.compose.toml"))
        .expect("config/ingest.compose.toml");
    let settings: ingest::settings::IngestSettings =
        toml::from_str(&text).expect("the compose ingest config parses");
    assert!(!settings.sources.is_empty());
    let lookup = |name: &str| {
        environment
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    for source in &settings.sources {
        for check in &source.checks {
            use ingest::settings::CheckSettings as C;
            let secrets = match check {
                C::HmacSha256(hmac) => hmac.secrets.as_slice(),
                C::StandardWebhooks(standard) => standard.secrets.as_slice(),
                C::Bearer(bearer) => bearer.tokens.as_slice(),
                C::SecretToken(token) => token.tokens.as_slice(),
                C::SourceAddress(address) => {
                    for cidr in address.allow.iter().chain(&address.trusted_proxies) {
                        let ip: std::net::IpAddr = cidr
                            .split('/')
                            .next()
                            .and_then(|a| a.parse().ok())
                            .unwrap_or_else(|| panic!("{}: `{cidr}` is an address", source.name));
                        let private = match ip {
                            std::net::IpAddr::V4(v4) => {
                                v4.is_loopback() || v4.is_private() || v4.is_unspecified()
                            }
                            std::net::IpAddr::V6(v6) => v6.is_loopback() || v6.is_unspecified(),
                        };
                        assert!(!private, "{}: `{cidr}` lets local senders in", source.name);
                    }
                    &[]
                }
                C::ImmoteurHeaders { .. } => &[],
            };
            for secret in secrets {
                assert!(
                    secret.value.is_none(),
                    "{}: secret `{}` is inline; compose must read it from the environment",
                    source.name,
                    secret.label
                );
                let var = secret.env.as_deref().unwrap_or_default();
                assert!(
                    lookup(var).is_some(),
                    "{}: `{var}` is not passed to the ingest container",
                    source.name
                );
            }
        }
        if let Err(e) = ingest::verify::SourceVerifier::build(source, &lookup) {
            panic!("ingest would refuse its compose source: {e}");
        }
    }
    let ports: Vec<String> = spec["ports"]
        .as_array()
        .map(|p| p.iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    assert!(
        ports
            .iter()
            .any(|p| p.contains("127.0.0.1") && p.contains("9100")),
        "the operator port is published on the host's loopback only: {ports:?}"
    );
}

#[test]
fn consumers_have_no_fixed_names_or_host_ports_so_they_scale() {
    let compose = resolved();
    for service in ["normalize", "dedupe", "state-writer", "sink"] {
        let spec = &compose["services"][service];
        assert!(
            spec.get("container_name").is_none(),
            "{service} has a container_name"
        );
        assert!(
            spec.get("ports").is_none(),
            "{service} publishes a host port"
        );
    }
}

#[test]
fn topic_setup_reads_the_local_stacks_catalogue() {
    let compose = resolved();
    let command = compose["services"]["topic-setup"]["command"].to_string();
    assert!(command.contains("create-topics"), "{command}");
    assert!(command.contains("/etc/estate/topics.toml"), "{command}");
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    assert!(
        dockerfile.contains("COPY config/ /etc/estate/"),
        "the image carries config/ (and so config/topics.toml) at /etc/estate/"
    );
    // The local stack creates topics from the catalogue built into create-topics,
    // which is config/topics.toml itself.
    assert_eq!(
        common::topics::DEFAULT_CATALOGUE,
        std::fs::read_to_string(root().join("config/topics.toml")).expect("catalogue")
    );
}

#[test]
fn every_command_is_a_binary_this_workspace_builds() {
    let Ok(bin_dir) = std::env::var("ESTATE_TEST_BIN_DIR") else {
        panic!("ESTATE_TEST_BIN_DIR is set by scripts/test.sh");
    };
    let compose = resolved();
    let services = compose["services"].as_object().expect("services");
    for (name, spec) in services {
        if spec["image"].as_str() != Some("estate-pipeline:local") {
            continue;
        }
        let binary = spec["command"][0].as_str().expect("a command");
        assert!(
            Path::new(&bin_dir).join(binary).exists(),
            "{name} runs `{binary}`, which the workspace does not build"
        );
    }
}
