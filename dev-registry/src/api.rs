//! The HTTP surface: the Confluent REST subset the Rust and Python
//! serializers use, the handlers, and the one error type that turns every
//! failure into `{"error_code": N, "message": ".."}` with the HTTP status
//! being the code's first three digits.
//!
//! Request bodies are read as bytes and parsed as JSON whatever their
//! content type; query parameters (`normalize`, `deleted`, `subject`,
//! `fetchMaxId`, ...) are ignored. Registrations are serialized and answered
//! only once the record is acknowledged by Kafka ([`SchemaLog`]); memory is
//! never updated for a record that was not acknowledged.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde::Serialize;
use serde_json::json;
use tokio::sync::{Mutex, RwLock, RwLockReadGuard};

use crate::store::{
    AVRO, COMPATIBILITY_LEVEL, Registration, SchemaRequest, Store, StoreError, VersionSpec,
};

/// Content type of every response.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Why a record could not be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AppendError(pub String);

/// Durable storage of registrations (the `_schemas` topic in production).
pub trait SchemaLog: Send + Sync + 'static {
    /// Stores `record`, resolving once it is acknowledged.
    fn append(
        &self,
        record: &crate::store::StoredRecord,
    ) -> impl Future<Output = Result<(), AppendError>> + Send;
}

/// The registry: state, write serialization and storage.
pub struct Registry<L> {
    store: RwLock<Store>,
    writes: Mutex<()>,
    log: L,
}

impl<L: SchemaLog> Registry<L> {
    /// A registry serving `store` (already restored) and writing to `log`.
    pub fn new(store: Store, log: L) -> Self {
        Self {
            store: RwLock::new(store),
            writes: Mutex::new(()),
            log,
        }
    }

    /// Read access to the state.
    pub async fn store(&self) -> RwLockReadGuard<'_, Store> {
        self.store.read().await
    }

    /// Registers `request` under `subject`: the existing id, or a new version
    /// stored in the log before it is remembered.
    pub async fn register(&self, subject: &str, request: &SchemaRequest) -> Result<u32, ApiError> {
        let _serialized = self.writes.lock().await;
        let decision = self.store.read().await.prepare_register(subject, request)?;
        let record = match decision {
            Registration::Existing { id, .. } => return Ok(id),
            Registration::New(record) => record,
        };
        if let Err(e) = self.log.append(&record).await {
            // The write may still have landed: never hand this id out again.
            self.store.write().await.note_id_used(record.id);
            tracing::error!(subject, error = %e, "schema record not stored");
            return Err(ApiError::Storage(e.to_string()));
        }
        let _ = self.store.write().await.apply(&record)?;
        tracing::info!(
            subject,
            version = record.version,
            id = record.id,
            "registered schema"
        );
        Ok(record.id)
    }
}

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A registry decision (not found, invalid, incompatible, ...).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The body is not JSON.
    #[error("request body is not valid JSON: {0}")]
    NotJson(String),
    /// The body is JSON but not the expected object.
    #[error("unrecognized request body: {0}")]
    BadBody(String),
    /// The path could not be decoded.
    #[error("invalid path: {0}")]
    BadPath(String),
    /// The body could not be read.
    #[error("cannot read the request body: {0}")]
    BodyRead(String),
    /// Kafka did not acknowledge the record.
    #[error("Error in the backend data store: {0}")]
    Storage(String),
    /// Schema associations are not supported.
    #[error("No associations found for resource `{0}` (dev-registry has none)")]
    NoAssociation(String),
    /// No such endpoint.
    #[error("HTTP 404 Not Found")]
    NotFound,
    /// The endpoint exists, not for this method.
    #[error("HTTP 405 Method Not Allowed")]
    MethodNotAllowed,
    /// A bug or a panicked task.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The Confluent `error_code`.
    pub fn error_code(&self) -> u32 {
        match self {
            Self::Store(StoreError::Conflict { .. }) | Self::Storage(_) | Self::Internal(_) => {
                50001
            }
            Self::Store(e) => e.error_code(),
            Self::NotJson(_) | Self::BadPath(_) | Self::BodyRead(_) => 400,
            Self::BadBody(_) => 422,
            Self::NoAssociation(_) => 40401,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
        }
    }
}

