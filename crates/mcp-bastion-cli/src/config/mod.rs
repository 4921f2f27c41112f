//! Where the proxy's settings come from, and in which order they win.
//!
//! Every option can be set in four places, under one name: the flag
//! `--session-mode`, the file key `session-mode` (or `session_mode`), the
//! variable `MCP_BASTION_SESSION_MODE`. Lowest precedence first:
//!
//! | source | example | named in `check-config` and errors as |
//! |---|---|---|
//! | the variables other MCP proxies use (`AUTH_KEY`, `AUTH_SERVER_URL`, `SHARED_SESSION`, `MCP_PROXY_PORT`, `MCP_SERVER_CONFIG`) | `SHARED_SESSION=1` | `$SHARED_SESSION` |
//! | the TOML file (`--config FILE` or `MCP_BASTION_CONFIG`) | `session-mode = "shared"` | `config line 3` / `FILE:3` |
//! | `MCP_BASTION_*` variables | `MCP_BASTION_SESSION_MODE=shared` | `$MCP_BASTION_SESSION_MODE` |
//! | flags | `--session-mode shared` | `flag` |
//! | (nothing set) | | `default` |
//!
//! A higher source replaces the whole value of a lower one, lists included.
//! Each source is read into a [`figment`] dictionary under the same keys;
//! figment merges them and extracts the typed option groups of [`Config`],
//! and remembers which source gave each key. Values are read by the same
//! rules in every source ([`value`]): a number written in the file means
//! what it means as a flag.
//!
//! ```
//! use std::collections::BTreeMap;
//! use mcp_bastion_cli::config::{Inputs, load};
//!
//! let env = BTreeMap::from([("MCP_BASTION_LISTEN".to_owned(), "127.0.0.1:1".to_owned())]);
//! let mut flags = figment::value::Dict::new();
//! flags.insert("listen".into(), "127.0.0.1:2".into());
//! let loaded = load(Inputs { flags, env: &env, file: None }).unwrap();
//! // a flag wins over the environment
//! assert_eq!(loaded.config.general.listen.port(), 2);
//! ```

mod error;
pub mod oauth;
pub mod options;
mod render;
mod sources;
pub mod value;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use figment::{Figment, value::Dict};

pub use error::{ConfigError, Origin};
pub use oauth::OAuthConfig;
pub use options::{
    AuthConfig, GeneralConfig, RateLimitConfig, ServeConfig, ServerConfig, SessionConfig,
};
pub use render::is_secret;
use sources::{COMMAND, Layer, SERVERS, Schema};
pub use sources::{ConfigFile, valid_server_name};

/// The whole configuration: the option groups, the default server and the
/// named ones.
#[derive(Debug, Clone)]
pub struct Config {
    /// The listener, transports, TLS, logs.
    pub general: GeneralConfig,
    /// Connection limits.
    pub serve: ServeConfig,
    /// Authentication and authorization.
    pub auth: AuthConfig,
    /// Rate limits.
    pub rate_limit: RateLimitConfig,
    /// Sessions and browsers.
    pub session: SessionConfig,
    /// mcp-bastion's own OAuth authorization server (`oauth-*`).
    pub oauth: OAuthConfig,
    /// The default server (`/mcp`, `/sse`): the top-level command or upstream.
    pub server: ServerConfig,
    /// The named servers (`[servers.<name>]`, `MCP_SERVER_CONFIG`), each with
    /// the top-level options it inherits filled in.
    pub servers: BTreeMap<String, ServerConfig>,
    /// The named server also served as the default one (`MCP_SERVER_CONFIG`
    /// with one server, when nothing else configures a default server).
    pub default_alias: Option<String>,
}

/// What the configuration is read from.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The flags given on the command line, under their long names (a
    /// switch as `true`, a repeatable flag as an array, the command after
    /// `--` as `command`).
    pub flags: Dict,
    /// The process environment (compatibility and `MCP_BASTION_*` variables).
    pub env: &'a BTreeMap<String, String>,
    /// The TOML file, if any.
    pub file: Option<ConfigFile>,
}

impl Inputs<'_> {
    /// The file named by `--config` (in `flags`) or else `MCP_BASTION_CONFIG`.
    pub fn file_path(flags: &Dict, env: &BTreeMap<String, String>) -> Option<PathBuf> {
        flags
            .get("config")
            .and_then(|v| v.as_str().map(PathBuf::from))
            .or_else(|| env.get("MCP_BASTION_CONFIG").map(PathBuf::from))
    }
}

/// The configuration and where each of its values came from.
#[derive(Debug)]
pub struct Loaded {
    /// The effective configuration.
    pub config: Config,
    /// The named servers as their tables said (before inheritance).
    own_servers: BTreeMap<String, ServerConfig>,
    sources: Provenance,
}

/// What is needed to name a key's source.
#[derive(Debug)]
struct Provenance {
    figment: Figment,
    file: Option<PathBuf>,
    lines: BTreeMap<String, usize>,
    env_vars: BTreeMap<String, String>,
    compat_vars: BTreeMap<String, String>,
}

