//! What a bench run leaves behind in its output directory: `results.json`
//! (every figure, machine-readable), `report.md` (the tables BENCHMARKS.md
//! quotes) and `bench.svg` (the chart), plus the services' logs. The
//! tables themselves are written by `report_ingest` and `report_pipeline`,
//! the chart's panels by `report_chart`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Deserializer, Serialize};

use crate::catch_up::CatchUpResult;
use crate::end_to_end::EndToEndResult;
use crate::ingest_result::{MEMORY, OpenLoopRun, PayloadResult};
use crate::{chart, report_chart, report_ingest, report_pipeline, targets};

/// Everything one run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// The command line that produced it.
    pub command: String,
    /// Machine description (CPU model, cores, memory).
    pub machine: String,
    /// Measurement 1, per broker, payload and connection count.
    pub ingest: Vec<PayloadResult>,
    /// The open-loop searches (absent in older results).
    #[serde(default)]
    pub open_loop: Vec<OpenLoopRun>,
    /// Measurement 2, per broker (older results hold one, or null).
    #[serde(default, deserialize_with = "one_or_many")]
    pub end_to_end: Vec<EndToEndResult>,
    /// The highest rate the whole pipeline sustains, per broker (absent
    /// in older results).
    #[serde(default)]
    pub sustained: Vec<crate::sustained_rate::SustainedRun>,
    /// Measurement 3.
    pub catch_up: Option<CatchUpResult>,
    /// What the run left out, and why (a broker or the peer not given).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Reads `end_to_end` as a list, a single result (older files) or null.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<EndToEndResult>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<EndToEndResult>),
        One(Box<EndToEndResult>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::Many(all)) => all,
        Some(OneOrMany::One(one)) => vec![*one],
    })
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
        for note in &self.notes {
            let _ = writeln!(md, "- {note}");
        }
        let measured_memory = self.ingest.iter().any(|p| p.broker == MEMORY)
            || self.end_to_end.iter().any(|e| e.broker == MEMORY);
        if measured_memory {
            let _ = writeln!(
                md,
                "- `memory://` is a nisshi broker keeping records in memory only: nothing it \
                 acknowledges survives a restart, so it is not a deployment. It is there to show \
                 the pipeline's own cost; `sqlite://` is the local durable broker."
            );
        }
        if !self.notes.is_empty() || measured_memory {
            md.push('\n');
        }
        let lines = targets::lines(&self.ingest, &self.open_loop);
        if !lines.is_empty() {
            let _ = writeln!(
                md,
                "### Against the targets (ingest vs the Python peer)\n\n| target | measured | |\n|---|---|---|"
            );
            for line in &lines {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} |",
                    line.target,
                    line.measured,
                    line.mark()
                );
            }
            md.push('\n');
        }
        report_ingest::write(&mut md, &self.ingest, &self.open_loop);
        report_pipeline::write_end_to_end(&mut md, &self.end_to_end);
        report_pipeline::write_sustained(&mut md, &self.sustained);
        if let Some(c) = &self.catch_up {
            report_pipeline::write_catch_up(&mut md, c);
        }
        md
    }

    /// Correctness failures (not speed): acknowledged data missing, or
    /// rows that are not exactly the accepted requests minus duplicates.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for p in &self.ingest {
            let at = format!(
                "{} on {}, {} connections",
                p.payload, p.broker, p.connections
            );
            for (receiver, run) in p.receivers() {
                if run.records_on_topic < run.accepted() as i64 {
                    problems.push(format!(
                        "{at}: {} requests got a 200 from {receiver} but only {} records are on its topic",
                        run.accepted(),
                        run.records_on_topic
                    ));
                }
            }
            if let Some(a) = &p.under_attack {
                let accepted = (a.legit.ok + a.legit.warm_up_ok) as i64;
                if a.records_on_topic != accepted {
                    problems.push(format!(
                        "{at}, under attack: {accepted} legit requests got a 200 but the topic gained {} records",
                        a.records_on_topic
                    ));
                }
            }
        }
        for e in &self.end_to_end {
            if e.rows_found != e.rows_expected {
                problems.push(format!(
                    "end to end on {}: {} rows in PostgreSQL, expected {} (accepted minus duplicates)",
                    e.broker, e.rows_found, e.rows_expected
                ));
            }
        }
        problems
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
                &report_chart::panels(self),
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_results_still_read() {
        let empty =
            r#"{"command":"c","machine":"m","ingest":[],"end_to_end":null,"catch_up":null}"#;
        let report: Report = serde_json::from_str(empty).expect("reads");
        assert!(report.end_to_end.is_empty() && report.open_loop.is_empty());
        // The shape results.json had before brokers, peers and open loop.
        let load = r#"{"ok":10,"warm_up_ok":1,"errors":0,"requests_per_sec":5.0,
            "latency":{"count":10,"p50_ms":1.0,"p99_ms":2.0,"p999_ms":3.0,"max_ms":4.0}}"#;
        let old = format!(
            r#"{{"command":"c","machine":"m","catch_up":null,
            "ingest":[{{"payload":"generic","bytes":345,"bare_http":{load},
              "broker_ceiling":{load},"broker_ceiling_with_headers":{load},"ingest":{load},
              "ingest_records_on_topic":11,"ingest_peak_rss_bytes":1,
              "ratio_to_broker_ceiling":1.0,"ratio_to_broker_ceiling_with_headers":1.0,
              "ratio_to_bare_http":1.0}}],
            "end_to_end":{{"target_rate":1.0,"duration_secs":1.0,"http":{load},
              "duplicates_accepted":0,"rows_expected":11,"rows_found":11,
              "arrival_to_commit":{{"count":0,"p50_ms":0.0,"p99_ms":0.0,"p999_ms":0.0,"max_ms":0.0}},
              "backlog_drain_ms":0.0,"commit_time_source":"x"}}}}"#
        );
        let report: Report = serde_json::from_str(&old).expect("the older shape reads");
        assert_eq!(report.end_to_end.len(), 1);
        assert_eq!(report.end_to_end[0].broker, "sqlite://");
        assert_eq!(report.ingest[0].broker, "sqlite://");
        assert_eq!(report.ingest[0].connections, 32);
        assert!(report.problems().is_empty());
        assert!(
            report
                .markdown()
                .contains("### Ingest under load, sqlite://")
        );
    }
}
