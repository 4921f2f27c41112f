//! Where the proxy's settings come from, and in which order they win.
//!
//! Every flag can also be set in a TOML file (`--config FILE`, or
//! `MCP_BASTION_CONFIG`) under the flag's long name (`session-mode` or
//! `session_mode`), and in an environment variable `MCP_BASTION_<NAME>`
//! (`MCP_BASTION_SESSION_MODE`). Lowest precedence first:
//!
//! 1. the variables other MCP proxies use (`AUTH_KEY`, `AUTH_SERVER_URL`,
//!    `SHARED_SESSION`, `MCP_PROXY_PORT`, `MCP_SERVER_CONFIG`);
//! 2. the file;
//! 3. the flags;
//! 4. `MCP_BASTION_*` variables.
//!
//! A setting from a higher source replaces the whole value of a lower one,
//! lists included. Booleans are `true`/`false` in the file and
//! `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off` in the environment; lists
//! are arrays in the file and comma-separated in the environment. The server
//! command is `command = ["npx", "-y", "…"]` in the file and follows `--` on
//! the command line.
//!
//! Rather than a second schema beside the flags, the sources are merged into
//! one argument list and parsed by clap: a value means in the file exactly
//! what it means as a flag, and a new flag is configurable everywhere the
//! day it is added.

use std::{
    collections::{BTreeMap, BTreeSet},
    ffi::OsString,
    fmt,
    path::{Path, PathBuf},
};

use clap::{ArgAction, CommandFactory};

/// Where one setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A compatibility variable of other MCP proxies.
    Compat(&'static str),
    /// The TOML file, at this line.
    File(usize),
    /// A command-line flag.
    Flag,
    /// An `MCP_BASTION_*` variable.
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Compat(var) => write!(f, "${var}"),
            Origin::File(line) => write!(f, "config line {line}"),
            Origin::Flag => f.write_str("flag"),
            Origin::Env(var) => write!(f, "${var}"),
        }
    }
}

/// One option with its values (`["true"]`/`["false"]` for a switch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Setting {
    pub(crate) values: Vec<String>,
    pub(crate) origin: Origin,
}

