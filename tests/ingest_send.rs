//! `ingest-send` signs a file for any configured source from the same
//! config file ingest runs with, like a provider's "send a test event"
//! button: each provider's fixture it sends is accepted and stored.

use std::process::Command;

use pipeline_tests::{Pipeline, raw_field};
use rdkafka::Message;

#[tokio::test(flavor = "multi_thread")]
async fn ingest_send_signs_each_providers_fixture_so_ingest_accepts_it() {
    let pipeline = Pipeline::start_ingest("ingest_send").await;
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let cases = [
        ("generic", "generic/property.created.json"),
        ("fluximmo", "fluximmo/webhook-properties.json"),
        ("immoteur", "immoteur/property-notification.json"),
        ("standard", "generic/appointment.scheduled.json"),
    ];
    for (source, file) in cases {
        let output = Command::new(pipeline.stack.bin_dir.join("ingest-send"))
            .arg("--source")
            .arg(source)
            .arg("--config")
            .arg(pipeline.ingest_config_path())
            .arg("--url")
            .arg(&pipeline.ingest_url)
            .arg(fixtures.join(file))
            .output()
            .expect("run ingest-send");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.starts_with("200"),
            "{source}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let unknown = Command::new(pipeline.stack.bin_dir.join("ingest-send"))
        .args(["--source", "nowhere", "--url", &pipeline.ingest_url])
        .arg("--config")
        .arg(pipeline.ingest_config_path())
        .arg(fixtures.join("generic/property.created.json"))
        .output()
        .expect("run ingest-send");
    assert!(!unknown.status.success(), "an unknown source is an error");

    let records = pipeline
        .wait_for_records(
            &pipeline.topics.raw(),
            cases.len(),
            std::time::Duration::from_secs(10),
        )
        .await;
    assert_eq!(records.len(), cases.len());
    for (source, file) in cases {
        let body = std::fs::read(fixtures.join(file)).expect("fixture");
        assert!(
            records
                .iter()
                .any(|r| raw_field(r, "source").as_deref() == Some(source)
                    && r.payload() == Some(body.as_slice())),
            "{source}'s fixture is stored byte for byte"
        );
    }
}
