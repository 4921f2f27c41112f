//! The layer's shared state: the store, the closers, and the sessions this
//! replica owns with their clocks; the cleanup task that ends idle and
//! expired ones.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Once, Weak},
    time::{SystemTime, UNIX_EPOCH},
};

use tokio::time::Instant;

use super::{
    SessionCloser, SessionRecord, SessionStore,
    config::{OverflowPolicy, SessionConfig},
    rejection::SessionRejection,
    session_fingerprint,
};

pub(crate) const TARGET: &str = "mcp_bastion::session";

/// One session this replica owns.
#[derive(Debug)]
struct Live {
    principal: Option<String>,
    created: Instant,
    last_seen: Instant,
    /// Requests in flight and response bodies still streaming.
    in_flight: usize,
}

impl Live {
    fn idle_for(&self, now: Instant) -> Option<std::time::Duration> {
        (self.in_flight == 0).then(|| now.saturating_duration_since(self.last_seen))
    }
}

pub(crate) struct Shared {
    pub(crate) config: SessionConfig,
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) closers: Vec<Arc<dyn SessionCloser>>,
    live: Mutex<HashMap<String, Live>>,
    cleanup: Once,
}

/// Wall-clock ms since the Unix epoch, advanced by tokio's clock from one
/// anchor per process: record timestamps then agree with the local timers
/// (and follow a paused test clock), and across replicas they are wall time.
pub(crate) fn unix_ms() -> u64 {
    static ANCHOR: std::sync::LazyLock<(u64, Instant)> = std::sync::LazyLock::new(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        (wall, Instant::now())
    });
    let (wall, at) = *ANCHOR;
    let since = Instant::now().saturating_duration_since(at);
    wall.saturating_add(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Shared {
    pub(crate) fn new(
        config: SessionConfig,
        store: Arc<dyn SessionStore>,
        closers: Vec<Arc<dyn SessionCloser>>,
    ) -> Self {
        Self {
            config,
            store,
            closers,
            live: Mutex::new(HashMap::new()),
            cleanup: Once::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Idle by the record: no request on any replica for `idle`. Requests
    /// write `last_seen` at most every touch interval, so the record may be
    /// that much behind: the interval is added, and a session is never ended
    /// early.
    fn record_quiet(&self, record: &SessionRecord, idle: std::time::Duration) -> bool {
        let quiet_for = idle + self.config.touch_interval();
        unix_ms().saturating_sub(record.last_seen_ms) >= ms(quiet_for)
    }

    /// Number of live sessions this replica owns.
    pub(crate) fn live_count(&self) -> usize {
        self.lock().len()
    }

    /// Records a new session (learned from a response) in the store and
    /// locally, with one activity (its response) in flight.
    pub(crate) async fn register(
        self: &Arc<Self>,
        id: &str,
        principal: Option<String>,
        params: Arc<std::collections::BTreeMap<String, String>>,
    ) -> Result<(), SessionRejection> {
        let now_ms = unix_ms();
        let record = SessionRecord {
            id: id.to_owned(),
            principal: principal.clone(),
            params,
            owner: self.config.replica_id.clone(),
            created_at_ms: now_ms,
            last_seen_ms: now_ms,
        };
        if let Err(e) = self.store.put(record, self.config.record_ttl()).await {
            tracing::error!(target: TARGET, error = %e, "cannot record a new session; ending it");
            self.close(id);
            return Err(SessionRejection::StoreUnavailable);
        }
        let now = Instant::now();
        self.lock().insert(
            id.to_owned(),
            Live {
                principal,
                created: now,
                last_seen: now,
                in_flight: 1,
            },
        );
        tracing::debug!(target: TARGET, session = %session_fingerprint(id), "session opened");
        self.start_cleanup();
        Ok(())
    }

    /// Whether this replica opened (and so owns) the session.
    pub(crate) fn owns(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    /// One activity ended.
    pub(crate) fn finish(&self, id: &str) {
        if let Some(live) = self.lock().get_mut(id) {
            live.in_flight = live.in_flight.saturating_sub(1);
            live.last_seen = Instant::now();
        }
    }

    /// Starts one activity on a session, unless it is past its maximum
    /// lifetime or idle timeout: then `false`, and nothing is counted.
    ///
    /// The owner counts open streams and requests in flight; a request served
    /// by another replica (a transport that shares sessions) shows in the
    /// record's `last_seen`, so both must be quiet. One lock does the check
    /// and the count, so no sweep can end the session between them.
    pub(crate) fn begin_unless_expired(&self, record: &SessionRecord) -> bool {
        let (idle, max) = (self.config.idle, self.config.max_lifetime);
        if let Some(live) = self.lock().get_mut(&record.id) {
            let now = Instant::now();
            let old = max.is_some_and(|m| now.saturating_duration_since(live.created) >= m);
            let quiet = idle.is_some_and(|i| {
                live.idle_for(now).is_some_and(|d| d >= i) && self.record_quiet(record, i)
            });
            if old || quiet {
                return false;
            }
            live.in_flight += 1;
            live.last_seen = now;
            return true;
        }
        let old = max.is_some_and(|m| unix_ms().saturating_sub(record.created_at_ms) >= ms(m));
        let quiet = idle.is_some_and(|i| self.record_quiet(record, i));
        !(old || quiet)
    }

    /// Whether a request should write its activity to the store: when the
    /// record's `last_seen` is older than the touch interval. Requests in
    /// between skip the write, which for Redis is a round trip each.
    pub(crate) fn needs_touch(&self, record: &SessionRecord, now_ms: u64) -> bool {
        now_ms.saturating_sub(record.last_seen_ms) >= ms(self.config.touch_interval())
    }

    /// Makes room for one more session of `principal` under the
    /// per-principal cap, ending the oldest idle one if the policy says so.
    pub(crate) fn make_room(&self, principal: Option<&str>) -> Result<(), SessionRejection> {
        let (Some(max), Some(principal)) = (self.config.max_per_principal, principal) else {
            return Ok(());
        };
        let victim = {
            let live = self.lock();
            let mine: Vec<(&String, &Live)> = live
                .iter()
                .filter(|(_, l)| l.principal.as_deref() == Some(principal))
                .collect();
            if mine.len() < max {
                return Ok(());
            }
            if self.config.overflow == OverflowPolicy::Refuse {
                None
            } else {
                let now = Instant::now();
                mine.into_iter()
                    .filter_map(|(id, l)| l.idle_for(now).map(|d| (d, id)))
                    .max_by_key(|(d, _)| *d)
                    .map(|(_, id)| id.clone())
            }
        };
        match victim {
            Some(id) => {
                tracing::info!(target: TARGET, session = %session_fingerprint(&id), principal, "per-principal session cap reached: ending the oldest idle session");
                self.end(&id);
                Ok(())
            }
            None => {
                tracing::info!(target: TARGET, principal, max, "per-principal session cap reached: refusing a new session");
                Err(SessionRejection::TooManySessions { max })
            }
        }
    }

    /// Ends a session: forgotten here and in the store, and its transport
    /// session closed (the backend connection ends).
    pub(crate) fn end(&self, id: &str) {
        self.forget(id);
        self.close(id);
    }

    /// Forgets a session the transport already ended.
    pub(crate) fn forget(&self, id: &str) {
        self.lock().remove(id);
        let remove = self.store.remove(id);
        spawn(async move {
            if let Err(e) = remove.await {
                tracing::warn!(target: TARGET, error = %e, "cannot remove a session record");
            }
        });
    }

    fn close(&self, id: &str) {
        for closer in &self.closers {
            if closer.close_session(id) {
                break;
            }
        }
    }

    /// Confirms with the store that a session this replica sees as over is
    /// over: past its lifetime, or quiet on every replica (its record gone
    /// or not touched for the idle timeout).
    async fn store_says_over(&self, id: &str, now: Instant) -> bool {
        let old = {
            let live = self.lock();
            let Some(l) = live.get(id) else { return false };
            self.config
                .max_lifetime
                .is_some_and(|m| now.saturating_duration_since(l.created) >= m)
        };
        if old {
            return true;
        }
        let idle = self.config.idle.unwrap_or(self.config.ttl());
        match self.store.get(id).await {
            Ok(Some(record)) if !self.record_quiet(&record, idle) => {
                // active elsewhere: count that as activity here too
                if let Some(l) = self.lock().get_mut(id) {
                    let ago = unix_ms().saturating_sub(record.last_seen_ms);
                    l.last_seen = now
                        .checked_sub(std::time::Duration::from_millis(ago))
                        .unwrap_or(now);
                }
                false
            }
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(target: TARGET, error = %e, "session store failed; keeping a session for now");
                false
            }
        }
    }

    fn start_cleanup(self: &Arc<Self>) {
        let period = self.config.sweep_period();
        self.cleanup.call_once(|| {
            let weak = Arc::downgrade(self);
            spawn(cleanup(weak, period));
        });
    }

    /// One sweep: end expired sessions, refresh the store TTL of busy ones.
    /// Without any limit, a session quiet for longer than the record TTL is
    /// ended too: its record is gone, so no request could reach it again.
    async fn sweep(&self) {
        let now = Instant::now();
        let (idle, max, ttl, record_ttl) = (
            self.config.idle,
            self.config.max_lifetime,
            self.config.ttl(),
            self.config.record_ttl(),
        );
        let mut ended = Vec::new();
        let mut busy = Vec::new();
        for (id, live) in self.lock().iter() {
            let old = max.is_some_and(|m| now.saturating_duration_since(live.created) >= m);
            let quiet = live.idle_for(now).is_some_and(|d| d >= idle.unwrap_or(ttl));
            if old || quiet {
                ended.push(id.clone());
            } else if live.in_flight > 0 {
                busy.push(id.clone());
            }
        }
        for id in ended {
            if !self.store_says_over(&id, now).await {
                continue;
            }
            tracing::info!(target: TARGET, session = %session_fingerprint(&id), "ending a session: idle timeout or maximum lifetime reached");
            self.end(&id);
        }
        let seen = unix_ms();
        for id in busy {
            if let Err(e) = self.store.touch(&id, seen, record_ttl).await {
                tracing::warn!(target: TARGET, error = %e, "cannot refresh a session record");
            }
        }
    }
}

async fn cleanup(shared: Weak<Shared>, period: std::time::Duration) {
    loop {
        tokio::time::sleep(period).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.sweep().await;
    }
}

fn spawn(fut: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(fut);
    }
}
