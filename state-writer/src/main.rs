//! `state-writer` binary: settings, signals, and the loop in
//! [`state_writer::runner`] on its own thread (rdkafka's consumer and the
//! rebalance callback run there).

use clap::Parser;
use state_writer::runner::StateWriter;
use state_writer::settings::StateWriterSettings;
use std::path::PathBuf;

/// Owns each property's state: reads `properties.events` (consumer group
/// `state-writer`), merges each event into its property's state (per
/// field, the latest event time wins; an event that changes nothing
/// writes nothing), and writes each new state as an Avro `PropertyState`
/// to the same partition of the compacted `properties.latest`, keyed by
/// property. That topic is its checkpoint: on every assignment it reads
/// its partitions back, so each state is written once, even across
/// crashes, without broker transactions.
///
/// At start it checks that the two topics have the same partition count
/// and registers the state's schema under `<properties.latest>-value`; a
/// registry that refuses it ends the process saying what to fix, one that
/// is unavailable is waited for.
///
/// Settings come from the TOML file given with --config, then from
/// environment variables `STATE_WRITER__<SECTION>__<KEY>` (e.g.
/// `STATE_WRITER__KAFKA__BROKERS=kafka:9092`,
/// `STATE_WRITER__SCHEMA_REGISTRY_URL=http://registry:8081`).
/// `/metrics` and `/health` are served on `metrics_listen`.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// TOML settings file (see config/state-writer.toml).
    #[arg(long, env = "STATE_WRITER_CONFIG")]
    config: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = common::telemetry::init("state-writer");
    let settings: StateWriterSettings =
        common::config::load("STATE_WRITER", args.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let cancel = common::stage_loop::Cancel::on_shutdown_signal(runtime.handle());
    let writer = StateWriter::connect(&settings, runtime.handle().clone(), cancel)?;
    common::admin::start(
        &runtime,
        &settings.metrics_listen,
        &writer.metrics.stage,
        &settings.kafka,
        &settings.group,
        &settings.topics.events(),
    )?;
    writer.run()
}