/// A configuration error: which key, where, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError {
    pub(crate) file: Option<PathBuf>,
    pub(crate) line: Option<usize>,
    pub(crate) key: Option<String>,
    pub(crate) message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{}:{line}: ", file.display())?,
            (Some(file), None) => write!(f, "{}: ", file.display())?,
            (None, _) => {}
        }
        if let Some(key) = &self.key {
            write!(f, "`{key}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// What the options of the command line are: long name → takes a value?,
/// repeatable?
#[derive(Debug)]
struct Schema {
    options: BTreeMap<String, (bool, bool)>,
}

/// Names handled here rather than by clap's value parsing.
const CONFIG: &str = "config";
const COMMAND: &str = "command";

impl Schema {
    fn of<C: CommandFactory>() -> Self {
        let options = C::command()
            .get_arguments()
            .filter_map(|a| {
                let long = a.get_long()?.to_owned();
                let takes_value = a.get_action().takes_values();
                let repeatable = matches!(a.get_action(), ArgAction::Append);
                Some((long, (takes_value, repeatable)))
            })
            .filter(|(long, _)| long != "help" && long != "version")
            .collect();
        Self { options }
    }

    fn get(&self, name: &str) -> Option<(bool, bool)> {
        self.options.get(name).copied()
    }
}

/// Settings by long name, and the server command.
#[derive(Debug, Default, Clone)]
pub(crate) struct Layered {
    /// Long name → whether the option takes a value (else it is a switch).
    kinds: BTreeMap<String, bool>,
    pub(crate) settings: BTreeMap<String, Setting>,
    pub(crate) command: Option<(Vec<String>, Origin)>,
    pub(crate) file: Option<PathBuf>,
    /// The named backends, `[servers.<name>]` (and `MCP_SERVER_CONFIG`'s).
    pub(crate) servers: BTreeMap<String, ServerTable>,
    /// The named server that `MCP_SERVER_CONFIG` also makes the default one
    /// (at `/mcp`, `/sse`), when its file has one server and nothing else
    /// configures a default command or upstream.
    pub(crate) default_alias: Option<String>,
}

/// One named backend: its settings under the long names of
/// [`ServerCli`](crate::servers::ServerCli), and its command.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ServerTable {
    /// Where the table starts (`[servers.<name>]`'s line).
    pub(crate) origin: Option<Origin>,
    pub(crate) settings: BTreeMap<String, Setting>,
    pub(crate) command: Option<Vec<String>>,
}

impl ServerTable {
    /// The argument list for [`ServerCli`](crate::servers::ServerCli).
    pub(crate) fn to_args(&self) -> Vec<OsString> {
        let kinds: BTreeMap<String, bool> = Schema::of::<crate::servers::ServerCli>()
            .options
            .into_iter()
            .map(|(name, (takes_value, _))| (name, takes_value))
            .collect();
        to_args(&kinds, &self.settings, self.command.as_deref())
    }
}

/// `[A-Za-z0-9_-]{1,64}`: a named server's name, a path segment as it is.
pub(crate) fn valid_server_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn to_args(
    kinds: &BTreeMap<String, bool>,
    settings: &BTreeMap<String, Setting>,
    command: Option<&[String]>,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["mcp-bastion".into()];
    for (name, setting) in settings {
        match kinds.get(name).copied() {
            Some(true) => {
                for v in &setting.values {
                    args.push(format!("--{name}").into());
                    args.push(v.into());
                }
            }
            Some(false) if setting.values.first().is_some_and(|v| v == "true") => {
                args.push(format!("--{name}").into());
            }
            Some(false) => {}
            None => {}
        }
    }
    if let Some(command) = command {
        args.push("--".into());
        args.extend(command.iter().map(OsString::from));
    }
    args
}

impl Layered {
    /// Puts `setting` over whatever a lower source said.
    fn set(&mut self, name: &str, setting: Setting) {
        self.settings.insert(name.to_owned(), setting);
    }

    /// The argument list for clap.
    pub(crate) fn to_args(&self) -> Vec<OsString> {
        to_args(
            &self.kinds,
            &self.settings,
            self.command.as_ref().map(|(c, _)| c.as_slice()),
        )
    }
}

fn bool_word(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// The `MCP_BASTION_*` variable of an option.
pub(crate) fn env_name(option: &str) -> String {
    format!(
        "MCP_BASTION_{}",
        option.replace('-', "_").to_ascii_uppercase()
    )
}

/// Reads the layers for the parser `C` from `argv` (program name first) and
/// `env`, and returns the merged argument list with its provenance.
pub(crate) fn layer<C: CommandFactory>(
    argv: &[OsString],
    env: &BTreeMap<String, String>,
) -> Result<Layered, ConfigError> {
    let schema = Schema::of::<C>();
    let mut out = Layered {
        kinds: schema
            .options
            .iter()
            .map(|(name, (takes_value, _))| (name.clone(), *takes_value))
            .collect(),
        ..Layered::default()
    };
    compat(&schema, env, &mut out)?;

    let flags = split_flags(&schema, argv)?;
    let file = flags
        .settings
        .get(CONFIG)
        .and_then(|s| s.values.first().cloned())
        .or_else(|| env.get(&env_name(CONFIG)).cloned());
    if let Some(file) = file {
        let path = PathBuf::from(file);
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError {
            file: Some(path.clone()),
            line: None,
            key: None,
            message: format!("cannot read the configuration file: {e}"),
        })?;
        from_toml::<C>(&schema, &path, &text, &mut out)?;
        out.file = Some(path);
    }
    for (name, setting) in flags.settings {
        if name != CONFIG {
            out.set(&name, setting);
        }
    }
    if flags.command.is_some() {
        out.command = flags.command;
    }
    for name in schema.options.keys() {
        if name == CONFIG {
            continue;
        }
        let var = env_name(name);
        let Some(value) = env.get(&var) else { continue };
        let (takes_value, repeatable) = schema.get(name).unwrap_or((true, false));
        let values = if !takes_value {
            let Some(b) = bool_word(value) else {
                return Err(ConfigError {
                    file: None,
                    line: None,
                    key: Some(var),
                    message: format!("expected true or false, got `{value}`"),
                });
            };
            vec![b.to_string()]
        } else if repeatable {
            value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .collect()
        } else {
            vec![value.clone()]
        };
        out.set(
            name,
            Setting {
                values,
                origin: Origin::Env(var),
            },
        );
    }
    finish_servers(&mut out);
    Ok(out)
}

/// The settings given as flags (before `--`) and the command after it.
fn split_flags(schema: &Schema, argv: &[OsString]) -> Result<Layered, ConfigError> {
    let mut out = Layered::default();
    let mut tokens = argv
        .iter()
        .skip(1)
        .map(|t| t.to_string_lossy().into_owned());
    let mut command = None;
    while let Some(token) = tokens.next() {
        if token == "--" {
            command = Some(tokens.by_ref().collect::<Vec<_>>());
            break;
        }
        let Some(body) = token.strip_prefix("--") else {
            return Err(unparsed(&token));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (body.to_owned(), None),
        };
        let Some((takes_value, repeatable)) = schema.get(&name) else {
            return Err(unparsed(&token));
        };
        let value = if takes_value {
            match inline.or_else(|| tokens.next()) {
                Some(v) => v,
                None => return Err(unparsed(&token)),
            }
        } else {
            inline.unwrap_or_else(|| "true".into())
        };
        let entry = out.settings.entry(name).or_insert_with(|| Setting {
            values: Vec::new(),
            origin: Origin::Flag,
        });
        if repeatable {
            entry.values.push(value);
        } else {
            entry.values = vec![value];
        }
    }
    out.command = command.map(|c| (c, Origin::Flag));
    Ok(out)
}

/// A token this module does not interpret: clap will explain it.
fn unparsed(token: &str) -> ConfigError {
    ConfigError {
        file: None,
        line: None,
        key: None,
        message: format!("UNPARSED {token}"),
    }
}

/// Whether an error means "let clap handle the raw command line".
pub(crate) fn is_unparsed(e: &ConfigError) -> bool {
    e.file.is_none() && e.key.is_none() && e.message.starts_with("UNPARSED ")
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |head| head.bytes().filter(|b| *b == b'\n').count())
        + 1
}

