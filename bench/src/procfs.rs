//! Reading the Linux process table (`/proc`): a process's stat line (name,
//! parent, CPU), the tree of live processes under a pid (uvicorn's master
//! and its workers, PostgreSQL's postmaster and its backends), and the
//! process that listens on a loopback TCP port (so the bench measures its
//! own broker, not another one on the same machine). On a system without
//! `/proc` every answer is empty.

use std::collections::{HashMap, HashSet};

/// What one `/proc/<pid>/stat` line says.
#[derive(Debug, Clone, PartialEq)]
pub struct Stat {
    /// The kernel's name for it (`comm`, at most 15 bytes).
    pub name: String,
    /// Its parent's pid.
    pub ppid: u32,
    /// `utime + stime`, seconds: all its threads.
    pub cpu_secs: f64,
    /// `cutime + cstime`, seconds: its children that exited and were
    /// waited for.
    pub children_cpu_secs: f64,
}

/// The kernel's clock ticks per second (`USER_HZ`): 100 on every Linux
/// this runs on.
const TICKS_PER_SEC: f64 = 100.0;

/// Parses one stat line (the name may hold spaces and parentheses).
pub fn parse_stat(stat: &str) -> Option<Stat> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    // After the name: state (field 3), ppid (4), ..., utime (14), stime
    // (15), cutime (16), cstime (17).
    let fields: Vec<&str> = stat.get(close + 2..)?.split_ascii_whitespace().collect();
    let number = |index: usize| -> Option<f64> { fields.get(index)?.parse().ok() };
    Some(Stat {
        name,
        ppid: fields.get(1)?.parse().ok()?,
        cpu_secs: (number(11)? + number(12)?) / TICKS_PER_SEC,
        children_cpu_secs: (number(13)? + number(14)?) / TICKS_PER_SEC,
    })
}

/// The stat of one process, if it is alive.
pub fn stat_of(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Every live process's pid and stat.
pub fn table() -> HashMap<u32, Stat> {
    let mut table = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return table;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if let Some(stat) = stat_of(pid) {
            let _ = table.insert(pid, stat);
        }
    }
    table
}

/// `root` (if alive) and every live process under it, root first.
pub fn tree(root: u32) -> Vec<u32> {
    tree_in(&table(), root)
}

/// [`tree`] over a table already read.
pub fn tree_in(table: &HashMap<u32, Stat>, root: u32) -> Vec<u32> {
    tree_in_except(table, root, &HashSet::new())
}

/// [`tree_in`] that does not descend into `others` (roots measured on
/// their own: the stages the bench spawns are its children, and must not
/// count twice, once as themselves and once as the load generator).
pub fn tree_in_except(table: &HashMap<u32, Stat>, root: u32, others: &HashSet<u32>) -> Vec<u32> {
    if !table.contains_key(&root) {
        return Vec::new();
    }
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (&pid, stat) in table {
        children.entry(stat.ppid).or_default().push(pid);
    }
    let mut out = vec![root];
    let mut next = 0;
    while let Some(&pid) = out.get(next) {
        if let Some(kids) = children.get(&pid) {
            out.extend(
                kids.iter()
                    .copied()
                    .filter(|k| *k != pid && !others.contains(k)),
            );
        }
        next += 1;
    }
    out
}

/// The process listening on TCP `port` (IPv4 or IPv6): of the processes
/// holding the listening socket (uvicorn's workers share their master's),
/// the one whose parent does not hold it.
pub fn listening_pid(port: u16) -> Option<u32> {
    let mut inodes = HashSet::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        inodes.extend(listening_inodes(&text, port));
    }
    if inodes.is_empty() {
        return None;
    }
    let holders: Vec<u32> = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let fds = std::fs::read_dir(entry.path().join("fd")).ok()?;
            let holds = fds.flatten().any(|fd| {
                std::fs::read_link(fd.path()).is_ok_and(|target| {
                    target
                        .to_str()
                        .and_then(|t| t.strip_prefix("socket:["))
                        .and_then(|t| t.strip_suffix(']'))
                        .is_some_and(|inode| inodes.contains(inode))
                })
            });
            holds.then_some(pid)
        })
        .collect();
    holders
        .iter()
        .copied()
        .find(|pid| stat_of(*pid).is_none_or(|s| !holders.contains(&s.ppid)))
}

/// The inodes of the sockets listening on `port` in a `/proc/net/tcp` table.
fn listening_inodes(table: &str, port: u16) -> Vec<String> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            let local_port = fields.get(1)?.rsplit_once(':')?.1;
            let listening = *fields.get(3)? == LISTEN;
            (listening && u16::from_str_radix(local_port, 16).ok()? == port)
                .then(|| fields.get(9).map(|inode| inode.to_string()))
                .flatten()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_name_parent_and_cpu() {
        let stat = "4242 (state-writer) S 17 4242 4242 0 -1 4194304 1200 0 0 0 250 50 30 20 20 0 9 0 100 0 0";
        let parsed = parse_stat(stat).expect("parses");
        assert_eq!(parsed.name, "state-writer");
        assert_eq!(parsed.ppid, 17);
        assert_eq!(parsed.cpu_secs, 3.0);
        assert_eq!(parsed.children_cpu_secs, 0.5);
        let odd = "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 10 10 0 0 20 0 1 0 1 0 0";
        assert_eq!(parse_stat(odd).map(|s| s.name), Some("a (b) c".into()));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn a_tree_holds_the_root_and_every_descendant() {
        let stat = |ppid| Stat {
            name: "p".into(),
            ppid,
            cpu_secs: 0.0,
            children_cpu_secs: 0.0,
        };
        let table = HashMap::from([
            (1, stat(0)),
            (10, stat(1)),
            (11, stat(10)),
            (12, stat(10)),
            (13, stat(11)),
            (20, stat(1)),
        ]);
        let mut under_ten = tree_in(&table, 10);
        assert_eq!(under_ten.first(), Some(&10));
        under_ten.sort_unstable();
        assert_eq!(under_ten, [10, 11, 12, 13]);
        assert!(tree_in(&table, 99).is_empty());
        // 11 measured on its own: neither it nor its child 13 counts in 10.
        let mut without_eleven = tree_in_except(&table, 10, &HashSet::from([11]));
        without_eleven.sort_unstable();
        assert_eq!(without_eleven, [10, 12]);
    }

    #[test]
    fn listening_sockets_are_found_by_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:A084 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5551 1 0\n\
   1: 0100007F:A084 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 5552 1 0\n\
   2: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5553 1 0\n";
        assert_eq!(listening_inodes(table, 0xA084), ["5551"]);
        assert!(listening_inodes(table, 1).is_empty());
    }

    #[test]
    fn this_process_is_found_by_the_port_it_listens_on() {
        let Ok(listener) = std::net::TcpListener::bind("127.0.0.1:0") else {
            return;
        };
        let Ok(address) = listener.local_addr() else {
            return;
        };
        if std::path::Path::new("/proc/net/tcp").exists() {
            assert_eq!(listening_pid(address.port()), Some(std::process::id()));
        }
    }

    #[test]
    fn this_process_is_in_its_own_tree() {
        let me = std::process::id();
        if stat_of(me).is_some() {
            assert_eq!(tree(me).first(), Some(&me));
        }
    }
}
