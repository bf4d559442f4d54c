//! CPU time by process tree, read from `/proc`: what each part of a
//! measurement (the broker, PostgreSQL with all its backends, the
//! registry, each stage, a receiver with all its workers, the load
//! generator) spent. A tree is a root pid and every live process under it
//! but the other roots measured and theirs (the bench spawns the stages it
//! measures, which must not count again as the load generator's);
//! each counts `utime + stime` (all its threads) plus `cutime + cstime`
//! (its children that exited), so a worker that exits mid-measurement
//! still counts. On a system without `/proc` the snapshot is empty.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::procfs::{self, Stat};

/// CPU seconds by label at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuSnapshot(BTreeMap<String, f64>);

/// One process tree's CPU over a measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessCpu {
    /// Its label (the program's name).
    pub name: String,
    /// CPU seconds it spent.
    pub cpu_secs: f64,
    /// Share of one core over the measurement's wall time.
    pub core_share: f64,
}

/// Reads the CPU seconds of each `(label, root pid)` tree; trees sharing a
/// label are summed.
pub fn snapshot(roots: &[(String, u32)]) -> CpuSnapshot {
    let table = procfs::table();
    let mut by_label = BTreeMap::new();
    for (label, root) in roots {
        let others: HashSet<u32> = roots
            .iter()
            .map(|(_, pid)| *pid)
            .filter(|pid| pid != root)
            .collect();
        *by_label.entry(label.clone()).or_insert(0.0) += tree_secs(&table, *root, &others);
    }
    CpuSnapshot(by_label)
}

/// The CPU seconds of the tree under `root` now.
pub fn tree_cpu_secs(root: u32) -> f64 {
    tree_secs(&procfs::table(), root, &HashSet::new())
}

/// The CPU seconds of the tree under `root` in `table`, without `others`
/// and the processes under them.
fn tree_secs(
    table: &std::collections::HashMap<u32, Stat>,
    root: u32,
    others: &HashSet<u32>,
) -> f64 {
    procfs::tree_in_except(table, root, others)
        .iter()
        .filter_map(|pid| table.get(pid))
        .map(|s| s.cpu_secs + s.children_cpu_secs)
        .sum()
}

/// What each tree spent between `before` and `after`, over `wall_secs`,
/// largest first. A tree that started in between counts from zero.
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn this_process_is_seen_and_its_cpu_grows() {
        let me = std::process::id();
        let snapshot = snapshot(&[("me".into(), me)]);
        if procfs::stat_of(me).is_none() {
            return;
        }
        assert!(snapshot.0.contains_key("me"));
        let before = tree_cpu_secs(me);
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(100) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(tree_cpu_secs(me) >= before);
    }
}
