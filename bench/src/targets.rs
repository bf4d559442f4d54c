//! Issue 22's targets, checked against one run's figures: ingest beside the
//! Python peer that writes one header, closed loop (memory:// and
//! sqlite:// at 32 connections), open loop (sustained rates), and CPU per
//! 1,000 webhooks. Each line says what it compares and whether it holds;
//! a figure the run did not measure gives a line that says so.

use crate::ingest_result::{MEMORY, OpenLoopRun, PayloadResult, SQLITE};
use crate::peer::PeerHeaders;

/// The connection count the closed-loop targets are set at.
const CONNECTIONS: usize = 32;

/// One target and how the run did.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetLine {
    /// What the target asks.
    pub target: String,
    /// What the run measured.
    pub measured: String,
    /// Whether it holds; none when not measured.
    pub holds: Option<bool>,
}

impl TargetLine {
    fn not_measured(target: String, why: &str) -> Self {
        Self {
            target,
            measured: format!("not measured: {why}"),
            holds: None,
        }
    }

    /// ✓, ✗ or –.
    pub fn mark(&self) -> &'static str {
        match self.holds {
            Some(true) => "✓",
            Some(false) => "✗",
            None => "–",
        }
    }
}

/// The closed-loop measurement the targets read on `broker`: the first
/// payload at 32 connections, else at the first count measured (a smoke).
fn closed<'a>(ingest: &'a [PayloadResult], broker: &str) -> Option<&'a PayloadResult> {
    let first = ingest.first()?.payload.as_str();
    let on_broker = || {
        ingest
            .iter()
            .filter(move |p| p.broker == broker && p.payload == first)
    };
    on_broker()
        .find(|p| p.connections == CONNECTIONS)
        .or_else(|| on_broker().next())
}

fn throughput_line(ingest: &[PayloadResult], broker: &str, at_least: f64) -> TargetLine {
    let target = format!(
        "{broker}, {CONNECTIONS} connections: ingest req/s ≥ {at_least}× the 1-header peer's"
    );
    let Some(p) = closed(ingest, broker) else {
        return TargetLine::not_measured(target, &format!("no run on {broker}"));
    };
    let Some(peer) = p.peer(PeerHeaders::One) else {
        return TargetLine::not_measured(target, "the peer did not run");
    };
    let (mine, theirs) = (p.ingest.requests_per_sec, peer.run.load.requests_per_sec);
    let times = mine / theirs.max(f64::EPSILON);
    TargetLine {
        target,
        measured: format!(
            "{mine:.0} ÷ {theirs:.0} = {times:.2}× (at {} connections)",
            p.connections
        ),
        holds: Some(times >= at_least),
    }
}

fn p99_line(ingest: &[PayloadResult]) -> TargetLine {
    let target = format!("{MEMORY}, {CONNECTIONS} connections: ingest p99 ≤ 5 ms");
    let Some(p) = closed(ingest, MEMORY) else {
        return TargetLine::not_measured(target, &format!("no run on {MEMORY}"));
    };
    TargetLine {
        target,
        measured: format!(
            "{:.2} ms (at {} connections)",
            p.ingest.latency.p99_ms, p.connections
        ),
        holds: Some(p.ingest.latency.p99_ms <= 5.0),
    }
}

/// The broker the open-loop and cost targets read: memory:// (the
/// pipeline's own cost) when it ran, else sqlite://.
fn cost_broker(ingest: &[PayloadResult]) -> &'static str {
    if ingest.iter().any(|p| p.broker == MEMORY) {
        MEMORY
    } else {
        SQLITE
    }
}

fn open_loop_line(ingest: &[PayloadResult], open_loop: &[OpenLoopRun]) -> TargetLine {
    let broker = cost_broker(ingest);
    let target = format!(
        "open loop ({broker}): ingest's sustained rate ≥ 5× the 1-header peer's (p99 ≤ limit, no errors)"
    );
    let sustained = |receiver: &str| {
        open_loop
            .iter()
            .find(|r| r.broker == broker && r.receiver == receiver)
            .map(|r| r.search.sustained.as_ref().map_or(0.0, |s| s.rate))
    };
    let (Some(mine), Some(theirs)) = (sustained("ingest"), sustained(PeerHeaders::One.label()))
    else {
        return TargetLine::not_measured(target, "no search for ingest and the peer");
    };
    if theirs <= 0.0 {
        return TargetLine {
            target,
            measured: format!("{mine:.0}/s ÷ none (the peer held no rate)"),
            holds: Some(mine > 0.0),
        };
    }
    let times = mine / theirs;
    TargetLine {
        target,
        measured: format!("{mine:.0}/s ÷ {theirs:.0}/s = {times:.2}×"),
        holds: Some(times >= 5.0),
    }
}

