//! `estate-bench`: the bench command for the HTTP and Kafka paths (issue 10).
//!
//! Every figure it reports is measured next to its baseline in the same run
//! on the same machine, because these machines are shared and absolute
//! numbers drift: ingest against the broker ceiling (an rdkafka producer
//! alone) and the bare HTTP ceiling (the same server loop answering 200).
//! It needs a running broker (`scripts/bench.sh` starts the local stack and
//! builds the release binaries first) and writes its results, a Markdown
//! report and a chart into `--out`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use bench::{bare_http, ingest_load, report};
use clap::{Parser, Subcommand};

/// The two documented payloads: the 345-byte generic fixture and the 6.9 KB
/// Stream.estate fixture.
const DEFAULT_PAYLOADS: [(&str, &[u8]); 2] = [
    (
        "generic property.created",
        include_bytes!("../../tests/fixtures/generic/property.created.json"),
    ),
    (
        "stream-estate ad.update.price",
        include_bytes!("../../tests/fixtures/stream-estate/ad.update.price.json"),
    ),
];

/// Benchmarks the pipeline's HTTP and Kafka paths against baselines measured
/// in the same run. Needs a running broker; `scripts/bench.sh` starts the
/// local stack, builds release binaries and runs this for you.
#[derive(Debug, Parser)]
#[command(name = "estate-bench", version)]
struct Cli {
    /// Kafka bootstrap servers of a running broker.
    #[arg(
        long,
        env = "ESTATE_BENCH_BROKERS",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    brokers: String,
    /// Directory holding the pipeline's binaries (`ingest`, `create-topics`).
    /// Default: the directory of this program. Use release builds for
    /// figures worth quoting.
    #[arg(long, env = "ESTATE_BENCH_BIN_DIR", global = true)]
    bin_dir: Option<PathBuf>,
    /// Where results.json, report.md, bench.svg and the service logs go.
    #[arg(long, default_value = "bench-results", global = true)]
    out: PathBuf,
    /// A quick run that only proves the command works (2 s per measurement,
    /// 4 connections); its figures mean nothing.
    #[arg(long, global = true)]
    smoke: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ingest under load (generic HMAC source, signed requests), next to the
    /// broker ceiling and the bare HTTP ceiling, for each payload; counts
    /// that every 200 is on the topic and samples ingest's peak RSS.
    Ingest {
        /// Concurrent keep-alive connections (and producer senders for the
        /// broker ceiling).
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Seconds per measurement (four measurements per payload).
        #[arg(long, default_value_t = 20)]
        duration_secs: u64,
        /// A JSON body to send (repeatable). Default: the 345 B generic and
        /// the 6.9 KB Stream.estate fixtures.
        #[arg(long)]
        payload: Vec<PathBuf>,
    },
    /// Internal: the bare HTTP ceiling's server (started by `ingest`).
    #[command(hide = true)]
    ServeBare {
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    match cli.command {
        Command::ServeBare { listen } => bare_http::run(listen).await,
        Command::Ingest {
            connections,
            duration_secs,
            payload,
        } => {
            let self_exe = std::env::current_exe().context("cannot find this program's path")?;
            let bin_dir = match cli.bin_dir {
                Some(dir) => dir,
                None => self_exe
                    .parent()
                    .context("this program has no parent directory")?
                    .to_path_buf(),
            };
            std::fs::create_dir_all(&cli.out)
                .with_context(|| format!("cannot create {}", cli.out.display()))?;
            let (connections, duration) = if cli.smoke {
                (4, Duration::from_secs(2))
            } else {
                (
                    connections.max(1),
                    Duration::from_secs(duration_secs.max(1)),
                )
            };
            let payloads = if payload.is_empty() {
                DEFAULT_PAYLOADS
                    .iter()
                    .map(|(name, body)| (name.to_string(), body.to_vec()))
                    .collect()
            } else {
                payload
                    .iter()
                    .map(|path| ingest_load::read_payload(path))
                    .collect::<anyhow::Result<Vec<_>>>()?
            };
            let load = ingest_load::IngestLoad {
                brokers: cli.brokers,
                bin_dir,
                self_exe,
                out_dir: cli.out.clone(),
                connections,
                duration,
                run_id: uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
            };
            let report = report::Report {
                command: command_line,
                machine: report::machine(),
                ingest: ingest_load::run(&load, &payloads).await?,
            };
            report.write(&cli.out)?;
            println!("{}", report.markdown());
            eprintln!(
                "wrote {}",
                cli.out.join("{results.json,report.md,bench.svg}").display()
            );
            Ok(())
        }
    }
}
