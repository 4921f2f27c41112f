//! mcp-bastion's OAuth authorization server through the binary: a real identity provider
//! (`oidc-provider`, tests/clients/oidc_idp.mjs, on loopback with a client registration for
//! mcp-bastion and its development login form), the binary started with `--oauth-*` flags in
//! front of it, and the official SDKs' OAuth clients (tests/clients/py_oauth.py, ts_oauth.mjs).
//!
//! The identity provider runs with `--print-secrets`: every secret of a flow it sees or issues
//! (mcp-bastion's `state`, `nonce` and PKCE verifier, the codes and tokens) is kept for
//! [`Idp::secrets`], so that a test can check none of them reaches mcp-bastion's logs.

use std::{
    collections::HashMap,
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
    sync::Mutex,
};

use serde_json::Value;

use crate::{Sdk, Server, bastion_bin, binaries::node, clients_dir, node_modules_dir, python};

/// mcp-bastion's client id at the identity provider.
pub const UPSTREAM_CLIENT: &str = "bastion";
/// mcp-bastion's client secret at the identity provider (given through
/// [`UPSTREAM_SECRET_ENV`]).
pub const UPSTREAM_SECRET: &str = "upstream-secret-for-binary-tests";
/// The variable `--oauth-upstream-client-secret-env` names.
pub const UPSTREAM_SECRET_ENV: &str = "OAUTH_UPSTREAM_SECRET";
/// The redirect URI the SDK clients and the played browser use (loopback: allowed on any port).
pub const REDIRECT: &str = "http://127.0.0.1:53682/callback";
/// The child's variable that holds the subject (`--principal-env MCP_USER=subject`).
pub const USER_VAR: &str = "MCP_USER";

