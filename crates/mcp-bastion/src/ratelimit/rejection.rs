use std::{sync::Arc, time::Duration};

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
        // refusals are not the hot path: the header items are made here
        let items: Vec<(String, String)> = self
            .decisions
            .iter()
            .map(|pd| {
                (
                    policy_item(&pd.name, &pd.limit, pd.decision.limit),
                    sf_string(&pd.name),
                )
            })
            .collect();
        let lines = self
            .decisions
            .iter()
            .zip(&items)
            .map(|(pd, (policy, name))| HeaderLine {
                policy,
                name,
                decision: &pd.decision,
            });
        insert_headers(res.headers_mut(), lines, None);
        res
    }
}

/// One limit's share of the `RateLimit-Policy` and `RateLimit` headers.
#[derive(Clone, Copy)]
pub(crate) struct HeaderLine<'a> {
    /// Its `RateLimit-Policy` item: `"name";q=Q;w=W` ([`policy_item`]).
    pub(crate) policy: &'a str,
    /// Its name as a structured-field string: `"name"` ([`sf_string`]).
    pub(crate) name: &'a str,
    pub(crate) decision: &'a Decision,
}

/// The `RateLimit-Policy` item of a limit: constant for a rule, so the engine
/// computes it once.
pub(crate) fn policy_item(name: &str, limit: &Limit, quota: u32) -> String {
    format!(
        "{};q={quota};w={}",
        sf_string(name),
        ceil_secs(limit.period()).max(1)
    )
}

/// The `RateLimit-Policy` and `RateLimit` values of one answer, owned, so an
/// allowed request's can be made before the inner service answers and held
/// by the response future.
#[derive(Debug)]
pub(crate) struct RateLimitHeaders {
    policy: HeaderValue,
    state: HeaderValue,
}

impl RateLimitHeaders {
    /// Makes the values for these limits (`None` when there are none).
    /// `policy`, when given, is the `RateLimit-Policy` value already made for
    /// exactly these limits.
    ///
    /// This runs for every allowed request, so it writes the values by hand
    /// into a stack buffer (one allocation per header) instead of going
    /// through `format!`.
    pub(crate) fn new<'a>(
        lines: impl Iterator<Item = HeaderLine<'a>>,
        policy: Option<HeaderValue>,
    ) -> Option<Self> {
        let mut state = ValueBuf::new();
        let mut policies = ValueBuf::new();
        for (i, line) in lines.enumerate() {
            if i > 0 {
                state.push(b", ");
                policies.push(b", ");
            }
            policies.push(line.policy.as_bytes());
            let d = line.decision;
            state.push(line.name.as_bytes());
            state.push(b";r=");
            state.push_u64(u64::from(d.remaining));
            state.push(b";t=");
            state.push_u64(ceil_secs(if d.allowed { d.reset } else { d.retry_after }));
        }
        if state.is_empty() {
            return None;
        }
        Some(Self {
            policy: policy.or_else(|| policies.value())?,
            state: state.value()?,
        })
    }

    /// Sets both headers, replacing any already there.
    pub(crate) fn insert_into(self, headers: &mut HeaderMap) {
        headers.insert(RATELIMIT_POLICY, self.policy);
        headers.insert(RATELIMIT, self.state);
    }
}

/// Adds `RateLimit-Policy` and `RateLimit` for these limits (nothing when
/// there are none); see [`RateLimitHeaders::new`].
pub(crate) fn insert_headers<'a>(
    headers: &mut HeaderMap,
    lines: impl Iterator<Item = HeaderLine<'a>>,
    policy: Option<HeaderValue>,
) {
    if let Some(values) = RateLimitHeaders::new(lines, policy) {
        values.insert_into(headers);
    }
}

/// A header value written on the stack, spilling to the heap when long.
struct ValueBuf {
    buf: [u8; 192],
    len: usize,
    spill: Vec<u8>,
}

impl ValueBuf {
    fn new() -> Self {
        Self {
            buf: [0; 192],
            len: 0,
            spill: Vec::new(),
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.spill.is_empty() {
            if let Some(dst) = self.buf.get_mut(self.len..self.len + bytes.len()) {
                dst.copy_from_slice(bytes);
                self.len += bytes.len();
                return;
            }
            self.spill.extend_from_slice(&self.buf[..self.len]);
        }
        self.spill.extend_from_slice(bytes);
    }

    fn push_u64(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[at..]);
    }

    fn bytes(&self) -> &[u8] {
        if self.spill.is_empty() {
            &self.buf[..self.len]
        } else {
            &self.spill
        }
    }

    fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }

    fn value(&self) -> Option<HeaderValue> {
        HeaderValue::from_bytes(self.bytes()).ok()
    }
}

/// A structured-field string: printable ASCII, `"` and `\` escaped.
pub(crate) fn sf_string(s: &str) -> String {
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

/// `d` in whole seconds, rounded up (what `Retry-After` says).
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}
