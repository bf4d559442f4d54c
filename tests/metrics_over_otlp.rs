//! Metrics are pushed over OTLP too: with `OTEL_EXPORTER_OTLP_ENDPOINT` set
//! to a receiver the test runs, each of the five services exports the same
//! counters, histograms and gauges it serves on `/metrics`, and their
//! values follow what the webhooks did: requests accepted by ingest, a dead
//! letter in normalize, a duplicate dropped by dedupe, one state written by
//! the state writer, one row committed by the sink, and the consumer lag of
//! every stage.

use std::time::{Duration, Instant};

use pipeline_tests::Pipeline;
use pipeline_tests::otlp::OtlpReceiver;

#[tokio::test(flavor = "multi_thread")]
async fn every_service_pushes_its_metrics_over_otlp() {
    let receiver = OtlpReceiver::start().await;
    let pipeline = Pipeline::start_with_env(
        "metrics_otlp",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.as_str()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
        ],
    )
    .await;
    pipeline.deliver_event_duplicate_and_dead_letter().await;

    let expected: &[(&str, &str, f64)] = &[
        ("ingest", "ingest_requests", 3.0),
        ("ingest", "ingest_produce_latency_seconds", 3.0),
        ("normalize", "normalize_records_in", 3.0),
        ("normalize", "normalize_records_out", 2.0),
        ("normalize", "normalize_dead_letters", 1.0),
        ("dedupe", "dedupe_records_in", 2.0),
        ("dedupe", "dedupe_records_out", 1.0),
        ("dedupe", "dedupe_duplicates", 1.0),
        ("state-writer", "state_writer_records_in", 1.0),
        ("state-writer", "state_writer_records_out", 1.0),
        ("sink", "sink_records_out", 1.0),
        ("sink", "sink_commit_seconds", 1.0),
    ];
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let missing: Vec<_> = expected
            .iter()
            .filter(|(service, name, value)| receiver.total(service, name) != Some(*value))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not reached over OTLP: {missing:?}\nreceived: {:#?}\n{}",
            receiver.points(),
            pipeline.all_logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The lag gauge comes from a sampler that runs every 5 s, per partition.
    let deadline = Instant::now() + Duration::from_secs(20);
    for stage in ["normalize", "dedupe", "state-writer", "sink"] {
        let name = format!("{}_consumer_lag", stage.replace('-', "_"));
        while receiver.total(stage, &name).is_none() {
            assert!(
                Instant::now() < deadline,
                "{name} never exported: {:#?}",
                receiver.points()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let requests = receiver
        .points()
        .into_iter()
        .find(|p| p.name == "ingest_requests")
        .expect("ingest_requests exported");
    assert_eq!(
        requests.attributes,
        ["source=generic", "status=200"],
        "{requests:?}"
    );
}
