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

fn docker_compose(args: &[&str]) -> std::process::Output {
    Command::new("docker-compose")
        .arg("-f")
        .arg(root().join("docker-compose.yml"))
        .args(args)
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
const OTHER_VARIABLES: [&str; 4] = [
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
        if OTHER_VARIABLES.contains(&name.as_str()) {
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
    check_environment::<sink::settings::SinkSettings>(&compose, "sink", "SINK");
}

#[test]
fn consumers_have_no_fixed_names_or_host_ports_so_they_scale() {
    let compose = resolved();
    for service in ["normalize", "dedupe", "sink"] {
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
