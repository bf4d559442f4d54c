//! `enrich` binary: settings, signals, and the loop in [`enrich::runner`].

use std::path::PathBuf;

use clap::Parser;
use common::stage_loop::Cancel;
use enrich::connect::{Started, connect};
use enrich::metrics::EnrichMetrics;
use enrich::settings::EnrichSettings;

/// Fetches the properties Fluximmo's webhooks name (their `reference_only`
/// events on `properties.events`) from the Fluximmo API and writes each as
/// a full-snapshot event to `properties.normalized`, where dedupe, the
/// state writer and the sink take it like any other event. A property the
/// API does not return keeps its reference-only event and gets a dead
/// letter on `webhooks.dlq` (`error.stage = enrich`) with the reason.
///
/// The API key is read from the environment variable named by
/// `[api] key_env` (default FLUXIMMO_API_KEY) or the file `[api] key_file`;
/// without one, enrichment is off (logged once) and nothing is read.
///
/// Settings come from the TOML file given with --config, then from
/// environment variables `ENRICH__<SECTION>__<KEY>` (e.g.
/// `ENRICH__API__BASE_URL=https://api.fluximmo.io`,
/// `ENRICH__API__RATE_PER_SECOND=2`).
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// TOML settings file (see config/enrich.toml).
    #[arg(long, env = "ENRICH_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = common::telemetry::init("enrich");
    let settings: EnrichSettings = common::config::load("ENRICH", args.config.as_deref())?;
    let cancel = Cancel::on_shutdown_signal(&tokio::runtime::Handle::current());
    let metrics = EnrichMetrics::new();
    let _ = common::admin::serve(
        &settings.metrics_listen,
        std::sync::Arc::clone(&metrics.stage),
    )
    .await?;
    match connect(&settings, metrics.clone(), cancel.clone()).await? {
        Started::On(enricher) => {
            common::admin::sample_lag(
                &settings.kafka,
                &settings.group,
                &settings.topics.events(),
                std::sync::Arc::clone(&metrics.stage),
            )?;
            enricher.run().await
        }
        Started::Off => {
            cancel.cancelled().await;
            Ok(())
        }
    }
}
