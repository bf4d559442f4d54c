//! One webhook is one trace: with the services exporting over OTLP/HTTP to
//! a receiver the test runs, a single webhook yields spans from ingest,
//! normalize, dedupe, the sink and the state writer with one trace id, each
//! stage's span the child of the previous stage's (the sink's and the state
//! writer's both children of dedupe's: both read `properties.events`),
//! linked through the `traceparent` Kafka header. The sink's span closes
//! after its batch's database commit.

use std::time::{Duration, Instant};

use pipeline_tests::otlp::{OtlpReceiver, ReceivedSpan};
use pipeline_tests::{Pipeline, fixture};

#[tokio::test(flavor = "multi_thread")]
async fn one_webhook_is_one_trace_across_the_five_services() {
    let receiver = OtlpReceiver::start().await;
    let pipeline = Pipeline::start_with_env(
        "one_trace",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
    )
    .await;
    pipeline
        .deliver_generic(&fixture("generic/property.created.json"))
        .await;
    let rows = pipeline
        .wait_for_count(
            "SELECT count(*) FROM property_events",
            1,
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(rows, 1, "{}", pipeline.all_logs());

    let deadline = Instant::now() + Duration::from_secs(30);
    let chain = loop {
        let spans = receiver.spans();
        if let Some(chain) = chain_of_first_webhook(&spans) {
            break chain;
        }
        assert!(
            Instant::now() < deadline,
            "no complete trace; spans received: {spans:#?}\n{}",
            pipeline.all_logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let [ingest, normalize, dedupe, sink, state_writer] = chain;
    assert!(
        ingest.parent_span_id.is_empty(),
        "ingest's span is the root"
    );
    for (parent, child) in [
        (&ingest, &normalize),
        (&normalize, &dedupe),
        (&dedupe, &sink),
        (&dedupe, &state_writer),
    ] {
        assert_eq!(child.trace_id, parent.trace_id, "{child:?}");
        assert_eq!(
            child.parent_span_id, parent.span_id,
            "{} is the child of {}",
            child.service, parent.service
        );
    }
}

/// The five stages' spans of the trace started by the first ingest span.
fn chain_of_first_webhook(spans: &[ReceivedSpan]) -> Option<[ReceivedSpan; 5]> {
    let ingest = spans.iter().find(|s| s.service == "ingest")?;
    let of = |service: &str| {
        spans
            .iter()
            .find(|s| s.service == service && s.trace_id == ingest.trace_id)
            .cloned()
    };
    Some([
        ingest.clone(),
        of("normalize")?,
        of("dedupe")?,
        of("sink")?,
        of("state-writer")?,
    ])
}