impl Provenance {
    /// Where the effective value of `key` (`listen`, `servers.a.env`) came from.
    fn origin(&self, key: &str) -> Origin {
        let top = key.split('.').next().unwrap_or(key);
        // an element of a list (`oauth-client.0`) comes from where its list does
        let metadata = self
            .figment
            .find_metadata(key)
            .or_else(|| self.figment.find_metadata(top));
        match metadata.map(|m| m.name.as_ref()) {
            Some(sources::FILE) => Origin::File(
                self.lines
                    .get(key)
                    .or_else(|| self.lines.get(top))
                    .copied()
                    .unwrap_or(0),
            ),
            Some(sources::ENV) => Origin::Env(self.env_vars.get(top).cloned().unwrap_or_default()),
            Some(sources::COMPAT) => {
                Origin::Compat(self.compat_vars.get(top).cloned().unwrap_or_default())
            }
            Some(sources::FLAGS) => Origin::Flag,
            _ => Origin::Default,
        }
    }

    /// One typed part of the merged configuration.
    fn extract<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        self.figment.extract().map_err(|e| self.error(e))
    }

    /// A figment error as the operator reads it: source, key, message.
    fn error(&self, e: figment::Error) -> ConfigError {
        let key = e.path.join(".");
        let key = (!key.is_empty()).then_some(key);
        let origin = key.as_deref().map(|k| self.origin(k));
        let file = match origin {
            Some(Origin::File(_)) => self.file.clone(),
            _ => None,
        };
        ConfigError {
            file,
            origin,
            key,
            message: e.kind.to_string(),
        }
    }
}

/// Reads, merges and checks the configuration.
///
/// # Errors
///
/// The first problem found, naming its source, key and what was expected.
pub fn load(inputs: Inputs<'_>) -> Result<Loaded, ConfigError> {
    let schema = Schema::new();
    let compat = sources::compat(inputs.env)?;
    let file = inputs
        .file
        .as_ref()
        .map(|f| sources::file(&schema, f))
        .transpose()?;
    let (env, env_vars) = sources::environment(&schema, inputs.env)?;
    let mut flags = inputs.flags;
    flags.remove("config");
    let mut figment = Figment::new().merge(Layer {
        name: sources::COMPAT,
        dict: compat.dict,
    });
    let mut lines = BTreeMap::new();
    if let Some(file) = file {
        figment = figment.merge(Layer {
            name: sources::FILE,
            dict: file.dict,
        });
        lines = file.lines;
    }
    let figment = figment
        .merge(Layer {
            name: sources::ENV,
            dict: env,
        })
        .merge(Layer {
            name: sources::FLAGS,
            dict: flags,
        });
    let sources = Provenance {
        figment,
        file: inputs.file.map(|f| f.path),
        lines,
        env_vars,
        compat_vars: compat.vars,
    };
    let mut config = Config {
        general: sources.extract()?,
        serve: sources.extract()?,
        auth: sources.extract()?,
        rate_limit: sources.extract()?,
        session: sources.extract()?,
        oauth: sources.extract()?,
        server: sources.extract()?,
        servers: BTreeMap::new(),
        default_alias: None,
    };
    /// The named servers' tables, read from the top so that errors name
    /// their whole path (`servers.a.session-mode`).
    #[derive(serde::Deserialize)]
    struct Named {
        #[serde(default)]
        servers: BTreeMap<String, ServerConfig>,
    }
    let own_servers = sources.extract::<Named>()?.servers;
    check(&config, &own_servers, &sources)?;
    config.servers = own_servers
        .iter()
        .map(|(name, own)| {
            let mut server = own.clone();
            server.inherit(&config.server);
            (name.clone(), server)
        })
        .collect();
    if let [only] = compat.servers.as_slice()
        && !config.server.is_configured()
        && config.servers.contains_key(only)
    {
        config.default_alias = Some(only.clone());
    }
    Ok(Loaded {
        config,
        own_servers,
        sources,
    })
}

/// The user's upstream token exists only for logins through mcp-bastion's
/// own authorization server: a mapping of it without `oauth-issuer` would
/// never set anything.
fn check_upstream_token_mappings(
    config: &Config,
    servers: &BTreeMap<String, ServerConfig>,
    err: &dyn Fn(&str, &str) -> ConfigError,
) -> Result<(), ConfigError> {
    if config.oauth.enabled() {
        return Ok(());
    }
    let needs = "maps the user's upstream token, which only logins through `oauth-issuer` have";
    if config
        .auth
        .principal_env
        .iter()
        .any(|p| p.ends_with("=upstream:access_token"))
    {
        return Err(err("principal-env", needs));
    }
    if config.server.upstream_header_from.is_some()
        || servers.values().any(|s| s.upstream_header_from.is_some())
    {
        return Err(err("upstream-header-from", needs));
    }
    Ok(())
}

