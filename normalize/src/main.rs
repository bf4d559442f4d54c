//! `normalize` binary: settings, signals, and the loop in [`normalize::runner`].

use std::path::PathBuf;

use clap::Parser;
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    common::telemetry::init("normalize");
    let settings: NormalizeSettings = common::config::load("NORMALIZE", args.config.as_deref())?;
    let (stop, stopped) = common::shutdown::watch_flag();
    let normalizer = Normalizer::connect(&settings).await?;
    let _signal = tokio::spawn(async move {
        common::shutdown::signal().await;
        let _ = stop.send(true);
    });
    normalizer.run(stopped).await
}
