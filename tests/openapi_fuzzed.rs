//! Schemathesis against a live ingest, for a bounded time: it reads the
//! served `GET /openapi.json` and sends what the document allows and what
//! it forbids. No answer may be a server error, every status, content type,
//! header and body must be the documented ones, an undocumented method must
//! get a 405 with a matching `Allow`, no request may stall, and nothing may
//! reach `webhooks.raw`: no source of this test's config accepts a request
//! from loopback without a credential the fuzzer cannot guess.
//!
//! Schemathesis comes from PyPI (`tests/python/requirements.txt`), in the
//! virtual environment `scripts/test.sh` creates; `ESTATE_TEST_PYTHON` is
//! that environment's python.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use pipeline_tests::{
    FLUXIMMO_TOKEN, GENERIC_SECRET, IMMOTEUR_TOKEN, Pipeline, STANDARD_SECRET,
    STREAM_ESTATE_ADDRESSES,
};

/// Fuzzing budget, seconds (schemathesis' `--max-time`).
const FUZZ_SECONDS: u64 = 45;
/// The whole schemathesis run, start-up included, must end within this.
const RUN_DEADLINE: Duration = Duration::from_secs(150);
/// Any single request slower than this is a stall.
const REQUEST_TIMEOUT_SECS: u64 = 5;

/// The sources of [`fuzz_config`]; schemathesis picks the `source` path
/// segment from these most of the time, so its requests reach the checks
/// rather than stopping at `unknown_source`.
const SOURCES: [&str; 5] = [
    "generic",
    "fluximmo",
    "stream-estate",
    "immoteur",
    "standard",
];

/// One source per check kind, none of which lets loopback in for free:
/// the address allowlist holds only Stream.estate's public addresses, and
/// its one trusted proxy is a documentation address (TEST-NET-1) no
/// request comes from, so a spoofed `X-Forwarded-For` from the fuzzer is
/// never believed. (The shared test config trusts 127.0.0.1 as a proxy,
/// which a fuzzer could exploit with a forged header.)
fn fuzz_config() -> String {
    let [se1, se2] = STREAM_ESTATE_ADDRESSES;
    format!(
        r#"
[[sources]]
name = "generic"
provider = "generic"
[[sources.checks]]
kind = "hmac-sha256"
secrets = [{{ label = "test", value = "{GENERIC_SECRET}" }}]

[[sources]]
name = "fluximmo"
provider = "fluximmo"
[[sources.checks]]
kind = "secret-token"
query = "token"
tokens = [{{ label = "current", value = "{FLUXIMMO_TOKEN}" }}]

[[sources]]
name = "stream-estate"
provider = "stream-estate"
[[sources.checks]]
kind = "source-address"
allow = ["{se1}/32", "{se2}"]
trusted_proxies = ["192.0.2.1/32"]

[[sources]]
name = "immoteur"
provider = "immoteur"
[[sources.checks]]
kind = "bearer"
tokens = [{{ label = "current", value = "{IMMOTEUR_TOKEN}" }}]

[[sources]]
name = "standard"
provider = "standard-webhooks"
[[sources.checks]]
kind = "standard-webhooks"
secrets = [{{ label = "current", value = "{STANDARD_SECRET}" }}]
"#
    )
}

