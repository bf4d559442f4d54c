//! Dedupe detects at start whether the broker supports transactions. The
//! local broker refuses them: with `transactions = "auto"` dedupe says so
//! once and runs in the output-first mode; with `"required"` it refuses to
//! start, with an error that says why.

use std::time::Duration;

use pipeline_tests::{Pipeline, Service};

#[tokio::test(flavor = "multi_thread")]
async fn the_local_broker_refuses_transactions_and_dedupe_falls_back_or_refuses() {
    let pipeline = Pipeline::start("txn_detect").await;
    let mut log = String::new();
    for _ in 0..100 {
        log = pipeline.log_tail(Service::Dedupe);
        if log.contains("dedupe running") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(log.contains("does not support transactions"), "{log}");
    assert!(
        log.contains("output-first recovery (no broker transactions)"),
        "{log}"
    );

    let output = pipeline
        .command(Service::Dedupe)
        .env("DEDUPE__TRANSACTIONS", "required")
        .env("DEDUPE__GROUP", "txn-required-check")
        .output()
        .expect("run dedupe");
    assert!(
        !output.status.success(),
        "dedupe must not start without transactions"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refused transactions") && stderr.contains("required"),
        "{stderr}"
    );
}