/// One TOML scalar as the text a flag would carry.
fn scalar(value: &toml::de::DeValue<'_>) -> Option<String> {
    use toml::de::DeValue;
    match value {
        DeValue::String(s) => Some(s.to_string()),
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            i64::from_str_radix(&digits, i.radix())
                .ok()
                .map(|n| n.to_string())
        }
        DeValue::Float(f) => Some(f.as_str().replace('_', "")),
        DeValue::Boolean(b) => Some(b.to_string()),
        DeValue::Datetime(d) => Some(d.to_string()),
        DeValue::Array(_) | DeValue::Table(_) => None,
    }
}

/// The table of named backends, `[servers.<name>]`.
const SERVERS: &str = "servers";

fn file_error(path: &Path, line: Option<usize>, key: Option<&str>, message: String) -> ConfigError {
    ConfigError {
        file: Some(path.to_path_buf()),
        line,
        key: key.map(str::to_owned),
        message,
    }
}

/// What one key of a table said.
enum Entry {
    /// `command = [..]`.
    Command(Vec<String>),
    /// An option (long name) and its values.
    Setting(String, Vec<String>),
}

/// Where one key is read: the file, its options, and a parser that checks
/// one value at a time.
struct TableCtx<'a> {
    path: &'a Path,
    schema: &'a Schema,
    check: clap::Command,
    /// Keys known besides the schema's options (for the unknown-key error).
    extra_keys: &'a [&'a str],
}

impl TableCtx<'_> {
    /// Checks one `key = value` (`shown` is the key as errors name it).
    fn entry(
        &mut self,
        line: usize,
        raw_key: &str,
        shown: &str,
        value: &toml::de::DeValue<'_>,
    ) -> Result<Entry, ConfigError> {
        let path = self.path;
        let err = |message: String| file_error(path, Some(line), Some(shown), message);
        let name = raw_key.replace('_', "-");
        if name == COMMAND {
            let Some(items) = value.as_array() else {
                return Err(err(
                    "expected an array of strings: the program and its arguments".into(),
                ));
            };
            let command: Option<Vec<String>> = items.iter().map(|v| scalar(v.get_ref())).collect();
            let Some(command) = command.filter(|c| !c.is_empty()) else {
                return Err(err("expected a non-empty array of strings".into()));
            };
            return Ok(Entry::Command(command));
        }
        let Some((takes_value, repeatable)) = self.schema.get(&name).filter(|_| name != CONFIG)
        else {
            let known: BTreeSet<&str> = self
                .schema
                .options
                .keys()
                .map(String::as_str)
                .filter(|k| *k != CONFIG)
                .chain([COMMAND])
                .chain(self.extra_keys.iter().copied())
                .collect();
            return Err(err(format!(
                "unknown key; expected one of: {}",
                known.into_iter().collect::<Vec<_>>().join(", ")
            )));
        };
        let values: Vec<String> = match value {
            toml::de::DeValue::Array(items) if repeatable => {
                let parsed: Option<Vec<String>> =
                    items.iter().map(|v| scalar(v.get_ref())).collect();
                parsed.ok_or_else(|| err("expected an array of strings or numbers".into()))?
            }
            other => {
                let Some(v) = scalar(other) else {
                    let expected = if repeatable {
                        "a value or an array of values"
                    } else if takes_value {
                        "a single value (string or number)"
                    } else {
                        "true or false"
                    };
                    return Err(err(format!(
                        "expected {expected}, got {}",
                        other.type_str()
                    )));
                };
                vec![v]
            }
        };
        if !takes_value {
            if !values.iter().all(|v| v == "true" || v == "false") {
                return Err(err("expected true or false".into()));
            }
        } else {
            let mut args: Vec<String> = vec!["mcp-bastion".into()];
            for v in &values {
                args.push(format!("--{name}"));
                args.push(v.clone());
            }
            match self.check.try_get_matches_from_mut(args) {
                // one value alone: an option it `requires` is checked with the whole table
                Err(e) if e.kind() != clap::error::ErrorKind::MissingRequiredArgument => {
                    return Err(err(clap_message(&e)));
                }
                _ => {}
            }
        }
        Ok(Entry::Setting(name, values))
    }
}

