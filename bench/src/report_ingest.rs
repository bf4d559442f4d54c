//! The ingest scenario's tables in `report.md`: on each broker, every
//! closed-loop measurement (ingest, the Python peers, the ceilings); what
//! each receiver cost; ingest beside the peers on both brokers with the
//! ratios; the open-loop searches; ingest under attack.

use std::fmt::Write as _;

use crate::ingest_result::{OpenLoopRun, PayloadResult, ratio};
use crate::peer::PeerHeaders;

const MIB: f64 = 1024.0 * 1024.0;

/// The brokers in the order they were measured.
fn brokers(ingest: &[PayloadResult]) -> Vec<&str> {
    let mut brokers: Vec<&str> = Vec::new();
    for p in ingest {
        if !brokers.contains(&p.broker.as_str()) {
            brokers.push(&p.broker);
        }
    }
    brokers
}

/// Writes every ingest table into `md`.
pub fn write(md: &mut String, ingest: &[PayloadResult], open_loop: &[OpenLoopRun]) {
    if ingest.is_empty() {
        return;
    }
    for broker in brokers(ingest) {
        let on: Vec<&PayloadResult> = ingest.iter().filter(|p| p.broker == broker).collect();
        closed_loop(md, broker, &on);
        cost(md, &on);
    }
    side_by_side(md, ingest);
    open_loop_table(md, open_loop);
    under_attack(md, ingest);
}

fn closed_loop(md: &mut String, broker: &str, on: &[&PayloadResult]) {
    let _ = writeln!(
        md,
        "### Ingest under load, {broker}\n\nClosed loop, signed requests to the generic HMAC source.\n\n\
         | payload | conns | measurement | req/s | p50 ms | p99 ms | p99.9 ms | errors |\n\
         |---|---:|---|---:|---:|---:|---:|---:|"
    );
    for p in on {
        for (name, r) in p.runs() {
            let _ = writeln!(
                md,
                "| {} ({} B) | {} | {name} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
                p.payload,
                p.bytes,
                p.connections,
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
        "\n| payload | conns | ingest ÷ broker ceiling | ingest ÷ same-record ceiling | ingest ÷ bare HTTP |\n|---|---:|---:|---:|---:|"
    );
    for p in on {
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} % | {:.0} % | {:.0} % |",
            p.payload,
            p.connections,
            p.ratio_to_broker_ceiling * 100.0,
            p.ratio_to_broker_ceiling_with_headers * 100.0,
            p.ratio_to_bare_http * 100.0
        );
    }
}

fn cost(md: &mut String, on: &[&PayloadResult]) {
    let workers = on
        .iter()
        .flat_map(|p| &p.peers)
        .map(|peer| peer.workers)
        .max();
    let _ = writeln!(
        md,
        "\nWhat each receiver cost (`/proc`: all of its processes{}):\n\n\
         | payload | conns | receiver | 200s (incl. warm-up) | on its topic | CPU s per 1,000 | peak RSS MiB |\n\
         |---|---:|---|---:|---:|---:|---:|",
        workers.map_or(String::new(), |w| format!(
            "; the peer is uvicorn's master and {w} workers, one per core"
        ))
    );
    for p in on {
        for (receiver, run) in p.receivers() {
            let _ = writeln!(
                md,
                "| {} | {} | {receiver} | {} | {} | {:.3} | {:.1} |",
                p.payload,
                p.connections,
                run.accepted(),
                run.records_on_topic,
                run.cpu_per_thousand(),
                run.peak_rss_bytes as f64 / MIB
            );
        }
    }
    md.push('\n');
}

