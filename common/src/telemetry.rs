//! Logs and traces for every service.
//!
//! Logs: `tracing` to stderr, JSON when `LOG_FORMAT=json`, filtered by
//! `RUST_LOG` (default `info`).
//!
//! Metrics: every instrument of [`crate::instruments`] is also pushed over
//! OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, every
//! `OTEL_METRIC_EXPORT_INTERVAL` milliseconds (default 60 000), as
//! cumulative sums, gauges and histograms.
//!
//! Traces: an OpenTelemetry layer is always installed, with its own filter
//! (the pipeline's spans at info), so span contexts exist and travel in the
//! `traceparent` Kafka header whatever `RUST_LOG` says. Spans are exported
//! over OTLP/HTTP (protobuf) only when `OTEL_EXPORTER_OTLP_ENDPOINT` is
//! set; the standard `OTEL_*` variables (headers, timeouts, batch delay)
//! apply. Keep the [`Telemetry`] guard alive for the life of the process:
//! dropping it flushes the spans and metrics not yet exported, so a SIGTERM
//! loses none.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, fmt};

/// Flushes and shuts the span and metric exporters down when dropped.
#[derive(Debug)]
#[must_use = "dropping the guard stops trace and metric export"]
pub struct Telemetry {
    provider: SdkTracerProvider,
    meters: Option<SdkMeterProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("trace export did not shut down cleanly: {e}");
        }
        if let Some(meters) = &self.meters
            && let Err(e) = meters.shutdown()
        {
            eprintln!("metric export did not shut down cleanly: {e}");
        }
    }
}

/// The OTLP metric pipeline, installed as the global meter provider so
/// every instrument created afterwards is exported.
fn metric_export(resource: Resource) -> Result<SdkMeterProvider, String> {
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .build()
        .map_err(|e| e.to_string())?;
    let provider = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_periodic_exporter(exporter)
        .build();
    opentelemetry::global::set_meter_provider(provider.clone());
    Ok(provider)
}

/// Installs logging and tracing for `service` (its OpenTelemetry
/// `service.name`). Call once, first thing in `main`.
pub fn init(service: &'static str) -> Telemetry {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|e| !e.trim().is_empty());
    let resource = Resource::builder().with_service_name(service).build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource.clone());
    let mut export_error = None;
    let mut meters = None;
    if endpoint.is_some() {
        match metric_export(resource) {
            Ok(provider) => meters = Some(provider),
            Err(e) => export_error = Some(e),
        }
        match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
        {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(e) => export_error = Some(e.to_string()),
        }
    }
    let provider = builder.build();
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(service))
        .with_filter(
            Targets::new()
                .with_default(tracing::Level::WARN)
                .with_target(service, tracing::Level::INFO)
                .with_target("common", tracing::Level::INFO),
        );
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let logs = if json {
        fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed()
    } else {
        fmt::layer()
            .compact()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed()
    };
    if tracing_subscriber::registry()
        .with(otel)
        .with(logs)
        .try_init()
        .is_ok()
    {
        tracing::info!(
            service,
            version = env!("CARGO_PKG_VERSION"),
            otlp = endpoint.as_deref().unwrap_or("off"),
            "starting"
        );
    }
    if let Some(error) = export_error {
        tracing::error!(%error, "cannot export over OTLP; spans or metrics are not exported");
    }
    Telemetry { provider, meters }
}
