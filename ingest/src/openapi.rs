//! The HTTP API's contract: `ingest/openapi.json` (OpenAPI 3.1), served at
//! `GET /openapi.json`, and the small JSON Schema checker the tests use to
//! hold the server to it.
//!
//! The document is written by hand and compiled in, so the binary serves
//! exactly the file in the repository. It is the contract users and tools
//! read; the unit tests below check it against [`IngestError::code`],
//! [`VerifyFailure::reason`] and the error bodies the code renders, and
//! `tests/openapi_contract.rs` against the running server.
//!
//! [`validate`] covers the subset of JSON Schema the document's response
//! schemas use (`$ref`, `allOf`, `type`, `const`, `enum`, `required`,
//! `properties`, `items`, `minimum`, `format: uuid`, boolean schemas) and
//! refuses any other keyword, so a schema it cannot check fails loudly
//! instead of passing unchecked.
//!
//! [`IngestError::code`]: crate::error::IngestError::code
//! [`VerifyFailure::reason`]: crate::verify::VerifyFailure::reason

use axum::http::header;
use axum::response::IntoResponse;
use serde_json::Value;

/// The OpenAPI document, as shipped in `ingest/openapi.json`.
pub const DOCUMENT: &str = include_str!("../openapi.json");

/// `GET /openapi.json`: the document, as `application/json`.
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

/// The document, parsed.
pub fn parsed() -> serde_json::Result<Value> {
    serde_json::from_str(DOCUMENT)
}

/// Follows `node`'s `$ref` (local `#/...` references only, repeatedly)
/// within `doc`; a node without `$ref` is returned as it is.
pub fn resolve<'a>(doc: &'a Value, mut node: &'a Value) -> Result<&'a Value, String> {
    for _ in 0..32 {
        let Some(reference) = node.get("$ref") else {
            return Ok(node);
        };
        let reference = reference
            .as_str()
            .ok_or_else(|| format!("`$ref` is not a string: {reference}"))?;
        let pointer = reference
            .strip_prefix('#')
            .ok_or_else(|| format!("`{reference}` is not a local reference"))?;
        node = doc
            .pointer(pointer)
            .ok_or_else(|| format!("`{reference}` points at nothing"))?;
    }
    Err("`$ref` chain longer than 32".into())
}

/// Keywords that only annotate: they never make a value invalid.
const ANNOTATIONS: [&str; 4] = ["description", "title", "examples", "default"];

/// Checks `value` against `schema` (a schema within `doc`, whose `$ref`s
/// are resolved in `doc`); the error says where and why it does not fit.
pub fn validate(doc: &Value, schema: &Value, value: &Value) -> Result<(), String> {
    validate_at(doc, schema, value, "$")
}

