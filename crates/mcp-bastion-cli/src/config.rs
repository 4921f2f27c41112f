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
}

impl Layered {
    /// Puts `setting` over whatever a lower source said.
    fn set(&mut self, name: &str, setting: Setting) {
        self.settings.insert(name.to_owned(), setting);
    }

    /// The argument list for clap.
    pub(crate) fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["mcp-bastion".into()];
        for (name, setting) in &self.settings {
            match self.kinds.get(name).copied() {
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
        if let Some((command, _)) = &self.command {
            args.push("--".into());
            args.extend(command.iter().map(OsString::from));
        }
        args
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

fn from_toml<C: CommandFactory>(
    schema: &Schema,
    path: &Path,
    text: &str,
    out: &mut Layered,
) -> Result<(), ConfigError> {
    let err = |line: Option<usize>, key: Option<&str>, message: String| ConfigError {
        file: Some(path.to_path_buf()),
        line,
        key: key.map(str::to_owned),
        message,
    };
    let table = toml::de::DeTable::parse(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        err(line, None, format!("not valid TOML: {}", e.message()))
    })?;
    // A parser that checks one value at a time (the command is not required
    // there).
    let mut check = C::command().mut_arg(COMMAND, |a| a.required(false));
    for (key, value) in table.get_ref() {
        let raw_key = key.get_ref().to_string();
        let name = raw_key.replace('_', "-");
        let line = line_of(text, key.span().start);
        if name == COMMAND {
            let Some(items) = value.get_ref().as_array() else {
                return Err(err(
                    Some(line),
                    Some(&raw_key),
                    "expected an array of strings: the program and its arguments".into(),
                ));
            };
            let command: Option<Vec<String>> = items.iter().map(|v| scalar(v.get_ref())).collect();
            let Some(command) = command.filter(|c| !c.is_empty()) else {
                return Err(err(
                    Some(line),
                    Some(&raw_key),
                    "expected a non-empty array of strings".into(),
                ));
            };
            out.command = Some((command, Origin::File(line)));
            continue;
        }
        let Some((takes_value, repeatable)) = schema.get(&name).filter(|_| name != CONFIG) else {
            let known: BTreeSet<&str> = schema
                .options
                .keys()
                .map(String::as_str)
                .filter(|k| *k != CONFIG)
                .chain([COMMAND])
                .collect();
            return Err(err(
                Some(line),
                Some(&raw_key),
                format!(
                    "unknown key; expected one of: {}",
                    known.into_iter().collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        let values: Vec<String> = match value.get_ref() {
            toml::de::DeValue::Array(items) if repeatable => {
                let parsed: Option<Vec<String>> =
                    items.iter().map(|v| scalar(v.get_ref())).collect();
                parsed.ok_or_else(|| {
                    err(
                        Some(line),
                        Some(&raw_key),
                        "expected an array of strings or numbers".into(),
                    )
                })?
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
                    return Err(err(
                        Some(line),
                        Some(&raw_key),
                        format!("expected {expected}, got {}", other.type_str()),
                    ));
                };
                vec![v]
            }
        };
        if !takes_value {
            if !values.iter().all(|v| v == "true" || v == "false") {
                return Err(err(
                    Some(line),
                    Some(&raw_key),
                    "expected true or false".into(),
                ));
            }
        } else {
            let mut args: Vec<String> = vec!["mcp-bastion".into()];
            for v in &values {
                args.push(format!("--{name}"));
                args.push(v.clone());
            }
            if let Err(e) = check.try_get_matches_from_mut(args) {
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
                return Err(err(Some(line), Some(&raw_key), format!("{first}{hint}")));
            }
        }
        out.set(
            &name,
            Setting {
                values,
                origin: Origin::File(line),
            },
        );
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
        out.command = Some((
            server_config_command(Path::new(path))?,
            Origin::Compat("MCP_SERVER_CONFIG"),
        ));
    }
    Ok(())
}

/// The one server of an `{"mcpServers": {"name": {"command", "args"}}}` file,
/// the format MCP clients and proxies share.
fn server_config_command(path: &Path) -> Result<Vec<String>, ConfigError> {
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
    let mut iter = servers.iter();
    let (Some((name, server)), None) = (iter.next(), iter.next()) else {
        return Err(err(format!(
            "expected exactly one server in `mcpServers`, found {}",
            servers.len()
        )));
    };
    let program = server
        .get("command")
        .and_then(|c| c.as_str())
        .ok_or_else(|| err(format!("server `{name}` has no `command` string")))?;
    let mut command = vec![program.to_owned()];
    if let Some(args) = server.get("args") {
        let args = args
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| {
                err(format!(
                    "server `{name}`: `args` must be an array of strings"
                ))
            })?;
        command.extend(args);
    }
    Ok(command)
}

/// Whether an option's values are secrets to mask when printed.
pub(crate) fn is_secret(option: &str) -> bool {
    [
        "key",
        "secret",
        "token",
        "password",
        "bearer",
        "header",
        "credential",
    ]
    .iter()
    .any(|w| option.contains(w))
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
        let shown: Vec<String> = setting
            .values
            .iter()
            .map(|v| {
                if is_secret(name) {
                    "\"********\"".to_owned()
                } else if v == "true" || v == "false" || v.parse::<i64>().is_ok() {
                    v.clone()
                } else {
                    format!("{v:?}")
                }
            })
            .collect();
        let value = match shown.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        out.push_str(&format!("{name} = {value}  # {}\n", setting.origin));
    }
    if let Some((command, origin)) = &layered.command {
        let shown: Vec<String> = command.iter().map(|c| format!("{c:?}")).collect();
        out.push_str(&format!("command = [{}]  # {origin}\n", shown.join(", ")));
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
    fn mcp_server_config_supplies_the_command() {
        let path =
            file(r#"{"mcpServers": {"everything": {"command": "npx", "args": ["-y", "srv"]}}}"#);
        let layered = layer::<Cli>(
            &argv(&[]),
            &env(&[("MCP_SERVER_CONFIG", path.to_str().unwrap())]),
        )
        .unwrap();
        assert_eq!(cli(&layered).command, ["npx", "-y", "srv"]);
        let two = file(r#"{"mcpServers": {"a": {"command": "x"}, "b": {"command": "y"}}}"#);
        let e = layer::<Cli>(
            &argv(&[]),
            &env(&[("MCP_SERVER_CONFIG", two.to_str().unwrap())]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("exactly one server"), "{e}");
        let _ = std::fs::remove_file(path);
        let _ = std::fs::remove_file(two);
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
