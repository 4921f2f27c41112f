//! The four sources, each read into a figment [`Dict`] under the options'
//! keys, and what each remembers to name where a value came from.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use figment::{
    Metadata, Profile, Provider,
    value::{Dict, Map, Value},
};
use toml::de::DeValue;

use super::{
    ConfigError,
    oauth::OAuthConfig,
    options::{
        AuthConfig, GeneralConfig, RateLimitConfig, ServeConfig, ServerConfig, SessionConfig,
    },
    value::bool_word,
};

/// Figment's name of each source, by which a key's [`Origin`](super::Origin) is found.
pub(crate) const COMPAT: &str = "compatibility variable";
pub(crate) const FILE: &str = "configuration file";
pub(crate) const ENV: &str = "environment variable";
pub(crate) const FLAGS: &str = "flag";

/// One source's settings as a figment provider.
pub(crate) struct Layer {
    pub(crate) name: &'static str,
    pub(crate) dict: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// How an option is written in the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `true`/`false` (`1`/`yes`/`on`… in the environment).
    Switch,
    /// Repeatable: an array (comma-separated in the environment).
    List,
    /// One value.
    Value,
}

/// The keys of the named servers' table.
pub(crate) const SERVERS: &str = "servers";
/// The key of the server command.
pub(crate) const COMMAND: &str = "command";

/// Every top-level option and how it is written, and the keys of a server table.
pub(crate) struct Schema {
    pub(crate) options: BTreeMap<String, Kind>,
    pub(crate) server_keys: BTreeSet<String>,
}

fn keys_of(value: serde_json::Value, into: &mut BTreeMap<String, Kind>) {
    if let serde_json::Value::Object(map) = value {
        for (key, v) in map {
            let kind = match v {
                serde_json::Value::Bool(_) => Kind::Switch,
                serde_json::Value::Array(_) => Kind::List,
                _ => Kind::Value,
            };
            into.insert(key, kind);
        }
    }
}

impl Schema {
    /// Read off the option groups' defaults: a key is a field, its kind its type.
    pub(crate) fn new() -> Self {
        // every `Option<List>` as a list, so that its kind shows
        let server = ServerConfig {
            pass_env: Some(Default::default()),
            param_env: Some(Default::default()),
            tools_allow: Some(Default::default()),
            tools_deny: Some(Default::default()),
            ..ServerConfig::default()
        };
        let mut server_options = BTreeMap::new();
        keys_of(
            serde_json::to_value(&server).unwrap_or_default(),
            &mut server_options,
        );
        let mut options = BTreeMap::new();
        for group in [
            serde_json::to_value(GeneralConfig::default()),
            serde_json::to_value(ServeConfig::default()),
            serde_json::to_value(AuthConfig::default()),
            serde_json::to_value(RateLimitConfig::default()),
            serde_json::to_value(SessionConfig::default()),
            serde_json::to_value(OAuthConfig::default()),
        ] {
            keys_of(group.unwrap_or_default(), &mut options);
        }
        let server_keys = server_options.keys().cloned().collect();
        options.extend(server_options);
        Self {
            options,
            server_keys,
        }
    }

    /// The `MCP_BASTION_*` variable of an option.
    pub(crate) fn env_name(option: &str) -> String {
        format!(
            "MCP_BASTION_{}",
            option.replace('-', "_").to_ascii_uppercase()
        )
    }
}

/// Variables whose names differ from their option's, documented before the
/// names were unified: read as that option when its own variable is unset.
pub(crate) const ENV_ALIASES: [(&str, &str); 2] = [
    ("MCP_BASTION_API_KEYS", "api-key"),
    ("MCP_BASTION_TRUSTED_PROXIES", "trusted-proxy"),
];

