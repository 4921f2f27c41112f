//! Flags of sessions (capture, binding, lifetimes, store) and of browsers
//! (CORS origins, Origin guard, Host allowlist), and the layers their
//! configuration builds.

use std::net::SocketAddr;

use clap::Args;
use mcp_bastion::{
    cors::{AllowedOrigins, McpCors, McpCorsLayer, OriginGuardLayer},
    ratelimit::RedisStore,
    session::{OverflowPolicy, RedisSessionStore, SessionLayer},
};
use mcp_bastion_cli::config::{
    SessionConfig,
    options::{Overflow, StoreKind},
};
use serde::Serialize;

/// Session and browser flags, as given.
#[derive(Debug, Clone, Default, Args, Serialize)]
#[command(next_help_heading = "Sessions and browsers")]
#[serde(rename_all = "kebab-case")]
pub struct SessionFlags {
    /// Query parameter to capture when a session opens (repeatable); tools
    /// read it as `SessionParams`. Example: `--capture-param service`.
    #[arg(long, value_name = "NAME")]
    pub capture_param: Vec<String>,

    /// Request header to capture as a parameter, `HEADER=PARAM` (repeatable).
    #[arg(long, value_name = "HEADER=PARAM")]
    pub capture_header: Vec<String>,

    /// Parameter whose value is never logged (repeatable). Names containing
    /// auth, token, key, secret, password… are sensitive already.
    #[arg(long, value_name = "NAME")]
    pub sensitive_param: Vec<String>,

    /// Map a captured parameter to an environment variable of the session's
    /// child, `PARAM=VAR` (repeatable; per-session mode). Reserved names
    /// (PATH, LD_*, NODE_OPTIONS, PYTHON*…) are refused.
    #[arg(long, value_name = "PARAM=VAR")]
    pub param_env: Vec<String>,

    /// End sessions idle this long (`90s`, `30m`, `1h`; `0` or `off`: never) [default: 30m].
    #[arg(long, value_name = "DUR")]
    pub session_idle_timeout: Option<String>,

    /// End sessions this long after they opened, busy or not (default: never).
    #[arg(long, value_name = "DUR")]
    pub session_max_lifetime: Option<String>,

    /// Close a pooled backend link of 2026-07-28 (sessionless) requests once
    /// idle this long: in per-session mode, how long a principal's child
    /// outlives their last request (`0` or `off`: never) [default: 60s].
    #[arg(long, value_name = "DUR")]
    pub sessionless_idle_timeout: Option<String>,

    /// At most N backend links of one principal busy at once for 2026-07-28
    /// requests (more concurrent requests wait); also caps the principal's
    /// open `subscriptions/listen` streams [default: 8].
    #[arg(long, value_name = "N")]
    pub sessionless_max_links_per_principal: Option<String>,

    /// At most N backend links open at once for 2026-07-28 requests, busy and
    /// idle (the one idle the longest makes room); also caps the open
    /// `subscriptions/listen` streams [default: 128].
    #[arg(long, value_name = "N")]
    pub sessionless_max_links: Option<String>,

    /// At most N live sessions per authenticated principal.
    #[arg(long, value_name = "N")]
    pub max_sessions_per_principal: Option<String>,

    /// When a principal opens one session too many: end its oldest idle one
    /// (evict-oldest-idle), or refuse the new one with 429 (refuse)
    /// [default: evict-oldest-idle].
    #[arg(long, value_name = "POLICY")]
    pub session_overflow: Option<String>,

    /// Where session records live: memory, or redis (the Redis of
    /// `--redis-url`, shared with rate limiting) [default: memory].
    #[arg(long, value_name = "STORE")]
    pub session_store: Option<String>,

    /// Browser origin allowed to call the server (repeatable): exact
    /// (`https://app.example.com`), wildcard (`https://*.example.com`), or
    /// `*`. Default: the loopback origins when listening on loopback, else
    /// none. A request with any other `Origin` gets 403.
    #[arg(long, aliases = ["allowed-origin", "cors-origin"], value_name = "ORIGIN")]
    pub allow_origin: Vec<String>,

