//! `normalize` binary: settings, signals, and the loop in [`normalize::runner`].

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use common::stage_loop::Cancel;
use normalize::replay::ReplaySource;
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
    /// Re-drive records through the current parsers after a parser fix:
    /// by default the normalize dead letters on webhooks.dlq; with
    /// --partition and --from-offset a raw offset range; with --since a raw
    /// time range. Runs in the `<group>-replay` consumer group and commits
    /// nothing (the live group's offsets never move); exits at the range's
    /// end (an open range ends where the topic ended at start). Replayed
    /// events carry a `replay-id` header: dedupe forwards them even when
    /// their key was seen, and the sink overwrites the stored row when the
    /// normalizer version is newer.
    Replay {
        /// Id stamped on every replayed event's `replay-id` header
        /// (default: `replay-<unix seconds>`).
        #[arg(long)]
        id: Option<String>,
        /// Raw offset range: the webhooks.raw partition.
        #[arg(long, requires = "from_offset", conflicts_with = "since")]
        partition: Option<i32>,
        /// Raw offset range: first offset (inclusive).
        #[arg(long, requires = "partition")]
        from_offset: Option<i64>,
        /// Raw offset range: end offset (exclusive; default: the end).
        #[arg(long, requires = "from_offset")]
        to_offset: Option<i64>,
        /// Raw time range: start, RFC 3339 (e.g. 2026-11-23T08:00:00Z).
        #[arg(long, value_parser = unix_ms)]
        since: Option<i64>,
        /// Raw time range: end, RFC 3339, exclusive (default: the end).
        #[arg(long, requires = "since", value_parser = unix_ms)]
        until: Option<i64>,
    },
}

/// Parses an RFC 3339 time into Unix ms.
fn unix_ms(text: &str) -> Result<i64, String> {
    let time = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("not an RFC 3339 time (e.g. 2026-11-23T08:00:00Z): {e}"))?;
    i64::try_from(time.unix_timestamp_nanos() / 1_000_000).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = common::telemetry::init("normalize");
    let settings: NormalizeSettings = common::config::load("NORMALIZE", args.config.as_deref())?;
    let cancel = Cancel::on_shutdown_signal(&tokio::runtime::Handle::current());
    if let Some(Command::Replay {
        id,
        partition,
        from_offset,
        to_offset,
        since,
        until,
    }) = args.command
    {
        let source = match (partition, from_offset, since) {
            (Some(partition), Some(from), None) => ReplaySource::RawOffsets {
                partition,
                from,
                to: to_offset,
            },
            (None, None, Some(since_ms)) => {
                if let Some(until_ms) = until {
                    anyhow::ensure!(until_ms > since_ms, "--until must be after --since");
                }
                ReplaySource::RawTimes {
                    since_ms,
                    until_ms: until,
                }
            }
            _ => ReplaySource::DeadLetters,
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let id = id.unwrap_or_else(|| format!("replay-{now}"));
        let summary = normalize::replay::replay(&settings, &source, &id, cancel).await?;
        println!(
            "replay {id}: read {} records, recovered {} ({} events), {} still failing, {} dead letters from other stages",
            summary.read, summary.recovered, summary.events, summary.still_failing, summary.skipped
        );
        return Ok(());
    }
    let normalizer = Normalizer::connect(&settings, cancel).await?;
    let _ = common::admin::serve(&settings.metrics_listen, normalizer.metrics()).await?;
    common::admin::sample_lag(
        &settings.kafka,
        &settings.group,
        &settings.topics.raw(),
        normalizer.metrics(),
    )?;
    normalizer.run().await
}
