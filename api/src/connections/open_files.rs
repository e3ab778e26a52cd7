//! The open-file limit, which bounds client connections: at start-up the soft limit is raised
//! to the hard one (as Go's runtime does), and the connection cap is kept below it with room
//! for everything else the process opens, so a full api still accepts, refuses and answers
//! `/readyz` instead of failing with "too many open files".

use super::overflow::OVERFLOW_CONNECTIONS;

/// Descriptors kept for what is not a client connection: the listener, the NATS connection,
/// logs, SQLite and miners' connections in standalone (reqwest pools them), and slack.
pub const HEADROOM: u64 = 512;

/// Raises the soft open-file limit to the hard limit; returns the limit now in force (`None`
/// when unlimited or unknown).
pub fn raise_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        if limit.current.is_some() && limit.current != limit.maximum {
            let raised = Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => {
                    tracing::info!(from = ?limit.current, to = ?limit.maximum, "raised the open-file limit");
                    return limit.maximum;
                }
                Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
            }
        }
        limit.current
    }
    #[cfg(not(unix))]
    None
}

/// The connections to serve at once: `max_connections`, lowered (with a warning) when the
/// open-file limit would not leave room for the overflow answers and [`HEADROOM`].
pub fn connection_cap(max_connections: usize, open_files: Option<u64>) -> usize {
    let Some(limit) = open_files else {
        return max_connections;
    };
    let room = limit.saturating_sub(HEADROOM + OVERFLOW_CONNECTIONS as u64);
    let room = usize::try_from(room).unwrap_or(usize::MAX).max(1);
    if max_connections > room {
        tracing::warn!(
            max_connections,
            open_files = limit,
            cap = room,
            "MAX_CONNECTIONS does not fit the open-file limit (it needs {} more for the process \
             and the overflow answers): serving at most {room} connections; raise `ulimit -n`",
            HEADROOM + OVERFLOW_CONNECTIONS as u64
        );
        return room;
    }
    max_connections
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_below_the_open_file_limit() {
        assert_eq!(connection_cap(10_000, None), 10_000);
        assert_eq!(connection_cap(10_000, Some(1_048_576)), 10_000);
        assert_eq!(connection_cap(10_000, Some(20_000)), 10_000);
        assert_eq!(connection_cap(10_000, Some(4_096)), 4_096 - 512 - 64);
        assert_eq!(connection_cap(10, Some(100)), 1);
    }

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let now = raise_limit();
        #[cfg(unix)]
        {
            let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
            assert_eq!(limit.current, limit.maximum);
            assert_eq!(now, limit.current);
        }
        #[cfg(not(unix))]
        assert_eq!(now, None);
    }
}