/// `MCP_BASTION_<NAME>` variables: each option's (or its alias), read by its kind.
/// Returns the settings and the variable each key was read from.
pub(crate) fn environment(
    schema: &Schema,
    env: &BTreeMap<String, String>,
) -> Result<(Dict, BTreeMap<String, String>), ConfigError> {
    let mut dict = Dict::new();
    let mut vars = BTreeMap::new();
    for (key, kind) in &schema.options {
        if key == COMMAND {
            continue;
        }
        let own = Schema::env_name(key);
        let alias = ENV_ALIASES
            .iter()
            .find(|(_, option)| option == key)
            .map(|(var, _)| (*var).to_owned());
        let Some((var, text)) = std::iter::once(own)
            .chain(alias)
            .find_map(|var| env.get(&var).map(|t| (var, t)))
        else {
            continue;
        };
        let value = match kind {
            Kind::Switch => Value::from(bool_word(text).ok_or_else(|| {
                ConfigError::in_variable(
                    &var,
                    Some(key),
                    format!("expected true or false (1/0, yes/no, on/off), got `{text}`"),
                )
            })?),
            Kind::List => Value::from(
                text.split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(|v| Value::from(v.to_owned()))
                    .collect::<Vec<_>>(),
            ),
            Kind::Value => Value::from(text.clone()),
        };
        dict.insert(key.clone(), value);
        vars.insert(key.clone(), var);
    }
    Ok((dict, vars))
}

/// What the compatibility variables said: the settings, the variable of each
/// key, and the names of `MCP_SERVER_CONFIG`'s servers.
pub(crate) struct Compat {
    pub(crate) dict: Dict,
    pub(crate) vars: BTreeMap<String, String>,
    pub(crate) servers: Vec<String>,
}

/// The variables other MCP proxies are configured with, under our keys.
pub(crate) fn compat(env: &BTreeMap<String, String>) -> Result<Compat, ConfigError> {
    let mut out = Compat {
        dict: Dict::new(),
        vars: BTreeMap::new(),
        servers: Vec::new(),
    };
    let mut put = |var: &str, key: &str, value: Value| {
        out.dict.insert(key.to_owned(), value);
        out.vars.insert(key.to_owned(), var.to_owned());
    };
    if let Some(key) = env.get("AUTH_KEY").filter(|v| !v.is_empty()) {
        put(
            "AUTH_KEY",
            "api-key",
            Value::from(vec![Value::from(key.clone())]),
        );
    }
    if let Some(url) = env.get("AUTH_SERVER_URL").filter(|v| !v.is_empty()) {
        put(
            "AUTH_SERVER_URL",
            "auth-server-url",
            Value::from(url.clone()),
        );
    }
    if let Some(shared) = env.get("SHARED_SESSION") {
        let mode = match bool_word(shared) {
            Some(true) => "shared",
            Some(false) => "per-session",
            None => {
                return Err(ConfigError::in_variable(
                    "SHARED_SESSION",
                    None,
                    format!("expected true or false, got `{shared}`"),
                ));
            }
        };
        put(
            "SHARED_SESSION",
            "session-mode",
            Value::from(mode.to_owned()),
        );
    }
    if let Some(port) = env.get("MCP_PROXY_PORT") {
        let Ok(port) = port.trim().parse::<u16>() else {
            return Err(ConfigError::in_variable(
                "MCP_PROXY_PORT",
                None,
                format!("expected a port number, got `{port}`"),
            ));
        };
        put(
            "MCP_PROXY_PORT",
            "listen",
            Value::from(format!("127.0.0.1:{port}")),
        );
    }
    if let Some(path) = env.get("MCP_SERVER_CONFIG").filter(|v| !v.is_empty()) {
        let servers = server_config(Path::new(path))?;
        out.servers = servers.keys().cloned().collect();
        out.vars
            .insert(SERVERS.to_owned(), "MCP_SERVER_CONFIG".to_owned());
        out.dict.insert(SERVERS.to_owned(), Value::from(servers));
    }
    Ok(out)
}

/// `[A-Za-z0-9_-]{1,64}`: a named server's name, a path segment as it is.
pub fn valid_server_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

const SERVER_NAME_RULE: &str = "expected 1 to 64 of the characters A-Z a-z 0-9 _ -";

