//! `check-config`'s output: every effective value with its source, as TOML,
//! secrets masked.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Loaded, ServerConfig, sources::COMMAND};

/// Whether an option's values are secrets to mask when printed. Of the
/// header options only `upstream-header` carries values (credentials);
/// `capture-header`, `header-read-timeout` and `max-header-bytes` do not.
pub fn is_secret(option: &str) -> bool {
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

/// `scheme://user:password@host…` with its user information masked
/// (`scheme://********@host…`), or `None` when `value` has none.
fn without_url_password(value: &str) -> Option<String> {
    let (scheme, rest) = value.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (_, host) = authority.rsplit_once('@')?;
    let path = &rest[authority.len()..];
    Some(format!("{scheme}://********@{host}{path}"))
}

/// One value as TOML, secrets masked: every value of a secret option, the
/// value part of `env = ["NAME=VALUE"]`, the password of a URL.
fn shown_value(name: &str, values: &[String]) -> String {
    let shown: Vec<String> = values
        .iter()
        .map(|v| {
            let v = without_url_password(v).unwrap_or_else(|| v.clone());
            if is_secret(name) {
                "\"********\"".to_owned()
            } else if name == "env" {
                match v.split_once('=') {
                    Some((var, _)) => format!("{:?}", format!("{var}=********")),
                    None => "\"********\"".to_owned(),
                }
            } else if v == "true" || v == "false" || v.parse::<i64>().is_ok() {
                v
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

/// A serialized value as its texts; `None` when unset (null or an empty list).
fn texts(value: &Value) -> Option<Vec<String>> {
    let one = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match value {
        Value::Null => None,
        Value::Array(items) if items.is_empty() => None,
        Value::Array(items) => Some(items.iter().map(one).collect()),
        other => Some(vec![one(other)]),
    }
}

/// The options of serializable groups by key, unset ones left out.
fn settings(groups: &[serde_json::Result<Value>]) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for group in groups {
        if let Ok(Value::Object(map)) = group {
            for (key, value) in map {
                if let Some(texts) = texts(value) {
                    out.insert(key.clone(), texts);
                }
            }
        }
    }
    out.remove(COMMAND);
    out
}

fn command_line(command: &[String]) -> String {
    let shown: Vec<String> = command.iter().map(|c| format!("{c:?}")).collect();
    format!("command = [{}]", shown.join(", "))
}

pub(super) fn render(loaded: &Loaded) -> String {
    let config = &loaded.config;
    let mut out = match loaded.file() {
        Some(file) => format!("# effective configuration (file: {})\n", file.display()),
        None => "# effective configuration (no file)\n".to_owned(),
    };
    let top = settings(&[
        serde_json::to_value(&config.general),
        serde_json::to_value(&config.serve),
        serde_json::to_value(&config.auth),
        serde_json::to_value(&config.rate_limit),
        serde_json::to_value(&config.session),
        serde_json::to_value(&config.oauth),
        serde_json::to_value(&config.server),
    ]);
    for (key, values) in &top {
        out.push_str(&format!(
            "{key} = {}  # {}\n",
            shown_value(key, values),
            loaded.origin(key)
        ));
    }
    if !config.server.command.is_empty() {
        out.push_str(&format!(
            "{}  # {}\n",
            command_line(&config.server.command),
            loaded.origin(COMMAND)
        ));
    }
    for (name, own) in &loaded.own_servers {
        render_server(loaded, name, own, &mut out);
    }
    out
}

fn render_server(loaded: &Loaded, name: &str, own: &ServerConfig, out: &mut String) {
    let key = format!("servers.{name}");
    out.push_str(&format!("\n[{key}]  # {}\n", loaded.origin(&key)));
    if loaded.config.default_alias.as_deref() == Some(name) {
        out.push_str("# also the default server (/mcp, /sse)\n");
    }
    for (option, values) in settings(&[serde_json::to_value(own)]) {
        out.push_str(&format!(
            "{option} = {}  # {}\n",
            shown_value(&option, &values),
            loaded.origin(&format!("{key}.{option}"))
        ));
    }
    if !own.command.is_empty() {
        out.push_str(&format!("{}\n", command_line(&own.command)));
    }
}
