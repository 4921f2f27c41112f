//! The link-time registry that `#[rate_limit]` fills.

use super::{KeyBy, Limit, ToolLimit};

/// A tool limit declared in code with `#[rate_limit("10/min")]` from
/// `mcp-bastion-macros`. The layer picks every declaration linked into the
/// binary up with
/// [`with_declared_tool_limits`](super::McpRateLimitLayer::with_declared_tool_limits).
#[derive(Debug)]
pub struct DeclaredToolLimit {
    /// The tool name.
    pub tool: &'static str,
    /// The limit, as written (checked by the macro at compile time).
    pub limit: &'static str,
    /// `principal`, `ip` or `session`; `None` for the policy's key.
    pub key: Option<&'static str>,
    /// Where it was declared (`file:line`).
    pub location: &'static str,
}

inventory::collect!(DeclaredToolLimit);

impl DeclaredToolLimit {
    /// The declaration as a [`ToolLimit`].
    pub fn to_tool_limit(&self) -> Result<ToolLimit, String> {
        let limit: Limit = self
            .limit
            .parse()
            .map_err(|e| format!("{e} at {}", self.location))?;
        let key = self
            .key
            .map(str::parse::<KeyBy>)
            .transpose()
            .map_err(|e| format!("{e} at {}", self.location))?;
        Ok(ToolLimit {
            tool: self.tool.to_owned(),
            limit,
            key,
        })
    }
}

/// Every `#[rate_limit]` declaration linked into this binary.
pub fn declared_tool_limits() -> impl Iterator<Item = &'static DeclaredToolLimit> {
    inventory::iter::<DeclaredToolLimit>.into_iter()
}
