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
        "upstream-header",
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
/// upstream options, the other half of the TLS and introspection-client pairs, the
/// authorization server for the `oauth-*` options, the audit log that argument hashing needs.
fn companions(name: &str) -> String {
    let mut base = match name {
        "upstream" => String::new(),
        n if n.starts_with("upstream-") => "upstream = \"https://example.com/mcp\"\n".to_owned(),
        _ => "command = [\"node\", \"srv.js\"]\n".to_owned(),
    };
    match name {
        "tls-cert" => base.push_str("tls-key = \"/etc/mcp/key.pem\"\n"),
        "tls-key" => base.push_str("tls-cert = \"/etc/mcp/cert.pem\"\n"),
        "upstream-client-cert" => {
            base.push_str(&format!("upstream-client-key = {:?}\n", pem_files().1));
        }
        "upstream-client-key" => {
            base.push_str(&format!("upstream-client-cert = {:?}\n", pem_files().0));
        }
        "audit-hash-arguments" => base.push_str("audit-log = \"stdout\"\n"),
        "introspection-client-id" => {
            base.push_str("introspection-client-secret-env = \"INTROSPECTION_SECRET\"\n");
        }
        "introspection-client-secret-env" => {
            base.push_str("introspection-client-id = \"mcp-bastion\"\n");
        }
        "oauth-dcr-token-env" => base.push_str("oauth-dcr = \"token\"\n"),
        "redis-ca" => base.push_str("redis-url = \"rediss://127.0.0.1:6380\"\n"),
        "oauth-store" => base.push_str(
            "redis-url = \"redis://127.0.0.1:6379\"\noauth-signing-key-file = \"/k.pem\"\n\
             oauth-secrets-key-env = \"OAUTH_SECRETS_KEY\"\n",
        ),
        "oauth-signing-key-previous-file" => {
            base.push_str("oauth-signing-key-file = \"/k.pem\"\n");
        }
        _ => {}
    }
    // an `oauth-*` option needs the authorization server it configures; the GitHub options need
    // GitHub as its identity provider (and no OIDC issuer)
    let github = matches!(
        name,
        "oauth-upstream" | "oauth-upstream-github-url" | "oauth-allow-github-org"
    );
    if github && name != "oauth-upstream" {
        base.push_str("oauth-upstream = \"github\"\n");
    }
    if name.starts_with("oauth-") || name == "upstream-header-from" {
        for (key, value) in [
            ("oauth-issuer", "\"https://mcp.example.com\""),
            ("oauth-upstream-issuer", "\"https://accounts.example.com\""),
            ("oauth-upstream-client-id", "\"mcp-bastion\""),
            ("oauth-allow-email-domain", "\"example.com\""),
        ] {
            if key != name && !(github && key == "oauth-upstream-issuer") {
                base.push_str(&format!("{key} = {value}\n"));
            }
        }
    }
    base
}

/// A certificate and its key, made once: `check-config` builds the upstream backend, which reads
/// the PEM files of `upstream-ca` and `upstream-client-cert`/`-key`, so their documented example
/// paths stand for these.
fn pem_files() -> &'static (String, String) {
    static FILES: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    FILES.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("mcp-bastion-config-pem-{}", std::process::id()));
        let (cert, key) = tests::certs::self_signed_end_entity(&dir);
        (cert.display().to_string(), key.display().to_string())
    })
}

/// The value an option is checked with: its documented example, or the file it stands for.
fn example_value<'a>(name: &str, example: &'a str) -> std::borrow::Cow<'a, str> {
    match name {
        "upstream-ca" | "upstream-client-cert" | "outbound-ca" | "redis-ca" => {
            pem_files().0.as_str().into()
        }
        "upstream-client-key" => pem_files().1.as_str().into(),
        _ => example.into(),
    }
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
            let shown = format!("command = {}", toml_list(&command));
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
        let example = example_value(name, &row.example);
        let value = if row.switch { "true" } else { &example };
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
            // in a value, not in another option's name (`…-per-principal`)
            let printed = out
                .lines()
                .filter_map(|l| l.split_once(" = "))
                .any(|(_, v)| v.contains(value));
            assert!(!printed, "--{name}: the secret was printed:\n{out}");
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

// ---------------------------------------------------------------------------------------------
// the compatibility variables of other MCP proxies, against the binary

