//! [`PrincipalEnv`]: allowlisted principal fields into the stdio child's
//! environment.

use std::{fmt, str::FromStr};

use crate::{
    backend::stdio::{ChildEnv, EnvNameError, check_env_name},
    principal::Principal,
};

/// A principal field: `subject`, `claim:<name>` or `env:<name>` (an entry
/// of the principal's env map, e.g. from remote auth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalField {
    /// The subject.
    Subject,
    /// A claim (strings as is, other JSON values as JSON).
    Claim(String),
    /// An entry of [`Principal::env`].
    Env(String),
}

impl FromStr for PrincipalField {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            None if s == "subject" => Ok(PrincipalField::Subject),
            Some(("claim", name)) if !name.is_empty() => Ok(PrincipalField::Claim(name.into())),
            Some(("env", name)) if !name.is_empty() => Ok(PrincipalField::Env(name.into())),
            _ => Err(format!(
                "unknown principal field `{s}`: use subject, claim:<name> or env:<name>"
            )),
        }
    }
}

/// Which principal fields become which environment variables of a
/// per-session stdio child. Only names that
/// [`check_env_name`] allows can be targets, checked when the mapping is
/// built; nothing else about a principal ever reaches the environment.
///
/// ```
/// use mcp_bastion::auth::PrincipalEnv;
///
/// let env = PrincipalEnv::new()
///     .map("MCP_USER", "subject".parse().unwrap()).unwrap()
///     .map("GITHUB_TOKEN", "env:GITHUB_TOKEN".parse().unwrap()).unwrap();
/// assert!(PrincipalEnv::new().map("LD_PRELOAD", "subject".parse().unwrap()).is_err());
/// # let _ = env;
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PrincipalEnv {
    entries: Vec<(String, PrincipalField)>,
}

impl fmt::Debug for PrincipalEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.entries.iter()).finish()
    }
}

impl PrincipalEnv {
    /// No mapping.
    pub fn new() -> Self {
        Self::default()
    }

    /// Maps `field` to the variable `var`.
    ///
    /// # Errors
    ///
    /// The [`EnvNameError`] of a name a session may not set.
    pub fn map(
        mut self,
        var: impl Into<String>,
        field: PrincipalField,
    ) -> Result<Self, EnvNameError> {
        let var = var.into();
        check_env_name(&var)?;
        self.entries.push((var, field));
        Ok(self)
    }

    /// Parses `VAR=FIELD`.
    ///
    /// # Errors
    ///
    /// A message for a malformed pair or a refused name.
    pub fn parse_pair(self, pair: &str) -> Result<Self, String> {
        let (var, field) = pair
            .split_once('=')
            .ok_or_else(|| format!("--principal-env expects VAR=FIELD, got `{pair}`"))?;
        self.map(var, field.parse()?).map_err(|e| e.to_string())
    }

    /// True when nothing is mapped.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Extends the request's [`ChildEnv`] with the principal's fields.
    pub fn apply(&self, principal: &Principal, extensions: &mut http::Extensions) {
        let env = extensions.get_or_insert_default::<ChildEnv>();
        for (var, field) in &self.entries {
            let value = match field {
                PrincipalField::Subject => Some(principal.subject().to_owned()),
                PrincipalField::Claim(name) => principal.claim(name).map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                }),
                PrincipalField::Env(name) => principal.env().get(name).cloned(),
            };
            if let Some(value) = value {
                env.0.insert(var.clone(), value);
            }
        }
    }
}
