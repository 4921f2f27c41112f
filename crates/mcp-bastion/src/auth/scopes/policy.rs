use std::collections::{BTreeMap, BTreeSet};

use crate::{jsonrpc::Message, principal::Principal};

/// Which scopes each tool, method, resource URI pattern and prompt needs.
///
/// A message needs the union of: its method's scopes, and for `tools/call`
/// its tool's, for `resources/read` the scopes of every resource pattern its
/// URI matches (`*` matches any run of characters), for `prompts/get` its
/// prompt's. A tool with no entry needs only what `tools/call` needs.
///
/// ```
/// use mcp_bastion::auth::ScopePolicy;
///
/// let policy = ScopePolicy::new()
///     .tool("delete_repo", ["tools:admin"])
///     .parse_rule("resource:file:///secret/*=files:secret").unwrap()
///     .parse_rule("method:prompts/list=prompts:read").unwrap();
/// assert!(policy.tool_allowed("echo", &Default::default()));
/// assert!(!policy.tool_allowed("delete_repo", &Default::default()));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopePolicy {
    tools: BTreeMap<String, BTreeSet<String>>,
    methods: BTreeMap<String, BTreeSet<String>>,
    resources: Vec<(String, BTreeSet<String>)>,
    prompts: BTreeMap<String, BTreeSet<String>>,
}

fn set<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> BTreeSet<String> {
    scopes.into_iter().map(Into::into).collect()
}

impl ScopePolicy {
    /// No requirements.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when nothing is required anywhere.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
            && self.methods.is_empty()
            && self.resources.is_empty()
            && self.prompts.is_empty()
    }

    /// `tools/call` of `name` needs `scopes`.
    pub fn tool<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        name: impl Into<String>,
        scopes: I,
    ) -> Self {
        self.tools
            .entry(name.into())
            .or_default()
            .extend(set(scopes));
        self
    }

    /// Every request of `method` needs `scopes`.
    pub fn method<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        method: impl Into<String>,
        scopes: I,
    ) -> Self {
        self.methods
            .entry(method.into())
            .or_default()
            .extend(set(scopes));
        self
    }

    /// `resources/read` of a URI matching `pattern` needs `scopes`.
    pub fn resource<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        pattern: impl Into<String>,
        scopes: I,
    ) -> Self {
        self.resources.push((pattern.into(), set(scopes)));
        self
    }

    /// `prompts/get` of `name` needs `scopes`.
    pub fn prompt<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        name: impl Into<String>,
        scopes: I,
    ) -> Self {
        self.prompts
            .entry(name.into())
            .or_default()
            .extend(set(scopes));
        self
    }

    /// Adds a rule `TARGET=SCOPE[,SCOPE…]` where TARGET is a tool name, or
    /// `tool:NAME`, `method:NAME`, `resource:PATTERN`, `prompt:NAME`.
    ///
    /// # Errors
    ///
    /// A message naming what is malformed.
    pub fn parse_rule(self, rule: &str) -> Result<Self, String> {
        let (target, scopes) = rule
            .rsplit_once('=')
            .ok_or_else(|| format!("--tool-scope expects TOOL=SCOPE[,SCOPE], got `{rule}`"))?;
        let scopes: Vec<&str> = scopes
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if target.is_empty() || scopes.is_empty() {
            return Err(format!(
                "--tool-scope expects TOOL=SCOPE[,SCOPE], got `{rule}`"
            ));
        }
        if let Some(bad) = scopes.iter().find(|s| {
            !s.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        }) {
            return Err(format!(
                "scope `{bad}` has characters RFC 6749 does not allow"
            ));
        }
        Ok(match target.split_once(':') {
            Some(("tool", name)) => self.tool(name, scopes),
            Some(("method", name)) => self.method(name, scopes),
            Some(("resource", pattern)) => self.resource(pattern, scopes),
            Some(("prompt", name)) => self.prompt(name, scopes),
            _ => self.tool(target, scopes),
        })
    }

    /// Every scope the policy mentions (for `scopes_supported`).
    pub fn all_scopes(&self) -> BTreeSet<String> {
        self.tools
            .values()
            .chain(self.methods.values())
            .chain(self.prompts.values())
            .chain(self.resources.iter().map(|(_, s)| s))
            .flatten()
            .cloned()
            .collect()
    }

    /// The scopes one message needs.
    pub fn required(&self, msg: &Message) -> BTreeSet<String> {
        let mut need = BTreeSet::new();
        let Some(method) = msg.method() else {
            return need;
        };
        if let Some(s) = self.methods.get(method) {
            need.extend(s.iter().cloned());
        }
        let param = |key: &str| {
            msg.params()
                .and_then(|p| p.get(key))
                .and_then(|v| v.as_str())
        };
        match method {
            "tools/call" => {
                if let Some(s) = param("name").and_then(|n| self.tools.get(n)) {
                    need.extend(s.iter().cloned());
                }
            }
            "resources/read" => {
                if let Some(uri) = param("uri") {
                    for (pattern, s) in &self.resources {
                        if glob(pattern, uri) {
                            need.extend(s.iter().cloned());
                        }
                    }
                }
            }
            "prompts/get" => {
                if let Some(s) = param("name").and_then(|n| self.prompts.get(n)) {
                    need.extend(s.iter().cloned());
                }
            }
            _ => {}
        }
        need
    }

    /// Whether a caller with `granted` scopes may call the tool `name`.
    pub fn tool_allowed(&self, name: &str, granted: &BTreeSet<String>) -> bool {
        let call = self.methods.get("tools/call");
        let tool = self.tools.get(name);
        call.into_iter()
            .chain(tool)
            .flatten()
            .all(|s| granted.contains(s))
    }

    /// The scopes a principal lacks for `msg` (empty: allowed).
    pub fn missing(&self, msg: &Message, principal: Option<&Principal>) -> BTreeSet<String> {
        let need = self.required(msg);
        need.into_iter()
            .filter(|s| !principal.is_some_and(|p| p.has_scope(s)))
            .collect()
    }
}

/// `*` matches any run of characters (including none); nothing else is special.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("file:///secret/*", "file:///secret/a/b"));
        assert!(!glob("file:///secret/*", "file:///public/a"));
        assert!(glob("*", "anything"));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXc"));
        assert!(glob("exact", "exact"));
    }
}
