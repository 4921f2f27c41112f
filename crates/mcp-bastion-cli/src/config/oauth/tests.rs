#![allow(clippy::unwrap_used, reason = "tests")]
use super::*;
use crate::config::ConfigError;

/// The file `text` after a minimal authorization server.
fn load_file(text: &str) -> Result<crate::config::Loaded, ConfigError> {
    let base = "oauth-issuer = \"https://mcp.example.com\"\n\
                oauth-upstream-issuer = \"https://idp.example.com\"\n\
                oauth-upstream-client-id = \"bastion\"\n";
    let env = std::collections::BTreeMap::new();
    crate::config::load(crate::config::Inputs {
        flags: Default::default(),
        env: &env,
        file: Some(crate::config::ConfigFile {
            path: "oauth.toml".into(),
            text: format!("{base}{text}"),
        }),
    })
}

#[test]
fn client_tables_take_a_secret_digest_and_never_a_secret() {
    let digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let loaded = load_file(&format!(
        "oauth-allow-any-user = true\n\
         [[oauth-client]]\nid = \"ops\"\nname = \"Ops\"\nredirect-uris = [\"https://ops.example/cb\"]\n\
         secret_sha256 = \"{digest}\"\n\
         [[oauth-client]]\nid = \"ops\"\nredirect-uris = \"https://ops.example/cb2\"\n"
    ))
    .unwrap();
    let clients = loaded.config.oauth.oauth_client.clients().unwrap();
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].name.as_deref(), Some("Ops"));
    assert_eq!(clients[0].redirect_uris.len(), 2);
    assert_eq!(clients[0].secret_sha256.unwrap()[0], 0x9f);
    // check-config shows the client, not its digest
    let shown = loaded.render();
    assert!(
        shown.contains("ops=https://ops.example/cb (confidential)"),
        "{shown}"
    );
    assert!(!shown.contains(digest), "{shown}");

    let e = load_file(
        "oauth-allow-any-user = true\n[[oauth-client]]\nid = \"ops\"\n\
         redirect-uris = [\"https://ops.example/cb\"]\nsecret = \"hunter2\"\n",
    )
    .unwrap_err();
    assert!(e.message.contains("secret-sha256"), "{e}");
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[test]
fn inconsistent_combinations_are_refused_with_the_key_at_fault() {
    let refused = |text: &str, key: &str, words: &str| {
        let e = load_file(text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some(key), "{e}");
        assert!(e.message.contains(words), "{e}");
    };
    refused("", "oauth-issuer", "nobody may log in");
    refused(
        "oauth-allow-any-user = true\njwt-jwks-url = \"https://idp.example.com/jwks\"\n",
        "jwt-jwks-url",
        "cannot be used with `oauth-issuer`",
    );
    refused(
        "oauth-allow-any-user = true\noauth-dcr = \"token\"\n",
        "oauth-dcr",
        "oauth-dcr-token-env",
    );
    refused(
        "oauth-allow-any-user = true\npath-prefix = \"/k/abc\"\n",
        "oauth-issuer",
        "path-prefix",
    );
    refused(
        "oauth-allow-any-user = true\noauth-cimd = \"off\"\noauth-cimd-allow-loopback = true\n",
        "oauth-cimd-allow-loopback",
        "no effect",
    );
    // without the issuer, any oauth option says what it needs
    let env = std::collections::BTreeMap::new();
    let e = crate::config::load(crate::config::Inputs {
        flags: Default::default(),
        env: &env,
        file: Some(crate::config::ConfigFile {
            path: "oauth.toml".into(),
            text: "oauth-scope = \"mcp\"\n".into(),
        }),
    })
    .unwrap_err();
    assert_eq!(e.key.as_deref(), Some("oauth-scope"), "{e}");
    // API keys beside the OAuth server's tokens are fine
    let ok = load_file("oauth-allow-any-user = true\napi-key = \"k\"\n").unwrap();
    assert!(
        ok.warnings()
            .iter()
            .any(|w| w.contains("oauth-signing-key-file"))
    );
    // plain http only on loopback
    let e = crate::config::load(crate::config::Inputs {
        flags: Default::default(),
        env: &env,
        file: Some(crate::config::ConfigFile {
            path: "oauth.toml".into(),
            text: "oauth-issuer = \"http://mcp.example.com\"\n".into(),
        }),
    })
    .unwrap_err();
    assert!(e.message.contains("https"), "{e}");
}

