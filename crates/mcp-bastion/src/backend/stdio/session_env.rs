//! [`SessionEnv`]: which parts of a session's principal and captured
//! parameters become which variables of its child's environment.
//!
//! Layers only put what they know in the request extensions (the
//! [`Principal`], the [`SessionParams`](crate::session::SessionParams)); the
//! transport hands those extensions to the backend in the
//! [`SessionContext`](crate::backend::SessionContext) of a new session, and
//! this mapping, the backend's own configuration, picks the allowlisted
//! values out of them.

use std::{collections::BTreeMap, fmt, str::FromStr};

use super::{EnvNameError, check_env_name};
use crate::{principal::Principal, upstream_token::UpstreamToken};

/// Where a variable's value comes from: a principal field (`subject`,
/// `claim:<name>`, `env:<name>`), the user's upstream token
/// (`upstream:access_token`), or a captured session parameter
/// (`param:<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvSource {
    /// The principal's subject.
    Subject,
    /// A claim of the principal (strings as is, other JSON values as JSON).
    Claim(String),
    /// An entry of [`Principal::env`] (e.g. from remote auth).
    PrincipalEnv(String),
    /// The user's access token at the identity provider they logged in
    /// with through mcp-bastion's OAuth authorization server (see
    /// [`upstream_token`](crate::upstream_token)), refreshed first if it
    /// is about to expire. Only principals of that server's authenticator
    /// have one; for others the variable is not set. A token that cannot be
    /// had refuses the session.
    UpstreamAccessToken,
    /// A parameter the session layer captured when the session opened.
    #[cfg(feature = "session-layer")]
    Param(String),
}

impl FromStr for EnvSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            None if s == "subject" => Ok(EnvSource::Subject),
            Some(("claim", name)) if !name.is_empty() => Ok(EnvSource::Claim(name.into())),
            Some(("env", name)) if !name.is_empty() => Ok(EnvSource::PrincipalEnv(name.into())),
            Some(("upstream", "access_token")) => Ok(EnvSource::UpstreamAccessToken),
            #[cfg(feature = "session-layer")]
            Some(("param", name)) if !name.is_empty() => Ok(EnvSource::Param(name.into())),
            _ => Err(format!(
                "unknown principal field `{s}`: use subject, claim:<name>, env:<name> or upstream:access_token"
            )),
        }
    }
}

/// Which [`EnvSource`]s become which environment variables of a per-session
/// child ([`StdioBackendBuilder::session_env`](super::StdioBackendBuilder::session_env)).
///
/// Only names that [`check_env_name`] allows can be targets, checked when
/// the mapping is built: nothing a client sends (a URL, a header, a token's
/// claims) ever sets `PATH`, `LD_PRELOAD`, `NODE_OPTIONS` or any name not
/// mapped here. Later entries win when two map the same variable. `Debug`
/// shows the mapping, never a value.
///
/// ```
/// use mcp_bastion::backend::stdio::{EnvSource, SessionEnv};
///
/// let env = SessionEnv::new()
///     .map("MCP_USER", EnvSource::Subject).unwrap()
///     .map("GITHUB_TOKEN", "env:GITHUB_TOKEN".parse().unwrap()).unwrap()
///     .parse_principal_pair("ORG=claim:org").unwrap();
/// assert!(SessionEnv::new().map("LD_PRELOAD", EnvSource::Subject).is_err());
/// assert!(SessionEnv::new().parse_principal_pair("PATH=subject").is_err());
/// # let _ = env;
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SessionEnv {
    entries: Vec<(String, EnvSource)>,
}

impl fmt::Debug for SessionEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.entries.iter()).finish()
    }
}

impl SessionEnv {
    /// No mapping.
    pub fn new() -> Self {
        Self::default()
    }

    /// Maps `source` to the variable `var`.
    ///
    /// # Errors
    ///
    /// The [`EnvNameError`] of a name a session may not set.
    pub fn map(mut self, var: impl Into<String>, source: EnvSource) -> Result<Self, EnvNameError> {
        let var = var.into();
        check_env_name(&var)?;
        self.entries.push((var, source));
        Ok(self)
    }

    /// Maps the captured session parameter `param` to the variable `var`
    /// (the session layer must capture `param`).
    ///
    /// # Errors
    ///
    /// The [`EnvNameError`] of a name a session may not set.
    #[cfg(feature = "session-layer")]
    pub fn param(
        self,
        param: impl Into<String>,
        var: impl Into<String>,
    ) -> Result<Self, EnvNameError> {
        self.map(var, EnvSource::Param(param.into()))
    }

    /// Parses `VAR=FIELD`, a principal field (`subject`, `claim:<name>`,
    /// `env:<name>`, `upstream:access_token`), as the `--principal-env`
    /// option spells it.
    ///
    /// # Errors
    ///
    /// A message for a malformed pair or a refused name.
    pub fn parse_principal_pair(self, pair: &str) -> Result<Self, String> {
        let (var, field) = pair
            .split_once('=')
            .ok_or_else(|| format!("--principal-env expects VAR=FIELD, got `{pair}`"))?;
        let source: EnvSource = field.parse()?;
        #[cfg(feature = "session-layer")]
        if matches!(source, EnvSource::Param(_)) {
            return Err(format!(
                "unknown principal field `{field}`: use subject, claim:<name>, env:<name> or upstream:access_token"
            ));
        }
        self.map(var, source).map_err(|e| e.to_string())
    }