/// The servers of an `{"mcpServers": {"name": {"command", "args", "env"} |
/// {"url", "headers"}}}` file, the format MCP clients and proxies share.
fn server_config(path: &Path) -> Result<Dict, ConfigError> {
    let err = |message: String| ConfigError {
        file: Some(path.to_path_buf()),
        origin: Some(super::Origin::Compat("MCP_SERVER_CONFIG".into())),
        key: Some("MCP_SERVER_CONFIG".into()),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| err(format!("not valid JSON: {e}")))?;
    let servers = json
        .get("mcpServers")
        .and_then(|s| s.as_object())
        .ok_or_else(|| err("expected an object with an `mcpServers` object".into()))?;
    if servers.is_empty() {
        return Err(err("`mcpServers` names no server".into()));
    }
    let strings = |value: &serde_json::Value| -> Option<Vec<Value>> {
        value
            .as_array()?
            .iter()
            .map(|v| v.as_str().map(|s| Value::from(s.to_owned())))
            .collect()
    };
    let pairs = |value: &serde_json::Value, sep: &str| -> Option<Vec<Value>> {
        value
            .as_object()?
            .iter()
            .map(|(k, v)| v.as_str().map(|v| Value::from(format!("{k}{sep}{v}"))))
            .collect()
    };
    let mut out = Dict::new();
    for (name, server) in servers {
        if !valid_server_name(name) {
            return Err(err(format!(
                "server `{name}`: invalid name: {SERVER_NAME_RULE}"
            )));
        }
        let mut table = Dict::new();
        match (server.get("command"), server.get("url")) {
            (Some(command), None) => {
                let program = command
                    .as_str()
                    .ok_or_else(|| err(format!("server `{name}`: `command` must be a string")))?;
                let mut command = vec![Value::from(program.to_owned())];
                if let Some(args) = server.get("args") {
                    command.extend(strings(args).ok_or_else(|| {
                        err(format!(
                            "server `{name}`: `args` must be an array of strings"
                        ))
                    })?);
                }
                table.insert(COMMAND.into(), Value::from(command));
                if let Some(env) = server.get("env") {
                    let env = pairs(env, "=").ok_or_else(|| {
                        err(format!(
                            "server `{name}`: `env` must be an object of strings"
                        ))
                    })?;
                    table.insert("env".into(), Value::from(env));
                }
            }
            (None, Some(url)) => {
                let url = url
                    .as_str()
                    .ok_or_else(|| err(format!("server `{name}`: `url` must be a string")))?;
                table.insert("upstream".into(), Value::from(url.to_owned()));
                if let Some(headers) = server.get("headers") {
                    let headers = pairs(headers, ": ").ok_or_else(|| {
                        err(format!(
                            "server `{name}`: `headers` must be an object of strings"
                        ))
                    })?;
                    table.insert("upstream-header".into(), Value::from(headers));
                }
            }
            _ => {
                return Err(err(format!(
                    "server `{name}`: expected either `command` (with `args`, `env`) or `url`"
                )));
            }
        }
        out.insert(name.clone(), Value::from(table));
    }
    Ok(out)
}

/// The configuration file: its path and text.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// Where it was read from (named in errors).
    pub path: PathBuf,
    /// Its TOML text.
    pub text: String,
}

impl ConfigFile {
    /// Reads the file at `path`.
    ///
    /// # Errors
    ///
    /// When it cannot be read.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::in_file(
                path,
                0,
                None,
                format!("cannot read the configuration file: {e}"),
            )
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            text,
        })
    }
}

/// What the file said: the settings under normalized keys (`_` → `-`), and
/// the line of each key (`listen`, `servers.a`, `servers.a.session-mode`).
pub(crate) struct FileSettings {
    pub(crate) dict: Dict,
    pub(crate) lines: BTreeMap<String, usize>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |head| head.bytes().filter(|b| *b == b'\n').count())
        + 1
}

/// One TOML value as a figment value (`None`: an integer out of range).
fn to_value(value: &DeValue<'_>) -> Option<Value> {
    Some(match value {
        DeValue::String(s) => Value::from(s.to_string()),
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            Value::from(i64::from_str_radix(&digits, i.radix()).ok()?)
        }
        DeValue::Float(f) => {
            let text = f.as_str().replace('_', "");
            match text.parse::<f64>() {
                Ok(n) => Value::from(n),
                Err(_) => Value::from(text),
            }
        }
        DeValue::Boolean(b) => Value::from(*b),
        DeValue::Datetime(d) => Value::from(d.to_string()),
        DeValue::Array(items) => Value::from(
            items
                .iter()
                .map(|v| to_value(v.get_ref()))
                .collect::<Option<Vec<_>>>()?,
        ),
        DeValue::Table(table) => {
            let mut dict = Dict::new();
            for (k, v) in table {
                dict.insert(k.get_ref().to_string(), to_value(v.get_ref())?);
            }
            Value::from(dict)
        }
    })
}

