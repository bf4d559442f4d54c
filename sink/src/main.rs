//! `sink` binary: settings, signals, and the loop in [`sink::runner`] on its
//! own thread (rdkafka's consumer and the rebalance callback run there).

use clap::Parser;
use sink::runner::SinkRunner;
use sink::settings::SinkSettings;
use std::path::PathBuf;

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
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = common::telemetry::init("sink");
    let settings: SinkSettings = common::config::load("SINK", args.config.as_deref())?;
    let (runtime, stopping) = common::shutdown::runtime_with_stop_flag()?;
    let runner = SinkRunner::connect(&settings, runtime.handle().clone(), stopping)?;
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