/// The HTTP status of an error code: its first three digits.
pub fn status_of(error_code: u32) -> StatusCode {
    let mut code = error_code;
    while code >= 1000 {
        code /= 10;
    }
    u16::try_from(code)
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error_code = self.error_code();
        let body = json!({"error_code": error_code, "message": self.to_string()});
        reply(status_of(error_code), &body)
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::BadPath(rejection.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        Self::BodyRead(rejection.body_text())
    }
}

/// A JSON response with the registry's content type.
fn reply<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => raw(status, body),
        Err(e) => raw(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error_code": 50001, "message": format!("cannot encode the response: {e}")})
                .to_string()
                .into_bytes(),
        ),
    }
}

fn raw(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        body,
    )
        .into_response()
}

fn ok<T: Serialize + ?Sized>(value: &T) -> Response {
    reply(StatusCode::OK, value)
}

/// Parses a register / lookup / compatibility body, whatever its content type.
fn parse_request(body: &[u8]) -> Result<SchemaRequest, ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::NotJson(e.to_string()))?;
    serde_json::from_value(value).map_err(|e| ApiError::BadBody(e.to_string()))
}

type Shared<L> = State<Arc<Registry<L>>>;
type Handled = Result<Response, ApiError>;

/// All routes.
pub fn router<L: SchemaLog>(registry: Arc<Registry<L>>) -> Router {
    Router::new()
        .route("/", get(|| async { ok(&json!({})) }))
        .route("/healthz", get(|| async { ok(&json!({"status": "ok"})) }))
        .route("/subjects", get(list_subjects::<L>))
        .route("/subjects/{subject}", post(lookup::<L>))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions::<L>).post(register::<L>),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version::<L>),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema::<L>),
        )
        .route("/schemas/types", get(|| async { ok(&[AVRO]) }))
        .route("/schemas/ids/{id}", get(get_by_id::<L>))
        .route("/schemas/ids/{id}/schema", get(get_by_id_schema::<L>))
        .route("/schemas/ids/{id}/subjects", get(id_subjects::<L>))
        .route("/schemas/ids/{id}/versions", get(id_versions::<L>))
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility::<L>),
        )
        .route("/config", get(config))
        .route("/config/{subject}", get(config))
        .route("/mode", get(|| async { ok(&json!({"mode": "READWRITE"})) }))
        .route("/associations", any(no_association))
        .route("/associations/{*resource}", any(no_association))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(registry)
}

async fn list_subjects<L: SchemaLog>(State(registry): Shared<L>) -> Response {
    ok(&registry.store().await.subjects())
}

async fn list_versions<L: SchemaLog>(
    State(registry): Shared<L>,
    path: Result<Path<String>, PathRejection>,
) -> Handled {
    let Path(subject) = path?;
    Ok(ok(&registry.store().await.versions(&subject)?))
}

