use std::{fmt::Write as _, sync::Arc, time::Duration};

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header::RETRY_AFTER};
use serde_json::json;

use super::{Decision, Limit};
use crate::{
    inspect::McpRequest,
    jsonrpc::{ErrorObject, RequestId, codes, http_error},
};

/// `RateLimit-Policy` (IETF httpapi ratelimit-headers draft): the quotas.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` (IETF httpapi ratelimit-headers draft): what is left of them.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// One limit's decision, named as in the headers (`default`,
/// `method.tools/call`, `tool.search`).
#[derive(Debug, Clone)]
pub struct PolicyDecision {
    /// The policy name.
    pub name: Arc<str>,
    /// The limit.
    pub limit: Limit,
    /// The decision.
    pub decision: Decision,
}

/// Why [`McpRateLimit`](super::McpRateLimit) refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    /// Over a rate limit: 429.
    RateLimited,
    /// Over a concurrency cap (in-flight requests or open streams): 429.
    TooManyConcurrent,
    /// The shared store is unreachable and the policy fails closed: 503.
    StoreUnavailable,
}

/// A refusal: 429 (503 when the store is down and failing closed) with
/// `Retry-After`, the `RateLimit-Policy`/`RateLimit` headers, and a JSON-RPC
/// error [`codes::RATE_LIMITED`] (`-32029`) echoing the request id, with
/// `data.retryAfterSeconds`.
#[derive(Debug, Clone)]
pub struct RateLimitRejection {
    kind: RejectionKind,
    policy: Arc<str>,
    retry_after: Duration,
    id: Option<RequestId>,
    decisions: Vec<PolicyDecision>,
}

impl RateLimitRejection {
    pub(crate) fn limited(
        refused: PolicyDecision,
        mut earlier: Vec<PolicyDecision>,
        mcp: Option<&McpRequest>,
    ) -> Self {
        let policy = refused.name.clone();
        let retry_after = refused.decision.retry_after;
        earlier.push(refused);
        Self {
            kind: RejectionKind::RateLimited,
            policy,
            retry_after,
            id: mcp.and_then(|m| m.id().cloned()),
            decisions: earlier,
        }
    }

    pub(crate) fn unavailable(policy: Arc<str>, mcp: Option<&McpRequest>) -> Self {
        Self {
            kind: RejectionKind::StoreUnavailable,
            policy,
            retry_after: Duration::from_secs(1),
            id: mcp.and_then(|m| m.id().cloned()),
            decisions: Vec::new(),
        }
    }

    pub(crate) fn concurrency(policy: &'static str, mcp: Option<&McpRequest>) -> Self {
        Self {
            kind: RejectionKind::TooManyConcurrent,
            policy: policy.into(),
            retry_after: Duration::from_secs(1),
            id: mcp.and_then(|m| m.id().cloned()),
            decisions: Vec::new(),
        }
    }

    /// Why.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The name of the limit that refused (`tool.search`, `default`,
    /// `concurrency`, `streams`).
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// How long until the request would fit.
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }

    /// `Retry-After` in whole seconds, rounded up, at least 1.
    pub fn retry_after_seconds(&self) -> u64 {
        ceil_secs(self.retry_after).max(1)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            RejectionKind::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

impl IntoResponse for RateLimitRejection {
    fn into_response(self) -> Response {
        let secs = self.retry_after_seconds();
        let (message, reason) = match self.kind {
            RejectionKind::RateLimited => ("Rate limit exceeded", "rate"),
            RejectionKind::TooManyConcurrent => ("Too many concurrent requests", "concurrency"),
            RejectionKind::StoreUnavailable => ("Rate limiter unavailable", "store_unavailable"),
        };
        // policy names come from the configuration, so the label set is bounded
        metrics::counter!(
            "mcp_rate_limited_total",
            "policy" => self.policy.to_string(),
            "reason" => reason
        )
        .increment(1);
        let mut data = json!({ "retryAfterSeconds": secs, "policy": &*self.policy });
        if let Some(pd) = self
            .decisions
            .last()
            .filter(|_| self.kind == RejectionKind::RateLimited)
        {
            data["limit"] = json!(pd.decision.limit);
            data["windowSeconds"] = json!(ceil_secs(pd.limit.period()));
        }
        let mut res = http_error(
            self.status(),
            self.id,
            ErrorObject::new(codes::RATE_LIMITED, message).with_data(data),
        );
        res.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
        insert_headers(res.headers_mut(), &self.decisions);
        res
    }
}

/// Adds `RateLimit-Policy` and `RateLimit` for these decisions (nothing when
/// there are none).
pub(crate) fn insert_headers(headers: &mut HeaderMap, decisions: &[PolicyDecision]) {
    if decisions.is_empty() {
        return;
    }
    let mut policy = String::new();
    let mut state = String::new();
    for (i, pd) in decisions.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let name = sf_string(&pd.name);
        let _ = write!(
            policy,
            "{sep}{name};q={};w={}",
            pd.decision.limit,
            ceil_secs(pd.limit.period()).max(1)
        );
        let _ = write!(
            state,
            "{sep}{name};r={};t={}",
            pd.decision.remaining,
            ceil_secs(if pd.decision.allowed {
                pd.decision.reset
            } else {
                pd.decision.retry_after
            })
        );
    }
    if let (Ok(p), Ok(s)) = (HeaderValue::try_from(policy), HeaderValue::try_from(state)) {
        headers.insert(RATELIMIT_POLICY, p);
        headers.insert(RATELIMIT, s);
    }
}

/// A structured-field string: printable ASCII, `"` and `\` escaped.
fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}
