//! The `PropertyEvent` schema evolves BACKWARD compatibly: the schema
//! registry, which refuses an incompatible version with 409, accepts the
//! current schema on a subject where the first (walking-skeleton) version
//! is registered, so consumers on the new schema read every old record.

use pipeline_tests::Stack;
use serde_json::json;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

async fn register(
    http: &reqwest::Client,
    stack: &Stack,
    subject: &str,
    schema: &str,
) -> (u16, String) {
    let response = http
        .post(format!(
            "{}/subjects/{subject}/versions",
            stack.registry_url
        ))
        .header("content-type", CONTENT_TYPE)
        .json(&json!({ "schema": schema }))
        .send()
        .await
        .expect("the registry answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_current_schema_registers_over_v1() {
    let stack = Stack::from_env();
    let http = reqwest::Client::new();
    let subject = format!(
        "t.evolution_{}.properties.normalized-value",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let (status, body) = register(&http, &stack, &subject, schemas::PROPERTY_EVENT_AVSC_V1).await;
    assert_eq!(status, 200, "v1 registers: {body}");
    let (status, body) = register(&http, &stack, &subject, schemas::PROPERTY_EVENT_AVSC).await;
    assert_eq!(
        status, 200,
        "the current schema is BACKWARD compatible with v1: {body}"
    );

    // The check is live: a required field without a default would break
    // readers of old records, and the registry refuses it.
    let mut breaking: serde_json::Value =
        serde_json::from_str(schemas::PROPERTY_EVENT_AVSC).expect("the schema is JSON");
    if let Some(fields) = breaking["fields"].as_array_mut() {
        fields.push(json!({"name": "must_exist", "type": "string", "doc": "breaks readers"}));
    }
    let (status, body) = register(&http, &stack, &subject, &breaking.to_string()).await;
    assert_eq!(status, 409, "an incompatible schema is refused: {body}");
}
