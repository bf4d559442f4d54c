//! Static group membership for dedupe (`[kafka.properties]
//! group.instance.id`, e.g. `DEDUPE__KAFKA__PROPERTIES__GROUP.INSTANCE.ID`).
//!
//! Found (breaker19): two instances started with one identity (one setting
//! for every instance, or a replacement started while the old process
//! still ran) while webhooks flowed. The broker handed every partition to
//! the newcomer at once, without waiting for the old member's session to
//! time out, which the fencing bounds assume. The old member got a fatal
//! `FENCED_INSTANCE_ID` from its consumer, which dedupe logged as a consumer
//! error and went on: librdkafka's fetcher kept returning records, the
//! assignment was not reported lost, only the commits failed, and both
//! instances forwarded the same inputs for as long as they ran (219 of 400
//! webhooks twice on `properties.events`).
//!
//! Now a stage that writes output-first refuses `group.instance.id` at
//! start (`common::stage_loop::FencingSettings::consumer`), and a fatal
//! consumer error ends it before its next write
//! (`common::stage_loop::check_ownership`).

use std::time::Duration;

use pipeline_tests::exactly_once::ExactlyOnce;
use pipeline_tests::{Pipeline, Service};

const WEBHOOKS: usize = 20;
const STATIC: &str = "DEDUPE__KAFKA__PROPERTIES__GROUP.INSTANCE.ID";

#[tokio::test(flavor = "multi_thread")]
async fn a_dedupe_with_a_static_identity_refuses_to_start() {
    let mut pipeline = Pipeline::start_with(
        "dedupe_static",
        &[Service::Ingest, Service::Normalize, Service::Sink],
        None,
        &[(STATIC, "dedupe-0")],
    )
    .await;
    pipeline.spawn(Service::Dedupe);
    let status = pipeline
        .wait_exit_status(Service::Dedupe, Duration::from_secs(30))
        .await;
    let log = pipeline.log(Service::Dedupe);
    assert!(
        status.is_some_and(|s| !s.success()),
        "dedupe ran with a static group identity:\n{log}"
    );
    assert!(log.contains("group.instance.id"), "{log}");

    // Without it, dedupe forwards every webhook once.
    let mut dedupe = pipeline
        .command(Service::Dedupe)
        .env_remove(STATIC)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start dedupe");
    for i in 0..WEBHOOKS {
        pipeline
            .deliver_generic(&pipeline_tests::numbered_webhook("static", i))
            .await;
    }
    ExactlyOnce::of((0..WEBHOOKS).map(|i| format!("generic:evt_static_{i}")))
        .only()
        .assert(&pipeline, Duration::from_secs(60))
        .await;
    let _ = dedupe.kill();
    let _ = dedupe.wait();
}