    /// Accept only requests whose `Host` is one of these (repeatable).
    #[arg(long, value_name = "HOST")]
    pub allow_host: Vec<String>,

    /// Send `Access-Control-Allow-Credentials: true` to allowed origins.
    #[arg(long)]
    pub cors_credentials: bool,
}

fn pair<'a>(flag: &str, value: &'a str) -> Result<(&'a str, &'a str), String> {
    value
        .split_once('=')
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .ok_or_else(|| format!("{flag} expects A=B"))
}

/// The session layer `config` describes, with `param_env` (the server's own
/// `PARAM=VAR` mappings), without closers and replica id (the caller adds
/// its transports and `--route-key`), and with its store in `redis` (the
/// `--redis-url` connection) for `--session-store redis`. A named server's
/// records live under their own key prefix (`server`), so that no server
/// sees another's sessions.
pub async fn session_layer<'a>(
    config: &SessionConfig,
    param_env: impl IntoIterator<Item = &'a String>,
    redis: Option<&RedisStore>,
    server: Option<&str>,
) -> Result<SessionLayer, String> {
    let mut layer = SessionLayer::new()
        .idle_timeout(config.session_idle_timeout.0)
        .max_lifetime(config.session_max_lifetime.as_ref().and_then(|l| l.0));
    for name in config.capture_param.iter() {
        layer = layer.capture_param(name);
    }
    for name in config.sensitive_param.iter() {
        layer = layer.sensitive_param(name);
    }
    for spec in config.capture_header.iter() {
        let (header, param) = pair("--capture-header", spec)?;
        layer = layer
            .capture_header(header, param)
            .map_err(|e| e.to_string())?;
    }
    // The stdio backend maps each such parameter to its child's environment
    // (`servers::session_env`); the layer captures it, and never logs its
    // value.
    for spec in param_env {
        let (param, _var) = pair("--param-env", spec)?;
        layer = layer.capture_param(param).sensitive_param(param);
    }
    if let Some(max) = &config.max_sessions_per_principal {
        let policy = match *config.session_overflow.get() {
            Overflow::EvictOldestIdle => OverflowPolicy::EvictOldestIdle,
            Overflow::Refuse => OverflowPolicy::Refuse,
        };
        layer = layer.max_sessions_per_principal(*max.get(), policy);
    }
    match *config.session_store.get() {
        StoreKind::Memory => Ok(layer),
        StoreKind::Redis => {
            let redis = redis.ok_or("--session-store redis needs --redis-url")?;
            let mut store = RedisSessionStore::from_client(redis.client().clone())
                .await
                .map_err(|e| format!("--redis-url: {e}"))?;
            if let Some(name) = server {
                // beside the default prefix, `mcp-bastion:`
                store = store.prefix(format!("mcp-bastion:servers:{name}:"));
            }
            Ok(layer.store(store))
        }
    }
}

/// The allowed browser origins: the configured ones, or the loopback
/// origins when listening on loopback.
pub fn origins(config: &SessionConfig, listen: SocketAddr) -> Result<AllowedOrigins, String> {
    if config.allow_origin.is_empty() {
        return Ok(if listen.ip().is_loopback() {
            AllowedOrigins::loopback()
        } else {
            AllowedOrigins::new()
        });
    }
    config
        .allow_origin
        .iter()
        .try_fold(AllowedOrigins::new(), |o, p| o.allow(p))
        .map_err(|e| format!("--allow-origin: {e}"))
}

