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
            "# a whole deployment in one file\nlisten = \"127.0.0.1:0\"\nallow-unauthenticated = true\npath_prefix = \"/k/cfg\"\n\
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

// ---------------------------------------------------------------------------------------------
// every documented option, with its example value

/// One row of the options table of docs/configuration.md.
#[derive(Debug)]
struct DocOption {
    /// The long name, or `None` for the `-- COMMAND…` row.
    name: Option<String>,
    /// A switch (no value).
    switch: bool,
    /// The example column, without its backticks.
    example: String,
}

/// The rows of the options table (`| option | default | example | meaning |`).
fn documented_options() -> Vec<DocOption> {
    let doc =
        std::fs::read_to_string(tests::workspace_dir().join("docs/configuration.md")).unwrap();
    let mut rows = Vec::new();
    for line in doc.lines().filter(|l| l.starts_with("| `-")) {
        // cells split at `|` not escaped as `\|`
        let mut cells = Vec::new();
        let mut cell = String::new();
        let mut prev = ' ';
        for c in line.chars() {
            if c == '|' && prev != '\\' {
                cells.push(std::mem::take(&mut cell));
            } else {
                cell.push(c);
            }
            prev = c;
        }
        let option = cells[1].trim().trim_matches('`');
        let example = cells[3].trim();
        assert!(
            example.len() > 2 && example.starts_with('`') && example.ends_with('`'),
            "no example value for {option} in docs/configuration.md: {line}"
        );
        let example = example.trim_matches('`').to_owned();
        let (name, switch) = match option.strip_prefix("--") {
            Some(rest) if !rest.starts_with(' ') => {
                let name = rest.split(' ').next().unwrap().to_owned();
                (Some(name), !rest.contains(' '))
            }
            _ => (None, false),
        };
        rows.push(DocOption {
            name,
            switch,
            example,
        });
    }
    assert!(rows.len() > 60, "the options table was not found: {rows:?}");
    rows
}

/// The documented masking rule of `check-config`.
fn masked(name: &str, value: &str) -> String {
    let secret = [
        "key",
        "secret",
        "token",
        "password",
        "bearer",
        "header",
        "credential",
    ]
    .iter()
    .any(|w| name.contains(w));
    if secret {
        "\"********\"".to_owned()
    } else if name == "env" {
        format!(
            "{:?}",
            format!("{}=********", value.split('=').next().unwrap())
        )
    } else if let Some((scheme, rest)) = value
        .split_once("://")
        .filter(|(_, r)| r.split('/').next().unwrap_or("").contains('@'))
    {
        format!(
            "{:?}",
            format!("{scheme}://********@{}", rest.rsplit_once('@').unwrap().1)
        )
    } else if value == "true" || value == "false" || value.parse::<i64>().is_ok() {
        value.to_owned()
    } else {
        format!("{value:?}")
    }
}

/// What a check of option `name` needs beside it: an upstream instead of a command for the
/// upstream options, the other half of the TLS and introspection-client pairs.
fn companions(name: &str) -> String {
    let mut base = match name {
        "upstream" => String::new(),
        n if n.starts_with("upstream-") => "upstream = \"https://example.com/mcp\"\n".to_owned(),
        _ => "command = [\"node\", \"srv.js\"]\n".to_owned(),
    };
    match name {
        "tls-cert" => base.push_str("tls-key = \"/etc/mcp/key.pem\"\n"),
        "tls-key" => base.push_str("tls-cert = \"/etc/mcp/cert.pem\"\n"),
        "introspection-client-id" => {
            base.push_str("introspection-client-secret-env = \"INTROSPECTION_SECRET\"\n");
        }
        "introspection-client-secret-env" => {
            base.push_str("introspection-client-id = \"mcp-bastion\"\n");
        }
        _ => {}
    }
    base
}

fn run_check(file: &std::path::Path, flags: &[String]) -> (bool, String) {
    let out = Command::new(bastion_bin())
        .arg("check-config")
        .arg(file)
        .args(flags)
        .env("REMOTE_TOKEN", "tok")
        .env_remove("MCP_SERVER_CONFIG")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn every_documented_option_parses_with_its_example_in_the_file_and_as_a_flag() {
    let mut checked = 0;
    for (i, row) in documented_options().iter().enumerate() {
        let Some(name) = &row.name else {
            // `-- COMMAND…`
            let command: Vec<String> = row.example.split(' ').map(str::to_owned).collect();
            let shown = format!(
                "command = {}",
                toml_list(&command).replace("\", \"", "\", \"")
            );
            let file = write(
                &format!("opt-{i}.toml"),
                &format!("command = {}\n", toml_list(&command)),
            );
            let (ok, out) = run_check(&file, &[]);
            assert!(ok && out.contains(&shown), "{shown}\n{out}");
            let empty = write(&format!("opt-{i}-flag.toml"), "");
            let flags: Vec<String> = std::iter::once("--".to_owned()).chain(command).collect();
            let (ok, out) = run_check(&empty, &flags);
            assert!(
                ok && out.contains(&format!("{shown}  # flag")),
                "{shown}\n{out}"
            );
            let _ = std::fs::remove_file(file);
            let _ = std::fs::remove_file(empty);
            checked += 1;
            continue;
        };
        if name == "config" {
            continue;
        }
        let value = if row.switch {
            "true"
        } else {
            row.example.as_str()
        };
        let shown = masked(name, value);
        // in the file
        let text = format!(
            "{}{name} = {}\n",
            companions(name),
            if row.switch {
                "true".to_owned()
            } else {
                format!("{value:?}")
            }
        );
        let file = write(&format!("opt-{i}.toml"), &text);
        let line = text.lines().count();
        let (ok, out) = run_check(&file, &[]);
        let want = format!("{name} = {shown}  # config line {line}");
        assert!(ok, "--{name} from the file:\n{text}\n{out}");
        assert!(out.contains(&want), "want `{want}`:\n{out}");
        if shown.contains("********") {
            assert!(
                !out.contains(value),
                "--{name}: the secret was printed:\n{out}"
            );
        }
        // as a flag
        let base = write(&format!("opt-{i}-base.toml"), &companions(name));
        let flags = if row.switch {
            vec![format!("--{name}")]
        } else {
            vec![format!("--{name}"), value.to_owned()]
        };
        let (ok, out) = run_check(&base, &flags);
        let want = format!("{name} = {shown}  # flag");
        assert!(ok, "--{name} as a flag:\n{out}");
        assert!(out.contains(&want), "want `{want}`:\n{out}");
        let _ = std::fs::remove_file(file);
        let _ = std::fs::remove_file(base);
        checked += 1;
    }
    assert!(checked > 60, "{checked}");
}
