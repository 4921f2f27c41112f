//! The hostile side of the hardening and load tests: plain TCP connections that behave badly
//! (send nothing, send a byte at a time, never finish a body), the file-descriptor limit they
//! need, and the resident memory of a process.

use std::{
    io::{ErrorKind, Read},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

/// The `HOST:PORT` of a base URL such as `http://127.0.0.1:41234`.
pub fn socket_addr(base_url: &str) -> SocketAddr {
    let rest = base_url
        .split_once("://")
        .map_or(base_url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    authority
        .parse()
        .unwrap_or_else(|e| panic!("{base_url} has no socket address: {e}"))
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit (children started afterwards,
/// such as the server under test, inherit it) and returns the new soft limit.
pub fn raise_nofile_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

/// How many connections a test may hold at once under `limit` descriptors in this process and
/// in the server (each holds one end): `wanted`, or fewer with room for everything else.
pub fn affordable_connections(wanted: usize, limit: u64) -> usize {
    let room = usize::try_from(limit)
        .unwrap_or(usize::MAX)
        .saturating_sub(512);
    wanted.min(room)
}

/// What reading from a connection found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// Nothing to read yet: the server holds the connection open.
    Open,
    /// The server closed it (end of file or reset).
    Closed,
}

/// Drains what the server sent and says whether it has closed the connection, waiting at most
/// `wait` for something to happen.
pub fn poll_closed(stream: &mut TcpStream, wait: Duration) -> Peer {
    let _ = stream.set_read_timeout(Some(wait.max(Duration::from_millis(1))));
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Peer::Closed,
            // the server said something (a 4xx before closing): keep reading
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Peer::Open;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Peer::Closed,
        }
    }
}

/// Like [`poll_closed`] on a non-blocking socket: never waits.
pub fn closed_now(stream: &TcpStream) -> bool {
    let _ = stream.set_nonblocking(true);
    let mut stream = stream;
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}

/// Reads until the server closes the connection or `limit` passes; returns what it sent and
/// whether it closed.
pub fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (String::from_utf8_lossy(&out).into_owned(), false);
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), true),
        }
    }
}

/// Resident memory of a process in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn finds_the_socket_address_of_a_base_url() {
        assert_eq!(
            socket_addr("http://127.0.0.1:41234"),
            "127.0.0.1:41234"
                .parse::<SocketAddr>()
                .unwrap_or_else(|e| panic!("{e}"))
        );
        assert_eq!(socket_addr("https://127.0.0.1:5/x").port(), 5);
    }

    #[test]
    fn reads_its_own_resident_memory() {
        assert!(rss_kib(std::process::id()).is_some_and(|kib| kib > 0));
    }
}