/// Reads one table's `key = value` pairs, checking each key against `known`.
/// `prefix` is how errors and lines name its keys (`""` or `servers.a.`).
fn table(
    file: &ConfigFile,
    entries: &toml::de::DeTable<'_>,
    known: &BTreeSet<&str>,
    prefix: &str,
    lines: &mut BTreeMap<String, usize>,
) -> Result<Dict, ConfigError> {
    let mut dict = Dict::new();
    for (key, value) in entries {
        let raw = key.get_ref().to_string();
        let line = line_of(&file.text, key.span().start);
        let shown = format!("{prefix}{raw}");
        let name = raw.replace('_', "-");
        if !known.contains(name.as_str()) {
            let expected: Vec<&str> = known.iter().copied().collect();
            return Err(ConfigError::in_file(
                &file.path,
                line,
                Some(&shown),
                format!("unknown key; expected one of: {}", expected.join(", ")),
            ));
        }
        let Some(value) = to_value(value.get_ref()) else {
            return Err(ConfigError::in_file(
                &file.path,
                line,
                Some(&shown),
                "integer out of range".into(),
            ));
        };
        if dict.insert(name.clone(), value).is_some() {
            return Err(ConfigError::in_file(
                &file.path,
                line,
                Some(&shown),
                "given twice (as `-` and `_` spellings of one key)".into(),
            ));
        }
        lines.insert(format!("{prefix}{name}"), line);
    }
    Ok(dict)
}

/// The file's settings: top-level options and `[servers.<name>]` tables.
pub(crate) fn file(schema: &Schema, file: &ConfigFile) -> Result<FileSettings, ConfigError> {
    let parsed = toml::de::DeTable::parse(&file.text).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of(&file.text, s.start));
        ConfigError::in_file(
            &file.path,
            line,
            None,
            format!("not valid TOML: {}", e.message()),
        )
    })?;
    let mut lines = BTreeMap::new();
    let mut top = toml::de::DeTable::new();
    let mut servers = None;
    for (key, value) in parsed.get_ref() {
        if key.get_ref() == SERVERS {
            servers = Some((key, value));
        } else {
            top.insert(key.clone(), value.clone());
        }
    }
    let known: BTreeSet<&str> = schema
        .options
        .keys()
        .map(String::as_str)
        .chain([SERVERS])
        .collect();
    let mut dict = table(file, &top, &known, "", &mut lines)?;
    if let Some((key, value)) = servers {
        let line = line_of(&file.text, key.span().start);
        lines.insert(SERVERS.to_owned(), line);
        let DeValue::Table(tables) = value.get_ref() else {
            return Err(ConfigError::in_file(
                &file.path,
                line,
                Some(SERVERS),
                "expected tables `[servers.<name>]`, each with `command = [..]` or `upstream = \"URL\"`"
                    .into(),
            ));
        };
        let server_keys: BTreeSet<&str> = schema.server_keys.iter().map(String::as_str).collect();
        let mut named = Dict::new();
        for (name_key, entries) in tables {
            let name = name_key.get_ref().to_string();
            let line = line_of(&file.text, name_key.span().start);
            let key = format!("{SERVERS}.{name}");
            if !valid_server_name(&name) {
                return Err(ConfigError::in_file(
                    &file.path,
                    line,
                    Some(&key),
                    format!("invalid server name: {SERVER_NAME_RULE}"),
                ));
            }
            let DeValue::Table(entries) = entries.get_ref() else {
                return Err(ConfigError::in_file(
                    &file.path,
                    line,
                    Some(&key),
                    format!(
                        "expected a table `[{key}]` with `command = [..]` or `upstream = \"URL\"`, got {}",
                        entries.get_ref().type_str()
                    ),
                ));
            };
            lines.insert(key.clone(), line);
            let server = table(file, entries, &server_keys, &format!("{key}."), &mut lines)?;
            named.insert(name, Value::from(server));
        }
        dict.insert(SERVERS.to_owned(), Value::from(named));
    }
    Ok(FileSettings { dict, lines })
}
