use serde_json::Value;

use super::{KeyBy, Limit};
use crate::principal::Principal;

/// Which limits apply: a default for every request, limits per JSON-RPC
/// method, and limits per tool. Every limit is counted per its own key (the
/// policy's key unless it names one).
///
/// ```
/// use mcp_bastion::ratelimit::{KeyBy, RateLimitPolicy};
///
/// let policy = RateLimitPolicy::new()
///     .key(KeyBy::Principal)
///     .default_limit("100/min".parse().unwrap())
///     .method("resources/read", "30/min".parse().unwrap())
///     .tool("expensive", "5/min".parse().unwrap())
///     .tool_keyed("search", "1/s gcra burst=5".parse().unwrap(), KeyBy::Ip);
/// assert_eq!(policy.tools().len(), 2);
/// ```
#[derive(Debug, Clone, Default)]
pub struct RateLimitPolicy {
    pub(crate) key: KeyBy,
    pub(crate) default: Option<Limit>,
    pub(crate) methods: Vec<MethodLimit>,
    pub(crate) tools: Vec<ToolLimit>,
}

/// A limit on one JSON-RPC method (`tools/call`, `resources/read`…): each
/// message with that method counts once, batches included.
#[derive(Debug, Clone)]
pub struct MethodLimit {
    /// The method.
    pub method: String,
    /// The limit.
    pub limit: Limit,
    /// Its key; `None` uses the policy's.
    pub key: Option<KeyBy>,
}

/// A limit on one tool: each `tools/call` naming it counts once, batches
/// included. Other tools and other keys are untouched by it.
#[derive(Debug, Clone)]
pub struct ToolLimit {
    /// The tool name, as in `tools/call` `params.name`.
    pub tool: String,
    /// The limit.
    pub limit: Limit,
    /// Its key; `None` uses the policy's.
    pub key: Option<KeyBy>,
}

impl RateLimitPolicy {
    /// No limits, keyed by client IP.
    pub fn new() -> Self {
        Self::default()
    }

    /// The key of every limit that does not name its own (default: IP).
    pub fn key(mut self, key: KeyBy) -> Self {
        self.key = key;
        self
    }

    /// A limit on every request (each request of a batch counts once;
    /// notifications, responses and `DELETE` do not count; a `GET` stream
    /// counts once).
    pub fn default_limit(mut self, limit: Limit) -> Self {
        self.default = Some(limit);
        self
    }

    /// A limit on one JSON-RPC method.
    pub fn method(self, method: impl Into<String>, limit: Limit) -> Self {
        self.method_limit(MethodLimit {
            method: method.into(),
            limit,
            key: None,
        })
    }

    /// Adds or replaces a method limit.
    pub fn method_limit(mut self, limit: MethodLimit) -> Self {
        self.methods.retain(|m| m.method != limit.method);
        self.methods.push(limit);
        self
    }

    /// A limit on one tool.
    pub fn tool(self, tool: impl Into<String>, limit: Limit) -> Self {
        self.tool_limit(ToolLimit {
            tool: tool.into(),
            limit,
            key: None,
        })
    }

    /// A limit on one tool with its own key.
    pub fn tool_keyed(self, tool: impl Into<String>, limit: Limit, key: KeyBy) -> Self {
        self.tool_limit(ToolLimit {
            tool: tool.into(),
            limit,
            key: Some(key),
        })
    }

    /// Adds or replaces a tool limit.
    pub fn tool_limit(mut self, limit: ToolLimit) -> Self {
        self.tools.retain(|t| t.tool != limit.tool);
        self.tools.push(limit);
        self
    }

    /// The default limit.
    pub fn limit(&self) -> Option<&Limit> {
        self.default.as_ref()
    }

    /// The method limits.
    pub fn methods(&self) -> &[MethodLimit] {
        &self.methods
    }

    /// The tool limits.
    pub fn tools(&self) -> &[ToolLimit] {
        &self.tools
    }
}

/// Selects a tier's policy for a [`Principal`]: the first tier whose match
/// holds replaces the base policy for that request. Requests without a
/// principal always get the base policy.
#[derive(Debug, Clone, PartialEq)]
pub enum TierMatch {
    /// The principal was granted this scope.
    Scope(String),
    /// The principal's claim equals this value (strings also match inside a
    /// claim that is an array, e.g. `groups`).
    Claim {
        /// The claim name.
        name: String,
        /// The value it must have.
        value: Value,
    },
}

impl TierMatch {
    /// Matches a scope.
    pub fn scope(scope: impl Into<String>) -> Self {
        TierMatch::Scope(scope.into())
    }

    /// Matches a claim value.
    pub fn claim(name: impl Into<String>, value: impl Into<Value>) -> Self {
        TierMatch::Claim {
            name: name.into(),
            value: value.into(),
        }
    }

    /// Whether `principal` is in this tier.
    pub fn matches(&self, principal: &Principal) -> bool {
        match self {
            TierMatch::Scope(s) => principal.has_scope(s),
            TierMatch::Claim { name, value } => match principal.claim(name) {
                Some(Value::Array(items)) => items.contains(value),
                Some(v) => v == value,
                None => false,
            },
        }
    }
}
