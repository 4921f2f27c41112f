use std::collections::BTreeSet;

use serde_json::Value;

use super::ScopePolicy;

/// Removes from a `tools/list` result (a JSON-RPC response whose `result`
/// has a `tools` array; batches included) every tool the caller may not
/// call. Returns whether anything changed.
pub(crate) fn filter_tools(
    value: &mut Value,
    policy: &ScopePolicy,
    granted: &BTreeSet<String>,
) -> bool {
    match value {
        Value::Array(items) => {
            let mut changed = false;
            for item in items {
                changed |= filter_tools(item, policy, granted);
            }
            changed
        }
        Value::Object(obj) => {
            let Some(Value::Array(tools)) = obj
                .get_mut("result")
                .and_then(|r| r.as_object_mut())
                .and_then(|r| r.get_mut("tools"))
            else {
                return false;
            };
            let before = tools.len();
            tools.retain(|t| {
                t.get("name")
                    .and_then(Value::as_str)
                    .is_none_or(|name| policy.tool_allowed(name, granted))
            });
            tools.len() != before
        }
        _ => false,
    }
}
