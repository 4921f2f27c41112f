//! What the binary refuses to start with: `check-config` and the start name the option at fault,
//! and a secret variable that is not set is named (never a value).

use std::process::Command;

use tests::bastion_bin;

/// `mcp-bastion check-config FILE` on `text` (after a server command); exit status and output.
fn check(name: &str, text: &str) -> (bool, String) {
    let dir =
        std::env::temp_dir().join(format!("mcp-bastion-oauth-refusals-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, format!("command = [\"node\", \"srv.js\"]\n{text}")).unwrap();
    let out = Command::new(bastion_bin())
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(file);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

const BASE: &str = "oauth-issuer = \"https://mcp.example.com\"\n\
                    oauth-upstream-issuer = \"https://idp.example.com\"\n\
                    oauth-upstream-client-id = \"mcp-bastion\"\n";

#[test]
fn check_config_refuses_inconsistent_oauth_configurations_naming_the_key() {
    for (name, text, key, words) in [
        (
            "no-upstream",
            "oauth-issuer = \"https://mcp.example.com\"\noauth-allow-any-user = true\n",
            "oauth-issuer",
            "oauth-upstream-issuer",
        ),
        ("nobody", BASE, "oauth-issuer", "nobody may log in"),
        (
            "other-tokens",
            &format!(
                "{BASE}oauth-allow-any-user = true\nintrospection-url = \"https://idp.example.com/introspect\"\n"
            ),
            "introspection-url",
            "cannot be used with `oauth-issuer`",
        ),
        (
            "plain-http",
            "oauth-issuer = \"http://mcp.example.com\"\n",
            "oauth-issuer",
            "https",
        ),
        (
            "without-issuer",
            "oauth-dcr = \"open\"\n",
            "oauth-dcr",
            "needs `oauth-issuer`",
        ),
        (
            "plaintext-secret",
            &format!(
                "{BASE}oauth-allow-any-user = true\n[[oauth-client]]\nid = \"c\"\nredirect-uris = [\"https://c.example/cb\"]\nsecret = \"hunter2-plaintext\"\n"
            ),
            "oauth-client",
            "secret-sha256",
        ),
    ] {
        let (ok, out) = check(name, text);
        assert!(!ok, "{name}: accepted\n{out}");
        // the key (`oauth-client.0` for an element of the list), in the file at its line
        assert!(
            out.contains(&format!("`{key}")),
            "{name}: no `{key}` in\n{out}"
        );
        assert!(out.contains(".toml:"), "{name}: no file and line in\n{out}");
        assert!(out.contains(words), "{name}: no `{words}` in\n{out}");
        assert!(
            !out.contains("hunter2-plaintext"),
            "{name}: a secret was printed\n{out}"
        );
    }
    // accepted, with the warnings of a tests-only switch and of a key for this run only
    let (ok, out) = check(
        "warned",
        &format!("{BASE}oauth-allow-any-user = true\noauth-cimd-allow-loopback = true\n"),
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("warning: `oauth-cimd-allow-loopback` is for tests only"),
        "{out}"
    );
    assert!(
        out.contains("warning: no `oauth-signing-key-file`"),
        "{out}"
    );
}

#[test]
fn the_start_names_an_unset_secret_variable() {
    let out = Command::new(bastion_bin())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--oauth-issuer",
            "http://127.0.0.1:9",
        ])
        .args(["--oauth-upstream-issuer", "http://127.0.0.1:9"])
        .args(["--oauth-upstream-client-id", "mcp-bastion"])
        .args([
            "--oauth-upstream-client-secret-env",
            "OAUTH_SECRET_NOT_SET_HERE",
        ])
        .args(["--oauth-allow-any-user", "--", "node", "srv.js"])
        .env_remove("OAUTH_SECRET_NOT_SET_HERE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--oauth-upstream-client-secret-env: environment variable OAUTH_SECRET_NOT_SET_HERE is not set"),
        "{err}"
    );
}
