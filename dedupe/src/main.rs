//! `dedupe` binary: settings, signals, and the loop in [`dedupe::runner`] on
//! its own thread (rdkafka's consumer and the rebalance callback run there).

use clap::Parser;
use dedupe::runner::Deduper;
use dedupe::settings::DedupeSettings;
use std::path::PathBuf;

/// Forwards each normalized event once: reads `properties.normalized`, drops
/// events whose dedupe key was seen within the TTL, writes first sightings to
/// `properties.events`, and keeps the seen keys in the compacted
/// `dedupe.seen` changelog it restores from. It forwards the events' bytes
/// without decoding them; the properties' state on `properties.latest` is
/// the state writer's (`state-writer --help`).
///
/// Settings come from the TOML file given with --config, then from
/// environment variables `DEDUPE__<SECTION>__<KEY>` (e.g.
/// `DEDUPE__KAFKA__BROKERS=kafka:9092`, `DEDUPE__TTL_SECS=604800`).
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// TOML settings file (see config/dedupe.toml).
    #[arg(long, env = "DEDUPE_CONFIG")]
    config: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = common::telemetry::init("dedupe");
    let settings: DedupeSettings = common::config::load("DEDUPE", args.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let cancel = common::stage_loop::Cancel::on_shutdown_signal(runtime.handle());
    let deduper = Deduper::connect(&settings, runtime.handle().clone(), cancel)?;
    common::admin::start(
        &runtime,
        &settings.metrics_listen,
        &deduper.metrics.stage,
        &settings.kafka,
        &settings.group,
        &settings.topics.normalized(),
    )?;
    deduper.run()
}
