//! The chart's panels (`bench.svg`), built from a report: ingest beside
//! the Python peers and the ceilings on each broker (throughput, p99, CPU
//! per 1,000 webhooks), the open-loop rates, end to end per broker, and
//! catch-up. Each bar group is one broker, payload and connection count,
//! so a reader sees at a glance where ingest stands.

use crate::chart::{Group, Panel};
use crate::ingest_result::{PayloadResult, ratio};
use crate::peer::PeerHeaders;
use crate::receiver_load::per_thousand;
use crate::report::Report;

fn label(p: &PayloadResult) -> String {
    format!("{} {} B, {} conns", p.broker, p.bytes, p.connections)
}

/// The panels, top to bottom.
pub fn panels(report: &Report) -> Vec<Panel> {
    let mut panels = Vec::new();
    if !report.ingest.is_empty() {
        panels.extend(ingest_panels(&report.ingest));
    }
    if let Some(times) = times_the_peer(report) {
        panels.insert(1.min(panels.len()), times);
    }
    if let Some(first) = report.open_loop.first() {
        let mut brokers: Vec<&str> = Vec::new();
        for run in &report.open_loop {
            if !brokers.contains(&run.broker.as_str()) {
                brokers.push(&run.broker);
            }
        }
        panels.push(Panel {
            title: format!(
                "Open loop: highest rate held {:.0} s with p99 ≤ {:.0} ms",
                first.step_secs, first.p99_limit_ms
            ),
            unit: "req/s".into(),
            groups: brokers
                .into_iter()
                .map(|broker| Group {
                    label: format!("{broker} {}", first.payload),
                    bars: report
                        .open_loop
                        .iter()
                        .filter(|r| r.broker == broker)
                        .map(|r| {
                            let rate = r.search.sustained.as_ref().map_or(0.0, |s| s.rate);
                            (r.receiver.clone(), rate)
                        })
                        .collect(),
                })
                .collect(),
        });
    }
    panels.extend(end_to_end_panels(report));
    if let Some(c) = &report.catch_up {
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

/// Ingest's rate ÷ each peer's, closed loop per measurement and open loop
/// per broker: the figures the targets are set in (none without a peer).
fn times_the_peer(report: &Report) -> Option<Panel> {
    let mut groups: Vec<Group> = report
        .ingest
        .iter()
        .filter(|p| !p.peers.is_empty())
        .map(|p| Group {
            label: label(p),
            bars: p
                .peers
                .iter()
                .map(|peer| {
                    (
                        format!("ingest ÷ {}", peer.headers.label()),
                        ratio(p.ingest.requests_per_sec, peer.run.load.requests_per_sec),
                    )
                })
                .collect(),
        })
        .collect();
    let sustained = |broker: &str, receiver: &str| {
        report
            .open_loop
            .iter()
            .find(|r| r.broker == broker && r.receiver == receiver)
            .and_then(|r| r.search.sustained.as_ref())
            .map(|s| s.rate)
    };
    let one = PeerHeaders::One.label();
    for run in report.open_loop.iter().filter(|r| r.receiver == "ingest") {
        if let (Some(mine), Some(theirs)) = (
            sustained(&run.broker, "ingest"),
            sustained(&run.broker, one),
        ) {
            groups.push(Group {
                label: format!("{} open loop", run.broker),
                bars: vec![(format!("ingest ÷ {one}"), ratio(mine, theirs))],
            });
        }
    }
    (!groups.is_empty()).then(|| Panel {
        title: "Ingest ÷ the Python peer, closed loop and open loop".into(),
        unit: "×".into(),
        groups,
    })
}

fn ingest_panels(ingest: &[PayloadResult]) -> [Panel; 3] {
    let groups = |pick: fn(&crate::http_load::LoadResult) -> f64| -> Vec<Group> {
        ingest
            .iter()
            .map(|p| Group {
                label: label(p),
                bars: p
                    .runs()
                    .iter()
                    .map(|(n, r)| (n.to_string(), pick(r)))
                    .collect(),
            })
            .collect()
    };
    [
        Panel {
            title: "Closed loop: ingest, the Python peers and the ceilings".into(),
            unit: "req/s".into(),
            groups: groups(|r| r.requests_per_sec),
        },
        Panel {
            title: "Closed loop p99".into(),
            unit: "ms".into(),
            groups: groups(|r| r.latency.p99_ms),
        },
        Panel {
            title: "CPU per 1,000 accepted webhooks, all of a receiver's processes".into(),
            unit: "CPU s".into(),
            groups: ingest
                .iter()
                .map(|p| Group {
                    label: label(p),
                    bars: p
                        .receivers()
                        .into_iter()
                        .map(|(n, r)| (n.to_string(), r.cpu_per_thousand()))
                        .collect(),
                })
                .collect(),
        },
    ]
}

fn end_to_end_panels(report: &Report) -> Vec<Panel> {
    let mut panels = Vec::new();
    for e in &report.end_to_end {
        panels.push(Panel {
            title: format!(
                "End to end on {} at {:.0}/s: arrival to PostgreSQL commit, then per hop",
                e.broker, e.target_rate
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
    let with_cpu: Vec<_> = report
        .end_to_end
        .iter()
        .filter(|e| !e.cpu.is_empty())
        .collect();
    if !with_cpu.is_empty() {
        panels.push(Panel {
            title: "End to end: CPU per 1,000 accepted webhooks, by process".into(),
            unit: "CPU s".into(),
            groups: with_cpu
                .into_iter()
                .map(|e| Group {
                    label: format!("{} at {:.0}/s", e.broker, e.target_rate),
                    bars: e
                        .cpu
                        .iter()
                        .map(|p| (p.name.clone(), per_thousand(p.cpu_secs, e.http.ok)))
                        .collect(),
                })
                .collect(),
        });
    }
    panels
}
