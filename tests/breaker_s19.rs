//! breaker-s19: the consumers' gathered fetches (`fetch.min.bytes` 16 KiB,
//! `fetch.wait.max.ms` 100 ms, both overridable under `[kafka.properties]`,
//! so from the environment as `<STAGE>__KAFKA__PROPERTIES__FETCH.MIN.BYTES`)
//! against a real broker: a single webhook under no other traffic must
//! still land once in PostgreSQL whatever an operator sets them to, and a
//! value the stages or librdkafka refuse must stop the stage at start with
//! an error naming the key, never a stage that runs and moves nothing.

use std::process::Stdio;
use std::time::{Duration, Instant};

use pipeline_tests::exactly_once::ExactlyOnce;
use pipeline_tests::{Pipeline, Service, numbered_webhook};

/// The consumer stages `Pipeline::start` runs (enrichment is off).
const CONSUMERS: [Service; 4] = [
    Service::Normalize,
    Service::Dedupe,
    Service::StateWriter,
    Service::Sink,
];

/// `(<STAGE>__KAFKA__PROPERTIES__<key>, value)` for every consumer stage.
fn on_every_consumer(key: &str, value: &str) -> Vec<(String, String)> {
    CONSUMERS
        .iter()
        .map(|s| {
            (
                format!("{}__KAFKA__PROPERTIES__{key}", s.env_prefix()),
                value.to_string(),
            )
        })
        .collect()
}

/// Starts the whole pipeline with `env`, sends one webhook and asserts it
/// lands exactly once (PostgreSQL, `properties.events`, `properties.latest`).
async fn one_webhook_lands_with(name: &str, env: &[(String, String)]) {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let pipeline = Pipeline::start_with_env(name, &env).await;
    pipeline.deliver_generic(&numbered_webhook(name, 0)).await;
    ExactlyOnce::of([format!("generic:evt_{name}_0")])
        .only()
        .assert(&pipeline, Duration::from_secs(90))
        .await;
}

/// librdkafka's largest `fetch.min.bytes` (100,000,000) on every stage: a
/// lone webhook never fills a fetch, so each hop is answered at the end of
/// its wait, and the webhook still lands once.
#[tokio::test(flavor = "multi_thread")]
async fn one_webhook_lands_once_with_the_largest_fetch_min_bytes() {
    one_webhook_lands_with(
        "s19_fmb_max",
        &on_every_consumer("FETCH.MIN.BYTES", "100000000"),
    )
    .await;
}

/// Runs `service` of `pipeline` with `key=value` in its
/// `[kafka.properties]`, set from the environment
/// (`<STAGE>__KAFKA__PROPERTIES__<KEY>`), to its exit (killed after 30 s);
/// returns its status (`None`: still running at 30 s) and its output.
fn run_with_property(
    pipeline: &Pipeline,
    service: Service,
    key: &str,
    value: &str,
) -> (Option<std::process::ExitStatus>, String) {
    let mut child = pipeline
        .command(service)
        .env(
            format!(
                "{}__KAFKA__PROPERTIES__{}",
                service.env_prefix(),
                key.to_ascii_uppercase()
            ),
            value,
        )
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the service");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = child.wait_with_output().expect("the service's output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (status, text)
}

/// Runs every consumer stage with each of `cases` (`(key, value)`)
/// and asserts each run stopped at start with a non-zero exit and an error
/// naming the key (the failure lists every run that did not).
async fn assert_every_stage_refuses(name: &str, cases: &[(&str, &str)]) {
    let pipeline = Pipeline::start_ingest(name).await;
    let mut failures = Vec::new();
    for service in CONSUMERS {
        for (key, value) in cases {
            let (status, output) = run_with_property(&pipeline, service, key, value);
            let refused = status.is_some_and(|s| !s.success()) && output.contains(key);
            if !refused {
                failures.push(format!(
                    "{} with {key}={value}: exit {status:?} (None: still running after 30 s)\n{output}",
                    service.name()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

/// Values librdkafka refuses for the two fetch settings (not a number, out
/// of range, negative): every consumer stage stops at start with a
/// non-zero exit and an error naming the key; none runs on without its
/// consumer.
#[tokio::test(flavor = "multi_thread")]
async fn a_fetch_setting_librdkafka_refuses_stops_every_stage_at_start_naming_it() {
    assert_every_stage_refuses(
        "s19_bad_fetch",
        &[
            ("fetch.min.bytes", "lots"),
            ("fetch.min.bytes", "0"),
            ("fetch.min.bytes", "100000001"),
            ("fetch.wait.max.ms", "-1"),
            ("fetch.wait.max.ms", "300001"),
        ],
    )
    .await;
}

/// A fetch setting written with a unit, the way the README and the
/// doc comments speak of them (`16KiB`, `100ms`), is refused at start like
/// "lots", naming the key: librdkafka would take the digits the text
/// starts with (16 bytes for "16KiB", not 16,384).
///
/// Failed before `common::property_values`: all eight runs (4 stages x 2
/// values) were still running after 30 s, with no error in their output.
#[tokio::test(flavor = "multi_thread")]
async fn a_fetch_setting_with_a_unit_is_refused_at_start_naming_it() {
    assert_every_stage_refuses(
        "s19_unit_fetch",
        &[("fetch.min.bytes", "16KiB"), ("fetch.wait.max.ms", "100ms")],
    )
    .await;
}

/// `fetch.wait.max.ms` below 1 ms is refused at start by every consumer
/// stage, naming the key.
///
/// Before `common::property_values` every stage accepted it and a lone
/// webhook never left `webhooks.raw`, silently (also with the largest
/// `fetch.min.bytes`): ingest answered 200, the
/// stages stayed up, and after 90 s the event was in neither
/// `properties.events` nor PostgreSQL; normalize's log ended at
/// "normalize running". A bare confluent-kafka consumer of that topic on
/// the same nisshi 0.8.1 got nothing in 25 s with a wait of 0, whether
/// `fetch.min.bytes` was 1 or 16384, and the record within 3.2 s with a
/// wait of 1 or 10 ms: the broker never answers a fetch that may not wait
/// with records.
#[tokio::test(flavor = "multi_thread")]
async fn a_fetch_that_may_not_wait_is_refused_at_start_naming_it() {
    assert_every_stage_refuses(
        "s19_fwm_zero",
        &[("fetch.wait.max.ms", "0"), ("fetch.wait.max.ms", "0.5")],
    )
    .await;
}