    /// True when nothing is mapped.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a variable is the user's upstream token (then the backend
    /// fetches it before the child starts).
    pub(crate) fn wants_upstream_token(&self) -> bool {
        self.entries
            .iter()
            .any(|(_, s)| *s == EnvSource::UpstreamAccessToken)
    }

    /// The variables this mapping gives a session whose opening request
    /// carried `extensions`, with the user's upstream token when fetched (a
    /// missing principal, parameter or token sets nothing).
    pub(crate) fn resolve(
        &self,
        extensions: &http::Extensions,
        upstream: Option<&UpstreamToken>,
    ) -> BTreeMap<String, String> {
        let principal = extensions.get::<Principal>();
        #[cfg(feature = "session-layer")]
        let params = extensions.get::<crate::session::SessionParams>();
        let mut env = BTreeMap::new();
        for (var, source) in &self.entries {
            let value = match source {
                EnvSource::Subject => principal.map(|p| p.subject().to_owned()),
                EnvSource::Claim(name) => principal.and_then(|p| p.claim(name)).map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                }),
                EnvSource::PrincipalEnv(name) => principal.and_then(|p| p.env().get(name).cloned()),
                EnvSource::UpstreamAccessToken => upstream.map(|t| t.secret().to_owned()),
                #[cfg(feature = "session-layer")]
                EnvSource::Param(name) => params.and_then(|p| p.get(name)).map(str::to_owned),
            };
            if let Some(value) = value {
                env.insert(var.clone(), value);
            }
        }
        env
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use serde_json::json;

    use super::*;

    #[test]
    fn principal_fields_map_only_to_allowlisted_names() {
        let env = SessionEnv::new()
            .parse_principal_pair("MCP_USER=subject")
            .unwrap()
            .parse_principal_pair("ORG=claim:org")
            .unwrap()
            .parse_principal_pair("GH=env:GITHUB_TOKEN")
            .unwrap()
            .parse_principal_pair("IDP_TOKEN=upstream:access_token")
            .unwrap();
        assert!(env.wants_upstream_token());
        assert!(!SessionEnv::new().wants_upstream_token());
        assert!(
            SessionEnv::new()
                .parse_principal_pair("X=upstream:refresh_token")
                .is_err(),
            "the refresh token is never handed out"
        );
        assert!(
            SessionEnv::new()
                .parse_principal_pair("PATH=subject")
                .is_err()
        );
        assert!(
            SessionEnv::new()
                .parse_principal_pair("X=password")
                .is_err()
        );
        assert!(SessionEnv::new().parse_principal_pair("X=param:p").is_err());
        let mut claims = serde_json::Map::new();
        claims.insert("org".into(), json!("acme"));
        let p = Principal::new("alice")
            .with_claims(claims)
            .with_env([("GITHUB_TOKEN", "ghp_x"), ("OTHER", "y")]);
        let mut ext = http::Extensions::new();
        ext.insert(p);
        let token = crate::upstream_token::UpstreamToken::new("idp-access");
        let child = env.resolve(&ext, Some(&token));
        assert_eq!(
            child.get("IDP_TOKEN").map(String::as_str),
            Some("idp-access")
        );
        let child = env.resolve(&ext, None);
        assert_eq!(child.get("MCP_USER").map(String::as_str), Some("alice"));
        assert_eq!(child.get("ORG").map(String::as_str), Some("acme"));
        assert_eq!(child.get("GH").map(String::as_str), Some("ghp_x"));
        assert_eq!(child.len(), 3, "nothing unmapped: {child:?}");
        assert!(env.resolve(&http::Extensions::new(), None).is_empty());
    }

    #[cfg(feature = "session-layer")]
    #[test]
    fn captured_params_map_to_allowlisted_names_and_win_when_later() {
        for var in [
            "PATH",
            "LD_PRELOAD",
            "DYLD_INSERT_LIBRARIES",
            "NODE_OPTIONS",
            "PYTHONPATH",
            "ld_audit",
        ] {
            assert!(
                matches!(
                    SessionEnv::new().param("token", var),
                    Err(EnvNameError::Reserved(_))
                ),
                "{var}"
            );
        }
        assert!(SessionEnv::new().param("t", "A=B").is_err());
        let env = SessionEnv::new()
            .parse_principal_pair("TOKEN=subject")
            .unwrap()
            .param("github_token", "TOKEN")
            .unwrap()
            .param("region", "REGION")
            .unwrap();
        let mut ext = http::Extensions::new();
        ext.insert(Principal::new("alice"));
        ext.insert(crate::session::SessionParams::new([(
            "github_token",
            "ghp_one",
        )]));
        let child = env.resolve(&ext, None);
        assert_eq!(child.get("TOKEN").map(String::as_str), Some("ghp_one"));
        assert_eq!(child.get("REGION"), None, "no param, no variable");
    }

    #[test]
    fn debug_shows_the_mapping_only() {
        let env = SessionEnv::new()
            .map("MCP_USER", EnvSource::Subject)
            .unwrap();
        assert_eq!(format!("{env:?}"), r#"[("MCP_USER", Subject)]"#);
    }
}
