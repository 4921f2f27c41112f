//! The peer proxies, installed by the harness from their registries into
//! `target/bench-peers/` (once; later runs reuse the install), each in its own
//! prefix so that their dependency trees don't meet.
//!
//! | peer | registry | version | transports | auth option used |
//! |---|---|---|---|---|
//! | `supergateway` | npm | 4.0.0 | Streamable HTTP (`--stateful`), SSE | none: it has no inbound auth |
//! | `mcp-proxy` | npm | 6.7.19 | Streamable HTTP, SSE | `--apiKey` (`X-API-Key`) |
//! | `mcp-proxy-auth` | npm | 1.0.2 with `@modelcontextprotocol/sdk` 1.9.0 beside it | SSE | API key header `x-api-key` (required) |
//! | `mcp-proxy` | PyPI | 0.13.0 | Streamable HTTP, SSE | none: it has no inbound auth |
//!
//! `mcp-proxy-auth` 1.0.2 crashes on its first connection with a current
//! TypeScript SDK, hence the pinned SDK beside it.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use crate::client::Transport;

/// A peer proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Peer {
    /// npm `supergateway`.
    Supergateway,
    /// npm `mcp-proxy` (punkpeye).
    McpProxyNpm,
    /// npm `mcp-proxy-auth`.
    McpProxyAuth,
    /// PyPI `mcp-proxy` (sparfenyuk).
    McpProxyPy,
}

impl Peer {
    /// Every peer.
    pub const ALL: [Peer; 4] = [
        Peer::Supergateway,
        Peer::McpProxyNpm,
        Peer::McpProxyAuth,
        Peer::McpProxyPy,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Supergateway => "supergateway",
            Self::McpProxyNpm => "mcp-proxy-npm",
            Self::McpProxyAuth => "mcp-proxy-auth",
            Self::McpProxyPy => "mcp-proxy-py",
        }
    }

    /// The packages installed, pinned.
    fn packages(self) -> &'static [&'static str] {
        match self {
            Self::Supergateway => &["supergateway@4.0.0"],
            Self::McpProxyNpm => &["mcp-proxy@6.7.19"],
            Self::McpProxyAuth => &["mcp-proxy-auth@1.0.2", "@modelcontextprotocol/sdk@1.9.0"],
            Self::McpProxyPy => &["mcp-proxy==0.13.0"],
        }
    }

    /// The transports it serves.
    pub fn transports(self) -> &'static [Transport] {
        match self {
            Self::McpProxyAuth => &[Transport::Sse],
            _ => &[Transport::Streamable, Transport::Sse],
        }
    }

    /// The header its API key travels in, when it has one.
    pub fn api_key_header(self) -> Option<&'static str> {
        match self {
            Self::McpProxyNpm | Self::McpProxyAuth => Some("x-api-key"),
            Self::Supergateway | Self::McpProxyPy => None,
        }
    }

    /// For the table: registry, package, version, auth.
    pub fn label(self, installs: &PeerInstalls) -> String {
        let version = installs
            .versions
            .get(&self)
            .cloned()
            .unwrap_or_else(|| "?".into());
        match self {
            Self::Supergateway => format!("npm `supergateway` {version} (no auth option)"),
            Self::McpProxyNpm => format!("npm `mcp-proxy` {version}, `--apiKey`"),
            Self::McpProxyAuth => format!("npm `mcp-proxy-auth` {version} (SDK 1.9.0), API key"),
            Self::McpProxyPy => format!("PyPI `mcp-proxy` {version} (no auth option)"),
        }
    }

    fn dir(self, root: &Path) -> PathBuf {
        root.join(self.name())
    }

    /// The installed entry point.
    fn entry(self, root: &Path) -> PathBuf {
        let dir = self.dir(root);
        match self {
            Self::Supergateway => dir.join("node_modules/supergateway/dist/index.js"),
            Self::McpProxyNpm => dir.join("node_modules/.bin/mcp-proxy"),
            Self::McpProxyAuth => dir.join("node_modules/.bin/mcp-proxy"),
            Self::McpProxyPy => dir.join("venv/bin/mcp-proxy"),
        }
    }

    fn installed_version(self, root: &Path) -> Option<String> {
        let dir = self.dir(root);
        if self == Self::McpProxyPy {
            let site = fs::read_dir(dir.join("venv/lib"))
                .ok()?
                .flatten()
                .next()?
                .path();
            return fs::read_dir(site.join("site-packages"))
                .ok()?
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .find_map(|n| {
                    n.strip_prefix("mcp_proxy-")?
                        .strip_suffix(".dist-info")
                        .map(str::to_owned)
                });
        }
        let package = match self {
            Self::Supergateway => "supergateway",
            Self::McpProxyNpm => "mcp-proxy",
            _ => "mcp-proxy-auth",
        };
        let json =
            fs::read_to_string(dir.join("node_modules").join(package).join("package.json")).ok()?;
        let value: serde_json::Value = serde_json::from_str(&json).ok()?;
        value.get("version")?.as_str().map(str::to_owned)
    }

    fn install(self, root: &Path) -> Result<(), String> {
        let dir = self.dir(root);
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let log = dir.join("install.log");
        let run = |cmd: &mut Command| -> Result<(), String> {
            let out = fs::File::create(&log).map_err(|e| e.to_string())?;
            let err = out.try_clone().map_err(|e| e.to_string())?;
            let status = cmd
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .status()
                .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!(
                    "install failed ({status}): {}",
                    crate::targets::log_tail(&log, 5)
                ))
            }
        };
        if self == Self::McpProxyPy {
            let venv = dir.join("venv");
            if !venv.join("bin/pip").is_file() {
                run(Command::new(python()).arg("-m").arg("venv").arg(&venv))?;
            }
            run(Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .args(self.packages()))
        } else {
            run(Command::new("npm")
                .arg("install")
                .arg("--prefix")
                .arg(&dir)
                .args(["--no-audit", "--no-fund", "--loglevel", "error"])
                .args(self.packages()))
        }
    }
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Where the peers are installed, and which of them could not be.
#[derive(Debug, Clone, Default)]
pub struct PeerInstalls {
    root: PathBuf,
    versions: BTreeMap<Peer, String>,
    failed: BTreeMap<Peer, String>,
}