/// The first line of a clap error, with its list of possible values.
fn clap_message(e: &clap::Error) -> String {
    let message = e.to_string();
    let first = message
        .lines()
        .next()
        .unwrap_or("invalid value")
        .trim_start_matches("error: ")
        .to_owned();
    let hint = message
        .lines()
        .find(|l| l.contains("possible values"))
        .map(|l| {
            format!(
                " ({})",
                l.trim().trim_start_matches("[").trim_end_matches("]")
            )
        })
        .unwrap_or_default();
    format!("{first}{hint}")
}

fn from_toml<C: CommandFactory>(
    schema: &Schema,
    path: &Path,
    text: &str,
    out: &mut Layered,
) -> Result<(), ConfigError> {
    let table = toml::de::DeTable::parse(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        file_error(path, line, None, format!("not valid TOML: {}", e.message()))
    })?;
    // the command is not required in the file
    let mut ctx = TableCtx {
        path,
        schema,
        check: C::command().mut_arg(COMMAND, |a| a.required(false)),
        extra_keys: &[SERVERS],
    };
    for (key, value) in table.get_ref() {
        let raw_key = key.get_ref().to_string();
        let line = line_of(text, key.span().start);
        if raw_key == SERVERS {
            servers_from_toml(path, text, line, value.get_ref(), out)?;
            continue;
        }
        match ctx.entry(line, &raw_key, &raw_key, value.get_ref())? {
            Entry::Command(command) => out.command = Some((command, Origin::File(line))),
            Entry::Setting(name, values) => out.set(
                &name,
                Setting {
                    values,
                    origin: Origin::File(line),
                },
            ),
        }
    }
    Ok(())
}

/// `[servers.<name>]` tables: each a named backend with a command or an
/// upstream and that backend's own options.
fn servers_from_toml(
    path: &Path,
    text: &str,
    line: usize,
    value: &toml::de::DeValue<'_>,
    out: &mut Layered,
) -> Result<(), ConfigError> {
    let toml::de::DeValue::Table(servers) = value else {
        return Err(file_error(
            path,
            Some(line),
            Some(SERVERS),
            "expected tables `[servers.<name>]`, each with `command = [..]` or `upstream = \"URL\"`"
                .into(),
        ));
    };
    let schema = Schema::of::<crate::servers::ServerCli>();
    let mut ctx = TableCtx {
        path,
        schema: &schema,
        check: <crate::servers::ServerCli as CommandFactory>::command()
            .mut_arg(COMMAND, |a| a.required(false)),
        extra_keys: &[],
    };
    for (name_key, table) in servers {
        let name = name_key.get_ref().to_string();
        let line = line_of(text, name_key.span().start);
        let key = format!("{SERVERS}.{name}");
        let err = |message: String| file_error(path, Some(line), Some(&key), message);
        if !valid_server_name(&name) {
            return Err(err(
                "invalid server name: expected 1 to 64 of the characters A-Z a-z 0-9 _ -".into(),
            ));
        }
        let toml::de::DeValue::Table(table) = table.get_ref() else {
            return Err(err(format!(
                "expected a table `[{key}]` with `command = [..]` or `upstream = \"URL\"`, got {}",
                table.get_ref().type_str()
            )));
        };
        let mut server = ServerTable {
            origin: Some(Origin::File(line)),
            ..ServerTable::default()
        };
        for (k, v) in table {
            let raw = k.get_ref().to_string();
            let kline = line_of(text, k.span().start);
            let shown = format!("{key}.{raw}");
            match ctx.entry(kline, &raw, &shown, v.get_ref())? {
                Entry::Command(command) => server.command = Some(command),
                Entry::Setting(option, values) => {
                    server.settings.insert(
                        option,
                        Setting {
                            values,
                            origin: Origin::File(kline),
                        },
                    );
                }
            }
        }
        match (
            server.command.is_some(),
            server.settings.contains_key("upstream"),
        ) {
            (true, true) => {
                return Err(err(
                    "give either `command = [..]` or `upstream = \"URL\"`, not both".into(),
                ));
            }
            (false, false) => {
                return Err(err(
                    "expected `command = [\"program\", ..]` or `upstream = \"URL\"`".into(),
                ));
            }
            _ => {}
        }
        if let Err(e) =
            <crate::servers::ServerCli as clap::Parser>::try_parse_from(server.to_args())
        {
            return Err(err(clap_message(&e)));
        }
        out.servers.insert(name, server);
    }
    Ok(())
}

