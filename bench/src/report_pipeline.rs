//! The pipeline scenarios' tables in `report.md`: end to end on each
//! broker (rows, latency to commit, the hops), the CPU of each stage per
//! 1,000 webhooks on every broker side by side, the highest rate the
//! pipeline sustains on each, and catch-up.

use std::fmt::Write as _;

use crate::catch_up::CatchUpResult;
use crate::end_to_end::EndToEndResult;
use crate::latency::LatencySummary;
use crate::receiver_load::per_thousand;
use crate::sustained_rate::{MAX_DRAIN, SustainedRun, Verdict};

/// Writes each end-to-end run, then their CPU side by side.
pub fn write_end_to_end(md: &mut String, runs: &[EndToEndResult]) {
    for e in runs {
        one_run(md, e);
    }
    cpu(md, runs);
}

/// Writes each sustained-rate search: its steps and the highest rate held.
pub fn write_sustained(md: &mut String, runs: &[SustainedRun]) {
    for run in runs {
        let highest = run
            .highest
            .map_or("none of the rates tried".to_string(), |r| {
                format!("{r:.0} webhooks/s")
            });
        let _ = writeln!(
            md,
            "\n### Highest sustained rate, {}: {highest}\n\n{:.0} s of load per step, each on a fresh pipeline; a rate holds when every request got a 200 at the rate asked, every event landed and the backlog was gone within {:.0} s of the load stopping.\n",
            run.broker,
            run.step_secs,
            MAX_DRAIN.as_secs_f64()
        );
        let _ = writeln!(
            md,
            "| rate asked | reached | errors | backlog drained after | arrival→commit p99 | held |\n|---:|---:|---:|---:|---:|---|"
        );
        for s in &run.steps {
            let held = match &s.verdict {
                Verdict::Held => "yes".to_string(),
                Verdict::Missed(why) => format!("no: {why}"),
            };
            let _ = writeln!(
                md,
                "| {:.0}/s | {:.0}/s | {} | {:.0} ms | {:.0} ms | {held} |",
                s.rate, s.achieved_rate, s.errors, s.drain_ms, s.commit_p99_ms
            );
        }
    }
}

fn one_run(md: &mut String, e: &EndToEndResult) {
    let _ = writeln!(md, "\n### End to end, {}\n", e.broker);
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
            md,
            &format!(
                "Where it goes, split at each record's timestamp ({} rows not matched)",
                h.unmatched
            ),
            &h.named(),
        );
        hop_table(
            md,
            &format!(
                "The state's hop, beside the sink's ({} rows without a state record)",
                h.latest_unmatched
            ),
            &h.state_named(),
        );
    }
}

/// Each process's CPU over the load, per broker: seconds, share of a core,
/// and seconds per 1,000 accepted webhooks.
fn cpu(md: &mut String, runs: &[EndToEndResult]) {
    let with_cpu: Vec<&EndToEndResult> = runs.iter().filter(|e| !e.cpu.is_empty()).collect();
    if with_cpu.is_empty() {
        return;
    }
    let mut names: Vec<&str> = Vec::new();
    for p in with_cpu.iter().flat_map(|e| &e.cpu) {
        if !names.contains(&p.name.as_str()) {
            names.push(&p.name);
        }
    }
    let _ = write!(
        md,
        "\nCPU from the load's start to the last commit (`/proc`: each process with its children; \
         the broker, PostgreSQL and the registry found by their ports):\n\n| process |"
    );
    for e in &with_cpu {
        let _ = write!(
            md,
            " {b} CPU s | {b} share of a core | {b} CPU s per 1,000 accepted |",
            b = e.broker
        );
    }
    let _ = writeln!(md, "\n|---|{}", "---:|---:|---:|".repeat(with_cpu.len()));
    for name in names {
        let _ = write!(md, "| {name} |");
        for e in &with_cpu {
            match e.cpu.iter().find(|p| p.name == name) {
                Some(p) => {
                    let _ = write!(
                        md,
                        " {:.1} | {:.0} % | {:.3} |",
                        p.cpu_secs,
                        p.core_share * 100.0,
                        per_thousand(p.cpu_secs, e.http.ok)
                    );
                }
                None => md.push_str(" – | – | – |"),
            }
        }
        md.push('\n');
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

/// Writes the catch-up table.
pub fn write_catch_up(md: &mut String, c: &CatchUpResult) {
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
