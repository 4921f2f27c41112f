//! [`TransportSessions`]: the live [`TransportSession`]s of one transport by
//! id, the reaper of idle ones, and the count of requests in flight that a
//! graceful shutdown waits for.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use super::stream_routing::{TransportSession, now_ms};

/// Live sessions by id. With an idle timeout, a reaper task ends sessions
/// that have had no request and no connected stream for that long, so a
/// client that vanishes without DELETE does not leave a child running.
pub(crate) struct TransportSessions {
    map: RwLock<HashMap<String, Arc<TransportSession>>>,
    idle_timeout: Option<Duration>,
    reaper: std::sync::Once,
    /// Requests in flight that no session's pending list shows: sessionless
    /// ones (revision 2026-07-28), and answered ones whose response stream
    /// is still being written to the client.
    tracked: std::sync::atomic::AtomicUsize,
    /// Shutting down: no new sessions, existing ones still served.
    draining: std::sync::atomic::AtomicBool,
    /// Closing: no request enters a session any more (404), so that the
    /// sessions can end once the ones inside are answered.
    closing: std::sync::atomic::AtomicBool,
    /// Requests between their admission into a session and their
    /// registration as pending (or their end): counted in flight, so that a
    /// close never ends a session under a request that just looked it up.
    admitting: std::sync::atomic::AtomicUsize,
}

/// A request admitted into a session ([`TransportSessions::admit`]); in
/// flight until dropped.
pub(crate) struct Admission(Arc<TransportSessions>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0
            .admitting
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Counts one request as in flight until dropped: a sessionless request, or
/// a request stream's response body (dropped once hyper has written it, or
/// the client went away), so that a graceful shutdown also waits for
/// answers that are routed but not yet delivered.
pub(crate) struct RequestInFlight(Arc<TransportSessions>);

impl Drop for RequestInFlight {
    fn drop(&mut self) {
        self.0
            .tracked
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl TransportSessions {
    pub(crate) fn new(idle_timeout: Option<Duration>) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            idle_timeout,
            reaper: std::sync::Once::new(),
            tracked: std::sync::atomic::AtomicUsize::new(0),
            draining: std::sync::atomic::AtomicBool::new(false),
            closing: std::sync::atomic::AtomicBool::new(false),
            admitting: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Admits a request into an existing session: `None` once
    /// [`close_when_idle`](Self::close_when_idle) has begun (the caller
    /// answers 404, as for an ended session). Hold the admission until the
    /// request is registered as pending, or done.
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Admission> {
        use std::sync::atomic::Ordering::SeqCst;
        // counted first, then the flag read: either a close sees this
        // request in flight, or the request sees the close
        self.admitting.fetch_add(1, SeqCst);
        let admission = Admission(Arc::clone(self));
        (!self.closing.load(SeqCst)).then_some(admission)
    }

    /// Ends every session once no request is in flight (or at `deadline`):
    /// from now on no request enters a session (404), and the ones already
    /// inside are answered first.
    pub(crate) async fn close_when_idle(&self, deadline: tokio::time::Instant) {
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        while self.in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.end_all();
    }

    /// From now on no session opens; existing ones are still served.
    pub(crate) fn start_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// See [`Self::start_draining`].
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Marks a request in flight until the guard is dropped (see
    /// [`Self::in_flight`]).
    pub(crate) fn track_request(self: &Arc<Self>) -> RequestInFlight {
        self.tracked
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        RequestInFlight(Arc::clone(self))
    }

    /// Client requests still waiting for their response, in every session
    /// and outside any: what a graceful shutdown waits for.
    pub(crate) fn in_flight(&self) -> usize {
        let in_sessions: usize = self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|s| s.in_flight())
            .sum();
        in_sessions
            + self.tracked.load(std::sync::atomic::Ordering::Relaxed)
            + self.admitting.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(crate) fn insert(self: &Arc<Self>, session: Arc<TransportSession>) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(session.id.clone(), session);
        if let Some(idle) = self.idle_timeout {
            self.reaper.call_once(|| {
                let table = Arc::downgrade(self);
                tokio::spawn(reap(table, idle));
            });
        }
    }

    /// The live session with this id; counts as activity.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<TransportSession>> {
        let session = self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .filter(|s| !s.is_ended())
            .cloned()?;
        session.touch();
        Some(session)
    }

    pub(crate) fn remove(&self, id: &str) -> Option<Arc<TransportSession>> {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Ends one session; `false` when it was not live.
    pub(crate) fn end_one(&self, id: &str) -> bool {
        match self.remove(id) {
            Some(s) => {
                s.end();
                true
            }
            None => false,
        }
    }

    /// Ends every session (shutdown).
    pub(crate) fn end_all(&self) {
        let sessions: Vec<_> = self
            .map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, s)| s)
            .collect();
        for s in sessions {
            s.end();
        }
    }
}

async fn reap(table: std::sync::Weak<TransportSessions>, idle: Duration) {
    let period = (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(30));
    loop {
        tokio::time::sleep(period).await;
        let Some(table) = table.upgrade() else { return };
        let now = now_ms();
        let idle_sessions: Vec<Arc<TransportSession>> = table
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|s| s.is_idle(idle, now))
            .cloned()
            .collect();
        for s in idle_sessions {
            tracing::debug!(target: "mcp_bastion::transport", "ending idle session");
            table.remove(&s.id);
            s.end();
        }
    }
}

/// Default idle timeout of transport sessions.
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
