//! `WWW-Authenticate` challenges (RFC 6750 §3, RFC 9110 §11.6.1) with safe
//! quoting: parameter values are quoted strings in which `"` and `\` are
//! escaped and anything that is not visible ASCII or a space is dropped, so
//! no value can break out of its parameter or inject a header.

use std::fmt::{self, Write as _};

/// One `WWW-Authenticate` challenge: a scheme and its parameters.
///
/// ```
/// use mcp_bastion::auth::Challenge;
///
/// let c = Challenge::bearer()
///     .param("resource_metadata", "https://mcp.example.com/.well-known/oauth-protected-resource")
///     .param("error_description", "say \"hi\"\r\nX-Evil: 1");
/// assert_eq!(
///     c.to_string(),
///     r#"Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource", error_description="say \"hi\"X-Evil: 1""#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    scheme: &'static str,
    params: Vec<(&'static str, String)>,
}

impl Challenge {
    /// A `Bearer` challenge without parameters.
    pub fn bearer() -> Self {
        Self {
            scheme: "Bearer",
            params: Vec::new(),
        }
    }

    /// Adds `name="value"`; the value is sanitized and quoted when written.
    pub fn param(mut self, name: &'static str, value: &str) -> Self {
        self.params.push((name, value.to_owned()));
        self
    }
}

/// Writes `value` as an RFC 9110 quoted-string.
pub(crate) fn quote(value: &str, out: &mut impl fmt::Write) -> fmt::Result {
    out.write_char('"')?;
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.write_char('\\')?;
                out.write_char(c)?;
            }
            ' '..='~' => out.write_char(c)?,
            _ => {}
        }
    }
    out.write_char('"')
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme)?;
        for (i, (name, value)) in self.params.iter().enumerate() {
            f.write_str(if i == 0 { " " } else { ", " })?;
            f.write_str(name)?;
            f.write_char('=')?;
            quote(value, f)?;
        }
        Ok(())
    }
}
