//! The child's environment: what the operator allows, what a session may add,
//! and the names a session can never set.

use std::{
    collections::BTreeMap,
    ffi::{OsStr, OsString},
};

use super::TARGET;

/// Names a session can never set: each changes which code the child runs or
/// how it finds it (`PATH`, `NODE_OPTIONS`, `BASH_ENV`…) or where it reads its
/// configuration from (`HOME`, `SHELL`).
///
/// Compared without regard to ASCII case. [`RESERVED_ENV_PREFIXES`] lists the
/// families refused by prefix.
pub const RESERVED_ENV_NAMES: &[&str] = &[
    "PATH",
    "NODE_OPTIONS",
    "NODE_PATH",
    "PERL5LIB",
    "PERL5OPT",
    "RUBYOPT",
    "RUBYLIB",
    "BASH_ENV",
    "ENV",
    "IFS",
    "SHELL",
    "HOME",
];

/// Name prefixes a session can never set: the dynamic loader (`LD_PRELOAD`,
/// `DYLD_INSERT_LIBRARIES`…) and the Python interpreter (`PYTHONPATH`,
/// `PYTHONSTARTUP`…). Compared without regard to ASCII case.
pub const RESERVED_ENV_PREFIXES: &[&str] = &["LD_", "DYLD_", "PYTHON"];

/// Why an environment variable name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvNameError {
    /// The name is empty.
    #[error("environment variable name is empty")]
    Empty,
    /// The name contains `=` or NUL, which cannot appear in a name.
    #[error("environment variable name {0:?} contains `=` or NUL")]
    InvalidCharacter(String),
    /// The name changes what code the child runs; a session may never set it.
    #[error("environment variable {0:?} may not be set per session")]
    Reserved(String),
}

/// Checks that a session may set the environment variable `name`.
///
/// Refuses empty names, names with `=` or NUL, [`RESERVED_ENV_NAMES`] and
/// names starting with one of [`RESERVED_ENV_PREFIXES`] (ignoring ASCII
/// case). Configuration uses it to refuse, at startup, a capture or claim
/// mapping that targets such a name; at run time the backend drops the entry
/// with a warning.
///
/// Names the operator sets directly ([`StdioBackendBuilder::env`] and
/// [`inherit_env`]) are not restricted: the operator may set `PATH`.
///
/// # Errors
///
/// An [`EnvNameError`] saying why the name is refused.
///
/// [`StdioBackendBuilder::env`]: super::StdioBackendBuilder::env
/// [`inherit_env`]: super::StdioBackendBuilder::inherit_env
///
/// ```
/// use mcp_bastion::backend::stdio::{EnvNameError, check_env_name};
///
/// assert!(check_env_name("GITHUB_TOKEN").is_ok());
/// assert!(matches!(check_env_name("LD_PRELOAD"), Err(EnvNameError::Reserved(_))));
/// assert!(matches!(check_env_name("PythonPath"), Err(EnvNameError::Reserved(_))));
/// assert!(matches!(check_env_name("A=B"), Err(EnvNameError::InvalidCharacter(_))));
/// ```
pub fn check_env_name(name: &str) -> Result<(), EnvNameError> {
    check_name_syntax(name)?;
    let upper = name.to_ascii_uppercase();
    let reserved = RESERVED_ENV_NAMES.contains(&upper.as_str())
        || RESERVED_ENV_PREFIXES.iter().any(|p| upper.starts_with(p));
    if reserved {
        return Err(EnvNameError::Reserved(name.to_owned()));
    }
    Ok(())
}

/// The checks every name passes, including the operator's own.
pub(crate) fn check_name_syntax(name: &str) -> Result<(), EnvNameError> {
    if name.is_empty() {
        return Err(EnvNameError::Empty);
    }
    if name.contains(['=', '\0']) {
        return Err(EnvNameError::InvalidCharacter(name.to_owned()));
    }
    Ok(())
}

/// The complete environment of a child, built in order (later entries win):
/// the `inherit` names with the proxy's own values, the operator's `fixed`
/// entries, then the session's entries (from the
/// [`SessionEnv`](super::SessionEnv) mapping) that [`check_env_name`] allows.
pub(crate) fn child_environment(
    inherit: &[String],
    fixed: &BTreeMap<String, String>,
    session: &BTreeMap<String, String>,
) -> BTreeMap<OsString, OsString> {
    let mut env = BTreeMap::new();
    for name in inherit {
        if let Some(value) = std::env::var_os(name) {
            env.insert(OsString::from(name), value);
        }
    }
    for (name, value) in fixed {
        env.insert(OsString::from(name), OsString::from(value));
    }
    // The mapping refused these names already; checked again because the
    // environment is where a mistake would do harm.
    for (name, value) in session {
        if let Err(why) = check_env_name(name) {
            tracing::warn!(target: TARGET, name = ?name, "dropping a per-session environment variable: {why}");
            continue;
        }
        if value.contains('\0') {
            tracing::warn!(target: TARGET, name = ?name, "dropping a per-session environment variable: its value contains NUL");
            continue;
        }
        env.insert(OsString::from(name), OsString::from(value));
    }
    env
}

/// The names in an environment, for logs (never the values).
pub(crate) fn names(env: &BTreeMap<OsString, OsString>) -> Vec<&OsStr> {
    env.keys().map(OsString::as_os_str).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names_are_refused_per_session() {
        for name in [
            "PATH",
            "path",
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "DYLD_INSERT_LIBRARIES",
            "NODE_OPTIONS",
            "NODE_PATH",
            "PYTHONPATH",
            "PYTHONSTARTUP",
            "PERL5LIB",
            "PERL5OPT",
            "RUBYOPT",
            "RUBYLIB",
            "BASH_ENV",
            "ENV",
            "IFS",
            "SHELL",
            "HOME",
        ] {
            assert_eq!(
                check_env_name(name),
                Err(EnvNameError::Reserved(name.into())),
                "{name}"
            );
        }
    }

    #[test]
    fn malformed_names_are_refused() {
        assert_eq!(check_env_name(""), Err(EnvNameError::Empty));
        assert!(matches!(
            check_env_name("A=B"),
            Err(EnvNameError::InvalidCharacter(_))
        ));
        assert!(matches!(
            check_env_name("A\0B"),
            Err(EnvNameError::InvalidCharacter(_))
        ));
    }

    #[test]
    fn ordinary_names_are_allowed() {
        for name in [
            "GITHUB_TOKEN",
            "API_KEY",
            "TENANT",
            "NODE_ENV",
            "LANG",
            "PATHS",
        ] {
            assert_eq!(check_env_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn session_entries_override_fixed_ones_and_reserved_ones_are_dropped() {
        let fixed = BTreeMap::from([
            ("PATH".to_owned(), "/opt/bin".to_owned()),
            ("REGION".to_owned(), "eu".to_owned()),
        ]);
        let session = [
            ("REGION", "us"),
            ("PATH", "/tmp/evil"),
            ("LD_PRELOAD", "/tmp/evil.so"),
            ("TOKEN", "a\0b"),
            ("USER_TOKEN", "t"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let env = child_environment(&[], &fixed, &session);
        let get = |k: &str| env.get(OsStr::new(k)).and_then(|v| v.to_str());
        assert_eq!(get("PATH"), Some("/opt/bin"));
        assert_eq!(get("REGION"), Some("us"));
        assert_eq!(get("USER_TOKEN"), Some("t"));
        assert_eq!(get("LD_PRELOAD"), None);
        assert_eq!(get("TOKEN"), None);
        assert_eq!(env.len(), 3);
    }
}