/// `oidc-provider`'s entry: `$OIDC_PROVIDER_MODULE`, else tests/node/node_modules.
pub fn oidc_provider_module() -> PathBuf {
    let path = std::env::var_os("OIDC_PROVIDER_MODULE").map_or_else(
        || node_modules_dir().join("oidc-provider/lib/index.js"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "{} is missing: install the test dependencies with `npm ci --prefix tests/node`",
        path.display()
    );
    path
}

/// A port nobody listens on now: the issuer (and so the binary's port) must be known before the
/// identity provider, which must know mcp-bastion's callback URL, starts.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `tests/clients/oidc_idp.mjs`: `oidc-provider` with mcp-bastion's registration (client
/// [`UPSTREAM_CLIENT`] with `secret`, redirect URI `callback`) and `extra` arguments of the
/// script; every line it writes is kept when `recorded` (see [`Server::spawn_recorded`]).
pub fn oidc_idp(callback: &str, secret: &str, extra: &[&str], recorded: bool) -> Server {
    let script = clients_dir().join("oidc_idp.mjs");
    let mut args = vec![
        script.display().to_string(),
        "--client-id".into(),
        UPSTREAM_CLIENT.into(),
        "--client-secret".into(),
        secret.into(),
        "--redirect-uri".into(),
        callback.into(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let module = oidc_provider_module();
    let env = [(
        "OIDC_PROVIDER_MODULE",
        module.to_str().expect("a UTF-8 path"),
    )];
    let node = node();
    if recorded {
        Server::spawn_recorded("oidc-provider", Path::new(&node), &args, &env)
    } else {
        Server::spawn_with_env("oidc-provider", Path::new(&node), &args, &env)
    }
}

/// The identity provider.
pub struct Idp {
    /// Its process.
    pub server: Server,
}

impl Idp {
    /// Starts it with mcp-bastion's registration, whose redirect URI is `callback`.
    pub fn start(callback: &str) -> Idp {
        Idp::start_with(callback, &[])
    }

    /// [`Idp::start`] with more of the script's arguments (`--tls-cert PEM --tls-key PEM`).
    pub fn start_with(callback: &str, extra: &[&str]) -> Idp {
        let extra = [&["--print-secrets"], extra].concat();
        Idp {
            server: oidc_idp(callback, UPSTREAM_SECRET, &extra, true),
        }
    }

    /// Every secret of the flows so far, as the provider saw or issued them.
    pub fn secrets(&self) -> Vec<String> {
        self.server
            .transcript()
            .lines()
            .filter_map(|l| {
                l.split_once("secret-of-the-flow ")
                    .map(|(_, s)| s.trim().to_owned())
            })
            .collect()
    }
}

/// The binary as an authorization server, and its identity provider.
pub struct OAuthBastion {
    /// The binary (stopped first).
    pub bastion: Server,
    /// The identity provider.
    pub idp: Idp,
}

impl OAuthBastion {
    /// The binary on a free loopback port with the issuer `http://127.0.0.1:PORT` (under
    /// `prefix`), the provider as upstream, `example.com` users allowed, open registration
    /// (unless `extra` sets `--oauth-dcr`), the
    /// subject in the child's `MCP_USER`, then `extra` flags and `env`, in front of `command`
    /// (none: a `--config` in `extra` names the servers). Every log line is kept.
    pub fn start(
        extra: &[&str],
        env: &[(&str, &str)],
        prefix: &str,
        command: Option<&[String]>,
    ) -> OAuthBastion {
        OAuthBastion::start_with_idp(&[], extra, env, prefix, command)
    }

    /// [`OAuthBastion::start`] with more arguments for the identity provider's script
    /// (`idp_args`, see [`Idp::start_with`]).
    pub fn start_with_idp(
        idp_args: &[&str],
        extra: &[&str],
        env: &[(&str, &str)],
        prefix: &str,
        command: Option<&[String]>,
    ) -> OAuthBastion {
        let port = free_port();
        let issuer = format!("http://127.0.0.1:{port}{prefix}");
        let idp = Idp::start_with(&format!("{issuer}/oauth/callback"), idp_args);
        let mut args: Vec<String> = vec![
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--oauth-issuer".into(),
            issuer,
            "--oauth-upstream-issuer".into(),
            idp.server.base_url().to_owned(),
            "--oauth-upstream-client-id".into(),
            UPSTREAM_CLIENT.into(),
            "--oauth-upstream-client-secret-env".into(),
            UPSTREAM_SECRET_ENV.into(),
            "--oauth-allow-email-domain".into(),
            "example.com".into(),
            "--oauth-scope".into(),
            "mcp".into(),
            "--principal-env".into(),
            format!("{USER_VAR}=subject"),
        ];
        if !prefix.is_empty() {
            args.extend(["--path-prefix".into(), prefix.into()]);
        }
        if !extra.contains(&"--oauth-dcr") {
            args.extend(["--oauth-dcr".into(), "open".into()]);
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        if let Some(command) = command {
            args.push("--".into());
            args.extend(command.iter().cloned());
        }
        let mut env = env.to_vec();
        env.push((UPSTREAM_SECRET_ENV, UPSTREAM_SECRET));
        let bastion = Server::spawn_recorded("mcp-bastion", &bastion_bin(), &args, &env);
        OAuthBastion { bastion, idp }
    }
}

/// Runs an SDK's OAuth client script against the MCP endpoint at `url` (the revoked token is
/// then tried at `probe`), as user `alice`, reading the caller from the child's `MCP_USER`, with
/// `extra` arguments; returns its report or why it failed.
pub fn sdk_oauth(sdk: Sdk, url: &str, probe: &str, extra: &[&str]) -> Result<Value, String> {
    sdk_oauth_with_env(sdk, url, probe, extra, &[])
}

/// [`sdk_oauth`] with extra environment variables for the script (`SSL_CERT_FILE` for the
/// Python SDK's, `NODE_EXTRA_CA_CERTS` for the TypeScript SDK's: a CA its played browser trusts).
pub fn sdk_oauth_with_env(
    sdk: Sdk,
    url: &str,
    probe: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Result<Value, String> {
    let (program, script) = match sdk {
        Sdk::Python => (python(), "py_oauth.py"),
        Sdk::TypeScript => (node(), "ts_oauth.mjs"),
    };
    let out = Command::new(program)
        .arg(clients_dir().join(script))
        .args(["--url", url, "--login", "alice", "--probe-url", probe])
        .args(["--redirect-uri", REDIRECT, "--whoami-env", USER_VAR])
        .args(extra)
        .envs(env.iter().copied())
        .output()
        .map_err(|e| format!("{script} cannot run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{script} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{script}: not one JSON line: {e}"))
}

/// A browser played with reqwest: no automatic redirects, one cookie jar for every host (the
/// provider and mcp-bastion are both on 127.0.0.1); it fills the provider's login and consent
/// forms and approves mcp-bastion's consent page.
pub struct Browser {
    http: reqwest::Client,
    cookies: Mutex<HashMap<String, String>>,
    /// URL prefixes sent elsewhere (a load balancer's choice of replica).
    routes: Vec<(String, String)>,
    /// Every URL requested, before routing.
    visited: Mutex<Vec<String>>,
    /// `METHOD path -> status` of every page visited.
    pub pages: Mutex<Vec<String>>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    /// A browser with an empty cookie jar.
    pub fn new() -> Self {
        Self::routed(Vec::new())
    }

    /// A browser whose requests to a URL starting with a route's first prefix go to the same
    /// URL with the second prefix instead: one public URL served by several replicas.
    pub fn routed(routes: Vec<(String, String)>) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a client"),
            cookies: Mutex::new(HashMap::new()),
            routes,
            visited: Mutex::new(Vec::new()),
            pages: Mutex::new(Vec::new()),
        }
    }

    /// Every URL requested so far (before routing).
    pub fn visited(&self) -> Vec<String> {
        self.visited.lock().expect("visited").clone()
    }

    async fn send(&self, url: &str, form: Option<Vec<(String, String)>>) -> reqwest::Response {
        let cookie = self
            .cookies
            .lock()
            .expect("jar")
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let method = if form.is_some() { "POST" } else { "GET" };
        self.visited.lock().expect("visited").push(url.to_owned());
        let routed = self
            .routes
            .iter()
            .find_map(|(from, to)| {
                url.strip_prefix(from.as_str())
                    .map(|rest| format!("{to}{rest}"))
            })
            .unwrap_or_else(|| url.to_owned());
        let mut req = match &form {
            Some(form) => self.http.post(&routed).form(form),
            None => self.http.get(&routed),
        };
        req = req.header("cookie", cookie);
        let res = req.send().await.expect("the request is answered");
        for v in res.headers().get_all("set-cookie") {
            let pair = v.to_str().expect("ascii").split(';').next().unwrap_or("");
            if let Some((k, v)) = pair.split_once('=') {
                self.cookies
                    .lock()
                    .expect("jar")
                    .insert(k.trim().to_owned(), v.to_owned());
            }
        }
        let path =
            reqwest::Url::parse(url).map_or_else(|_| url.to_owned(), |u| u.path().to_owned());
        self.pages
            .lock()
            .expect("pages")
            .push(format!("{method} {path} -> {}", res.status().as_u16()));
        res
    }

    /// From an authorization URL to the redirect to `redirect` (its URL, with `code`, `state`,
    /// `iss`), logging in as `login`; or the page it ended on (status and text).
    pub async fn authorize(
        &self,
        url: &str,
        login: &str,
        redirect: &str,
    ) -> Result<reqwest::Url, (u16, String)> {
        let mut url = url.to_owned();
        let mut form = None;
        for _ in 0..30 {
            if url.starts_with(redirect) {
                return Ok(reqwest::Url::parse(&url).expect("a URL"));
            }
            let res = self.send(&url, form.take()).await;
            let status = res.status().as_u16();
            if let Some(location) = res.headers().get("location") {
                url = reqwest::Url::parse(&url)
                    .and_then(|u| u.join(location.to_str().expect("ascii")))
                    .expect("a location")
                    .into();
                continue;
            }
            let html = res.text().await.unwrap_or_default();
            let action = html
                .split("action=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .map(|a| a.replace("&amp;", "&"));
            let Some(action) = action.filter(|_| status == 200) else {
                return Err((status, html));
            };
            url = reqwest::Url::parse(&url)
                .and_then(|u| u.join(&action))
                .expect("an action")
                .into();
            let field = |name: &str| {
                let marker = format!("name=\"{name}\" value=\"");
                html.split(&marker)
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .unwrap_or("")
                    .to_owned()
            };
            let pairs: Vec<(&str, String)> = if html.contains("name=\"prompt\" value=\"login\"") {
                vec![
                    ("prompt", "login".into()),
                    ("login", login.into()),
                    ("password", "any".into()),
                ]
            } else if html.contains("name=\"prompt\" value=\"consent\"") {
                vec![("prompt", "consent".into())]
            } else if html.contains("name=\"consent_id\"") {
                vec![
                    ("consent_id", field("consent_id")),
                    ("csrf", field("csrf")),
                    ("decision", "approve".into()),
                ]
            } else {
                return Err((status, html));
            };
            form = Some(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
        }
        panic!("too many redirects from {url}");
    }
}

/// A PKCE pair `(verifier, S256 challenge)`, different at each call.
pub fn pkce() -> (String, String) {
    use base64::Engine as _;
    use sha2::Digest as _;
    let bytes: [u8; 32] = rand::random();
    let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The profile (tests/clients/profiles.json) whose full scenario the SDK OAuth scripts run, with
/// `--profile`, after their login when server-everything is behind the binary: the one the other
/// black-box tests use for server-everything.
pub const SCENARIO_PROFILE: &str = "everything";

/// Every step of the full scenario an SDK OAuth script ran on its authenticated session (its
/// report's `scenario`, with `--profile` [`SCENARIO_PROFILE`]) done, none skipped, progress seen.
/// The session's end is the script's own (it is not one of the reported steps).
pub fn assert_oauth_scenario(report: &Value) {
    let steps = &report["scenario"];
    for step in crate::clients::FULL_STEPS
        .iter()
        .filter(|step| **step != "session_end")
    {
        let done = &steps[*step];
        assert!(!done.is_null(), "scenario step {step} missing: {report}");
        assert!(
            done["skipped"].is_null(),
            "scenario step {step} was skipped: {report}"
        );
    }
    let progress = steps["progress"]["notifications"].as_u64().unwrap_or(0);
    assert!(
        progress >= 2,
        "fewer than 2 progress notifications: {report}"
    );
}
