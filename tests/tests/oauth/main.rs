//! mcp-bastion's own OAuth authorization server, black-box: the `oauth_server` example (the
//! authorization server and an MCP endpoint in one app) with a real identity provider
//! (`oidc-provider`, started here on loopback with a client registration for mcp-bastion and its
//! development login form), and real clients: the official Python SDK's `OAuthClientProvider`
//! (dynamic registration, and a Client ID Metadata Document served over https; login, consent,
//! token, MCP call over Streamable HTTP and legacy SSE, refresh, revocation), the TypeScript
//! SDK's OAuth client (the same), and a browser played here with reqwest and a cookie jar for the cases
//! that must fail.
//!
//! `sdk`: the SDK clients' whole flows; `browser`: the cases that must fail, with a browser
//! played here; `replicas`: two examples sharing Redis (`--store redis`) and a key file behind one
//! issuer, the browser sent to either as a load balancer would; `conformance`: the official
//! conformance suite's authorization-server scenarios with static clients, the same browser played
//! for the suite; `github`: the GitHub preset against a stand-in for GitHub
//! (tests/clients/github_api.mjs), organisation and team allowlists, and the groups claim.
//! `upstream_tokens`: the binary handing the user's provider token to a per-session child and to
//! an upstream backend's header, refreshed before it expires.

use std::path::Path;

use tests::{Server, binaries::node, clients_dir, example_bin};

pub(crate) const UPSTREAM_CLIENT: &str = "bastion";
pub(crate) const UPSTREAM_SECRET: &str = "upstream-secret-for-tests";
pub(crate) const REDIRECT: &str = "http://127.0.0.1:53682/callback";

pub(crate) use tests::oauth::free_port;

/// The identity provider and mcp-bastion (the example) wired to each other.
pub(crate) struct Setup {
    _idp: Server,
    pub(crate) bastion: Server,
}

/// `oidc-provider` with mcp-bastion's registration (redirect URI `callback`), given `extra`
/// arguments of `tests/clients/oidc_idp.mjs`.
pub(crate) fn identity_provider(callback: String, extra: &[&str]) -> Server {
    tests::oauth::oidc_idp(&callback, UPSTREAM_SECRET, extra, false)
}

/// The identity provider a setup starts.
pub(crate) enum Upstream<'a> {
    /// `oidc-provider` (tests/clients/oidc_idp.mjs), with these `--group NAME=LOGIN,…`.
    Oidc { groups: &'a [&'a str] },
    /// The GitHub stand-in (tests/clients/github_api.mjs), with these membership arguments
    /// (`--org acme=alice`, `--team acme/platform=alice`, `--pending acme=carol`).
    GitHub { members: &'a [&'a str] },
}

/// The example started with `extra` arguments and `env` beside the upstream secret.
pub(crate) fn setup_with_env(extra: &[&str], env: &[(&str, &str)]) -> Setup {
    setup_upstream(
        &Upstream::Oidc { groups: &[] },
        &["--allow-email-domain", "example.com"],
        extra,
        env,
    )
}

/// `upstream` started, and the example with its login allowlist `allow`, `extra` arguments and
/// `env` beside the upstream secret.
pub(crate) fn setup_upstream(
    upstream: &Upstream<'_>,
    allow: &[&str],
    extra: &[&str],
    env: &[(&str, &str)],
) -> Setup {
    let port = free_port();
    let callback = format!("http://127.0.0.1:{port}/oauth/callback");
    let idp = match upstream {
        Upstream::Oidc { groups } => {
            let extra: Vec<&str> = groups.iter().flat_map(|g| ["--group", *g]).collect();
            identity_provider(callback, &extra)
        }
        Upstream::GitHub { members } => {
            let mut idp_args: Vec<String> = vec![
                clients_dir().join("github_api.mjs").display().to_string(),
                "--client-id".into(),
                UPSTREAM_CLIENT.into(),
                "--client-secret".into(),
                UPSTREAM_SECRET.into(),
                "--redirect-uri".into(),
                callback,
            ];
            idp_args.extend(members.iter().map(|m| (*m).to_owned()));
            Server::spawn("github stand-in", Path::new(&node()), &idp_args)
        }
    };
    let mut args: Vec<String> = vec!["--listen".into(), format!("127.0.0.1:{port}")];
    match upstream {
        Upstream::Oidc { .. } => {
            args.extend(["--upstream-issuer".into(), idp.base_url().to_owned()])
        }
        Upstream::GitHub { .. } => args.extend([
            "--upstream".into(),
            "github".into(),
            "--upstream-github-url".into(),
            idp.base_url().to_owned(),
        ]),
    }
    args.extend(["--upstream-client-id", UPSTREAM_CLIENT, "--dcr", "open"].map(str::to_owned));
    args.extend(allow.iter().chain(extra).map(|s| (*s).to_owned()));
    let mut env = env.to_vec();
    env.push(("UPSTREAM_CLIENT_SECRET", UPSTREAM_SECRET));
    let bastion = Server::spawn_with_env("oauth_server", &example_bin("oauth_server"), &args, &env);
    Setup { _idp: idp, bastion }
}

pub(crate) fn setup(extra: &[&str]) -> Setup {
    setup_with_env(extra, &[])
}

mod browser;
mod conformance;
mod github;
mod replicas;
mod sdk;
mod upstream_tokens;