impl PeerInstalls {
    /// Installs each of `peers` under `root` unless it is there already.
    /// A peer that fails is recorded, not fatal.
    pub fn ensure(root: &Path, peers: &[Peer]) -> PeerInstalls {
        let mut installs = PeerInstalls {
            root: root.to_path_buf(),
            ..PeerInstalls::default()
        };
        for &peer in peers {
            if !peer.entry(root).is_file() {
                eprintln!(
                    "bench: installing {} ({})",
                    peer.name(),
                    peer.packages().join(" ")
                );
                if let Err(e) = peer.install(root) {
                    installs.failed.insert(peer, e);
                    continue;
                }
            }
            if peer.entry(root).is_file() {
                let version = peer.installed_version(root).unwrap_or_else(|| "?".into());
                installs.versions.insert(peer, version);
            } else {
                installs.failed.insert(
                    peer,
                    format!("installed, but {} is missing", peer.entry(root).display()),
                );
            }
        }
        installs
    }

    /// Why `peer` cannot run, if it cannot.
    pub fn problem(&self, peer: Peer) -> Option<String> {
        if let Some(e) = self.failed.get(&peer) {
            return Some(format!("install failed: {e}"));
        }
        (!self.versions.contains_key(&peer)).then(|| "not installed".to_owned())
    }

    /// The command that runs `peer` on `port` for `transport`, proxying the
    /// stdio `echo` server.
    pub fn command(
        &self,
        peer: Peer,
        port: u16,
        transport: Transport,
        echo: &Path,
    ) -> Result<Command, String> {
        if let Some(problem) = self.problem(peer) {
            return Err(problem);
        }
        let entry = peer.entry(&self.root);
        let port = port.to_string();
        let echo_str = echo.to_str().ok_or("the echo server path is not UTF-8")?;
        let mut cmd;
        match peer {
            Peer::Supergateway => {
                cmd = Command::new("node");
                cmd.arg(entry)
                    .args(["--stdio", echo_str, "--port", &port, "--logLevel", "none"]);
                match transport {
                    Transport::Streamable => {
                        cmd.args(["--outputTransport", "streamableHttp", "--stateful"]);
                    }
                    Transport::Sse => {
                        cmd.args(["--outputTransport", "sse"]);
                    }
                }
            }
            Peer::McpProxyNpm => {
                cmd = Command::new("node");
                cmd.arg(entry).args([
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port,
                    "--apiKey",
                    crate::targets::API_KEY,
                    "--server",
                    match transport {
                        Transport::Streamable => "stream",
                        Transport::Sse => "sse",
                    },
                    "--",
                    echo_str,
                ]);
            }
            Peer::McpProxyAuth => {
                // Any non-empty key passes when no auth handler or fixed key
                // is configured; the header is still required and checked.
                cmd = Command::new("node");
                cmd.arg(entry).args(["--port", &port, echo_str]);
            }
            Peer::McpProxyPy => {
                cmd = Command::new(entry);
                cmd.args([
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port,
                    "--log-level",
                    "WARNING",
                    echo_str,
                ]);
            }
        }
        Ok(cmd)
    }
}