async fn register<L: SchemaLog>(
    State(registry): Shared<L>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Handled {
    let Path(subject) = path?;
    let request = parse_request(&body?)?;
    // Run to completion even if the client goes away, so an acknowledged
    // record is always remembered.
    let task = tokio::spawn(async move { registry.register(&subject, &request).await });
    let id = task
        .await
        .map_err(|e| ApiError::Internal(format!("registration task failed: {e}")))??;
    Ok(ok(&json!({ "id": id })))
}

async fn lookup<L: SchemaLog>(
    State(registry): Shared<L>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Handled {
    let Path(subject) = path?;
    let request = parse_request(&body?)?;
    Ok(ok(&registry.store().await.lookup(&subject, &request)?))
}

async fn get_version<L: SchemaLog>(
    State(registry): Shared<L>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Handled {
    let Path((subject, version)) = path?;
    let spec = VersionSpec::parse(&version)?;
    Ok(ok(&registry.store().await.version(&subject, spec)?))
}

async fn get_version_schema<L: SchemaLog>(
    State(registry): Shared<L>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Handled {
    let Path((subject, version)) = path?;
    let spec = VersionSpec::parse(&version)?;
    let found = registry.store().await.version(&subject, spec)?;
    Ok(raw(StatusCode::OK, found.schema.into_bytes()))
}

fn parse_id(text: &str) -> Result<u32, ApiError> {
    text.parse().map_err(|_| ApiError::NotFound)
}

async fn get_by_id<L: SchemaLog>(
    State(registry): Shared<L>,
    path: Result<Path<String>, PathRejection>,
) -> Handled {
    let Path(id) = path?;
    Ok(ok(&registry.store().await.schema_by_id(parse_id(&id)?)?))
}

async fn get_by_id_schema<L: SchemaLog>(
    State(registry): Shared<L>,
    path: Result<Path<String>, PathRejection>,
) -> Handled {
    let Path(id) = path?;
    let found = registry.store().await.schema_by_id(parse_id(&id)?)?;
    Ok(raw(StatusCode::OK, found.schema.into_bytes()))
}

async fn id_subjects<L: SchemaLog>(
    State(registry): Shared<L>,
    path: Result<Path<String>, PathRejection>,
) -> Handled {
    let Path(id) = path?;
    let usages = registry.store().await.id_usages(parse_id(&id)?)?;
    let mut subjects: Vec<String> = usages.into_iter().map(|k| k.subject).collect();
    subjects.dedup();
    Ok(ok(&subjects))
}

async fn id_versions<L: SchemaLog>(
    State(registry): Shared<L>,
    path: Result<Path<String>, PathRejection>,
) -> Handled {
    let Path(id) = path?;
    Ok(ok(&registry.store().await.id_usages(parse_id(&id)?)?))
}

async fn compatibility<L: SchemaLog>(
    State(registry): Shared<L>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Handled {
    let Path((subject, version)) = path?;
    let spec = VersionSpec::parse(&version)?;
    let request = parse_request(&body?)?;
    let report = registry
        .store()
        .await
        .check_compatibility(&subject, spec, &request)?;
    Ok(ok(&report))
}

async fn config() -> Response {
    ok(&json!({ "compatibilityLevel": COMPATIBILITY_LEVEL }))
}

async fn no_association(uri: Uri) -> ApiError {
    ApiError::NoAssociation(uri.path().to_string())
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Mutex as StdMutex;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::store::StoredRecord;

    /// Keeps appended records in memory; fails every append when `fail`.
    #[derive(Default)]
    struct MemoryLog {
        records: StdMutex<Vec<StoredRecord>>,
        fail: bool,
    }

    impl SchemaLog for Arc<MemoryLog> {
        async fn append(&self, record: &StoredRecord) -> Result<(), AppendError> {
            if self.fail {
                return Err(AppendError("broker down".into()));
            }
            self.records
                .lock()
                .expect("not poisoned")
                .push(record.clone());
            Ok(())
        }
    }

    async fn serve(log: Arc<MemoryLog>) -> SocketAddr {
        let registry = Arc::new(Registry::new(Store::new(), log));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("addr");
        let _server = tokio::spawn(async move {
            let _ = axum::serve(listener, router(registry)).await;
        });
        addr
    }

    /// A minimal HTTP/1.1 exchange: status, content type, body.
    async fn call(
        addr: SocketAddr,
        method: &str,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> (u16, String, serde_json::Value) {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connects");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("writes");
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await.expect("reads");
        let text = String::from_utf8(response).expect("utf-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let content_type = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-type: ")
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let json = if body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(body).unwrap_or(serde_json::Value::String(body.to_string()))
        };
        (status, content_type, json)
    }

    fn body(schema: &str) -> String {
        json!({ "schema": schema }).to_string()
    }

    const V1: &str =
        r#"{"type":"record","name":"Listing","fields":[{"name":"id","type":"string"}]}"#;
    const V2: &str = r#"{"type":"record","name":"Listing","fields":[{"name":"id","type":"string"},{"name":"city","type":["null","string"],"default":null}]}"#;
    const BAD: &str = r#"{"type":"record","name":"Listing","fields":[{"name":"id","type":"string"},{"name":"rooms","type":"int"}]}"#;

    #[test]
    fn statuses_are_the_first_three_digits() {
        assert_eq!(status_of(40401), StatusCode::NOT_FOUND);
        assert_eq!(status_of(42201), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(status_of(409), StatusCode::CONFLICT);
        assert_eq!(status_of(50001), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test]
    async fn the_rest_subset_behaves_like_confluent() {
        let log = Arc::new(MemoryLog::default());
        let addr = serve(log.clone()).await;
        let vnd = CONTENT_TYPE;

        let (status, ct, json) = call(
            addr,
            "POST",
            "/subjects/listings-value/versions?normalize=False",
            vnd,
            &body(V1),
        )
        .await;
        assert_eq!((status, json), (200, json!({"id": 1})));
        assert_eq!(ct, vnd);
        // Same schema, another subject, plain JSON content type.
        let (status, _, json) = call(
            addr,
            "POST",
            "/subjects/other-value/versions",
            "application/json",
            &body(V1),
        )
        .await;
        assert_eq!((status, json), (200, json!({"id": 1})));
        // Again under the first subject: no new version, no new record.
        let (_, _, json) = call(
            addr,
            "POST",
            "/subjects/listings-value/versions",
            "text/plain",
            &body(V1),
        )
        .await;
        assert_eq!(json, json!({"id": 1}));
        assert_eq!(log.records.lock().expect("lock").len(), 2);

        let (status, _, json) = call(
            addr,
            "POST",
            "/subjects/listings-value/versions",
            vnd,
            &body(V2),
        )
        .await;
        assert_eq!((status, json), (200, json!({"id": 2})));

        let (status, _, json) = call(
            addr,
            "POST",
            "/subjects/listings-value/versions",
            vnd,
            &body(BAD),
        )
        .await;
        assert_eq!(status, 409);
        assert_eq!(json["error_code"], 409);
        assert!(
            json["message"].as_str().expect("message").contains("rooms"),
            "{json}"
        );

        let (status, _, json) = call(
            addr,
            "POST",
            "/subjects/listings-value/versions",
            vnd,
            &body("{nope"),
        )
        .await;
        assert_eq!((status, json["error_code"].clone()), (422, json!(42201)));

        let protobuf =
            json!({"schema": "syntax = \"proto3\";", "schemaType": "PROTOBUF"}).to_string();
        let (status, _, _) = call(addr, "POST", "/subjects/p/versions", vnd, &protobuf).await;
        assert_eq!(status, 422);

        let (status, _, json) = call(
            addr,
            "GET",
            "/subjects/listings-value/versions/latest",
            vnd,
            "",
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            json,
            json!({"subject": "listings-value", "version": 2, "id": 2, "schema": V2})
        );
        let (_, _, json) = call(addr, "GET", "/subjects/listings-value/versions/1", vnd, "").await;
        assert_eq!(json["id"], 1);
        let (status, _, json) =
            call(addr, "GET", "/subjects/listings-value/versions/7", vnd, "").await;
        assert_eq!((status, json["error_code"].clone()), (404, json!(40402)));
        let (status, _, json) =
            call(addr, "GET", "/subjects/missing/versions/latest", vnd, "").await;
        assert_eq!((status, json["error_code"].clone()), (404, json!(40401)));

        let (status, _, json) = call(
            addr,
            "GET",
            "/schemas/ids/2?subject=x&fetchMaxId=false",
            vnd,
            "",
        )
        .await;
        assert_eq!((status, json), (200, json!({"schema": V2})));
        let (status, _, json) = call(addr, "GET", "/schemas/ids/99?deleted=true", vnd, "").await;
        assert_eq!((status, json["error_code"].clone()), (404, json!(40403)));

        let (status, _, json) = call(
            addr,
            "POST",
            "/subjects/listings-value?deleted=false",
            vnd,
            &body(V1),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(json["version"], 1);
        assert_eq!(json["id"], 1);
        let (status, _, json) =
            call(addr, "POST", "/subjects/listings-value", vnd, &body(BAD)).await;
        assert_eq!((status, json["error_code"].clone()), (404, json!(40403)));
        let (_, _, json) = call(addr, "POST", "/subjects/missing", vnd, &body(V1)).await;
        assert_eq!(json["error_code"], 40401);

        let (status, _, _) = call(
            addr,
            "GET",
            "/associations/resources/-/listings?resourceType=topic&associationType=value",
            vnd,
            "",
        )
        .await;
        assert_eq!(status, 404);

        let (_, _, json) = call(
            addr,
            "POST",
            "/compatibility/subjects/listings-value/versions/latest",
            vnd,
            &body(BAD),
        )
        .await;
        assert_eq!(json["is_compatible"], false);
        assert!(
            json["messages"][0]
                .as_str()
                .expect("message")
                .contains("rooms")
        );
        let (_, _, json) = call(
            addr,
            "POST",
            "/compatibility/subjects/listings-value/versions/latest",
            vnd,
            &body(V2),
        )
        .await;
        assert_eq!(json, json!({"is_compatible": true}));
        let (_, _, json) = call(
            addr,
            "POST",
            "/compatibility/subjects/new/versions/latest",
            vnd,
            &body(BAD),
        )
        .await;
        assert_eq!(json, json!({"is_compatible": true}));

        let (_, _, json) = call(addr, "GET", "/subjects", vnd, "").await;
        assert_eq!(json, json!(["listings-value", "other-value"]));
        let (_, _, json) = call(addr, "GET", "/subjects/listings-value/versions", vnd, "").await;
        assert_eq!(json, json!([1, 2]));
        let (_, _, json) = call(addr, "GET", "/config", vnd, "").await;
        assert_eq!(json, json!({"compatibilityLevel": "BACKWARD"}));
        let (_, _, json) = call(addr, "GET", "/config/listings-value", vnd, "").await;
        assert_eq!(json, json!({"compatibilityLevel": "BACKWARD"}));
        let (status, _, _) = call(addr, "GET", "/healthz", vnd, "").await;
        assert_eq!(status, 200);
        let (status, ct, json) = call(addr, "GET", "/no/such/route", vnd, "").await;
        assert_eq!((status, json["error_code"].clone()), (404, json!(404)));
        assert_eq!(ct, vnd);
        // Subjects with a slash arrive percent-encoded.
        let (status, _, json) =
            call(addr, "POST", "/subjects/a%2Fb/versions", vnd, &body(V1)).await;
        assert_eq!((status, json), (200, json!({"id": 1})));
        let (_, _, json) = call(addr, "GET", "/subjects/a%2Fb/versions/1", vnd, "").await;
        assert_eq!(json["subject"], "a/b");
    }

    #[tokio::test]
    async fn a_failed_write_is_a_50001_and_changes_nothing() {
        let log = Arc::new(MemoryLog {
            fail: true,
            ..MemoryLog::default()
        });
        let addr = serve(log).await;
        let (status, _, json) = call(
            addr,
            "POST",
            "/subjects/s/versions",
            CONTENT_TYPE,
            &body(V1),
        )
        .await;
        assert_eq!((status, json["error_code"].clone()), (500, json!(50001)));
        let (_, _, json) = call(addr, "GET", "/subjects", CONTENT_TYPE, "").await;
        assert_eq!(json, json!([]));
        let (status, _, _) = call(addr, "GET", "/schemas/ids/1", CONTENT_TYPE, "").await;
        assert_eq!(status, 404);
    }
}
