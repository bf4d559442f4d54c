//! `sink` binary: settings, the stop signal, and either the loop in
//! [`sink::runner`] on its own thread (rdkafka's consumer and the rebalance
//! callback run there) or `sink replay` ([`sink::replay`]). A fatal error
//! ends the process non-zero with its reason.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use common::replay_range::RangeArgs;
use common::stage_loop::Cancel;
use sink::replay::ReplayOptions;
use sink::runner::SinkRunner;
use sink::settings::SinkSettings;

/// Writes unique property events from `properties.events` into PostgreSQL:
/// `properties` (latest state per property) and `property_events` (one row
/// per event), with the consumed offsets in the same transaction, so each
/// event lands exactly once across crashes. Migrations run at start.
///
/// Settings come from the TOML file given with --config, then from
/// environment variables `SINK__<SECTION>__<KEY>` (e.g.
/// `SINK__DATABASE_URL=postgres://user:pass@db/estate`,
/// `SINK__KAFKA__BROKERS=kafka:9092`).
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// TOML settings file (see config/sink.toml).
    #[arg(long, env = "SINK_CONFIG")]
    config: Option<PathBuf>,
    /// What to run; without one, the live stage.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Re-drive the sink's dead letters on webhooks.dlq into PostgreSQL once
    /// their cause is fixed (a constraint relaxed, a decoder fixed): by
    /// default every dead letter of the sink stage; with --partition and
    /// --from-offset a DLQ offset range; with --since a DLQ time range;
    /// --kind keeps one error kind. Runs in the `<group>-replay` consumer
    /// group, commits nothing and stores no offset (the live group's offsets
    /// in Kafka and in PostgreSQL never move); exits at the range's end (an
    /// open range ends where the DLQ ended at start). Idempotent: an event
    /// already stored adds no row. Dead letters that still fail are counted,
    /// not dead-lettered again. Progress goes to stderr every 2 s, the
    /// summary to stdout.
    Replay {
        /// Id named in the logs and the summary (default: `replay-<unix seconds>`).
        #[arg(long)]
        id: Option<String>,
        /// What part of webhooks.dlq to read.
        #[command(flatten)]
        range: RangeArgs,
        /// Only dead letters of this error.kind: `decode` (bytes that did not
        /// decode) or `rejected` (a row PostgreSQL refused).
        #[arg(long, value_parser = ["decode", "rejected"])]
        kind: Option<String>,
        /// Decode every dead letter and test its row against PostgreSQL (in a
        /// transaction rolled back), and say what would land; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = common::telemetry::init("sink");
    let settings: SinkSettings = common::config::load("SINK", args.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let cancel = Cancel::on_shutdown_signal(runtime.handle());
    let result = match args.command {
        Some(command) => replay(&settings, command, runtime.handle(), &cancel),
        None => live(&settings, &runtime, cancel),
    };
    if let Err(e) = &result {
        tracing::error!(error = %format!("{e:#}"), "the sink stopped on a fatal error");
    }
    result
}

fn live(
    settings: &SinkSettings,
    runtime: &tokio::runtime::Runtime,
    cancel: Cancel,
) -> anyhow::Result<()> {
    let runner = SinkRunner::connect(settings, runtime.handle().clone(), cancel)?;
    let _ = runtime.block_on(common::admin::serve(
        &settings.metrics_listen,
        runner.metrics(),
    ))?;
    common::admin::sample_lag(
        &settings.kafka,
        &settings.group,
        &settings.topics.events(),
        runner.metrics(),
    )?;
    runner.run()
}

fn replay(
    settings: &SinkSettings,
    Command::Replay {
        id,
        range,
        kind,
        dry_run,
    }: Command,
    runtime: &tokio::runtime::Handle,
    cancel: &Cancel,
) -> anyhow::Result<()> {
    let selection = range.selection()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let id = id.unwrap_or_else(|| format!("replay-{now}"));
    let options = ReplayOptions {
        id: id.clone(),
        selection,
        kind,
        dry_run,
    };
    let summary = sink::replay::replay(settings, &options, runtime, cancel)?;
    let dry = if dry_run {
        " (dry run: nothing written)"
    } else {
        ""
    };
    println!(
        "replay {id}: read {} dead letters, {}{dry}",
        summary.read,
        summary.line()
    );
    Ok(())
}
