//! The binary configured from a TOML file (`--config`), and `check-config`.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::process::Command;

use tests::{ClientRun, Sdk, Server, Transport, bastion_bin, everything_stdio};

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("mcp-bastion-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// Everything from the file: the listen address, the path prefix, the session mode and the server
/// command; a real client then runs its whole scenario under the file's prefix.
#[test]
fn the_proxy_runs_from_a_config_file_alone() {
    let path = write(
        "run.toml",
        &format!(
            "# a whole deployment in one file\nlisten = \"127.0.0.1:0\"\npath_prefix = \"/k/cfg\"\n\
             session-mode = \"per-session\"\nkeepalive-secs = 20\ncommand = {}\n",
            toml_list(&everything_stdio())
        ),
    );
    let server = Server::spawn(
        "mcp-bastion",
        &bastion_bin(),
        &["--config".to_owned(), path.display().to_string()],
    );
    ClientRun::against(Sdk::Python, Transport::Streamable, &server, "/k/cfg").run_ok(&server);
    ClientRun::against(Sdk::TypeScript, Transport::Sse, &server, "/k/cfg").run_ok(&server);
    let _ = std::fs::remove_file(path);
}

#[test]
fn check_config_prints_the_effective_configuration_or_names_the_error() {
    let good = write(
        "good.toml",
        "listen = \"127.0.0.1:8089\"\nsession-mode = \"shared\"\ncommand = [\"node\", \"srv.js\"]\n",
    );
    let out = Command::new(bastion_bin())
        .args(["check-config", good.to_str().unwrap()])
        .env("MCP_BASTION_KEEPALIVE_SECS", "7")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("listen = \"127.0.0.1:8089\"  # config line 1"),
        "{text}"
    );
    assert!(
        text.contains("keepalive-secs = 7  # $MCP_BASTION_KEEPALIVE_SECS"),
        "{text}"
    );
    assert!(text.contains("command = [\"node\", \"srv.js\"]"), "{text}");

    let bad = write(
        "bad.toml",
        "command = [\"x\"]\n\nmax-body-bytes = \"lots\"\n",
    );
    let out = Command::new(bastion_bin())
        .args(["check-config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bad.toml:3: `max-body-bytes`: invalid value 'lots'"),
        "{err}"
    );
    let _ = std::fs::remove_file(good);
    let _ = std::fs::remove_file(bad);
}