/// The variables other MCP proxies are configured with, mapped to ours.
fn compat(
    schema: &Schema,
    env: &BTreeMap<String, String>,
    out: &mut Layered,
) -> Result<(), ConfigError> {
    let mut put = |var: &'static str, option: &str, values: Vec<String>| {
        if schema.get(option).is_some() {
            out.set(
                option,
                Setting {
                    values,
                    origin: Origin::Compat(var),
                },
            );
        } else {
            eprintln!("mcp-bastion: ${var} is set but this build has no --{option}; ignored");
        }
    };
    if let Some(key) = env.get("AUTH_KEY").filter(|v| !v.is_empty()) {
        put("AUTH_KEY", "api-key", vec![key.clone()]);
    }
    if let Some(url) = env.get("AUTH_SERVER_URL").filter(|v| !v.is_empty()) {
        put("AUTH_SERVER_URL", "auth-server-url", vec![url.clone()]);
    }
    if let Some(shared) = env.get("SHARED_SESSION") {
        match bool_word(shared) {
            Some(true) => put("SHARED_SESSION", "session-mode", vec!["shared".into()]),
            Some(false) => put("SHARED_SESSION", "session-mode", vec!["per-session".into()]),
            None => {
                return Err(ConfigError {
                    file: None,
                    line: None,
                    key: Some("SHARED_SESSION".into()),
                    message: format!("expected true or false, got `{shared}`"),
                });
            }
        }
    }
    if let Some(port) = env.get("MCP_PROXY_PORT") {
        let Ok(port) = port.trim().parse::<u16>() else {
            return Err(ConfigError {
                file: None,
                line: None,
                key: Some("MCP_PROXY_PORT".into()),
                message: format!("expected a port number, got `{port}`"),
            });
        };
        put(
            "MCP_PROXY_PORT",
            "listen",
            vec![format!("127.0.0.1:{port}")],
        );
    }
    if let Some(path) = env.get("MCP_SERVER_CONFIG").filter(|v| !v.is_empty()) {
        out.servers = server_config(Path::new(path))?;
        if out.servers.len() == 1 {
            out.default_alias = out.servers.keys().next().cloned();
        }
    }
    Ok(())
}

/// The options of a named server that it takes from the top level when its
/// table does not set them. Commands, upstreams, credentials and fixed
/// environment variables are never inherited.
const INHERITED: [&str; 5] = [
    "session-mode",
    "pass-env",
    "upstream-timeout",
    "upstream-connect-timeout",
    "upstream-transport",
];

/// Fills each named server's unset [`INHERITED`] options from the top level,
/// and drops `MCP_SERVER_CONFIG`'s default alias when a default server is
/// configured otherwise.
fn finish_servers(out: &mut Layered) {
    for server in out.servers.values_mut() {
        for option in INHERITED {
            if let (None, Some(top)) = (server.settings.get(option), out.settings.get(option)) {
                server.settings.insert(option.to_owned(), top.clone());
            }
        }
    }
    let has_default = out.command.is_some() || out.settings.contains_key("upstream");
    if has_default
        || out
            .default_alias
            .as_ref()
            .is_some_and(|name| !out.servers.contains_key(name))
    {
        out.default_alias = None;
    }
}

