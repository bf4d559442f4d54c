//! `estate-bench`: the bench command for the HTTP and Kafka paths (issue 10).
//!
//! Every figure it reports is measured next to its baseline in the same run
//! on the same machine, because these machines are shared and absolute
//! numbers drift. It needs the running infrastructure (`scripts/bench.sh`
//! starts it and builds the release binaries first) and writes its results,
//! a Markdown report and a chart into `--out`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use bench::ingest_result::{MEMORY, SQLITE};
use bench::open_loop_search::SearchSettings;
use bench::pipeline::Infra;
use bench::receivers::PeerPlan;
use bench::{
    bare_http, catch_up, end_to_end, enrich_load, ingest_load, peer, report, sustained_rate,
};
use clap::{Args, Parser, Subcommand};

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
/// in the same run. Needs a running broker, registry and PostgreSQL;
/// `scripts/bench.sh` starts the local ones, builds release binaries and
/// runs this for you.
#[derive(Debug, Parser)]
#[command(name = "estate-bench", version)]
struct Cli {
    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = "ESTATE_BENCH_BROKERS",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    brokers: String,
    /// Schema registry base URL.
    #[arg(
        long,
        env = "ESTATE_BENCH_REGISTRY",
        default_value = "http://127.0.0.1:8081",
        global = true
    )]
    registry: String,
    /// PostgreSQL port on 127.0.0.1 (users `postgres` and `estate`, as the
    /// local stack creates them).
    #[arg(
        long,
        env = "ESTATE_BENCH_PG_PORT",
        default_value_t = 5432,
        global = true
    )]
    pg_port: u16,
    /// Directory holding the pipeline's binaries. Default: the directory of
    /// this program. Use release builds for figures worth quoting.
    #[arg(long, env = "ESTATE_BENCH_BIN_DIR", global = true)]
    bin_dir: Option<PathBuf>,
    /// A second broker, nisshi on `memory://` storage (not durable): the
    /// ingest and end-to-end scenarios run on it too, after `--brokers`,
    /// to show the pipeline's own cost. `scripts/bench.sh` starts one.
    #[arg(long, env = "ESTATE_BENCH_MEMORY_BROKERS", global = true)]
    memory_brokers: Option<String>,
    /// The Python (a venv with `bench/peer/requirements.txt`) that runs the
    /// comparison receiver. Default: what `bench/peer/install.sh` of this
    /// source tree installs, if the tree is there; else the peer is skipped.
    #[arg(long, env = "ESTATE_BENCH_PEER_PYTHON", global = true)]
    peer_python: Option<PathBuf>,
    /// Where results.json, report.md, bench.svg and the service logs go.
    #[arg(long, default_value = "bench-results", global = true)]
    out: PathBuf,
    /// A quick run that only proves the command works (1 s per ingest
    /// measurement at 4 connections, two 1 s open-loop steps, 100
    /// webhooks/s for 2 s end to end, a 500-record backlog); its figures
    /// mean nothing.
    #[arg(long, global = true)]
    smoke: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Args)]
struct IngestArgs {
    /// Concurrent keep-alive connections (and producer senders for the
    /// broker ceilings), closed loop; a comma-separated list is measured
    /// count by count.
    #[arg(long, value_delimiter = ',', default_value = "32,256")]
    connections: Vec<usize>,
    /// Seconds per closed-loop measurement (six per payload and count).
    #[arg(long, default_value_t = 20)]
    duration_secs: u64,
    /// A JSON body to send (repeatable). Default: the 345 B generic and the
    /// 6.9 KB Stream.estate fixtures.
    #[arg(long)]
    payload: Vec<PathBuf>,
    /// uvicorn workers of the Python peer. Default: one per core, what a
    /// team would deploy on this machine.
    #[arg(long)]
    peer_workers: Option<usize>,
    /// Seconds each open-loop step sends its rate (0 skips the search).
    #[arg(long, default_value_t = 20)]
    open_loop_secs: u64,
    /// The p99 an open-loop step may have, ms.
    #[arg(long, default_value_t = 50.0)]
    open_loop_p99_ms: f64,
    /// Bisection steps of the open-loop search once a rate failed.
    #[arg(long, default_value_t = 3)]
    open_loop_bisect: u32,
    /// Keep-alive connections the open-loop load is spread over.
    #[arg(long, default_value_t = 256)]
    open_loop_connections: usize,
}

