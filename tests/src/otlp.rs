//! A small OTLP/HTTP receiver for the tests (no collector can be installed
//! here): accepts `POST /v1/traces` and `POST /v1/metrics` in protobuf, as
//! the services export, and keeps every span with its service name and
//! parent, and the latest value of every metric series.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{Gauge, Sum, number_data_point};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;

/// One exported span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedSpan {
    /// The exporting service's `service.name`.
    pub service: String,
    /// Span name.
    pub name: String,
    /// Trace id, hex.
    pub trace_id: String,
    /// Span id, hex.
    pub span_id: String,
    /// Parent span id, hex (empty for a root).
    pub parent_span_id: String,
}

/// The latest exported value of one metric series.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedPoint {
    /// The exporting service's `service.name`.
    pub service: String,
    /// Metric name.
    pub name: String,
    /// The series' attributes, `key=value`, sorted.
    pub attributes: Vec<String>,
    /// A sum's or gauge's value; a histogram's count.
    pub value: f64,
}

/// A metric series: service, metric name, sorted `key=value` attributes.
type Series = (String, String, Vec<String>);

#[derive(Debug, Default)]
struct Received {
    spans: Vec<ReceivedSpan>,
    /// The latest value of each series (cumulative exports replace it).
    points: BTreeMap<Series, f64>,
}

type Shared = Arc<Mutex<Received>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Received> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running receiver.
#[derive(Debug, Clone)]
pub struct OtlpReceiver {
    /// Base URL, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub url: String,
    received: Shared,
}

impl OtlpReceiver {
    /// Starts on a free port.
    pub async fn start() -> Self {
        let received = Shared::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the OTLP receiver");
        let address = listener.local_addr().expect("local address");
        let router = Router::new()
            .route("/v1/traces", post(receive_spans))
            .route("/v1/metrics", post(receive_metrics))
            .with_state(Arc::clone(&received));
        drop(tokio::spawn(async move {
            axum::serve(listener, router).await.expect("OTLP receiver");
        }));
        Self {
            url: format!("http://{address}"),
            received,
        }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        lock(&self.received).spans.clone()
    }

    /// The latest value of every metric series received so far.
    pub fn points(&self) -> Vec<ReceivedPoint> {
        lock(&self.received)
            .points
            .iter()
            .map(|((service, name, attributes), value)| ReceivedPoint {
                service: service.clone(),
                name: name.clone(),
                attributes: attributes.clone(),
                value: *value,
            })
            .collect()
    }

    /// The latest value of `service`'s metric `name`, summed over its series.
    pub fn total(&self, service: &str, name: &str) -> Option<f64> {
        let received = lock(&self.received);
        let mut matching = received
            .points
            .iter()
            .filter(|((s, n, _), _)| s == service && n == name)
            .peekable();
        let _ = matching.peek()?;
        Some(matching.map(|(_, value)| value).sum())
    }
}

type Reply = (StatusCode, [(header::HeaderName, &'static str); 1], Vec<u8>);

fn reply(status: StatusCode) -> Reply {
    (
        status,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        Vec::new(),
    )
}

fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn service_name(resource: Option<&Resource>) -> String {
    resource
        .iter()
        .flat_map(|r| &r.attributes)
        .find(|a| a.key == "service.name")
        .map(|a| text(a.value.as_ref().and_then(|v| v.value.as_ref())))
        .unwrap_or_default()
}

fn sorted_attributes(attributes: &[KeyValue]) -> Vec<String> {
    let mut out: Vec<String> = attributes
        .iter()
        .map(|a| {
            format!(
                "{}={}",
                a.key,
                text(a.value.as_ref().and_then(|v| v.value.as_ref()))
            )
        })
        .collect();
    out.sort();
    out
}

async fn receive_metrics(State(shared): State<Shared>, body: Bytes) -> Reply {
    let Ok(request) = ExportMetricsServiceRequest::decode(body) else {
        return reply(StatusCode::BAD_REQUEST);
    };
    let mut points = Vec::new();
    for resource_metrics in request.resource_metrics {
        let service = service_name(resource_metrics.resource.as_ref());
        for metric in resource_metrics
            .scope_metrics
            .into_iter()
            .flat_map(|s| s.metrics)
        {
            let mut point = |attributes: &[KeyValue], value: f64| {
                points.push((
                    (
                        service.clone(),
                        metric.name.clone(),
                        sorted_attributes(attributes),
                    ),
                    value,
                ));
            };
            let number = |p: &number_data_point::Value| match *p {
                number_data_point::Value::AsDouble(d) => d,
                number_data_point::Value::AsInt(i) => i as f64,
            };
            match &metric.data {
                Some(Data::Sum(Sum { data_points, .. }) | Data::Gauge(Gauge { data_points })) => {
                    for p in data_points {
                        point(&p.attributes, p.value.as_ref().map_or(0.0, number));
                    }
                }
                Some(Data::Histogram(histogram)) => {
                    for p in &histogram.data_points {
                        point(&p.attributes, p.count as f64);
                    }
                }
                _ => {}
            }
        }
    }
    lock(&shared).points.extend(points);
    reply(StatusCode::OK)
}

async fn receive_spans(State(shared): State<Shared>, body: Bytes) -> Reply {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return reply(StatusCode::BAD_REQUEST);
    };
    let mut received = Vec::new();
    for resource_spans in request.resource_spans {
        let service = service_name(resource_spans.resource.as_ref());
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                received.push(ReceivedSpan {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex::encode(span.trace_id),
                    span_id: hex::encode(span.span_id),
                    parent_span_id: hex::encode(span.parent_span_id),
                });
            }
        }
    }
    lock(&shared).spans.extend(received);
    reply(StatusCode::OK)
}
