//! `GET /metrics` on normalize, dedupe, the state writer and the sink
//! shows each stage's counters moving as webhooks flow: records in and out,
//! a dead letter in normalize, a duplicate dropped by dedupe, a state
//! written by the state writer, rows written and batch and commit
//! latencies in the sink, and the consumer lag per partition back at zero
//! once everything is processed. `GET /health` answers 200.

use std::time::{Duration, Instant};

use pipeline_tests::{Pipeline, Service};

/// The value of the sample named exactly `series` (with its labels), if any.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Polls `service`'s `/metrics` until every `(series, value)` holds.
async fn wait_for_samples(
    pipeline: &Pipeline,
    service: Service,
    expected: &[(&str, f64)],
) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // A stage opens its endpoint once connected: until then, keep asking.
        let text = match reqwest::get(pipeline.metrics_url(service)).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(e) => format!("(not answering yet: {e})"),
        };
        let missing: Vec<_> = expected
            .iter()
            .filter(|(series, value)| sample(&text, series) != Some(*value))
            .collect();
        if missing.is_empty() {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {missing:?} not reached in:\n{text}",
            service.name()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_consumer_stage_counts_what_it_did() {
    let pipeline = Pipeline::start("stage_metrics").await;
    pipeline.deliver_event_duplicate_and_dead_letter().await;

    let _ = wait_for_samples(
        &pipeline,
        Service::Normalize,
        &[
            ("normalize_records_in_total", 3.0),
            ("normalize_records_out_total", 2.0),
            ("normalize_dead_letters_total", 1.0),
        ],
    )
    .await;
    let _ = wait_for_samples(
        &pipeline,
        Service::Dedupe,
        &[
            ("dedupe_records_in_total", 2.0),
            ("dedupe_records_out_total", 1.0),
            ("dedupe_duplicates_total", 1.0),
            ("dedupe_corrections_total", 0.0),
        ],
    )
    .await;
    let _ = wait_for_samples(
        &pipeline,
        Service::StateWriter,
        &[
            ("state_writer_records_in_total", 1.0),
            ("state_writer_records_out_total", 1.0),
            ("state_writer_unchanged_total", 0.0),
            ("state_writer_undecodable_total", 0.0),
        ],
    )
    .await;
    let sink = wait_for_samples(
        &pipeline,
        Service::Sink,
        &[
            ("sink_records_in_total", 1.0),
            ("sink_records_out_total", 1.0),
            ("sink_commit_seconds_count", 1.0),
        ],
    )
    .await;
    assert!(sink.contains("sink_batch_seconds_bucket"), "{sink}");
    // The lag sampler runs every 5 s; once caught up, every partition is at 0.
    let normalize = wait_for_samples(&pipeline, Service::Normalize, &[]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut text = normalize;
    while !text.contains("normalize_consumer_lag{") || lag_above_zero(&text) {
        assert!(Instant::now() < deadline, "lag never sampled at 0:\n{text}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        text = wait_for_samples(&pipeline, Service::Normalize, &[]).await;
    }

    let health = reqwest::get(pipeline.health_url(Service::Dedupe))
        .await
        .expect("/health answers");
    assert_eq!(health.status(), 200);
}

fn lag_above_zero(text: &str) -> bool {
    text.lines()
        .filter(|l| l.starts_with("normalize_consumer_lag{"))
        .any(|l| !l.ends_with(" 0"))
}