#[derive(Debug, Clone, Args)]
struct EndToEndArgs {
    /// Signed webhooks per second (open loop: a slow pipeline shows as
    /// latency, not as a lower rate).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Seconds of load.
    #[arg(long, default_value_t = 60)]
    load_secs: u64,
    /// Keep-alive connections the load is spread over. A connection sends
    /// its next request only after the previous answer, so each answer must
    /// come within connections / rate (512 ms at the defaults) for the
    /// pipeline to see the rate asked for. With 64 connections (64 ms)
    /// ingest's answers under load took longer, requests queued in the
    /// generator (HTTP p99 4.4 s from their schedule) and arrived in bursts.
    #[arg(long, default_value_t = 512)]
    load_connections: usize,
    /// Run without the state writer: what its reads and writes cost the
    /// path measured on a shared broker (compare with a run that has it).
    #[arg(long)]
    without_state_writer: bool,
    /// Seconds of load per step of the sustained-rate search on each
    /// broker: from --rate, doubling, then bisecting, each step on a fresh
    /// pipeline; a rate holds when every request got a 200 at the rate
    /// asked, every event landed and the backlog was gone within 5 s of
    /// the load stopping. 0 skips the search (as --smoke does).
    #[arg(long, default_value_t = 10)]
    sustain_secs: u64,
}

#[derive(Debug, Clone, Args)]
struct EnrichArgs {
    /// Distinct properties per run.
    #[arg(long, default_value_t = 2_000)]
    properties: u64,
    /// The stand-in API's latency per call, ms.
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
}

#[derive(Debug, Clone, Args)]
struct CatchUpArgs {
    /// Records waiting on `webhooks.raw` before the stages start.
    #[arg(long, default_value_t = 100_000)]
    records: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ingest under load (generic HMAC source, signed requests), next to the
    /// broker ceilings, the bare HTTP ceiling and the Python peer, for each
    /// payload and connection count, on each broker; counts that every 200
    /// is on the topic, reads each receiver's CPU and peak RSS, and
    /// searches the highest open-loop rate each sustains.
    Ingest(IngestArgs),
    /// The whole pipeline at a fixed rate into PostgreSQL: latency from
    /// arrival to the commit of the row, backlog drain time after the load
    /// stops, and rows = accepted requests minus duplicates.
    EndToEnd(EndToEndArgs),
    /// Each consumer stage catching up on a backlog, one instance, stage
    /// after stage: normalize against a bare consume + serde_json parse,
    /// dedupe alone, the sink against PostgreSQL COPY of the same rows.
    CatchUp(CatchUpArgs),
    /// The Fluximmo enrichment stage against an API stand-in with a set
    /// latency: properties per second, and API calls per property with
    /// and without the cache (prints a table, writes enrich.json).
    Enrich(EnrichArgs),
    /// `ingest`, `end-to-end` and `catch-up`, into one report.
    All {
        #[command(flatten)]
        ingest: IngestArgs,
        #[command(flatten)]
        end_to_end: EndToEndArgs,
        #[command(flatten)]
        catch_up: CatchUpArgs,
    },
    /// Re-renders report.md and bench.svg into --out from a results.json
    /// an earlier run wrote (no measurement).
    Render {
        /// The results.json to render.
        #[arg(long)]
        results: PathBuf,
    },
    /// Internal: the bare HTTP ceiling's server (started by `ingest`).
    #[command(hide = true)]
    ServeBare {
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
    },
}