/// `mcp-bastion <args…>` with the compatibility variables in `env` (and none inherited).
fn compat_server(args: &[&str], env: &[(&str, &str)]) -> Server {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let mut all = env.to_vec();
    all.push(("MCP_BASTION_LOG", "info"));
    Server::spawn_with_env("mcp-bastion", &bastion_bin(), &args, &all)
}

fn with_command(args: &[&str]) -> Vec<String> {
    args.iter()
        .map(|a| (*a).to_owned())
        .chain(std::iter::once("--".to_owned()))
        .chain(everything_stdio())
        .collect()
}

/// The HTTP status of an `initialize` POST to `url` with `Authorization: Bearer <token>`.
fn initialize_status(url: &str, token: Option<&str>) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::new()
            .post(url)
            .header("accept", "application/json, text/event-stream")
            .json(
                &serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"}}}),
            );
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.unwrap().status().as_u16()
    })
}

/// Runs `tests/clients/session_call.py` (one session, the given tool calls) and returns the
/// texts of the results.
fn session_call(server: &Server, url: &str, transport: &str, calls: &[&str]) -> Vec<String> {
    let mut cmd = Command::new(tests::python());
    cmd.arg(tests::clients_dir().join("session_call.py"))
        .args(["--url", url, "--transport", transport, "--timeout", "60"])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(tests::workspace_dir());
    for call in calls {
        cmd.args(["--call", call]);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Option<serde_json::Value> = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok());
    match summary {
        Some(s) if out.status.success() && s["ok"] == true => s["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap_or_default().to_owned())
            .collect(),
        _ => panic!(
            "session_call.py {url} failed ({})\n{stdout}\n{}\n--- server ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            server.logs()
        ),
    }
}

#[test]
fn auth_key_requires_that_key() {
    let args = with_command(&["--listen", "127.0.0.1:0"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = compat_server(&args, &[("AUTH_KEY", "compat-key-7d1c")]);
    assert!(
        !server.logs().contains("generated an API key"),
        "AUTH_KEY is the key: {}",
        server.logs()
    );
    let url = server.url("/mcp");
    assert_eq!(initialize_status(&url, None), 401);
    assert_eq!(initialize_status(&url, Some("another-key")), 401);
    assert_eq!(initialize_status(&url, Some("compat-key-7d1c")), 200);
    let summary = ClientRun::against(Sdk::Python, Transport::Streamable, &server, "")
        .arg("--header")
        .arg("Authorization: Bearer compat-key-7d1c")
        .run_ok(&server);
    tests::assert_full_summary(&summary);
    assert!(
        !server.logs().contains("compat-key-7d1c"),
        "{}",
        server.logs()
    );
}

#[test]
fn shared_session_runs_one_child_for_every_session() {
    let args = with_command(&["--listen", "127.0.0.1:0", "--allow-unauthenticated"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = compat_server(&args, &[("SHARED_SESSION", "true")]);
    ClientRun::against(Sdk::Python, Transport::Streamable, &server, "")
        .concurrency(3)
        .run_ok(&server);
    server.wait_for_children(1, std::time::Duration::from_secs(30));
    let first = server.children();
    ClientRun::against(Sdk::TypeScript, Transport::Sse, &server, "")
        .concurrency(2)
        .run_ok(&server);
    // per-session children would be others, and gone with their sessions
    assert_eq!(server.children(), first, "{}", server.logs());
}

#[test]
fn mcp_server_config_serves_every_server_by_name_and_a_single_one_as_the_default() {
    let command = everything_stdio();
    let (program, args) = command.split_first().unwrap();
    let entry =
        |env: &str| serde_json::json!({"command": program, "args": args, "env": {"GREETING": env}});
    let two = write(
        "claude.json",
        &serde_json::json!({"mcpServers": {"alpha": entry("from-alpha"), "beta": entry("from-beta")}})
            .to_string(),
    );
    let server = compat_server(
        &["--listen", "127.0.0.1:0", "--allow-unauthenticated"],
        &[("MCP_SERVER_CONFIG", two.to_str().unwrap())],
    );
    let env = session_call(
        &server,
        &server.url("/servers/beta/sse"),
        "sse",
        &["get-env"],
    );
    let env: serde_json::Value = serde_json::from_str(&env[0]).unwrap();
    assert_eq!(env["GREETING"], "from-beta", "{env}");
    let summary = ClientRun::against(
        Sdk::TypeScript,
        Transport::Streamable,
        &server,
        "/servers/alpha",
    )
    .run_ok(&server);
    tests::assert_full_summary(&summary);
    assert_eq!(
        initialize_status(&server.url("/mcp"), None),
        404,
        "two servers: no default"
    );
    drop(server);

    let one = write(
        "claude-one.json",
        &serde_json::json!({"mcpServers": {"solo": entry("from-solo")}}).to_string(),
    );
    let server = compat_server(
        &["--listen", "127.0.0.1:0", "--allow-unauthenticated"],
        &[("MCP_SERVER_CONFIG", one.to_str().unwrap())],
    );
    for url in [server.url("/mcp"), server.url("/servers/solo/mcp")] {
        let env = session_call(&server, &url, "streamable", &["get-env"]);
        let env: serde_json::Value = serde_json::from_str(&env[0]).unwrap();
        assert_eq!(env["GREETING"], "from-solo", "{url}: {env}");
    }
    ClientRun::against(Sdk::Python, Transport::Sse, &server, "").run_ok(&server);
    let _ = std::fs::remove_file(two);
    let _ = std::fs::remove_file(one);
}

/// A remote auth endpoint in the contract of `--auth-server-url`:
/// `GET /check?apiKey=KEY` → `{"valid": …, "userId": …}`. Returns its base URL.
fn remote_auth_server() -> String {
    use axum::{Json, Router, extract::Query, routing::get};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = Router::new().route(
                "/check",
                get(
                    |Query(q): Query<std::collections::BTreeMap<String, String>>| async move {
                        Json(match q.get("apiKey").map(String::as_str) {
                            Some("remote-valid-key") => {
                                serde_json::json!({"valid": true, "userId": "compat-user"})
                            }
                            _ => serde_json::json!({"valid": false}),
                        })
                    },
                ),
            );
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let _ = axum::serve(listener, app).await;
        });
    });
    format!("http://{addr}")
}

#[test]
fn auth_server_url_checks_keys_with_the_remote_endpoint() {
    let remote = format!("{}/check", remote_auth_server());
    let args = with_command(&["--listen", "127.0.0.1:0"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = compat_server(&args, &[("AUTH_SERVER_URL", &remote)]);
    let url = server.url("/mcp");
    assert_eq!(initialize_status(&url, None), 401);
    assert_eq!(initialize_status(&url, Some("remote-wrong-key")), 401);
    assert_eq!(initialize_status(&url, Some("remote-valid-key")), 200);
    ClientRun::against(Sdk::Python, Transport::Sse, &server, "")
        .arg("--header")
        .arg("Authorization: Bearer remote-valid-key")
        .run_ok(&server);
}

#[test]
fn mcp_proxy_port_is_the_port_listened_on() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let args = with_command(&["--allow-unauthenticated"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = compat_server(&args, &[("MCP_PROXY_PORT", &port.to_string())]);
    assert_eq!(server.base_url(), format!("http://127.0.0.1:{port}"));
    ClientRun::against(Sdk::TypeScript, Transport::Streamable, &server, "").run_ok(&server);
}

/// One precedence for every option: a flag on the command line wins over its `MCP_BASTION_*`
/// variable (until the configuration moved to one typed layering, the variable won).
#[test]
fn a_flag_wins_over_its_mcp_bastion_variable() {
    let file = write("flag-over-env.toml", "command = [\"node\", \"srv.js\"]\n");
    let out = Command::new(bastion_bin())
        .args([
            "check-config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:8092",
        ])
        .env("MCP_BASTION_LISTEN", "127.0.0.1:8091")
        .env("MCP_BASTION_KEEPALIVE_SECS", "9")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("listen = \"127.0.0.1:8092\"  # flag"),
        "{text}"
    );
    assert!(
        text.contains("keepalive-secs = 9  # $MCP_BASTION_KEEPALIVE_SECS"),
        "{text}"
    );
    let _ = std::fs::remove_file(file);

    // and the server listens where the flag says
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port().to_string();
    let args = with_command(&["--listen", "127.0.0.1:0", "--allow-unauthenticated"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env_listen = format!("127.0.0.1:{taken_port}");
    let server = compat_server(&args, &[("MCP_BASTION_LISTEN", env_listen.as_str())]);
    assert_ne!(server.base_url(), format!("http://{env_listen}").as_str());
    ClientRun::against(Sdk::Python, Transport::Streamable, &server, "").run_ok(&server);
    drop(taken);
}