#[test]
fn token_lifetimes_cannot_be_off() {
    assert_eq!(
        Lifetime::from_text("15m").unwrap().0,
        Duration::from_secs(900)
    );
    assert!(Lifetime::from_text("off").is_err());
    assert!(Lifetime::from_text("0").is_err());
}

#[test]
fn a_redis_store_needs_the_redis_and_one_shared_key() {
    let refused = |text: &str, key: &str, words: &str| {
        let e = load_file(&format!("oauth-allow-any-user = true\n{text}")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some(key), "{e}");
        assert!(e.message.contains(words), "{e}");
    };
    refused(
        "oauth-store = \"redis\"\noauth-signing-key-file = \"/k.pem\"\n",
        "oauth-store",
        "needs `redis-url`",
    );
    refused(
        "oauth-store = \"redis\"\nredis-url = \"redis://127.0.0.1:6379\"\n",
        "oauth-store",
        "same key",
    );
    refused(
        "oauth-store = \"redis\"\nredis-url = \"redis://127.0.0.1:6379\"\n\
         oauth-signing-key-file = \"/k.pem\"\n",
        "oauth-store",
        "`oauth-secrets-key-env`",
    );
    refused(
        "oauth-signing-key-previous-file = [\"/old.pem\"]\n",
        "oauth-signing-key-previous-file",
        "needs `oauth-signing-key-file`",
    );
    let loaded = load_file(
        "oauth-allow-any-user = true\noauth-store = \"redis\"\n\
         redis-url = \"redis://127.0.0.1:6379\"\noauth-signing-key-file = \"/k.pem\"\n\
         oauth-secrets-key-env = \"OAUTH_SECRETS_KEY\"\n\
         oauth-signing-key-previous-file = [\"/old.pem\", \"/older.pem\"]\n",
    )
    .unwrap();
    assert_eq!(*loaded.config.oauth.oauth_store.get(), StoreKind::Redis);
    assert_eq!(
        loaded
            .config
            .oauth
            .oauth_signing_key_previous_file
            .iter()
            .count(),
        2
    );
}

/// The file `text` after an issuer with GitHub as the identity provider.
fn load_github(text: &str) -> Result<crate::config::Loaded, ConfigError> {
    let env = std::collections::BTreeMap::new();
    crate::config::load(crate::config::Inputs {
        flags: Default::default(),
        env: &env,
        file: Some(crate::config::ConfigFile {
            path: "oauth.toml".into(),
            text: format!(
                "oauth-issuer = \"https://mcp.example.com\"\noauth-upstream = \"github\"\n\
                 oauth-upstream-client-id = \"Ov23li\"\n{text}"
            ),
        }),
    })
}

#[test]
fn github_upstreams_and_the_allowlists_beyond_subjects_and_domains() {
    let ok = load_github("oauth-allow-github-org = [\"acme\", \"acme/platform\"]\n").unwrap();
    assert_eq!(*ok.config.oauth.oauth_upstream.get(), UpstreamKind::Github);
    assert_eq!(ok.config.oauth.oauth_allow_github_org.to_vec().len(), 2);
    load_github(
        "oauth-upstream-github-url = \"https://github.example.com\"\n\
         oauth-allow-group = \"staff\"\n",
    )
    .unwrap();
    // a group alone lets someone in, with an OIDC provider too
    load_file("oauth-allow-group = \"mcp-users\"\noauth-groups-claim = \"roles\"\n").unwrap();

    let refused = |e: ConfigError, key: &str, words: &str| {
        assert_eq!(e.key.as_deref(), Some(key), "{e}");
        assert!(e.message.contains(words), "{e}");
    };
    refused(
        load_github("").unwrap_err(),
        "oauth-issuer",
        "oauth-allow-github-org",
    );
    refused(
        load_github(
            "oauth-allow-any-user = true\noauth-upstream-issuer = \"https://idp.example.com\"\n",
        )
        .unwrap_err(),
        "oauth-upstream-issuer",
        "not used",
    );
    for bad in ["acme/", "/platform", "acme/platform/x", ""] {
        refused(
            load_github(&format!("oauth-allow-github-org = \"{bad}\"\n")).unwrap_err(),
            "oauth-allow-github-org",
            "organisation",
        );
    }
    refused(
        load_file("oauth-allow-github-org = \"acme\"\n").unwrap_err(),
        "oauth-allow-github-org",
        "oauth-upstream = \"github\"",
    );
    refused(
        load_file("oauth-allow-any-user = true\noauth-upstream-github-url = \"https://github.example.com\"\n")
            .unwrap_err(),
        "oauth-upstream-github-url",
        "only used",
    );
}