/// The servers of an `{"mcpServers": {"name": {"command", "args", "env"} |
/// {"url", "headers"}}}` file, the format MCP clients and proxies share, as
/// named servers.
fn server_config(path: &Path) -> Result<BTreeMap<String, ServerTable>, ConfigError> {
    let err = |message: String| ConfigError {
        file: Some(path.to_path_buf()),
        line: None,
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
    let origin = Origin::Compat("MCP_SERVER_CONFIG");
    let setting = |values: Vec<String>| Setting {
        values,
        origin: origin.clone(),
    };
    let strings = |value: &serde_json::Value| -> Option<Vec<String>> {
        value
            .as_array()?
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let pairs = |value: &serde_json::Value, sep: &str| -> Option<Vec<String>> {
        value
            .as_object()?
            .iter()
            .map(|(k, v)| v.as_str().map(|v| format!("{k}{sep}{v}")))
            .collect()
    };
    let mut out = BTreeMap::new();
    for (name, server) in servers {
        if !valid_server_name(name) {
            return Err(err(format!(
                "server `{name}`: invalid name: expected 1 to 64 of the characters A-Z a-z 0-9 _ -"
            )));
        }
        let mut table = ServerTable {
            origin: Some(origin.clone()),
            ..ServerTable::default()
        };
        match (server.get("command"), server.get("url")) {
            (Some(command), None) => {
                let program = command
                    .as_str()
                    .ok_or_else(|| err(format!("server `{name}`: `command` must be a string")))?;
                let mut command = vec![program.to_owned()];
                if let Some(args) = server.get("args") {
                    command.extend(strings(args).ok_or_else(|| {
                        err(format!(
                            "server `{name}`: `args` must be an array of strings"
                        ))
                    })?);
                }
                table.command = Some(command);
                if let Some(env) = server.get("env") {
                    let env = pairs(env, "=").ok_or_else(|| {
                        err(format!(
                            "server `{name}`: `env` must be an object of strings"
                        ))
                    })?;
                    table.settings.insert("env".into(), setting(env));
                }
            }
            (None, Some(url)) => {
                let url = url
                    .as_str()
                    .ok_or_else(|| err(format!("server `{name}`: `url` must be a string")))?;
                table
                    .settings
                    .insert("upstream".into(), setting(vec![url.to_owned()]));
                if let Some(headers) = server.get("headers") {
                    let headers = pairs(headers, ": ").ok_or_else(|| {
                        err(format!(
                            "server `{name}`: `headers` must be an object of strings"
                        ))
                    })?;
                    table
                        .settings
                        .insert("upstream-header".into(), setting(headers));
                }
            }
            _ => {
                return Err(err(format!(
                    "server `{name}`: expected either `command` (with `args`, `env`) or `url`"
                )));
            }
        }
        if let Err(e) = <crate::servers::ServerCli as clap::Parser>::try_parse_from(table.to_args())
        {
            return Err(err(format!("server `{name}`: {}", clap_message(&e))));
        }
        out.insert(name.clone(), table);
    }
    Ok(out)
}

/// Whether an option's values are secrets to mask when printed. Of the
/// header options only `upstream-header` carries values (credentials);
/// `capture-header`, `header-read-timeout` and `max-header-bytes` do not.
pub(crate) fn is_secret(option: &str) -> bool {
    [
        "key",
        "secret",
        "token",
        "password",
        "bearer",
        "upstream-header",
        "credential",
    ]
    .iter()
    .any(|w| option.contains(w))
}

/// One setting as a TOML value, secrets masked: every value of a secret
/// option, and the value part of `env = ["NAME=VALUE"]`.
fn shown_value(name: &str, setting: &Setting) -> String {
    let shown: Vec<String> = setting
        .values
        .iter()
        .map(|v| {
            let masked;
            let v = match without_url_password(v) {
                Some(m) => {
                    masked = m;
                    &masked
                }
                None => v,
            };
            if is_secret(name) {
                "\"********\"".to_owned()
            } else if name == "env" {
                match v.split_once('=') {
                    Some((var, _)) => format!("{:?}", format!("{var}=********")),
                    None => "\"********\"".to_owned(),
                }
            } else if v == "true" || v == "false" || v.parse::<i64>().is_ok() {
                v.clone()
            } else {
                format!("{v:?}")
            }
        })
        .collect();
    match shown.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// `scheme://user:password@host…` with its user information masked
/// (`scheme://********@host…`), or `None` when `value` has none.
fn without_url_password(value: &str) -> Option<String> {
    let (scheme, rest) = value.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (_, host) = authority.rsplit_once('@')?;
    let path = &rest[authority.len()..];
    Some(format!("{scheme}://********@{host}{path}"))
}

/// The effective configuration as TOML, secrets masked, each line noting
/// where its value came from.
pub(crate) fn render(layered: &Layered) -> String {
    let mut out = String::new();
    if let Some(file) = &layered.file {
        out.push_str(&format!(
            "# effective configuration (file: {})\n",
            file.display()
        ));
    } else {
        out.push_str("# effective configuration (no file)\n");
    }
    for (name, setting) in &layered.settings {
        out.push_str(&format!(
            "{name} = {}  # {}\n",
            shown_value(name, setting),
            setting.origin
        ));
    }
    if let Some((command, origin)) = &layered.command {
        let shown: Vec<String> = command.iter().map(|c| format!("{c:?}")).collect();
        out.push_str(&format!("command = [{}]  # {origin}\n", shown.join(", ")));
    }
    for (name, server) in &layered.servers {
        let origin = server
            .origin
            .as_ref()
            .map(|o| format!("  # {o}"))
            .unwrap_or_default();
        out.push_str(&format!("\n[servers.{name}]{origin}\n"));
        if layered.default_alias.as_deref() == Some(name.as_str()) {
            out.push_str("# also the default server (/mcp, /sse)\n");
        }
        for (option, setting) in &server.settings {
            out.push_str(&format!(
                "{option} = {}  # {}\n",
                shown_value(option, setting),
                setting.origin
            ));
        }
        if let Some(command) = &server.command {
            let shown: Vec<String> = command.iter().map(|c| format!("{c:?}")).collect();
            out.push_str(&format!("command = [{}]\n", shown.join(", ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::Cli;

    fn file(text: &str) -> PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "mcp-bastion-config-{}-{n}.toml",
            std::process::id()
        ));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn argv(args: &[&str]) -> Vec<OsString> {
        std::iter::once("mcp-bastion")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect()
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn cli(layered: &Layered) -> Cli {
        <Cli as clap::Parser>::try_parse_from(layered.to_args()).unwrap()
    }

    #[test]
    fn compat_then_file_then_flags_then_env_each_replaces_the_one_before() {
        let path = file(
            "listen = \"127.0.0.1:1001\"\nkeepalive_secs = 5\npass-env = [\"A\", \"B\"]\n\
             json-response = true\ncommand = [\"from-file\", \"x\"]\n",
        );
        let p = path.to_str().unwrap();
        let layered = layer::<Cli>(
            &argv(&[
                "--config",
                p,
                "--keepalive-secs",
                "6",
                "--pass-env",
                "C",
                "--",
                "from-flags",
            ]),
            &env(&[
                ("MCP_PROXY_PORT", "1000"),
                ("SHARED_SESSION", "true"),
                ("MCP_BASTION_PASS_ENV", "D,E"),
                ("MCP_BASTION_JSON_RESPONSE", "off"),
            ]),
        )
        .unwrap();
        let cli = cli(&layered);
        assert_eq!(cli.listen.port(), 1001, "the file beats MCP_PROXY_PORT");
        assert_eq!(
            cli.session_mode,
            crate::SessionMode::Shared,
            "SHARED_SESSION applies"
        );
        assert_eq!(cli.keepalive_secs, 6, "a flag beats the file");
        assert_eq!(
            cli.pass_env,
            ["D", "E"],
            "MCP_BASTION_* beats flags, lists replaced whole"
        );
        assert!(
            !cli.json_response,
            "an env switch can turn a file's switch off"
        );
        assert_eq!(
            cli.command,
            ["from-flags"],
            "the command after -- beats the file's"
        );
        assert_eq!(layered.settings["listen"].origin, Origin::File(1));
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn file_errors_name_the_line_the_key_and_what_is_expected() {
        let cases = [
            (
                "command = [\"x\"]\n\nlisten = \"nope\"\n",
                3,
                "listen",
                "invalid",
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
        ];
        for (text, line, key, expected) in cases {
            let path = file(text);
            let e =
                layer::<Cli>(&argv(&["--config", path.to_str().unwrap()]), &env(&[])).unwrap_err();
            assert_eq!(e.line, Some(line), "{text}: {e}");
            assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
            assert!(e.to_string().contains(expected), "{text}: {e}");
            let _ = std::fs::remove_file(path);
        }
        let path = file("listen = [1,\n");
        let e = layer::<Cli>(&argv(&["--config", path.to_str().unwrap()]), &env(&[])).unwrap_err();
        assert!(e.to_string().contains("not valid TOML"), "{e}");
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn mcp_server_config_names_servers_and_one_server_is_also_the_default() {
        let path = file(
            r#"{"mcpServers": {"everything": {"command": "npx", "args": ["-y", "srv"], "env": {"K": "v"}}}}"#,
        );
        let layered = layer::<Cli>(
            &argv(&[]),
            &env(&[
                ("MCP_SERVER_CONFIG", path.to_str().unwrap()),
                ("SHARED_SESSION", "1"),
            ]),
        )
        .unwrap();
        let server = &layered.servers["everything"];
        assert_eq!(
            server.command.as_deref(),
            Some(&["npx".to_owned(), "-y".into(), "srv".into()][..])
        );
        assert_eq!(server.settings["env"].values, ["K=v"]);
        assert_eq!(
            server.settings["session-mode"].values,
            ["shared"],
            "SHARED_SESSION reaches the named server"
        );
        assert_eq!(layered.default_alias.as_deref(), Some("everything"));
        let two = file(
            r#"{"mcpServers": {"a": {"command": "x"}, "b": {"url": "https://example.com/mcp", "headers": {"X-Key": "s3cret"}}}}"#,
        );
        let layered = layer::<Cli>(
            &argv(&["--", "default-server"]),
            &env(&[("MCP_SERVER_CONFIG", two.to_str().unwrap())]),
        )
        .unwrap();
        assert_eq!(layered.servers.len(), 2);
        assert_eq!(
            layered.servers["b"].settings["upstream-header"].values,
            ["X-Key: s3cret"]
        );
        assert_eq!(layered.default_alias, None);
        let text = render(&layered);
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("[servers.b]"), "{text}");
        let bad = file(r#"{"mcpServers": {"a b": {"command": "x"}}}"#);
        let e = layer::<Cli>(
            &argv(&[]),
            &env(&[("MCP_SERVER_CONFIG", bad.to_str().unwrap())]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("invalid name"), "{e}");
        for p in [path, two, bad] {
            let _ = std::fs::remove_file(p);
        }
    }

    #[test]
    fn server_tables_parse_and_their_errors_name_line_key_and_expectation() {
        let path = file(
            "listen = \"127.0.0.1:1\"\npass-env = [\"HOME\"]\n\n[servers.a]\ncommand = [\"x\", \"y\"]\nsession-mode = \"shared\"\nenv = [\"TOKEN=hush\"]\n\n[servers.r_2]\nupstream = \"https://example.com/mcp\"\nupstream-bearer-env = \"REMOTE_TOKEN\"\n",
        );
        let layered =
            layer::<Cli>(&argv(&["--config", path.to_str().unwrap()]), &env(&[])).unwrap();
        assert_eq!(layered.servers.len(), 2);
        assert_eq!(layered.servers["a"].origin, Some(Origin::File(4)));
        assert_eq!(
            layered.servers["a"].settings["pass-env"].values,
            ["HOME"],
            "inherited"
        );
        let text = render(&layered);
        assert!(text.contains("env = \"TOKEN=********\""), "{text}");
        assert!(!text.contains("hush"), "{text}");
        let _ = std::fs::remove_file(path);
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
        ];
        for (text, line, key, expected) in cases {
            let path = file(text);
            let e =
                layer::<Cli>(&argv(&["--config", path.to_str().unwrap()]), &env(&[])).unwrap_err();
            assert_eq!(e.line, Some(line), "{text}: {e}");
            assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
            assert!(e.to_string().contains(expected), "{text}: {e}");
            let _ = std::fs::remove_file(path);
        }
    }

    #[test]
    fn help_and_unknown_flags_are_left_to_clap() {
        for args in [&["--help"][..], &["-h"], &["--no-such-flag"], &["--listen"]] {
            let e = layer::<Cli>(&argv(args), &env(&[])).unwrap_err();
            assert!(is_unparsed(&e), "{args:?}: {e}");
        }
    }

    #[test]
    fn render_masks_secrets_and_names_origins() {
        let mut layered = Layered::default();
        layered.set(
            "api-key",
            Setting {
                values: vec!["sk-very-secret".into()],
                origin: Origin::Env("MCP_BASTION_API_KEY".into()),
            },
        );
        layered.set(
            "listen",
            Setting {
                values: vec!["127.0.0.1:1".into()],
                origin: Origin::File(3),
            },
        );
        let text = render(&layered);
        assert!(!text.contains("sk-very-secret"), "{text}");
        assert!(
            text.contains("api-key = \"********\"  # $MCP_BASTION_API_KEY"),
            "{text}"
        );
        assert!(
            text.contains("listen = \"127.0.0.1:1\"  # config line 3"),
            "{text}"
        );
        layered.set(
            "redis-url",
            Setting {
                values: vec!["redis://:pw-in-url@10.0.0.1:6379/0".into()],
                origin: Origin::Flag,
            },
        );
        let text = render(&layered);
        assert!(!text.contains("pw-in-url"), "{text}");
        assert!(
            text.contains("redis-url = \"redis://********@10.0.0.1:6379/0\"  # flag"),
            "{text}"
        );
    }
}

#[cfg(test)]
mod docs {
    #[test]
    fn every_option_is_documented() {
        let doc = include_str!("../../../docs/configuration.md");
        let missing: Vec<String> = <crate::Cli as clap::CommandFactory>::command()
            .get_arguments()
            .filter_map(|a| a.get_long())
            .filter(|l| !matches!(*l, "help" | "version"))
            .filter(|l| !doc.contains(&format!("| `--{l}")))
            .map(str::to_owned)
            .collect();
        assert!(
            missing.is_empty(),
            "docs/configuration.md lacks a row for: {missing:?}"
        );
    }
}
