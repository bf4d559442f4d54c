//! `GET /metrics` tells an operator what ingest did: requests by source and
//! status, verification failures by reason, produce latency, in flight.

use common::isolated_pipeline::Service;
use pipeline_tests::{Pipeline, fixture};

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_requests_refusals_and_produce_latency() {
    let pipeline = Pipeline::start_ingest("metrics").await;
    let body = fixture("generic/property.created.json");
    for _ in 0..2 {
        assert_eq!(
            pipeline
                .post_generic(&body)
                .await
                .expect("answers")
                .status(),
            200
        );
    }
    let refused = pipeline
        .post("generic", &[("x-webhook-timestamp", "1".into())], &body)
        .await
        .expect("answers");
    assert_eq!(refused.status(), 401);
    let unknown = pipeline
        .post("no-such-source", &[], &body)
        .await
        .expect("answers");
    assert_eq!(unknown.status(), 404);

    let r = reqwest::get(pipeline.metrics_url(Service::Ingest))
        .await
        .expect("answers");
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("text");
    for expected in [
        r#"ingest_requests_total{source="generic",status="200"} 2"#,
        r#"ingest_requests_total{source="generic",status="401"} 1"#,
        r#"ingest_requests_total{source="unknown",status="404"} 1"#,
        r#"ingest_verification_failures_total{source="generic",reason="missing_header"} 1"#,
        r#"ingest_produce_latency_seconds_count{outcome="acked"} 2"#,
        "ingest_in_flight_requests 0",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    assert!(
        !text.contains("no-such-source"),
        "unknown sources do not create series"
    );
}