/// The rules across options that no single value can check.
fn check(
    config: &Config,
    servers: &BTreeMap<String, ServerConfig>,
    sources: &Provenance,
) -> Result<(), ConfigError> {
    let err = |key: &str, message: &str| {
        let origin = sources.origin(key);
        ConfigError {
            file: matches!(origin, Origin::File(_))
                .then(|| sources.file.clone())
                .flatten(),
            origin: Some(origin),
            key: Some(key.to_owned()),
            message: message.to_owned(),
        }
    };
    let general = &config.general;
    match (&general.tls_cert, &general.tls_key) {
        (Some(_), None) => return Err(err("tls-cert", "needs `tls-key` too")),
        (None, Some(_)) => return Err(err("tls-key", "needs `tls-cert` too")),
        _ => {}
    }
    for server in std::iter::once(&config.server).chain(servers.values()) {
        match (&server.upstream_client_cert, &server.upstream_client_key) {
            (Some(_), None) => {
                return Err(err(
                    "upstream-client-cert",
                    "needs `upstream-client-key` too",
                ));
            }
            (None, Some(_)) => {
                return Err(err(
                    "upstream-client-key",
                    "needs `upstream-client-cert` too",
                ));
            }
            _ => {}
        }
    }
    if config.rate_limit.redis_ca.is_some() && config.rate_limit.redis_url.is_none() {
        return Err(err("redis-ca", "needs `redis-url` (a `rediss://` URL)"));
    }
    if general.audit_hash_arguments && general.audit_log.is_none() {
        return Err(err("audit-hash-arguments", "needs `audit-log`"));
    }
    if let Some(prefix) = &general.path_prefix
        && !prefix.text().is_empty()
        && !prefix.text().starts_with('/')
    {
        return Err(err("path-prefix", "must start with `/`"));
    }
    let auth = &config.auth;
    match (
        &auth.introspection_client_id,
        &auth.introspection_client_secret_env,
    ) {
        (Some(_), None) => {
            return Err(err(
                "introspection-client-id",
                "needs `introspection-client-secret-env` too",
            ));
        }
        (None, Some(_)) => {
            return Err(err(
                "introspection-client-secret-env",
                "needs `introspection-client-id` too",
            ));
        }
        _ => {}
    }
    // a query parameter is a credential or session data for the backend,
    // never both
    let param_of = |spec: &String| spec.split_once('=').map(|(p, _)| p.to_owned());
    let captured: Vec<String> = config
        .session
        .capture_param
        .iter()
        .cloned()
        .chain(config.session.param_env.iter().filter_map(param_of))
        .chain(
            servers
                .values()
                .filter_map(|s| s.param_env.as_ref())
                .flat_map(|l| l.iter().filter_map(param_of).collect::<Vec<_>>()),
        )
        .collect();
    if let Some(both) = config
        .auth
        .api_key_query_param
        .iter()
        .find(|p| captured.contains(p))
    {
        return Err(err(
            "api-key-query-param",
            &format!(
                "`{both}` is also a captured session parameter (capture-param or param-env): \
                 a query parameter is either a credential or session data for the backend"
            ),
        ));
    }
    oauth::check(config, &err)?;
    check_upstream_token_mappings(config, servers, &err)?;
    if !config.server.command.is_empty() && config.server.upstream.is_some() {
        return Err(err(
            COMMAND,
            "cannot be used with `upstream`: give either a command or an upstream",
        ));
    }
    for (name, server) in servers {
        let key = format!("{SERVERS}.{name}");
        match (!server.command.is_empty(), server.upstream.is_some()) {
            (true, true) => {
                return Err(err(
                    &key,
                    "give either `command = [..]` or `upstream = \"URL\"`, not both",
                ));
            }
            (false, false) => {
                return Err(err(
                    &key,
                    "expected `command = [\"program\", ..]` or `upstream = \"URL\"`",
                ));
            }
            _ => {}
        }
        if server.param_env.as_ref().is_some_and(|p| !p.is_empty())
            && (server.upstream.is_some() || server.session_mode() == options::SessionMode::Shared)
        {
            return Err(err(
                &format!("{key}.param-env"),
                "sets a per-session child's environment: it needs a command with \
                 `session-mode = \"per-session\"`",
            ));
        }
    }
    Ok(())
}

impl Loaded {
    /// The effective configuration as TOML, secrets masked, each line noting
    /// where its value came from.
    pub fn render(&self) -> String {
        render::render(self)
    }

    /// What is allowed but worth a warning (`check-config` prints these,
    /// the start logs them).
    pub fn warnings(&self) -> Vec<String> {
        self.config.oauth.warnings()
    }

    /// Where the effective value of `key` came from.
    pub fn origin(&self, key: &str) -> Origin {
        self.sources.origin(key)
    }

    /// The configuration file, if one was read.
    pub fn file(&self) -> Option<&Path> {
        self.sources.file.as_deref()
    }
}

#[cfg(test)]
mod tests;