fn side_by_side(md: &mut String, ingest: &[PayloadResult]) {
    if ingest.iter().all(|p| p.peers.is_empty()) {
        return;
    }
    let _ = writeln!(
        md,
        "### Ingest beside the Python peer\n\n\
         | payload | conns | broker | ingest req/s | p99 ms | 1-header peer req/s | p99 ms | ingest-headers peer req/s | p99 ms | ingest ÷ 1-header peer | ingest ÷ ingest-headers peer | CPU per 1,000: ingest ÷ 1-header peer |\n\
         |---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut rows: Vec<&PayloadResult> = ingest.iter().collect();
    rows.sort_by_key(|p| (p.payload.clone(), p.connections));
    for p in rows {
        let peer = |headers| p.peer(headers).map(|peer| &peer.run);
        let (one, all) = (peer(PeerHeaders::One), peer(PeerHeaders::Ingest));
        let rate = |r: Option<&crate::receiver_load::ReceiverRun>| {
            r.map_or("–".into(), |r| format!("{:.0}", r.load.requests_per_sec))
        };
        let p99 = |r: Option<&crate::receiver_load::ReceiverRun>| {
            r.map_or("–".into(), |r| format!("{:.2}", r.load.latency.p99_ms))
        };
        let times = |r: Option<&crate::receiver_load::ReceiverRun>| {
            r.map_or("–".into(), |r| {
                format!(
                    "{:.2}×",
                    ratio(p.ingest.requests_per_sec, r.load.requests_per_sec)
                )
            })
        };
        let cpu = one.map_or("–".into(), |r| {
            format!(
                "{:.3}",
                ratio(p.ingest_run().cpu_per_thousand(), r.cpu_per_thousand())
            )
        });
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} | {:.2} | {} | {} | {} | {} | {} | {} | {cpu} |",
            p.payload,
            p.connections,
            p.broker,
            p.ingest.requests_per_sec,
            p.ingest.latency.p99_ms,
            rate(one),
            p99(one),
            rate(all),
            p99(all),
            times(one),
            times(all)
        );
    }
    md.push('\n');
}

fn open_loop_table(md: &mut String, open_loop: &[OpenLoopRun]) {
    let Some(first) = open_loop.first() else {
        return;
    };
    let _ = writeln!(
        md,
        "### Open loop: the highest rate held for {:.0} s with p99 ≤ {:.0} ms and no errors\n\n\
         Payload {}; latency from each request's due time. Steps: ✓ held, ✗ did not.\n\n\
         | broker | receiver | sustained req/s | its p99 ms | its p50 ms | steps |\n|---|---|---:|---:|---:|---|",
        first.step_secs, first.p99_limit_ms, first.payload
    );
    for run in open_loop {
        let steps: Vec<String> = run
            .search
            .steps
            .iter()
            .map(|s| format!("{:.0} {}", s.rate, if s.held { "✓" } else { "✗" }))
            .collect();
        let (rate, p99, p50) = run.search.sustained.as_ref().map_or(
            ("none".to_string(), "–".to_string(), "–".to_string()),
            |s| {
                (
                    format!("{:.0}", s.rate),
                    format!("{:.2}", s.p99_ms),
                    format!("{:.2}", s.p50_ms),
                )
            },
        );
        let _ = writeln!(
            md,
            "| {} | {} | {rate} | {p99} | {p50} | {} |",
            run.broker,
            run.receiver,
            steps.join(", ")
        );
    }
    md.push('\n');
}

fn under_attack(md: &mut String, ingest: &[PayloadResult]) {
    let attacked: Vec<_> = ingest
        .iter()
        .filter_map(|p| p.under_attack.as_ref().map(|a| (p, a)))
        .collect();
    if attacked.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "### Ingest under attack\n\n\
         | payload | broker | conns | legit req/s, under attack ÷ alone | legit p99 ms, alone → under attack | attacking connections | attack requests refused (401) | other answers | records gained |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (p, a) in attacked {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} % | {:.2} → {:.2} | {} | {} | {} | {} |",
            p.payload,
            p.broker,
            p.connections,
            a.ratio_to_unattacked * 100.0,
            p.ingest.latency.p99_ms,
            a.legit.latency.p99_ms,
            a.attack.connections,
            a.attack.refused,
            a.attack.other,
            a.records_on_topic
        );
    }
    md.push('\n');
}
