//! Where a setting came from, and the error that names it.

use std::{fmt, path::PathBuf};

/// Where one setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// A compatibility variable of other MCP proxies (`AUTH_KEY`…).
    Compat(String),
    /// The TOML file, at this line (0 when unknown).
    File(usize),
    /// An `MCP_BASTION_*` variable.
    Env(String),
    /// A command-line flag.
    Flag,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::Compat(var) | Origin::Env(var) => write!(f, "${var}"),
            Origin::File(line) => write!(f, "config line {line}"),
            Origin::Flag => f.write_str("flag"),
        }
    }
}

/// A configuration error: where (file and line, variable or flag), which
/// key, and what was expected. Never quotes a secret's value beyond what the
/// operator wrote in the offending place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the error is in, when it is in one.
    pub file: Option<PathBuf>,
    /// The source of the offending value, when known.
    pub origin: Option<Origin>,
    /// The key (`listen`, `servers.a.session-mode`), when one is at fault.
    pub key: Option<String>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl ConfigError {
    /// An error of the file at `line` (0: the whole file).
    pub fn in_file(
        file: &std::path::Path,
        line: usize,
        key: Option<&str>,
        message: String,
    ) -> Self {
        Self {
            file: Some(file.to_path_buf()),
            origin: Some(Origin::File(line)),
            key: key.map(str::to_owned),
            message,
        }
    }

    /// An error of a variable (`MCP_BASTION_*` or a compatibility one).
    pub fn in_variable(var: &str, key: Option<&str>, message: String) -> Self {
        Self {
            file: None,
            origin: Some(Origin::Env(var.to_owned())),
            key: key.map(str::to_owned),
            message,
        }
    }

    /// The file's line at fault, if any.
    pub fn line(&self) -> Option<usize> {
        match self.origin {
            Some(Origin::File(line)) if line > 0 => Some(line),
            _ => None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.origin, &self.file) {
            (Some(Origin::File(line)), Some(file)) if *line > 0 => {
                write!(f, "{}:{line}: ", file.display())?;
            }
            (_, Some(file)) => write!(f, "{}: ", file.display())?,
            (Some(Origin::Compat(var) | Origin::Env(var)), None) => write!(f, "${var}: ")?,
            (Some(Origin::Flag), None) => f.write_str("flag ")?,
            _ => {}
        }
        match (&self.origin, &self.key) {
            (Some(Origin::Flag), Some(key)) => write!(f, "--{key}: ")?,
            (_, Some(key)) => write!(f, "`{key}`: ")?,
            (_, None) => {}
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}
