//! `enrich` binary: settings, signals, and the loop in [`enrich::runner`].

use std::path::PathBuf;

use clap::{Parser, Subcommand};
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
    /// What to run; without one, the live stage.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Re-drive the stage's dead letters on webhooks.dlq (`error.stage =
    /// enrich`) once the API gives what it did not: each reference is
    /// fetched again and its enriched event written. Runs in the
    /// `<group>-replay` consumer group, commits nothing, and exits at the
    /// DLQ's end at start; what still fails is counted, not dead-lettered
    /// again.
    Replay,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = common::telemetry::init("enrich");
    let settings: EnrichSettings = common::config::load("ENRICH", args.config.as_deref())?;
    let cancel = Cancel::on_shutdown_signal(&tokio::runtime::Handle::current());
    if let Some(Command::Replay) = args.command {
        let summary = enrich::replay::replay(&settings, cancel).await?;
        println!(
            "enrich replay: read {} dead letters, {} of this stage: enriched {}, {} still failing",
            summary.read, summary.ours, summary.enriched, summary.still_failing
        );
        return Ok(());
    }
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
