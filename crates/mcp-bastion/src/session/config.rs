//! What a [`SessionLayer`](super::SessionLayer) captures and enforces.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use http::{HeaderName, request::Parts};

/// Default idle timeout: 30 minutes, the transports' default too.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// How long a record lives in the store when neither an idle timeout nor a
/// maximum lifetime is set.
pub(crate) const FALLBACK_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// What to do when a principal opens one session more than
/// [`max_sessions_per_principal`](super::SessionLayer::max_sessions_per_principal)
/// allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverflowPolicy {
    /// End the principal's session that has been idle longest (no request in
    /// flight, no stream open); refuse when every one is busy.
    #[default]
    EvictOldestIdle,
    /// Refuse the new session (429).
    Refuse,
}

/// A configuration that cannot work, refused when the layer is built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionConfigError {
    /// The replica id is not a valid route key.
    #[error("replica id must be 1..=32 characters of [A-Za-z0-9_-]")]
    BadReplicaId,
    /// A header name that HTTP does not allow.
    #[error("invalid header name {0:?}")]
    BadHeader(String),
}

#[derive(Debug, Clone)]
pub(crate) struct SessionConfig {
    pub(crate) capture: BTreeSet<String>,
    pub(crate) headers: Vec<(HeaderName, String)>,
    pub(crate) sensitive: Arc<BTreeSet<String>>,
    pub(crate) idle: Option<Duration>,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) max_per_principal: Option<usize>,
    pub(crate) overflow: OverflowPolicy,
    pub(crate) replica_id: Option<String>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            capture: BTreeSet::new(),
            headers: Vec::new(),
            sensitive: Arc::default(),
            idle: Some(DEFAULT_IDLE_TIMEOUT),
            max_lifetime: None,
            max_per_principal: None,
            overflow: OverflowPolicy::default(),
            replica_id: None,
        }
    }
}

impl SessionConfig {
    /// How long a session lives without activity.
    pub(crate) fn ttl(&self) -> Duration {
        self.idle.or(self.max_lifetime).unwrap_or(FALLBACK_TTL)
    }

    /// How stale a record's `last_seen` may get before a request writes it
    /// again: a sixteenth of the TTL, at most one second.
    pub(crate) fn touch_interval(&self) -> Duration {
        (self.ttl() / 16).min(Duration::from_secs(1))
    }

    /// The TTL records are stored with: [`ttl`](Self::ttl) plus the touch
    /// interval, so a record whose last activity was not written yet still
    /// outlives its session's idle timeout.
    pub(crate) fn record_ttl(&self) -> Duration {
        self.ttl() + self.touch_interval()
    }

    /// The allowlisted query parameters and mapped headers of `parts`. A
    /// mapped header wins over a query parameter of the same name.
    pub(crate) fn capture(&self, parts: &Parts) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if !self.capture.is_empty() {
            for (k, v) in query_pairs(parts.uri.query()) {
                if self.capture.contains(&k) && !out.contains_key(&k) {
                    out.insert(k, v);
                }
            }
        }
        for (header, name) in &self.headers {
            if let Some(v) = parts.headers.get(header).and_then(|v| v.to_str().ok()) {
                out.insert(name.clone(), v.to_owned());
            }
        }
        out
    }

    /// Interval of the cleanup task: a quarter of the shortest limit (the
    /// record TTL when no limit is set), between 10 ms and 30 s.
    pub(crate) fn sweep_period(&self) -> Duration {
        let shortest = match (self.idle, self.max_lifetime) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => self.ttl(),
        };
        (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(30))
    }
}

/// Decoded `application/x-www-form-urlencoded` pairs of a query; an
/// undecodable query yields nothing.
pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .unwrap_or_default()
}