/// The infrastructure the options name (the output directory created), and
/// this program's path.
fn infra(cli: &Cli) -> anyhow::Result<(Infra, PathBuf)> {
    let self_exe = std::env::current_exe().context("cannot find this program's path")?;
    let bin_dir = match &cli.bin_dir {
        Some(dir) => dir.clone(),
        None => self_exe
            .parent()
            .context("this program has no parent directory")?
            .to_path_buf(),
    };
    std::fs::create_dir_all(&cli.out)
        .with_context(|| format!("cannot create {}", cli.out.display()))?;
    let infra = Infra {
        brokers: cli.brokers.clone(),
        registry_url: cli.registry.trim_end_matches('/').to_string(),
        pg_port: cli.pg_port,
        bin_dir,
        out_dir: cli.out.clone(),
    };
    Ok((infra, self_exe))
}

/// The brokers the ingest and end-to-end scenarios run on: `--brokers`
/// (the durable `sqlite://` one), then `--memory-brokers` when given (else
/// a note says it was not measured).
fn brokers(cli: &Cli, report: &mut report::Report) -> Vec<(&'static str, String)> {
    let mut brokers = vec![(SQLITE, cli.brokers.clone())];
    match &cli.memory_brokers {
        Some(memory) => brokers.push((MEMORY, memory.clone())),
        None => report.notes.push(
            "memory:// not measured: no --memory-brokers given (scripts/bench.sh starts one)"
                .into(),
        ),
    }
    brokers
}

/// A broker label's short form for topic and database names.
fn tag(broker: &str) -> &str {
    broker.trim_end_matches("://")
}

