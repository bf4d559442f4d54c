//! CPU time by process, read from `/proc`: what each part of the pipeline
//! (the broker, PostgreSQL with all its backends, the registry, each stage,
//! the load generator) spent during a measurement. A process's `utime` and
//! `stime` in `/proc/<pid>/stat` cover all its threads; processes sharing a
//! name are summed. On a system without `/proc` the snapshot is empty.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The processes a measurement reports, by the kernel's name for them
/// (`comm`, at most 15 bytes).
pub const PIPELINE_PROCESSES: &[&str] = &[
    "nisshi",
    "postgres",
    "dev-registry",
    "ingest",
    "normalize",
    "dedupe",
    "state-writer",
    "sink",
    "estate-bench",
];

/// CPU seconds by process name at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuSnapshot(BTreeMap<String, f64>);

/// One process's CPU over a measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessCpu {
    /// Its name (`comm`).
    pub name: String,
    /// CPU seconds it spent.
    pub cpu_secs: f64,
    /// Share of one core over the measurement's wall time.
    pub core_share: f64,
}

/// Reads the CPU seconds of every running process named in `names`.
pub fn snapshot(names: &[&str]) -> CpuSnapshot {
    let ticks = clock_ticks();
    let mut by_name = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return CpuSnapshot(by_name);
    };
    for entry in entries.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some((name, secs)) = parse_stat(&stat, ticks)
            && names.contains(&name)
        {
            *by_name.entry(name.to_string()).or_insert(0.0) += secs;
        }
    }
    CpuSnapshot(by_name)
}

/// What each process spent between `before` and `after`, over `wall_secs`,
/// largest first. A process that started in between counts from zero.
pub fn spent(before: &CpuSnapshot, after: &CpuSnapshot, wall_secs: f64) -> Vec<ProcessCpu> {
    let mut spent: Vec<ProcessCpu> = after
        .0
        .iter()
        .map(|(name, &secs)| {
            let cpu_secs = (secs - before.0.get(name).copied().unwrap_or(0.0)).max(0.0);
            ProcessCpu {
                name: name.clone(),
                cpu_secs,
                core_share: if wall_secs > 0.0 {
                    cpu_secs / wall_secs
                } else {
                    0.0
                },
            }
        })
        .collect();
    spent.sort_by(|a, b| b.cpu_secs.total_cmp(&a.cpu_secs));
    spent
}

/// `comm` and `utime + stime` in seconds from one `/proc/<pid>/stat`.
fn parse_stat(stat: &str, ticks_per_sec: f64) -> Option<(&str, f64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?;
    // After the name: state (field 3), ..., utime (14), stime (15).
    let mut rest = stat.get(close + 2..)?.split_ascii_whitespace();
    let utime: f64 = rest.nth(11)?.parse().ok()?;
    let stime: f64 = rest.next()?.parse().ok()?;
    Some((name, (utime + stime) / ticks_per_sec))
}

/// The kernel's clock ticks per second (`USER_HZ`): 100 on every Linux
/// this runs on.
fn clock_ticks() -> f64 {
    100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_its_name_and_cpu_seconds() {
        let stat =
            "4242 (state-writer) S 1 4242 4242 0 -1 4194304 1200 0 0 0 250 50 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat(stat, 100.0), Some(("state-writer", 3.0)));
        let odd = "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 10 10 0 0 20 0 1 0 1 0 0";
        assert_eq!(parse_stat(odd, 100.0), Some(("a (b) c", 0.2)));
        assert_eq!(parse_stat("garbage", 100.0), None);
    }

    #[test]
    fn spent_is_the_difference_largest_first() {
        let before = CpuSnapshot(BTreeMap::from([("a".into(), 1.0), ("b".into(), 5.0)]));
        let after = CpuSnapshot(BTreeMap::from([
            ("a".into(), 9.0),
            ("b".into(), 6.0),
            ("c".into(), 2.0),
        ]));
        let spent = spent(&before, &after, 10.0);
        let names: Vec<&str> = spent.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "c", "b"]);
        assert_eq!(spent[0].cpu_secs, 8.0);
        assert!((spent[0].core_share - 0.8).abs() < 1e-9);
    }

    #[test]
    fn this_process_is_seen() {
        let me = std::fs::read_to_string("/proc/self/comm").unwrap_or_default();
        let me = me.trim();
        if me.is_empty() {
            return;
        }
        assert!(snapshot(&[me]).0.contains_key(me));
    }
}
