//! Open files: every connection is one, so the connection cap only holds
//! if the process may open that many and more. Below it, `accept` fails
//! with "too many open files" before the cap is reached: new clients hang
//! instead of getting a 503, and the operator endpoints, which share the
//! descriptor table, stop answering.
//!
//! At start ingest raises its soft limit on open files as far as needed
//! (up to the hard limit), and refuses to start if `max_connections` plus
//! what it needs besides still does not fit.

/// Descriptors ingest needs besides its public connections: the broker's
/// sockets, the operator listener and its connections, the runtime, logs.
pub const RESERVED_FILES: u64 = 256;

/// Open files needed for `max_connections`.
pub fn required(max_connections: usize) -> u64 {
    u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(RESERVED_FILES)
}

/// Refuses a connection cap the open-file limit `available` cannot hold.
pub fn check(max_connections: usize, available: u64) -> Result<(), String> {
    let needed = required(max_connections);
    if available < needed {
        let fits = available.saturating_sub(RESERVED_FILES);
        return Err(format!(
            "`max_connections` = {max_connections} needs {needed} open files, but this process may \
             open {available}: raise the limit (`ulimit -n {needed}`, or `ulimits: nofile` in \
             compose), or lower `max_connections` to at most {fits}"
        ));
    }
    Ok(())
}

/// Raises the soft limit on open files to what `max_connections` needs (at
/// most the hard limit), then checks it; the limit in effect.
pub fn ensure(max_connections: usize) -> anyhow::Result<u64> {
    let available = rlimit::increase_nofile_limit(required(max_connections))
        .map_err(|e| anyhow::anyhow!("cannot read or raise the open-file limit: {e}"))?;
    check(max_connections, available).map_err(anyhow::Error::msg)?;
    Ok(available)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_must_fit_the_open_file_limit_with_room_to_spare() {
        assert_eq!(check(1024, 20_000), Ok(()));
        assert_eq!(check(1024, 1280), Ok(()));
        let refused = check(1024, 1024).expect_err("1,024 files cannot hold 1,024 connections");
        assert!(refused.contains("needs 1280 open files"), "{refused}");
        assert!(refused.contains("at most 768"), "{refused}");
    }

    #[test]
    fn this_process_can_hold_a_small_cap() {
        assert!(ensure(16).is_ok_and(|available| available >= required(16)));
    }
}