fn validate_at(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let object = match schema {
        Value::Bool(true) => return Ok(()),
        Value::Bool(false) => return Err(format!("{at}: not allowed here (schema `false`)")),
        Value::Object(object) => object,
        other => {
            return Err(format!(
                "{at}: a schema must be an object or a bool: {other}"
            ));
        }
    };
    for (keyword, argument) in object {
        match keyword.as_str() {
            "$ref" => validate_at(doc, resolve(doc, schema)?, value, at)?,
            "allOf" => {
                for sub in argument.as_array().ok_or("`allOf` is not an array")? {
                    validate_at(doc, sub, value, at)?;
                }
            }
            "type" => {
                let name = argument.as_str().ok_or("`type` is not a string")?;
                let fits = match name {
                    "object" => value.is_object(),
                    "array" => value.is_array(),
                    "string" => value.is_string(),
                    "integer" => value.is_i64() || value.is_u64(),
                    "number" => value.is_number(),
                    "boolean" => value.is_boolean(),
                    "null" => value.is_null(),
                    other => return Err(format!("{at}: unknown type `{other}`")),
                };
                if !fits {
                    return Err(format!("{at}: expected {name}, got {value}"));
                }
            }
            "const" => {
                if value != argument {
                    return Err(format!("{at}: expected {argument}, got {value}"));
                }
            }
            "enum" => {
                let allowed = argument.as_array().ok_or("`enum` is not an array")?;
                if !allowed.contains(value) {
                    return Err(format!("{at}: {value} is not one of {argument}"));
                }
            }
            "required" => {
                if let Some(fields) = value.as_object() {
                    for name in argument.as_array().ok_or("`required` is not an array")? {
                        let name = name.as_str().ok_or("a `required` entry is not a string")?;
                        if !fields.contains_key(name) {
                            return Err(format!("{at}: missing required `{name}`"));
                        }
                    }
                }
            }
            "properties" => {
                if let Some(fields) = value.as_object() {
                    let schemas = argument
                        .as_object()
                        .ok_or("`properties` is not an object")?;
                    for (name, sub) in schemas {
                        if let Some(field) = fields.get(name) {
                            validate_at(doc, sub, field, &format!("{at}.{name}"))?;
                        }
                    }
                }
            }
            "items" => {
                if let Some(items) = value.as_array() {
                    for (i, item) in items.iter().enumerate() {
                        validate_at(doc, argument, item, &format!("{at}[{i}]"))?;
                    }
                }
            }
            "minimum" => {
                let minimum = argument.as_f64().ok_or("`minimum` is not a number")?;
                if value.as_f64().is_some_and(|n| n < minimum) {
                    return Err(format!("{at}: {value} is below {minimum}"));
                }
            }
            "format" => match argument.as_str() {
                Some("uuid") => {
                    if let Some(text) = value.as_str()
                        && uuid::Uuid::parse_str(text).is_err()
                    {
                        return Err(format!("{at}: `{text}` is not a UUID"));
                    }
                }
                other => return Err(format!("{at}: format {other:?} is not supported")),
            },
            annotation if ANNOTATIONS.contains(&annotation) => {}
            other => {
                return Err(format!(
                    "{at}: keyword `{other}` is not supported by this checker; extend `validate`"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::body::to_bytes;
    use serde_json::json;

    use super::*;
    use crate::error::IngestError;
    use crate::verify::VerifyFailure;

    fn doc() -> Value {
        parsed().expect("ingest/openapi.json is JSON")
    }

    fn enum_of(doc: &Value, pointer: &str) -> BTreeSet<String> {
        doc.pointer(pointer)
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{pointer} is an array"))
            .iter()
            .map(|v| v.as_str().expect("enum values are strings").to_string())
            .collect()
    }

    #[test]
    fn the_document_is_openapi_3_1() {
        let doc = doc();
        assert_eq!(doc["openapi"], "3.1.0");
        for path in [
            "/webhooks/{source}",
            "/openapi.json",
            "/healthz",
            "/readyz",
            "/metrics",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path} is documented");
        }
    }

    #[test]
    fn every_reference_resolves() {
        fn walk(doc: &Value, node: &Value, found: &mut usize) {
            match node {
                Value::Object(object) => {
                    if object.contains_key("$ref") {
                        *found += 1;
                        let _ = resolve(doc, node).unwrap_or_else(|e| panic!("{e}"));
                    }
                    object.values().for_each(|v| walk(doc, v, found));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(doc, v, found)),
                _ => {}
            }
        }
        let doc = doc();
        let mut found = 0;
        walk(&doc, &doc, &mut found);
        assert!(
            found > 20,
            "the document uses its components ({found} refs)"
        );
    }

    #[test]
    fn the_error_codes_are_exactly_the_codes_of_ingest_error() {
        let documented = enum_of(&doc(), "/components/schemas/ErrorCode/enum");
        let expected: BTreeSet<String> = IngestError::ALL_CODES
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            documented, expected,
            "ErrorCode enum vs IngestError::code()"
        );
    }

    #[test]
    fn the_refusal_reasons_are_exactly_the_reasons_of_verify_failure() {
        let documented = enum_of(&doc(), "/components/schemas/RefusalReason/enum");
        let expected: BTreeSet<String> = VerifyFailure::ALL_REASONS
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(documented, expected, "RefusalReason enum vs reason()");
    }

    /// Where the document describes the answer to `error`: the webhook
    /// operation's response for its status, or, for the answers any path
    /// can give, the shared component.
    fn documented_response<'a>(doc: &'a Value, error: &IngestError) -> &'a Value {
        let node = match error.code() {
            "not_found" => &doc["components"]["responses"]["NotFound"],
            "method_not_allowed" => &doc["components"]["responses"]["MethodNotAllowed"],
            _ => &doc["paths"]["/webhooks/{source}"]["post"]["responses"][error.status().as_str()],
        };
        assert!(
            !node.is_null(),
            "{} ({}) is documented",
            error.code(),
            error.status()
        );
        resolve(doc, node).unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn every_error_ingest_renders_fits_its_documented_response() {
        let doc = doc();
        for error in IngestError::every_variant() {
            let what = format!("{} / {:?}", error.code(), error);
            let response = documented_response(&doc, &error);
            let schema = &response["content"]["application/json"]["schema"];
            assert!(!schema.is_null(), "{what}: a JSON body is documented");
            let rendered = error.into_response();
            let headers = rendered.headers().clone();
            assert_eq!(
                headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok()),
                Some("application/json"),
                "{what}"
            );
            let bytes = to_bytes(rendered.into_body(), 64 * 1024)
                .await
                .expect("a rendered body");
            let body: Value = serde_json::from_slice(&bytes).expect("a JSON body");
            if let Err(e) = validate(&doc, schema, &body) {
                panic!("{what}: {body} does not fit the documented schema: {e}");
            }
            for (name, header_doc) in response["headers"].as_object().into_iter().flatten() {
                let header_doc = resolve(&doc, header_doc).expect("header resolves");
                // The router, not the error, adds `Allow` (it knows the
                // path's methods); tests/openapi_contract.rs checks it.
                if header_doc["required"] == true && name != "Allow" {
                    assert!(headers.contains_key(name.as_str()), "{what}: has {name}");
                }
            }
        }
    }

    #[test]
    fn each_refusal_reason_is_documented_under_its_own_status() {
        let doc = doc();
        for failure in VerifyFailure::every_variant() {
            let reason = failure.reason();
            let error = IngestError::from(failure);
            let status = error.status();
            let response = documented_response(&doc, &error);
            let schema = &response["content"]["application/json"]["schema"];
            let body =
                json!({"status": "error", "error": error.code(), "reason": reason, "message": "m"});
            assert!(
                validate(&doc, schema, &body).is_ok(),
                "{reason} is allowed under {status}"
            );
            for other in ["401", "403"].into_iter().filter(|s| *s != status.as_str()) {
                let node = &doc["paths"]["/webhooks/{source}"]["post"]["responses"][other];
                let other_schema = &resolve(&doc, node).expect("resolves")["content"]["application/json"]
                    ["schema"];
                let body = json!({"status": "error", "error": if other == "401" { "unauthorized" } else { "forbidden" }, "reason": reason, "message": "m"});
                assert!(
                    validate(&doc, other_schema, &body).is_err(),
                    "{reason} is not allowed under {other}"
                );
            }
        }
    }

    #[tokio::test]
    async fn the_handler_serves_the_document_as_json() {
        let response = document().await.into_response();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
        let bytes = to_bytes(response.into_body(), 1024 * 1024)
            .await
            .expect("body");
        assert_eq!(bytes, DOCUMENT.as_bytes());
    }

    #[test]
    fn the_checker_refuses_what_does_not_fit() {
        let doc = doc();
        let unauthorized = json!({"$ref": "#/components/schemas/UnauthorizedError"});
        let good = json!({"status": "error", "error": "unauthorized", "reason": "bad_token", "message": "m"});
        assert!(validate(&doc, &unauthorized, &good).is_ok());
        for (bad, why) in [
            (
                json!({"status": "error", "error": "unauthorized", "message": "m"}),
                "no reason",
            ),
            (
                json!({"status": "ok", "error": "unauthorized", "reason": "bad_token", "message": "m"}),
                "status",
            ),
            (
                json!({"status": "error", "error": "forbidden", "reason": "bad_token", "message": "m"}),
                "code",
            ),
            (
                json!({"status": "error", "error": "unauthorized", "reason": "nope", "message": "m"}),
                "reason",
            ),
            (
                json!({"status": "error", "error": "unauthorized", "reason": "bad_token", "message": 1}),
                "message type",
            ),
            (json!("text"), "not an object"),
        ] {
            assert!(validate(&doc, &unauthorized, &bad).is_err(), "{why}");
        }
        let too_large = json!({"$ref": "#/components/schemas/PayloadTooLargeError"});
        let with_reason = json!({"status": "error", "error": "payload_too_large", "reason": "bad_token", "message": "m"});
        assert!(
            validate(&doc, &too_large, &with_reason).is_err(),
            "reason only on 401/403"
        );
        let accepted = json!({"$ref": "#/components/schemas/Accepted"});
        let id = uuid::Uuid::new_v4().to_string();
        assert!(validate(&doc, &accepted, &json!({"status": "accepted", "id": id})).is_ok());
        assert!(
            validate(
                &doc,
                &accepted,
                &json!({"status": "accepted", "id": "not-a-uuid"})
            )
            .is_err()
        );
        assert!(validate(&doc, &json!({"pattern": "^a$"}), &json!("a")).is_err());
    }
}