/// The python of `ESTATE_TEST_PYTHON`, checked to have schemathesis. It is
/// run as `python -m schemathesis.cli`, not through the `schemathesis`
/// script: a virtual environment moved into place after it was built keeps
/// the old path in its scripts' first line.
fn schemathesis() -> PathBuf {
    let python = std::env::var("ESTATE_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "ESTATE_TEST_PYTHON is not set: it must be the python of a virtual environment with \
             tests/python/requirements.txt installed (scripts/test.sh creates it), so schemathesis \
             can fuzz ingest; this test does not skip without it"
        )
    });
    let found = std::process::Command::new(&python)
        .args(["-c", "import schemathesis.cli"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "schemathesis is missing: install tests/python/requirements.txt into the environment of \
         ESTATE_TEST_PYTHON={python}"
    );
    PathBuf::from(python)
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_stall_or_stored_request() {
    let executable = schemathesis();
    let config = fuzz_config();
    for source in SOURCES {
        assert!(
            config.contains(&format!("name = \"{source}\"")),
            "{source} is configured"
        );
    }
    assert!(
        !config.contains("127.") && !config.contains("::1") && !config.contains("unverified"),
        "the fuzzed config must not let loopback or unverified requests in"
    );
    let pipeline = Pipeline::start_ingest_with_config("openapi_fuzzed", &config).await;
    let dir = pipeline
        .ingest_config_path()
        .parent()
        .map(PathBuf::from)
        .expect("the pipeline's directory");
    // The served document, which must be the shipped one, run from a file:
    // loaded from its URL, schemathesis would skip the document's own
    // operation (`GET /openapi.json`).
    let served = reqwest::get(format!("{}/openapi.json", pipeline.ingest_url))
        .await
        .expect("ingest serves its document")
        .text()
        .await
        .expect("the document");
    assert_eq!(
        served,
        ingest::openapi::DOCUMENT,
        "the shipped document is served"
    );
    let document_path = dir.join("openapi.json");
    std::fs::write(&document_path, &served).expect("write the document");
    let settings_path = dir.join("schemathesis.toml");
    let names: Vec<String> = SOURCES.iter().map(|s| format!("\"{s}\"")).collect();
    std::fs::write(
        &settings_path,
        format!(
            "[dictionaries.sources]\nvalues = [{}]\n\n[parameters]\n\
             \"path.source\" = {{ dictionary = \"sources\", probability = 0.8 }}\n",
            names.join(", ")
        ),
    )
    .expect("write the schemathesis settings");
    let output_path = dir.join("schemathesis.txt");
    let output = std::fs::File::create(&output_path).expect("create the schemathesis log");

    let checks = [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "missing_required_header",
        "unsupported_method",
        "allow_header_conformance",
    ]
    .join(",");
    let started = Instant::now();
    let mut child = tokio::process::Command::new(&executable)
        .args(["-m", "schemathesis.cli"])
        .current_dir(&dir)
        .args([
            "--config-file",
            &settings_path.display().to_string(),
            "run",
            &document_path.display().to_string(),
            "--url",
            &pipeline.ingest_url,
            // Every 5xx fails, 503 included: nothing this config lets in
            // reaches Kafka, so an `unavailable` would itself be a bug.
            "--checks",
            &checks,
            // The operator endpoints live on admin_listen, another address.
            "--exclude-tag",
            "operator",
            "--max-time",
            &FUZZ_SECONDS.to_string(),
            "--max-examples",
            "200",
            "--request-timeout",
            &REQUEST_TIMEOUT_SECS.to_string(),
            "--workers",
            "2",
            "--generation-database",
            "none",
            "--no-color",
        ])
        .stdin(Stdio::null())
        .stdout(output.try_clone().expect("clone the log handle"))
        .stderr(output)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", executable.display()));
    let status = tokio::time::timeout(RUN_DEADLINE, child.wait()).await;
    let report = std::fs::read_to_string(&output_path).unwrap_or_default();
    eprintln!(
        "schemathesis ({:.0?}), output in {}:\n{report}",
        started.elapsed(),
        output_path.display()
    );
    let status = match status {
        Ok(status) => status.expect("schemathesis ran"),
        Err(_) => {
            let _ = child.kill().await;
            panic!("schemathesis did not finish within {RUN_DEADLINE:?}: a stall");
        }
    };
    assert!(
        status.success(),
        "schemathesis found a contract violation ({status}); see its output above"
    );

    // Ingest is still up and answering...
    let response = reqwest::get(format!("{}/openapi.json", pipeline.ingest_url))
        .await
        .expect("ingest still answers after the fuzzing");
    assert_eq!(response.status(), 200);
    let log = std::fs::read_to_string(dir.join("ingest.log")).unwrap_or_default();
    assert!(!log.contains("panicked"), "ingest panicked:\n{log}");
    // ...and nothing the fuzzer sent was stored.
    pipeline.assert_raw_empty();
}
