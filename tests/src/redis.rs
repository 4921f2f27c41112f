//! A throwaway `redis-server` for the tests that share state between processes (rate limits,
//! sessions): on an ephemeral loopback port, without persistence, killed when dropped.
#![allow(
    clippy::unwrap_used,
    reason = "test harness: a failure is a test failure"
)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

/// A `redis-server` on an ephemeral loopback port, without persistence; killed when dropped.
pub struct Redis {
    child: Child,
    /// Its loopback port.
    pub port: u16,
    /// Its `requirepass`, if any.
    password: Option<String>,
    /// Its TLS port, if it serves TLS too ([`Redis::start_tls`]).
    pub tls_port: Option<u16>,
}

impl Redis {
    /// Whether `redis-server` can be run here (benchmarks skip their Redis
    /// part without it; tests need it, and `.ci/deps/redis.sh` installs it).
    pub fn installed() -> bool {
        Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts one on a free port.
    pub fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Redis::start_on(port)
    }

    /// Starts one on `port` (to restart a stopped one where it was).
    pub fn start_on(port: u16) -> Redis {
        Redis::start_with(port, None)
    }

    /// Starts one on a free port that requires `password` (`requirepass`); its URL is then
    /// `redis://:PASSWORD@127.0.0.1:PORT` ([`Redis::url_with_password`]).
    pub fn start_with_password(password: &str) -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Redis::start_with(port, Some(password))
    }

    /// Starts one on a free port that also serves TLS on another (`--tls-port`) with this
    /// certificate and key (no client certificate asked for); its TLS URL is
    /// `rediss://127.0.0.1:TLS_PORT` ([`Redis::tls_url`]).
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> Redis {
        let free = || {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (port, tls_port) = (free(), free());
        let tls = [
            "--tls-port".to_owned(),
            tls_port.to_string(),
            "--tls-cert-file".to_owned(),
            cert.display().to_string(),
            "--tls-key-file".to_owned(),
            key.display().to_string(),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
        ];
        let mut redis = Redis::spawn(port, None, &tls);
        redis.tls_port = Some(tls_port);
        redis
    }

    /// `rediss://127.0.0.1:TLS_PORT` of [`Redis::start_tls`].
    pub fn tls_url(&self) -> String {
        let port = self.tls_port.expect("a Redis started with start_tls");
        format!("rediss://127.0.0.1:{port}")
    }

    fn start_with(port: u16, password: Option<&str>) -> Redis {
        let extra: Vec<String> = match password {
            Some(password) => vec!["--requirepass".into(), password.into()],
            None => Vec::new(),
        };
        Redis::spawn(port, password, &extra)
    }

    fn spawn(port: u16, password: Option<&str>, extra: &[String]) -> Redis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (install it with `bash .ci/deps/redis.sh`)");
        let redis = Redis {
            child,
            port,
            password: password.map(str::to_owned),
            tls_port: None,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", port)) {
                let mut pong = [0u8; 7];
                if tcp.write_all(b"PING\r\n").is_ok() && tcp.read_exact(&mut pong).is_ok() {
                    return redis;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on {port}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `redis://:PASSWORD@127.0.0.1:PORT`.
    pub fn url_with_password(&self, password: &str) -> String {
        format!("redis://:{password}@127.0.0.1:{}", self.port)
    }

    /// `INFO commandstats` as `(command, calls, failed_calls)`.
    pub fn command_stats(&self) -> Vec<(String, u64, u64)> {
        let mut tcp = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        if let Some(password) = &self.password {
            tcp.write_all(format!("AUTH {password}\r\n").as_bytes())
                .unwrap();
        }
        tcp.write_all(b"INFO commandstats\r\n").unwrap();
        let mut reader = BufReader::new(tcp);
        let mut header = String::new();
        if self.password.is_some() {
            // +OK
            reader.read_line(&mut header).unwrap();
            header.clear();
        }
        reader.read_line(&mut header).unwrap();
        let len: usize = header.trim().trim_start_matches('$').parse().unwrap();
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body).unwrap();
        let field = |fields: &str, name: &str| -> u64 {
            fields
                .split(',')
                .find_map(|f| f.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
                .unwrap_or(0)
        };
        String::from_utf8_lossy(&body)
            .lines()
            .filter_map(|l| l.strip_prefix("cmdstat_")?.split_once(':'))
            .map(|(cmd, fields)| {
                (
                    cmd.to_owned(),
                    field(fields, "calls"),
                    field(fields, "failed_calls"),
                )
            })
            .collect()
    }

    /// Kills it (a Redis outage).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