/// The Python peer's plan, or none (with a note) when no Python is found.
fn peer_plan(
    cli: &Cli,
    args: &IngestArgs,
    report: &mut report::Report,
) -> anyhow::Result<Option<PeerPlan>> {
    let Some(python) = peer::python(cli.peer_python.as_deref())? else {
        report.notes.push(
            "the Python peer was skipped: no --peer-python given and bench/peer/install.sh not found"
                .into(),
        );
        return Ok(None);
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(Some(PeerPlan {
        python,
        workers: args.peer_workers.unwrap_or(cores).max(1),
    }))
}

/// The open-loop search's settings, or none when `--open-loop-secs 0`.
fn open_loop_settings(smoke: bool, args: &IngestArgs) -> Option<SearchSettings> {
    if smoke {
        return Some(SearchSettings {
            step: Duration::from_secs(1),
            p99_limit_ms: args.open_loop_p99_ms,
            bisect_steps: 0,
            connections: 8,
            max_steps: 2,
            give_up_late: Duration::from_secs(1),
        });
    }
    (args.open_loop_secs > 0).then(|| SearchSettings {
        step: Duration::from_secs(args.open_loop_secs),
        p99_limit_ms: args.open_loop_p99_ms,
        bisect_steps: args.open_loop_bisect,
        connections: args.open_loop_connections.max(1),
        max_steps: 16,
        give_up_late: Duration::from_secs(2),
    })
}

/// `estate-bench enrich`.
async fn enrich(cli: &Cli, args: &EnrichArgs) -> anyhow::Result<()> {
    let (infra, _) = infra(cli)?;
    let load = enrich_load::EnrichLoad {
        infra,
        properties: if cli.smoke {
            50
        } else {
            args.properties.max(1)
        },
        latency: Duration::from_millis(args.latency_ms),
        run_id: uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
    };
    let runs = enrich_load::run(&load).await?;
    let path = cli.out.join("enrich.json");
    std::fs::write(&path, serde_json::to_string_pretty(&runs)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "| run ({} properties, API latency {} ms) | references | properties/s | API calls | calls per property | ids asked per property |",
        load.properties, args.latency_ms
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for run in &runs {
        println!(
            "| {} | {} | {:.0} | {} | {:.3} | {:.2} |",
            run.name,
            run.references,
            run.per_sec,
            run.calls,
            run.calls_per_property,
            run.asked_per_property
        );
    }
    Ok(())
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
    let (ingest, end_to_end, catch_up) = match &cli.command {
        Command::ServeBare { listen } => return bare_http::run(*listen).await,
        Command::Render { results } => {
            let text = std::fs::read_to_string(results)
                .with_context(|| format!("cannot read {}", results.display()))?;
            let report: report::Report = serde_json::from_str(&text).with_context(|| {
                format!("{} is not an estate-bench results.json", results.display())
            })?;
            std::fs::create_dir_all(&cli.out)
                .with_context(|| format!("cannot create {}", cli.out.display()))?;
            report.write(&cli.out)?;
            println!("{}", report.markdown());
            return Ok(());
        }
        Command::Enrich(args) => return enrich(&cli, args).await,
        Command::Ingest(args) => (Some(args.clone()), None, None),
        Command::EndToEnd(args) => (None, Some(args.clone()), None),
        Command::CatchUp(args) => (None, None, Some(args.clone())),
        Command::All {
            ingest,
            end_to_end,
            catch_up,
        } => (
            Some(ingest.clone()),
            Some(end_to_end.clone()),
            Some(catch_up.clone()),
        ),
    };
    let (infra, self_exe) = infra(&cli)?;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let mut report = report::Report {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: report::machine(),
        ..report::Report::default()
    };
    let brokers = brokers(&cli, &mut report);
    if let Some(args) = ingest {
        let payloads = if args.payload.is_empty() {
            DEFAULT_PAYLOADS
                .iter()
                .map(|(name, body)| (name.to_string(), body.to_vec()))
                .collect()
        } else {
            args.payload
                .iter()
                .map(|path| ingest_load::read_payload(path))
                .collect::<anyhow::Result<Vec<_>>>()?
        };
        let peers = peer_plan(&cli, &args, &mut report)?;
        for (broker, bootstrap) in &brokers {
            let load = ingest_load::IngestLoad {
                infra: infra.on_brokers(bootstrap),
                broker: broker.to_string(),
                self_exe: self_exe.clone(),
                connections: if cli.smoke {
                    vec![4]
                } else {
                    args.connections.iter().map(|c| (*c).max(1)).collect()
                },
                duration: Duration::from_secs(if cli.smoke {
                    1
                } else {
                    args.duration_secs.max(1)
                }),
                run_id: format!("{run_id}-{}", tag(broker)),
                peers: peers.clone(),
                open_loop: open_loop_settings(cli.smoke, &args),
            };
            let run = ingest_load::run(&load, &payloads).await?;
            report.ingest.extend(run.payloads);
            report.open_loop.extend(run.open_loop);
        }
    }
    if let Some(args) = end_to_end {
        let (rate, duration) = if cli.smoke {
            (100.0, Duration::from_secs(2))
        } else {
            anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
            (args.rate, Duration::from_secs(args.load_secs.max(1)))
        };
        for (broker, bootstrap) in &brokers {
            let load = end_to_end::EndToEndLoad {
                infra: infra.on_brokers(bootstrap),
                rate,
                duration,
                connections: args.load_connections.max(1),
                run_id: format!("{run_id}-{}", tag(broker)),
                broker: broker.to_string(),
                with_state_writer: !args.without_state_writer,
                split_hops: true,
            };
            report.end_to_end.push(end_to_end::run(&load).await?);
            if !cli.smoke && args.sustain_secs > 0 {
                let settings = sustained_rate::SustainSettings {
                    start_rate: rate,
                    step: Duration::from_secs(args.sustain_secs),
                    bisect_steps: 2,
                    max_steps: 6,
                };
                report
                    .sustained
                    .push(sustained_rate::run(&load, &settings).await?);
            }
        }
    }
    if let Some(args) = catch_up {
        let records = if cli.smoke { 500 } else { args.records.max(1) };
        let load = catch_up::CatchUpLoad {
            infra,
            records,
            run_id,
        };
        report.catch_up = Some(catch_up::run(&load).await?);
    }
    report.write(&cli.out)?;
    println!("{}", report.markdown());
    eprintln!(
        "wrote {}",
        cli.out.join("{results.json,report.md,bench.svg}").display()
    );
    let problems = report.problems();
    anyhow::ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}