/// The CORS layer and Origin guard for `origins`.
pub fn browser_layers(
    config: &SessionConfig,
    origins: AllowedOrigins,
) -> (McpCorsLayer, OriginGuardLayer) {
    let mut guard = OriginGuardLayer::new(origins.clone());
    if !config.allow_host.is_empty() {
        let hosts: Vec<String> = config.allow_host.to_vec();
        guard = guard.allow_hosts(&hosts);
    }
    let cors = McpCors::new(origins)
        .allow_credentials(config.cors_credentials)
        .into_layer();
    (cors, guard)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::{collections::BTreeMap, time::Duration};

    use mcp_bastion_cli::config::{Inputs, load, value::MaybeDuration};

    use super::*;

    fn parse(args: &[&str]) -> SessionConfig {
        use clap::Parser;
        let cli =
            crate::Cli::try_parse_from(std::iter::once("mcp-bastion").chain(args.iter().copied()))
                .unwrap();
        let env = BTreeMap::new();
        load(Inputs {
            flags: cli.given(),
            env: &env,
            file: None,
        })
        .unwrap()
        .config
        .session
    }

    #[test]
    fn flags_parse_and_defaults_hold() {
        let s = parse(&[]);
        assert_eq!(
            *s.session_idle_timeout.get(),
            MaybeDuration(Some(Duration::from_secs(1800)))
        );
        assert!(s.session_max_lifetime.is_none());
        assert_eq!(
            *s.sessionless_idle_timeout.get(),
            MaybeDuration(Some(Duration::from_secs(60)))
        );
        assert_eq!(*s.sessionless_max_links_per_principal.get(), 8);
        assert_eq!(*s.sessionless_max_links.get(), 128);
        let pooled = parse(&[
            "--sessionless-idle-timeout",
            "5m",
            "--sessionless-max-links-per-principal",
            "2",
            "--sessionless-max-links",
            "16",
        ]);
        assert_eq!(
            *pooled.sessionless_idle_timeout.get(),
            MaybeDuration(Some(Duration::from_secs(300)))
        );
        assert_eq!(*pooled.sessionless_max_links_per_principal.get(), 2);
        assert_eq!(*pooled.sessionless_max_links.get(), 16);
        let s = parse(&[
            "--capture-param",
            "service",
            "--capture-param",
            "auth",
            "--sensitive-param",
            "auth",
            "--param-env",
            "github_token=GITHUB_PERSONAL_ACCESS_TOKEN",
            "--session-idle-timeout",
            "off",
            "--session-max-lifetime",
            "2h",
            "--max-sessions-per-principal",
            "3",
            "--session-overflow",
            "refuse",
            "--allow-origin",
            "https://app.example.com",
            "--cors-origin",
            "https://*.example.org",
            "--allow-host",
            "localhost",
        ]);
        assert_eq!(s.capture_param.to_vec(), ["service", "auth"]);
        assert_eq!(*s.session_idle_timeout.get(), MaybeDuration(None));
        assert_eq!(
            s.session_max_lifetime.as_ref().map(|l| *l.get()),
            Some(MaybeDuration(Some(Duration::from_secs(7200))))
        );
        assert_eq!(*s.session_overflow.get(), Overflow::Refuse);
        assert_eq!(s.allow_origin.to_vec().len(), 2);
        let origins = origins(&s, "0.0.0.0:80".parse().unwrap()).unwrap();
        assert!(origins.is_allowed("https://a.example.org"));
        assert!(!origins.is_allowed("http://localhost:3000"));
    }

    #[test]
    fn loopback_listeners_allow_loopback_origins_by_default() {
        let s = parse(&[]);
        assert!(
            origins(&s, "127.0.0.1:8080".parse().unwrap())
                .unwrap()
                .is_allowed("http://localhost:5173")
        );
        assert!(
            origins(&s, "0.0.0.0:8080".parse().unwrap())
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_redis_store_needs_a_url() {
        let s = parse(&["--session-store", "redis"]);
        let err = session_layer(&s, &[], None, None).await.unwrap_err();
        assert!(err.contains("--redis-url"), "{err}");
    }

    #[test]
    fn reserved_env_names_are_refused_at_startup() {
        // the backend maps `--param-env`: its names are checked there
        let err = crate::servers::session_env(&[], &["x=LD_PRELOAD".to_owned()]).unwrap_err();
        assert!(err.contains("LD_PRELOAD"), "{err}");
    }
}
