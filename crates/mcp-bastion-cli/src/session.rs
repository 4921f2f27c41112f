//! Flags of sessions (capture, binding, lifetimes, store, replica id) and of
//! browsers (CORS origins, Origin guard, Host allowlist).

use std::{net::SocketAddr, time::Duration};

use clap::{Args, ValueEnum};
use mcp_bastion::{
    cors::{AllowedOrigins, McpCors, McpCorsLayer, OriginGuardLayer},
    ratelimit::RedisStore,
    session::{OverflowPolicy, RedisSessionStore, SessionLayer},
};

/// Session and browser flags, flattened into the main command line.
#[derive(Debug, Clone, Args)]
pub struct SessionArgs {
    /// Query parameter to capture when a session opens (repeatable); tools
    /// read it as `SessionParams`. Example: `--capture-param service`.
    #[arg(long = "capture-param", value_name = "NAME")]
    pub capture_param: Vec<String>,

    /// Request header to capture as a parameter, `HEADER=PARAM` (repeatable).
    #[arg(long = "capture-header", value_name = "HEADER=PARAM")]
    pub capture_header: Vec<String>,

    /// Parameter whose value is never logged (repeatable). Names containing
    /// auth, token, key, secret, password… are sensitive already.
    #[arg(long = "sensitive-param", value_name = "NAME")]
    pub sensitive_param: Vec<String>,

    /// Map a captured parameter to an environment variable of the session's
    /// child, `PARAM=VAR` (repeatable; per-session mode). Reserved names
    /// (PATH, LD_*, NODE_OPTIONS, PYTHON*…) are refused.
    #[arg(long = "param-env", value_name = "PARAM=VAR")]
    pub param_env: Vec<String>,

    /// End sessions idle this long (`90s`, `30m`, `1h`; `0` or `off`: never).
    #[arg(long, value_name = "DUR", default_value = "30m", value_parser = parse_duration_opt)]
    pub session_idle_timeout: Limit,

    /// End sessions this long after they opened, busy or not (default: never).
    #[arg(long, value_name = "DUR", value_parser = parse_duration_opt)]
    pub session_max_lifetime: Option<Limit>,

    /// At most N live sessions per authenticated principal.
    #[arg(long, value_name = "N")]
    pub max_sessions_per_principal: Option<usize>,

    /// When a principal opens one session too many: end its oldest idle one,
    /// or refuse the new one (429).
    #[arg(long, value_enum, default_value_t = Overflow::EvictOldestIdle)]
    pub session_overflow: Overflow,

    /// Where session records live (`redis`: the Redis of `--redis-url`,
    /// shared with rate limiting).
    #[arg(long, value_enum, default_value_t = StoreKind::Memory)]
    pub session_store: StoreKind,

    /// Browser origin allowed to call the server (repeatable): exact
    /// (`https://app.example.com`), wildcard (`https://*.example.com`), or
    /// `*`. Default: the loopback origins when listening on loopback, else
    /// none. A request with any other `Origin` gets 403.
    #[arg(long = "allow-origin", aliases = ["allowed-origin", "cors-origin"], value_name = "ORIGIN")]
    pub allow_origin: Vec<String>,

    /// Accept only requests whose `Host` is one of these (repeatable).
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_host: Vec<String>,

    /// Send `Access-Control-Allow-Credentials: true` to allowed origins.
    #[arg(long)]
    pub cors_credentials: bool,
}

/// `--session-overflow` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Overflow {
    /// End the principal's oldest idle session.
    EvictOldestIdle,
    /// Refuse the new session.
    Refuse,
}

/// `--session-store` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// In this process (one replica).
    Memory,
    /// Redis, shared by replicas (`--redis-url`).
    Redis,
}

/// A duration flag that can also be off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub Option<Duration>);

/// `90s`, `30m`, `1h`, `500ms`, `2d`, a bare number of seconds; `0`/`off`/`none`: off.
fn parse_duration_opt(s: &str) -> Result<Limit, String> {
    parse_duration(s).map(Limit)
}

fn parse_duration(s: &str) -> Result<Option<Duration>, String> {
    let s = s.trim();
    if matches!(s, "0" | "off" | "none" | "never") {
        return Ok(None);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: want e.g. 90s, 30m, 1h"))?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        "d" => Duration::from_secs(n * 86_400),
        _ => {
            return Err(format!(
                "invalid duration unit in {s:?}: use ms, s, m, h or d"
            ));
        }
    };
    Ok((!d.is_zero()).then_some(d))
}

fn pair<'a>(flag: &str, value: &'a str) -> Result<(&'a str, &'a str), String> {
    value
        .split_once('=')
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .ok_or_else(|| format!("{flag} expects A=B"))
}

