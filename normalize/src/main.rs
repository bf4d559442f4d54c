//! `normalize` binary: settings, signals, and the loop in [`normalize::runner`].

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use normalize::runner::Normalizer;
use normalize::settings::NormalizeSettings;

/// Parses raw webhooks from `webhooks.raw` into Avro `PropertyEvent`s on
/// `properties.normalized` (registered in the schema registry); what cannot
/// be parsed goes to `webhooks.dlq` with the reason in its headers.
///
/// Settings come from the TOML file given with --config, then from
/// environment variables `NORMALIZE__<SECTION>__<KEY>` (e.g.
/// `NORMALIZE__KAFKA__BROKERS=kafka:9092`,
/// `NORMALIZE__SCHEMA_REGISTRY_URL=http://registry:8081`).
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// TOML settings file (see config/normalize.toml).
    #[arg(long, env = "NORMALIZE_CONFIG")]
    config: Option<PathBuf>,
    /// What to run; without one, the live stage.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Re-drive the dead letters on webhooks.dlq through the current parsers
    /// (after a parser fix), in the `<group>-replay` consumer group, without
    /// committing anything; exits at the end of the DLQ as it was at start.
    Replay {
        /// Id stamped on every replayed event's `replay-id` header.
        #[arg(long)]
        id: Option<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    common::telemetry::init("normalize");
    let settings: NormalizeSettings = common::config::load("NORMALIZE", args.config.as_deref())?;
    if let Some(Command::Replay { id }) = args.command {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let id = id.unwrap_or_else(|| format!("replay-{now}"));
        let summary = normalize::replay::replay(&settings, &id).await?;
        println!(
            "replay {id}: read {} dead letters, recovered {} ({} events), {} still failing, {} from other stages",
            summary.read, summary.recovered, summary.events, summary.still_failing, summary.skipped
        );
        return Ok(());
    }
    let (stop, stopped) = common::shutdown::watch_flag();
    let normalizer = Normalizer::connect(&settings).await?;
    let _signal = tokio::spawn(async move {
        common::shutdown::signal().await;
        let _ = stop.send(true);
    });
    normalizer.run(stopped).await
}
