#![allow(clippy::unwrap_used, reason = "tests")]
use figment::value::Value;

use super::*;
use crate::config::options::SessionMode;

fn file(text: &str) -> Option<ConfigFile> {
    Some(ConfigFile {
        path: PathBuf::from("test.toml"),
        text: text.to_owned(),
    })
}

/// Flags as the binary gives them: strings, arrays of strings, `true`.
fn flags(pairs: &[(&str, Value)]) -> Dict {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn text(s: &str) -> Value {
    Value::from(s.to_owned())
}

fn list(items: &[&str]) -> Value {
    Value::from(items.iter().map(|s| text(s)).collect::<Vec<_>>())
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn load_with(
    flags: Dict,
    env: &BTreeMap<String, String>,
    file: Option<ConfigFile>,
) -> Result<Loaded, ConfigError> {
    load(Inputs { flags, env, file })
}

#[test]
fn compat_then_file_then_env_then_flags_each_replaces_the_one_before() {
    let env = env(&[
        ("MCP_PROXY_PORT", "1000"),
        ("SHARED_SESSION", "true"),
        ("MCP_BASTION_PASS_ENV", "D,E"),
        ("MCP_BASTION_JSON_RESPONSE", "off"),
        ("MCP_BASTION_MAX_BODY_BYTES", "77"),
        ("MCP_BASTION_SHUTDOWN_TIMEOUT", "3"),
    ]);
    let loaded = load_with(
        flags(&[
            ("keepalive-secs", text("6")),
            ("shutdown-timeout", text("4")),
            ("command", list(&["from-flags"])),
        ]),
        &env,
        file(
            "listen = \"127.0.0.1:1001\"\nkeepalive_secs = 5\npass-env = [\"A\", \"B\"]\n\
             json-response = true\nmax-body-bytes = 1\ncommand = [\"from-file\", \"x\"]\n",
        ),
    )
    .unwrap();
    let c = &loaded.config;
    assert_eq!(
        c.general.listen.port(),
        1001,
        "the file beats MCP_PROXY_PORT"
    );
    assert_eq!(
        c.server.session_mode(),
        SessionMode::Shared,
        "SHARED_SESSION applies"
    );
    assert_eq!(*c.general.keepalive_secs.get(), 6, "a flag beats the file");
    assert_eq!(
        *c.general.max_body_bytes.get(),
        77,
        "MCP_BASTION_* beats the file"
    );
    assert_eq!(
        *c.general.shutdown_timeout.get(),
        4,
        "a flag beats MCP_BASTION_*"
    );
    assert_eq!(
        c.server.pass_env.as_ref().unwrap().to_vec(),
        ["D", "E"],
        "lists replaced whole, comma-separated in the environment"
    );
    assert!(
        !c.general.json_response,
        "an env switch can turn a file's switch off"
    );
    assert_eq!(
        c.server.command,
        ["from-flags"],
        "the command after -- beats the file's"
    );
    assert_eq!(loaded.origin("listen"), Origin::File(1));
    assert_eq!(
        loaded.origin("session-mode"),
        Origin::Compat("SHARED_SESSION".into())
    );
    assert_eq!(
        loaded.origin("max-body-bytes"),
        Origin::Env("MCP_BASTION_MAX_BODY_BYTES".into())
    );
    assert_eq!(loaded.origin("keepalive-secs"), Origin::Flag);
    assert_eq!(loaded.origin("log-format"), Origin::Default);
}

#[test]
fn a_flag_wins_over_its_mcp_bastion_variable() {
    let env = env(&[("MCP_BASTION_LISTEN", "127.0.0.1:1")]);
    let loaded = load_with(flags(&[("listen", text("127.0.0.1:2"))]), &env, None).unwrap();
    assert_eq!(loaded.config.general.listen.port(), 2);
    let loaded = load_with(Dict::new(), &env, None).unwrap();
    assert_eq!(loaded.config.general.listen.port(), 1);
}

#[test]
fn documented_variable_aliases_still_work_below_their_own_names() {
    let loaded = load_with(
        Dict::new(),
        &env(&[
            ("MCP_BASTION_API_KEYS", "a,b"),
            ("MCP_BASTION_TRUSTED_PROXIES", "10.0.0.0/8"),
        ]),
        None,
    )
    .unwrap();
    assert_eq!(loaded.config.auth.api_key.to_vec(), ["a", "b"]);
    assert_eq!(
        loaded.origin("api-key"),
        Origin::Env("MCP_BASTION_API_KEYS".into())
    );
    assert_eq!(loaded.config.rate_limit.trusted_proxy.iter().count(), 1);
    let loaded = load_with(
        Dict::new(),
        &env(&[("MCP_BASTION_API_KEYS", "a"), ("MCP_BASTION_API_KEY", "c")]),
        None,
    )
    .unwrap();
    assert_eq!(loaded.config.auth.api_key.to_vec(), ["c"]);
}

#[test]
fn file_errors_name_the_line_the_key_and_what_is_expected() {
    let cases = [
        (
            "command = [\"x\"]\n\nlisten = \"nope\"\n",
            3,
            "listen",
            "invalid value 'nope'",
        ),
        (
            "session-mode = \"both\"\n",
            1,
            "session-mode",
            "possible values",
        ),
        (
            "command = [\"x\"]\nfrobnicate = 1\n",
            2,
            "frobnicate",
            "unknown key",
        ),
        (
            "json-response = \"yes\"\n",
            1,
            "json-response",
            "true or false",
        ),
        ("command = \"npx\"\n", 1, "command", "array"),
        ("listen = [\"a\", \"b\"]\n", 1, "listen", "single value"),
        (
            "max-body-bytes = \"lots\"\n",
            1,
            "max-body-bytes",
            "invalid value 'lots'",
        ),
        (
            "keepalive-secs = 1\nkeepalive_secs = 2\n",
            2,
            "keepalive_secs",
            "twice",
        ),
    ];
    for (text, line, key, expected) in cases {
        let e = load_with(Dict::new(), &env(&[]), file(text)).unwrap_err();
        assert_eq!(e.line(), Some(line), "{text}: {e}");
        assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
        assert!(e.to_string().contains(expected), "{text}: {e}");
        assert!(
            e.to_string()
                .starts_with(&format!("test.toml:{line}: `{key}`: ")),
            "{e}"
        );
    }
    let e = load_with(Dict::new(), &env(&[]), file("listen = [1,\n")).unwrap_err();
    assert!(e.to_string().contains("not valid TOML"), "{e}");
}

#[test]
fn variable_and_flag_errors_name_their_source() {
    let e = load_with(Dict::new(), &env(&[("MCP_BASTION_LISTEN", "nope")]), None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "$MCP_BASTION_LISTEN: `listen`: invalid value 'nope': invalid socket address syntax (expected HOST:PORT)"
    );
    let e = load_with(
        Dict::new(),
        &env(&[("MCP_BASTION_SESSIONLESS", "maybe")]),
        None,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("$MCP_BASTION_SESSIONLESS: `sessionless`: expected true or false"),
        "{e}"
    );
    let e = load_with(flags(&[("keepalive-secs", text("soon"))]), &env(&[]), None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "flag --keepalive-secs: invalid value 'soon': invalid digit found in string"
    );
}

#[test]
fn mcp_server_config_names_servers_and_one_server_is_also_the_default() {
    let dir = std::env::temp_dir();
    let write = |name: &str, text: &str| {
        let path = dir.join(format!(
            "mcp-bastion-config-{}-{name}.json",
            std::process::id()
        ));
        std::fs::write(&path, text).unwrap();
        path
    };
    let one = write(
        "one",
        r#"{"mcpServers": {"everything": {"command": "npx", "args": ["-y", "srv"], "env": {"K": "v"}}}}"#,
    );
    let loaded = load_with(
        Dict::new(),
        &env(&[
            ("MCP_SERVER_CONFIG", one.to_str().unwrap()),
            ("SHARED_SESSION", "1"),
        ]),
        None,
    )
    .unwrap();
    let server = &loaded.config.servers["everything"];
    assert_eq!(server.command, ["npx", "-y", "srv"]);
    assert_eq!(server.env.to_vec(), ["K=v"]);
    assert_eq!(
        server.session_mode(),
        SessionMode::Shared,
        "SHARED_SESSION reaches the named server"
    );
    assert_eq!(loaded.config.default_alias.as_deref(), Some("everything"));
    let two = write(
        "two",
        r#"{"mcpServers": {"a": {"command": "x"}, "b": {"url": "https://example.com/mcp", "headers": {"X-Key": "s3cret"}}}}"#,
    );
    let loaded = load_with(
        flags(&[("command", list(&["default-server"]))]),
        &env(&[("MCP_SERVER_CONFIG", two.to_str().unwrap())]),
        None,
    )
    .unwrap();
    assert_eq!(loaded.config.servers.len(), 2);
    assert_eq!(
        loaded.config.servers["b"].upstream_header.to_vec(),
        ["X-Key: s3cret"]
    );
    assert_eq!(loaded.config.default_alias, None);
    let text = loaded.render();
    assert!(!text.contains("s3cret"), "{text}");
    assert!(text.contains("[servers.b]  # $MCP_SERVER_CONFIG"), "{text}");
    let bad = write("bad", r#"{"mcpServers": {"a b": {"command": "x"}}}"#);
    let e = load_with(
        Dict::new(),
        &env(&[("MCP_SERVER_CONFIG", bad.to_str().unwrap())]),
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("invalid name"), "{e}");
    for p in [one, two, bad] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn server_tables_parse_and_their_errors_name_line_key_and_expectation() {
    let loaded = load_with(
        Dict::new(),
        &env(&[]),
        file(
            "listen = \"127.0.0.1:1\"\npass-env = [\"HOME\"]\n\n[servers.a]\ncommand = [\"x\", \"y\"]\nsession-mode = \"shared\"\nenv = [\"TOKEN=hush\"]\n\n[servers.r_2]\nupstream = \"https://example.com/mcp\"\nupstream-bearer-env = \"REMOTE_TOKEN\"\n",
        ),
    )
    .unwrap();
    assert_eq!(loaded.config.servers.len(), 2);
    assert_eq!(loaded.origin("servers.a"), Origin::File(4));
    assert_eq!(loaded.origin("servers.a.session-mode"), Origin::File(6));
    assert_eq!(
        loaded.config.servers["a"]
            .pass_env
            .as_ref()
            .unwrap()
            .to_vec(),
        ["HOME"],
        "inherited"
    );
    let text = loaded.render();
    assert!(
        text.contains("env = \"TOKEN=********\"  # config line 7"),
        "{text}"
    );
    assert!(!text.contains("hush"), "{text}");
    let cases = [
        (
            "[servers.\"a b\"]\ncommand = [\"x\"]\n",
            1,
            "servers.a b",
            "invalid server name",
        ),
        (
            "\n[servers.a]\nsession-mode = \"shared\"\n",
            2,
            "servers.a",
            "expected `command",
        ),
        (
            "[servers.a]\ncommand = [\"x\"]\nupstream = \"http://h/mcp\"\n",
            1,
            "servers.a",
            "not both",
        ),
        (
            "[servers.a]\ncommand = [\"x\"]\nlisten = \"1\"\n",
            3,
            "servers.a.listen",
            "unknown key",
        ),
        (
            "[servers.a]\ncommand = [\"x\"]\nsession-mode = \"all\"\n",
            3,
            "servers.a.session-mode",
            "possible values",
        ),
        ("servers = 3\n", 1, "servers", "expected tables"),
        (
            "[servers.a]\ncommand = [\"x\"]\nsession-mode = \"shared\"\nparam-env = [\"p=V\"]\n",
            4,
            "servers.a.param-env",
            "per-session",
        ),
    ];
    for (text, line, key, expected) in cases {
        let e = load_with(Dict::new(), &env(&[]), file(text)).unwrap_err();
        assert_eq!(e.line(), Some(line), "{text}: {e}");
        assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
        assert!(e.to_string().contains(expected), "{text}: {e}");
    }
}

#[test]
fn render_masks_secrets_and_names_origins() {
    let loaded = load_with(
        flags(&[("redis-url", text("redis://:pw-in-url@10.0.0.1:6379/0"))]),
        &env(&[("MCP_BASTION_API_KEY", "sk-very-secret")]),
        file("\n\nlisten = \"127.0.0.1:1\"\n"),
    )
    .unwrap();
    let text = loaded.render();
    assert!(
        text.starts_with("# effective configuration (file: test.toml)\n"),
        "{text}"
    );
    assert!(!text.contains("sk-very-secret"), "{text}");
    assert!(
        text.contains("api-key = \"********\"  # $MCP_BASTION_API_KEY"),
        "{text}"
    );
    assert!(
        text.contains("listen = \"127.0.0.1:1\"  # config line 3"),
        "{text}"
    );
    assert!(!text.contains("pw-in-url"), "{text}");
    assert!(
        text.contains("redis-url = \"redis://********@10.0.0.1:6379/0\"  # flag"),
        "{text}"
    );
    assert!(text.contains("keepalive-secs = 30  # default"), "{text}");
}

#[test]
fn every_key_has_one_kind_and_a_variable() {
    let schema = Schema::new();
    assert!(schema.options.len() > 60, "{}", schema.options.len());
    assert_eq!(schema.options["pass-env"], sources::Kind::List);
    assert_eq!(schema.options["json-response"], sources::Kind::Switch);
    assert_eq!(schema.options["listen"], sources::Kind::Value);
    assert_eq!(Schema::env_name("session-mode"), "MCP_BASTION_SESSION_MODE");
    assert!(schema.server_keys.contains("upstream-header"));
    assert!(!schema.server_keys.contains("listen"));
}

#[test]
fn upstream_token_mappings_need_the_authorization_server() {
    let oauth = "oauth-issuer = \"https://mcp.example.com\"\noauth-upstream-issuer = \"https://idp.example.com\"\noauth-upstream-client-id = \"bastion\"\noauth-allow-any-user = true\n";
    for (text, key) in [
        (
            "command = [\"x\"]\nprincipal-env = [\"GH=upstream:access_token\"]\napi-key = \"k\"\n",
            "principal-env",
        ),
        (
            "upstream = \"https://example.com/mcp\"\nupstream-header-from = \"Authorization=upstream:access_token\"\n",
            "upstream-header-from",
        ),
        (
            "[servers.gh]\nupstream = \"https://example.com/mcp\"\nupstream-header-from = \"Authorization=upstream:access_token\"\n",
            "upstream-header-from",
        ),
    ] {
        let e = load_with(Dict::new(), &env(&[]), file(text)).unwrap_err();
        assert_eq!(e.key.as_deref(), Some(key), "{e}");
        assert!(e.message.contains("oauth-issuer"), "{e}");
        load_with(Dict::new(), &env(&[]), file(&format!("{oauth}{text}"))).unwrap();
    }
}

#[test]
fn audit_options_parse_and_hashing_arguments_needs_an_audit_log() {
    let loaded = load_with(
        flags(&[
            ("audit-log", text("stdout")),
            ("audit-hash-arguments", Value::from(true)),
            ("command", list(&["srv"])),
        ]),
        &env(&[]),
        None,
    )
    .unwrap();
    let general = &loaded.config.general;
    assert_eq!(
        general.audit_log.as_ref().map(|s| s.get().clone()),
        Some(mcp_bastion::audit::AuditSink::Stdout)
    );
    assert!(general.audit_hash_arguments);
    let file_sink = load_with(
        flags(&[("command", list(&["srv"]))]),
        &env(&[("MCP_BASTION_AUDIT_LOG", "/var/log/a.jsonl")]),
        None,
    )
    .unwrap();
    assert_eq!(
        file_sink
            .config
            .general
            .audit_log
            .as_ref()
            .map(|s| s.get().clone()),
        Some(mcp_bastion::audit::AuditSink::File(
            "/var/log/a.jsonl".into()
        ))
    );
    let err = load_with(
        flags(&[
            ("audit-hash-arguments", Value::from(true)),
            ("command", list(&["srv"])),
        ]),
        &env(&[]),
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("audit-hash-arguments"), "{err}");
    assert!(err.to_string().contains("needs `audit-log`"), "{err}");
}
