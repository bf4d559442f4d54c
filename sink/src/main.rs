//! `sink` binary: settings, signals, and the loop in [`sink::runner`] on its
//! own thread (rdkafka's consumer and the rebalance callback run there).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
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
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    common::telemetry::init("sink");
    let settings: SinkSettings = common::config::load("SINK", args.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let stopping = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stopping);
    let _signal = runtime.spawn(async move {
        common::shutdown::signal().await;
        flag.store(true, Ordering::Relaxed);
    });
    let runner = SinkRunner::connect(&settings, runtime.handle().clone(), stopping)?;
    runner.run()
}
