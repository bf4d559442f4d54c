//! What a bench run leaves behind in its output directory: `results.json`
//! (every figure, machine-readable), `report.md` (the tables BENCHMARKS.md
//! quotes) and `bench.svg` (the chart), plus the services' logs.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::catch_up::CatchUpResult;
use crate::chart::{self, Group, Panel};
use crate::end_to_end::EndToEndResult;
use crate::ingest_load::PayloadResult;
use crate::latency::LatencySummary;

/// Everything one run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// The command line that produced it.
    pub command: String,
    /// Machine description (CPU model, cores, memory).
    pub machine: String,
    /// Measurement 1, per payload.
    pub ingest: Vec<PayloadResult>,
    /// Measurement 2.
    pub end_to_end: Option<EndToEndResult>,
    /// Measurement 3.
    pub catch_up: Option<CatchUpResult>,
}

/// A one-line description of this machine.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, v)| v.trim());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    format!("{model}, {cores} cores, {mem_gib:.0} GiB")
}

impl Report {
    /// The Markdown tables.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "Machine: {}\n\nCommand: `{}`\n",
            self.machine, self.command
        );
        if !self.ingest.is_empty() {
            let _ = writeln!(md, "### Ingest under load\n");
            let _ = writeln!(
                md,
                "| payload | measurement | req/s | p50 ms | p99 ms | p99.9 ms | errors |\n|---|---|---:|---:|---:|---:|---:|"
            );
            for p in &self.ingest {
                for (name, r) in p.runs() {
                    let _ = writeln!(
                        md,
                        "| {} ({} B) | {name} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
                        p.payload,
                        p.bytes,
                        r.requests_per_sec,
                        r.latency.p50_ms,
                        r.latency.p99_ms,
                        r.latency.p999_ms,
                        r.errors
                    );
                }
            }
            let _ = writeln!(
                md,
                "\n| payload | ingest ÷ broker ceiling | ingest ÷ same-record ceiling | ingest ÷ bare HTTP | 200s (incl. warm-up) | on the topic | peak RSS MiB |\n|---|---:|---:|---:|---:|---:|---:|"
            );
            for p in &self.ingest {
                let _ = writeln!(
                    md,
                    "| {} | {:.0} % | {:.0} % | {:.0} % | {} | {} | {:.1} |",
                    p.payload,
                    p.ratio_to_broker_ceiling * 100.0,
                    p.ratio_to_broker_ceiling_with_headers * 100.0,
                    p.ratio_to_bare_http * 100.0,
                    p.ingest.ok + p.ingest.warm_up_ok,
                    p.ingest_records_on_topic,
                    p.ingest_peak_rss_bytes as f64 / 1024.0 / 1024.0
                );
            }
        }
        let attacked: Vec<_> = self
            .ingest
            .iter()
            .filter_map(|p| p.under_attack.as_ref().map(|a| (p, a)))
            .collect();
        if !attacked.is_empty() {
            let _ = writeln!(
                md,
                "\n| payload | legit req/s, under attack ÷ alone | legit p99 ms, alone → under attack | attacking connections | attack requests refused (401) | other answers | records gained |\n|---|---:|---:|---:|---:|---:|---:|"
            );
            for (p, a) in attacked {
                let _ = writeln!(
                    md,
                    "| {} | {:.0} % | {:.2} → {:.2} | {} | {} | {} | {} |",
                    p.payload,
                    a.ratio_to_unattacked * 100.0,
                    p.ingest.latency.p99_ms,
                    a.legit.latency.p99_ms,
                    a.attack.connections,
                    a.attack.refused,
                    a.attack.other,
                    a.records_on_topic
                );
            }
        }
        if let Some(e) = &self.end_to_end {
            let _ = writeln!(md, "\n### End to end\n");
            let _ = writeln!(
                md,
                "{:.0} signed webhooks/s for {:.0} s (open loop), 5 % re-deliveries; commit times from {}.\n",
                e.target_rate, e.duration_secs, e.commit_time_source
            );
            let _ = writeln!(
                md,
                "| accepted | errors | duplicates | rows expected | rows found | HTTP p99 ms | arrival→commit p50 ms | p99 ms | max ms | backlog drained after |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            );
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.2} | {:.1} | {:.1} | {:.1} | {:.0} ms |",
                e.http.ok,
                e.http.errors,
                e.duplicates_accepted,
                e.rows_expected,
                e.rows_found,
                e.http.latency.p99_ms,
                e.arrival_to_commit.p50_ms,
                e.arrival_to_commit.p99_ms,
                e.arrival_to_commit.max_ms,
                e.backlog_drain_ms
            );
            if let Some(h) = &e.hops {
                hop_table(
                    &mut md,
                    &format!(
                        "Where it goes, split at each record's timestamp ({} rows not matched)",
                        h.unmatched
                    ),
                    &h.named(),
                );
                hop_table(
                    &mut md,
                    &format!(
                        "The state's hop, beside the sink's ({} rows without a state record)",
                        h.latest_unmatched
                    ),
                    &h.state_named(),
                );
            }
            if !e.cpu.is_empty() {
                let accepted = e.http.ok.max(1) as f64;
                let _ = writeln!(
                    md,
                    "\nCPU from the load's start to the last commit (`/proc`; all of a name's processes):\n\n| process | CPU s | share of a core | CPU s per 1,000 accepted |\n|---|---:|---:|---:|"
                );
                for p in &e.cpu {
                    let _ = writeln!(
                        md,
                        "| {} | {:.1} | {:.0} % | {:.3} |",
                        p.name,
                        p.cpu_secs,
                        p.core_share * 100.0,
                        p.cpu_secs / accepted * 1000.0
                    );
                }
            }
        }
        if let Some(c) = &self.catch_up {
            let _ = writeln!(
                md,
                "\n### Catch-up, {} records waiting, one instance per stage\n",
                c.records
            );
            let _ = writeln!(
                md,
                "| stage | records/s | baseline | baseline records/s | ratio |\n|---|---:|---|---:|---:|"
            );
            let _ = writeln!(
                md,
                "| normalize | {:.0} | bare consume + serde_json | {:.0} | {:.0} % |",
                c.normalize.per_sec,
                c.normalize_baseline.per_sec,
                c.normalize_ratio * 100.0
            );
            for (stage, what, ceiling, rate) in [
                (
                    "normalize",
                    "the broker taking its writes alone (ceiling)",
                    c.normalize_write_ceiling,
                    c.normalize,
                ),
                (
                    "dedupe",
                    "bare consume of its input (ceiling)",
                    c.dedupe_consume_ceiling,
                    c.dedupe,
                ),
                (
                    "dedupe",
                    "the broker taking its writes alone (ceiling)",
                    c.dedupe_write_ceiling,
                    c.dedupe,
                ),
                (
                    "sink",
                    "bare consume of its input (ceiling)",
                    c.sink_consume_ceiling,
                    c.sink,
                ),
            ] {
                let _ = writeln!(
                    md,
                    "| {stage} | {:.0} | {what} | {:.0} | {:.0} % |",
                    rate.per_sec,
                    ceiling.per_sec,
                    rate.per_sec / ceiling.per_sec.max(f64::EPSILON) * 100.0
                );
            }
            let _ = writeln!(
                md,
                "| sink | {:.0} | PostgreSQL COPY of the same rows | {:.0} | {:.0} % |",
                c.sink.per_sec,
                c.sink_baseline.per_sec,
                c.sink_ratio * 100.0
            );
        }
        md
    }

    /// Correctness failures (not speed): acknowledged data missing, or
    /// rows that are not exactly the accepted requests minus duplicates.
    pub fn problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = self
            .ingest
            .iter()
            .filter(|p| p.ingest_records_on_topic < (p.ingest.ok + p.ingest.warm_up_ok) as i64)
            .map(|p| {
                format!(
                    "{}: {} requests got a 200 but only {} records are on the topic",
                    p.payload,
                    p.ingest.ok + p.ingest.warm_up_ok,
                    p.ingest_records_on_topic
                )
            })
            .collect();
        for p in &self.ingest {
            if let Some(a) = &p.under_attack {
                let accepted = (a.legit.ok + a.legit.warm_up_ok) as i64;
                if a.records_on_topic != accepted {
                    problems.push(format!(
                        "{} under attack: {accepted} legit requests got a 200 but the topic gained {} records",
                        p.payload, a.records_on_topic
                    ));
                }
            }
        }
        if let Some(e) = &self.end_to_end
            && e.rows_found != e.rows_expected
        {
            problems.push(format!(
                "end to end: {} rows in PostgreSQL, expected {} (accepted minus duplicates)",
                e.rows_found, e.rows_expected
            ));
        }
        problems
    }

    /// The chart's panels.
    fn panels(&self) -> Vec<Panel> {
        let mut throughput = Panel {
            title: "Ingest throughput vs its ceilings".into(),
            unit: "req/s".into(),
            groups: Vec::new(),
        };
        let mut latency = Panel {
            title: "Ingest latency".into(),
            unit: "ms".into(),
            groups: Vec::new(),
        };
        for p in &self.ingest {
            let runs = p.runs();
            throughput.groups.push(Group {
                label: format!("{} ({} B)", p.payload, p.bytes),
                bars: runs
                    .iter()
                    .map(|(n, r)| (n.to_string(), r.requests_per_sec))
                    .collect(),
            });
            for (quantile, pick) in [
                ("p50", (|r: &LatencySummary| r.p50_ms) as fn(&_) -> f64),
                ("p99", |r| r.p99_ms),
                ("p99.9", |r| r.p999_ms),
            ] {
                latency.groups.push(Group {
                    label: format!("{} {quantile}", p.payload),
                    bars: runs
                        .iter()
                        .map(|(n, r)| (n.to_string(), pick(&r.latency)))
                        .collect(),
                });
            }
        }
        let mut panels = if self.ingest.is_empty() {
            Vec::new()
        } else {
            vec![throughput, latency]
        };
        if let Some(e) = &self.end_to_end {
            panels.push(Panel {
                title: format!(
                    "End to end at {:.0}/s: arrival to PostgreSQL commit, then per hop",
                    e.target_rate
                ),
                unit: "ms".into(),
                groups: std::iter::once(Group {
                    label: "arrival → commit".into(),
                    bars: vec![
                        ("p50".into(), e.arrival_to_commit.p50_ms),
                        ("p99".into(), e.arrival_to_commit.p99_ms),
                        ("max".into(), e.arrival_to_commit.max_ms),
                        ("backlog drain".into(), e.backlog_drain_ms),
                    ],
                })
                .chain(
                    e.hops
                        .iter()
                        .flat_map(|h| h.named().into_iter().chain(h.state_named()))
                        .map(|(hop, s)| Group {
                            label: hop.into(),
                            bars: vec![
                                ("p50".into(), s.p50_ms),
                                ("p99".into(), s.p99_ms),
                                ("max".into(), s.max_ms),
                            ],
                        }),
                )
                .collect(),
            });
        }
        if let Some(c) = &self.catch_up {
            panels.push(Panel {
                title: format!("Catch-up on {} records, one instance", c.records),
                unit: "records/s".into(),
                groups: vec![
                    Group {
                        label: "normalize".into(),
                        bars: vec![
                            ("baseline".into(), c.normalize_baseline.per_sec),
                            ("writes".into(), c.normalize_write_ceiling.per_sec),
                            ("stage".into(), c.normalize.per_sec),
                        ],
                    },
                    Group {
                        label: "dedupe".into(),
                        bars: vec![
                            ("consume".into(), c.dedupe_consume_ceiling.per_sec),
                            ("writes".into(), c.dedupe_write_ceiling.per_sec),
                            ("stage".into(), c.dedupe.per_sec),
                        ],
                    },
                    Group {
                        label: "sink".into(),
                        bars: vec![
                            ("baseline".into(), c.sink_baseline.per_sec),
                            ("consume".into(), c.sink_consume_ceiling.per_sec),
                            ("stage".into(), c.sink.per_sec),
                        ],
                    },
                ],
            });
        }
        panels
    }

    /// Writes `results.json`, `report.md` and `bench.svg` into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
        };
        write("results.json", serde_json::to_string_pretty(self)?)?;
        write("report.md", self.markdown())?;
        write(
            "bench.svg",
            chart::render(
                "estate-pipeline benchmarks (same run, same machine)",
                &self.panels(),
            ),
        )
    }
}

/// Writes a table of hop latencies under `title`.
fn hop_table(md: &mut String, title: &str, hops: &[(&str, LatencySummary)]) {
    let _ = writeln!(
        md,
        "\n{title}:\n\n| hop | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|"
    );
    for (hop, s) in hops {
        let _ = writeln!(
            md,
            "| {hop} | {:.0} | {:.0} | {:.0} |",
            s.p50_ms, s.p99_ms, s.max_ms
        );
    }
}
