//! Normalizer versions order the same in PostgreSQL as in the sink's Rust
//! code: the SQL `normalizer_version_key` decides which correction the
//! database keeps, `sink::rows::version_key` which one a batch keeps, and
//! the two must agree, pre-releases included ("0.2.0-rc.1" < "0.2.0").

use pipeline_tests::{Pipeline, Service};

const VERSIONS: &[&str] = &[
    "0.1.0",
    "0.1",
    "v0.1.0",
    "0.1.0+build.7",
    "0.2.0-alpha",
    "0.2.0-rc.1",
    "0.2.0-rc.2",
    "0.2.0-rc.10",
    "0.2.0",
    "0.10.0",
    "1.0.0-beta.3+exp.sha.5114f85",
    "1.0.0",
    "99.0.0",
    "",
];

#[tokio::test(flavor = "multi_thread")]
async fn sql_and_rust_give_every_version_the_same_key() {
    // The sink applies the migrations at start.
    let pipeline = Pipeline::start_with("version_order", &[Service::Sink], None, &[]).await;
    let db = pipeline.db().await;
    for version in VERSIONS {
        let in_sql: Vec<i64> = db
            .query_one("SELECT normalizer_version_key($1)", &[version])
            .await
            .expect("the key computes")
            .get(0);
        let in_rust: Vec<i64> = sink::rows::version_key(version)
            .into_iter()
            .map(|n| i64::try_from(n).expect("small numbers"))
            .collect();
        assert_eq!(in_sql, in_rust, "version {version:?}");
    }
    let ordered: Vec<String> = db
        .query(
            "SELECT v FROM unnest($1::text[]) AS v ORDER BY normalizer_version_key(v), v",
            &[&["0.2.0", "0.2.0-rc.2", "0.10.0", "0.2.0-rc.10", "0.9.3"].as_slice()],
        )
        .await
        .expect("orders")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        ordered,
        ["0.2.0-rc.2", "0.2.0-rc.10", "0.2.0", "0.9.3", "0.10.0"]
    );
}