fn cpu_line(ingest: &[PayloadResult]) -> TargetLine {
    let broker = cost_broker(ingest);
    let target = format!(
        "CPU s per 1,000 webhooks ({broker}, {CONNECTIONS} connections): ingest ÷ 1-header peer ≤ 0.25"
    );
    let Some(p) = closed(ingest, broker) else {
        return TargetLine::not_measured(target, "no closed-loop run");
    };
    let Some(peer) = p.peer(PeerHeaders::One) else {
        return TargetLine::not_measured(target, "the peer did not run");
    };
    let (mine, theirs) = (
        p.ingest_run().cpu_per_thousand(),
        peer.run.cpu_per_thousand(),
    );
    if theirs <= 0.0 {
        return TargetLine::not_measured(target, "the peer's CPU could not be read");
    }
    let share = mine / theirs;
    TargetLine {
        target,
        measured: format!(
            "{mine:.3} s ÷ {theirs:.3} s = {share:.3} (at {} connections)",
            p.connections
        ),
        holds: Some(share <= 0.25),
    }
}

/// Every target line, in the order.
pub fn lines(ingest: &[PayloadResult], open_loop: &[OpenLoopRun]) -> Vec<TargetLine> {
    if ingest.is_empty() {
        return Vec::new();
    }
    vec![
        throughput_line(ingest, MEMORY, 3.0),
        p99_line(ingest),
        open_loop_line(ingest, open_loop),
        throughput_line(ingest, SQLITE, 1.5),
        cpu_line(ingest),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_load::LoadResult;
    use crate::ingest_result::PeerRun;
    use crate::latency::LatencySummary;
    use crate::open_loop_search::{SearchResult, Step};
    use crate::receiver_load::ReceiverRun;

    fn load(per_sec: f64, p99_ms: f64) -> LoadResult {
        LoadResult {
            ok: (per_sec * 10.0) as u64,
            requests_per_sec: per_sec,
            latency: LatencySummary {
                p99_ms,
                ..LatencySummary::default()
            },
            ..LoadResult::default()
        }
    }

    fn measured(broker: &str, connections: usize, ingest: f64, peer: f64) -> PayloadResult {
        PayloadResult {
            broker: broker.into(),
            connections,
            payload: "generic".into(),
            bytes: 345,
            bare_http: load(100_000.0, 1.0),
            broker_ceiling: load(50_000.0, 1.0),
            broker_ceiling_with_headers: load(40_000.0, 1.0),
            ingest: load(ingest, 4.0),
            ingest_records_on_topic: 0,
            ingest_peak_rss_bytes: 0,
            ingest_cpu_secs: ingest * 10.0 * 0.0001,
            ratio_to_broker_ceiling: 0.0,
            ratio_to_broker_ceiling_with_headers: 0.0,
            ratio_to_bare_http: 0.0,
            under_attack: None,
            peers: vec![PeerRun {
                headers: PeerHeaders::One,
                workers: 2,
                run: ReceiverRun {
                    load: load(peer, 30.0),
                    cpu_secs: peer * 10.0 * 0.001,
                    ..ReceiverRun::default()
                },
            }],
        }
    }

    fn search(broker: &str, receiver: &str, rate: f64) -> OpenLoopRun {
        OpenLoopRun {
            broker: broker.into(),
            payload: "generic".into(),
            receiver: receiver.into(),
            p99_limit_ms: 50.0,
            step_secs: 20.0,
            search: SearchResult {
                steps: Vec::new(),
                sustained: Some(Step {
                    rate,
                    held: true,
                    ..Step::default()
                }),
            },
        }
    }

    #[test]
    fn each_target_reads_its_broker_and_says_whether_it_holds() {
        let ingest = [
            measured(SQLITE, 32, 3_000.0, 1_000.0),
            measured(SQLITE, 256, 9_000.0, 1_000.0),
            measured(MEMORY, 32, 20_000.0, 5_000.0),
        ];
        let open_loop = [
            search(MEMORY, "ingest", 16_000.0),
            search(MEMORY, PeerHeaders::One.label(), 2_000.0),
        ];
        let lines = lines(&ingest, &open_loop);
        let holds: Vec<Option<bool>> = lines.iter().map(|l| l.holds).collect();
        assert_eq!(
            holds,
            [Some(true), Some(true), Some(true), Some(true), Some(true)]
        );
        assert!(lines[0].measured.starts_with("20000 ÷ 5000 = 4.00×"));
        assert!(lines[3].measured.starts_with("3000 ÷ 1000 = 3.00×"));
        assert!(lines[4].measured.contains("= 0.100"));
    }

    #[test]
    fn a_missing_broker_or_peer_is_said_not_measured() {
        let mut only_sqlite = measured(SQLITE, 4, 1_000.0, 900.0);
        only_sqlite.peers.clear();
        let lines = lines(&[only_sqlite], &[]);
        assert_eq!(lines[0].holds, None);
        assert!(lines[0].measured.contains("no run on memory://"));
        assert_eq!(lines[3].holds, None);
        assert!(lines[3].measured.contains("the peer did not run"));
        assert_eq!(lines[2].mark(), "–");
    }
}
