//! Logging setup: `tracing` to stderr, JSON when `LOG_FORMAT=json`.
//!
//! The filter comes from `RUST_LOG` (default `info`). OpenTelemetry export is
//! added here when it lands; services call only [`init`].

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber for `service`. Safe to call once per process.
pub fn init(service: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.compact().try_init()
    };
    if result.is_ok() {
        tracing::info!(service, version = env!("CARGO_PKG_VERSION"), "starting");
    }
}