impl SessionArgs {
    /// The session layer these flags describe (without closers and replica id:
    /// the caller adds its transports and `--route-key`), with its store in
    /// `redis` (the `--redis-url` connection) for `--session-store redis`.
    /// A named server's records live under their own key prefix (`server`),
    /// so that no server sees another's sessions.
    pub async fn session_layer(
        &self,
        redis: Option<&RedisStore>,
        server: Option<&str>,
    ) -> Result<SessionLayer, String> {
        let mut layer = SessionLayer::new()
            .idle_timeout(self.session_idle_timeout.0)
            .max_lifetime(self.session_max_lifetime.and_then(|l| l.0));
        for name in &self.capture_param {
            layer = layer.capture_param(name);
        }
        for name in &self.sensitive_param {
            layer = layer.sensitive_param(name);
        }
        for spec in &self.capture_header {
            let (header, param) = pair("--capture-header", spec)?;
            layer = layer
                .capture_header(header, param)
                .map_err(|e| e.to_string())?;
        }
        // The stdio backend maps each such parameter to its child's
        // environment (`servers::session_env`); the layer captures it, and
        // never logs its value.
        for spec in &self.param_env {
            let (param, _var) = pair("--param-env", spec)?;
            layer = layer.capture_param(param).sensitive_param(param);
        }
        if let Some(max) = self.max_sessions_per_principal {
            let policy = match self.session_overflow {
                Overflow::EvictOldestIdle => OverflowPolicy::EvictOldestIdle,
                Overflow::Refuse => OverflowPolicy::Refuse,
            };
            layer = layer.max_sessions_per_principal(max, policy);
        }
        match self.session_store {
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

    /// The allowed browser origins: the flags, or the loopback origins when
    /// listening on loopback.
    pub fn origins(&self, listen: SocketAddr) -> Result<AllowedOrigins, String> {
        if self.allow_origin.is_empty() {
            return Ok(if listen.ip().is_loopback() {
                AllowedOrigins::loopback()
            } else {
                AllowedOrigins::new()
            });
        }
        self.allow_origin
            .iter()
            .try_fold(AllowedOrigins::new(), |o, p| o.allow(p))
            .map_err(|e| format!("--allow-origin: {e}"))
    }

    /// The CORS layer and Origin guard for `origins`.
    pub fn browser_layers(&self, origins: AllowedOrigins) -> (McpCorsLayer, OriginGuardLayer) {
        let mut guard = OriginGuardLayer::new(origins.clone());
        if !self.allow_host.is_empty() {
            guard = guard.allow_hosts(&self.allow_host);
        }
        let cors = McpCors::new(origins)
            .allow_credentials(self.cors_credentials)
            .into_layer();
        (cors, guard)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        session: SessionArgs,
    }

    fn parse(args: &[&str]) -> SessionArgs {
        use clap::Parser;
        Cli::try_parse_from(std::iter::once("mcp-bastion").chain(args.iter().copied()))
            .unwrap()
            .session
    }

    #[test]
    fn flags_parse_and_defaults_hold() {
        let s = parse(&[]);
        assert_eq!(
            s.session_idle_timeout,
            Limit(Some(Duration::from_secs(1800)))
        );
        assert_eq!(s.session_max_lifetime, None);
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
        assert_eq!(s.capture_param, ["service", "auth"]);
        assert_eq!(s.session_idle_timeout, Limit(None));
        assert_eq!(
            s.session_max_lifetime,
            Some(Limit(Some(Duration::from_secs(7200))))
        );
        assert_eq!(s.session_overflow, Overflow::Refuse);
        assert_eq!(s.allow_origin.len(), 2);
        let origins = s.origins("0.0.0.0:80".parse().unwrap()).unwrap();
        assert!(origins.is_allowed("https://a.example.org"));
        assert!(!origins.is_allowed("http://localhost:3000"));
    }

    #[test]
    fn loopback_listeners_allow_loopback_origins_by_default() {
        let s = parse(&[]);
        assert!(
            s.origins("127.0.0.1:8080".parse().unwrap())
                .unwrap()
                .is_allowed("http://localhost:5173")
        );
        assert!(
            s.origins("0.0.0.0:8080".parse().unwrap())
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_redis_store_needs_a_url() {
        let s = parse(&["--session-store", "redis"]);
        let err = s.session_layer(None, None).await.unwrap_err();
        assert!(err.contains("--redis-url"), "{err}");
    }

    #[tokio::test]
    async fn reserved_env_names_are_refused_at_startup() {
        let s = parse(&["--param-env", "x=LD_PRELOAD"]);
        let err = s.session_layer(None, None).await.unwrap_err();
        assert!(err.contains("LD_PRELOAD"), "{err}");
    }

    #[test]
    fn durations_parse_with_units_and_off() {
        assert_eq!(
            parse_duration("90s").unwrap(),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_duration("30m").unwrap(),
            Some(Duration::from_secs(1800))
        );
        assert_eq!(
            parse_duration("1h").unwrap(),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            parse_duration("250ms").unwrap(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_duration("0").unwrap(), None);
        assert_eq!(parse_duration("off").unwrap(), None);
        assert!(parse_duration("5 parsecs").is_err());
    }
}
