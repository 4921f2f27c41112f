//! The pool of warm backend links that sessionless (2026-07-28) requests
//! are served over.
//!
//! A 2026-07-28 request has no session, yet a handshake-era backend needs an
//! initialized connection, and a per-session stdio backend gives each
//! connection a child process with its principal's environment. Instead of
//! connect + `initialize` + close per request, [`Pool`] keeps the links that
//! finished a request, by [`PoolKey`], and hands one to the next request of
//! the same key:
//!
//! - **Key**: everything that a backend may turn into what the link is: the
//!   principal (subject, credential id, its environment entries and claims
//!   except the ones that change with every token: `exp`, `iat`, `nbf`,
//!   `jti`, `auth_time`; anonymous requests share one key), the captured
//!   [`SessionParams`](crate::session::SessionParams) (a per-session child
//!   gets its environment from them), and the client capabilities the link
//!   is initialized with (`elicitation`, `sampling`, `roots` of the request's
//!   `_meta` client capabilities, as declared). Two requests that differ in
//!   any of them never share a link. The key holds the exact bytes, not a
//!   digest (no collisions), and its `Debug` shows none of them.
//! - **Checkout** ([`Pool::checkout`]): one request at a time per link (a
//!   backend's own requests and notifications cannot be attributed to one
//!   of several concurrent calls). An idle link of the key is taken (the
//!   most recently used first); else a new one is opened. At most
//!   `max_per_key` links per key are busy at once (a further request of
//!   that key waits for one to be released), and at most `max_total` links
//!   are open in all: when full, the idle link unused the longest (of any
//!   key) is closed to make room, and when none is idle the request waits.
//! - **Checkin** ([`Pooled::release`]): explicit, and only by the bridge once
//!   the backend answered the request completely. Dropping a [`Pooled`]
//!   closes its connection (a per-session child exits): a request whose
//!   client closed its stream (a cancel, in 2026-07-28), a backend that
//!   closed, a request left half done are never reused.
//! - **Idle timeout**: a link idle for longer is closed (default 60 s), by a
//!   reaper task and again when checked out. What a backend sent while a
//!   link was idle (a list change, a log line) is discarded at checkout, and
//!   a link whose backend went away is closed then.
//!
//! A shared stdio child multiplexes connections as logical sessions; the
//! pool works over them the same way (they are cheap, and reusing one saves
//! the `initialize` round trip).
//!
//! `subscriptions/listen` streams use dedicated links outside the pool
//! ([`Pooled::detached`]); [`Pool::listen_slot`] bounds them with the same
//! limits, and [`Pool::close`] ends them (gracefully) with the idle links.

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    ops::{Deref, DerefMut},
    sync::{Arc, Mutex, MutexGuard, Weak},
    time::Duration,
};

use serde_json::{Map, Value};
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore, mpsc::error::TryRecvError},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use crate::{
    backend::{BackendError, Connection},
    jsonrpc::{self, ErrorObject, Message, codes},
    principal::Principal,
};

/// How long a pooled link may stay idle before it is closed.
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Links of one key busy at once.
pub(crate) const DEFAULT_MAX_PER_KEY: usize = 8;
/// Links open at once, busy and idle, of all keys.
pub(crate) const DEFAULT_MAX_TOTAL: usize = 128;

/// Claims that change with every token of the same principal: left out of
/// the key, so that a refreshed token keeps its warm link.
const VOLATILE_CLAIMS: &[&str] = &["exp", "iat", "nbf", "jti", "auth_time"];
/// The client capabilities a link is initialized with.
const LINK_CAPABILITIES: &[&str] = &["elicitation", "sampling", "roots"];

const TARGET: &str = "mcp_bastion::transport";

/// The limits of a [`Pool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolLimits {
    /// Idle links older than this are closed; `None`: never.
    pub(crate) idle_timeout: Option<Duration>,
    /// Links of one key busy at once (and `subscriptions/listen` streams of
    /// one key open at once).
    pub(crate) max_per_key: usize,
    /// Links open at once in all (and listen streams open at once).
    pub(crate) max_total: usize,
}

impl Default for PoolLimits {
    fn default() -> Self {
        Self {
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_per_key: DEFAULT_MAX_PER_KEY,
            max_total: DEFAULT_MAX_TOTAL,
        }
    }
}

/// What makes two sessionless requests able to share a backend link (see
/// the module docs). The exact canonical bytes of its parts.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey(Arc<[u8]>);

impl fmt::Debug for PoolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // the parts may be secrets (a principal's environment, a token)
        f.write_str("PoolKey(..)")
    }
}

impl PoolKey {
    /// The key of a request with these extensions (its principal and
    /// captured parameters) and these declared client capabilities (the
    /// `_meta` client capabilities object).
    pub(crate) fn of(extensions: &http::Extensions, declared: &Map<String, Value>) -> Self {
        let mut out = Vec::with_capacity(128);
        match extensions.get::<Principal>() {
            None => out.push(0),
            Some(p) => {
                out.push(1);
                string(&mut out, p.subject());
                match p.key_id() {
                    None => out.push(0),
                    Some(k) => {
                        out.push(1);
                        string(&mut out, k);
                    }
                }
                for (k, v) in p.env() {
                    out.push(2);
                    string(&mut out, k);
                    string(&mut out, v);
                }
                let mut claims: Vec<_> = p
                    .claims()
                    .iter()
                    .filter(|(k, _)| !VOLATILE_CLAIMS.contains(&k.as_str()))
                    .collect();
                claims.sort_by(|a, b| a.0.cmp(b.0));
                for (k, v) in claims {
                    out.push(3);
                    string(&mut out, k);
                    canonical(&mut out, v);
                }
            }
        }
        out.push(4);
        #[cfg(feature = "session-layer")]
        if let Some(params) = extensions.get::<crate::session::SessionParams>() {
            // iterated in name order (a BTreeMap)
            for (k, v) in params.iter() {
                out.push(5);
                string(&mut out, k);
                string(&mut out, v);
            }
        }
        out.push(6);
        for name in LINK_CAPABILITIES {
            if let Some(v) = declared.get(*name) {
                out.push(7);
                string(&mut out, name);
                canonical(&mut out, v);
            }
        }
        Self(out.into())
    }
}

/// A length-prefixed string: no two different sequences of parts encode to
/// the same bytes.
fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// JSON with object keys in order, whatever the map's own order.
fn canonical(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (k, v) in entries {
                string(out, k);
                canonical(out, v);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for v in items {
                canonical(out, v);
            }
            out.push(b']');
        }
        other => string(out, &other.to_string()),
    }
}

/// Warm backend links by [`PoolKey`]; see the module docs.
pub(crate) struct Pool {
    limits: PoolLimits,
    state: Mutex<State>,
    /// One permit per open link (busy or idle).
    total: Arc<Semaphore>,
    /// Cancelled by [`Pool::close`]: listen streams end, nothing is pooled.
    closed: CancellationToken,
    /// Woken when a link is checked in: a checkout waiting for room may
    /// now evict (or take) it.
    released: tokio::sync::Notify,
    reaper: std::sync::Once,
}

#[derive(Default)]
struct State {
    keys: HashMap<PoolKey, KeyState>,
    listens: HashMap<PoolKey, usize>,
    listens_total: usize,
    /// Orders checkins: the idle link unused the longest has the lowest.
    next_seq: u64,
}

struct KeyState {
    /// One permit per busy link of this key.
    busy: Arc<Semaphore>,
    /// Idle links, the most recently used last.
    idle: Vec<Idle>,
}

struct Idle {
    conn: IdleConnection,
    init: Map<String, Value>,
    since: Instant,
    seq: u64,
    total: LinkPermit,
}

/// One open link's place in the pool's total (and in the
/// `mcp_sessionless_links_open` gauge), given back when dropped.
struct LinkPermit(#[allow(dead_code, reason = "held for its Drop")] OwnedSemaphorePermit);

impl LinkPermit {
    fn new(permit: OwnedSemaphorePermit) -> Self {
        #[cfg(feature = "metrics")]
        metrics::gauge!(crate::metrics::SESSIONLESS_LINKS_OPEN).increment(1.0);
        Self(permit)
    }
}

impl Drop for LinkPermit {
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        metrics::gauge!(crate::metrics::SESSIONLESS_LINKS_OPEN).decrement(1.0);
    }
}

/// An idle link's connection: closed when dropped (expired, evicted, the
/// pool closed), unless [`take`](Self::take)n for a request.
struct IdleConnection(Connection);

impl IdleConnection {
    fn take(mut self) -> Connection {
        std::mem::replace(&mut self.0, closed_connection())
    }
}

impl Drop for IdleConnection {
    fn drop(&mut self) {
        self.0.closed.cancel();
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("limits", &self.limits)
            .field("open", &self.open_links())
            .field("idle", &self.idle_links())
            .finish()
    }
}

impl Pool {
    pub(crate) fn new(limits: PoolLimits) -> Self {
        let limits = PoolLimits {
            max_per_key: limits.max_per_key.max(1),
            max_total: limits.max_total.clamp(1, Semaphore::MAX_PERMITS),
            ..limits
        };
        Self {
            limits,
            state: Mutex::new(State::default()),
            total: Arc::new(Semaphore::new(limits.max_total)),
            closed: CancellationToken::new(),
            released: tokio::sync::Notify::new(),
            reaper: std::sync::Once::new(),
        }
    }

    pub(crate) fn limits(&self) -> PoolLimits {
        self.limits
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Links open now, busy and idle.
    pub(crate) fn open_links(&self) -> usize {
        self.limits.max_total - self.total.available_permits()
    }

    /// Links idle now.
    pub(crate) fn idle_links(&self) -> usize {
        self.state().keys.values().map(|k| k.idle.len()).sum()
    }

    /// A link for one request of `key`: an idle one (its `init` is the
    /// backend's `InitializeResult`), or one `open` connects (its `init` is
    /// `None`: initialize it, then set it). Waits while `key` has
    /// `max_per_key` links busy, or the pool `max_total` links open and none
    /// idle. Hand it back with [`Pooled::release`] once the backend answered
    /// completely; dropped, it closes.
    pub(crate) async fn checkout<F, Fut>(
        self: &Arc<Self>,
        key: PoolKey,
        open: F,
    ) -> Result<Pooled, BackendError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Connection, BackendError>>,
    {
        let busy = {
            let mut state = self.state();
            let entry = state.keys.entry(key.clone()).or_insert_with(|| KeyState {
                busy: Arc::new(Semaphore::new(self.limits.max_per_key)),
                idle: Vec::new(),
            });
            Arc::clone(&entry.busy)
        };
        let busy = busy
            .acquire_owned()
            .await
            .map_err(|_| BackendError::Unavailable("the sessionless pool is closed".into()))?;
        let closed = || BackendError::Unavailable("the sessionless pool is closed".into());
        let total = loop {
            // registered before looking, so that a checkin in between wakes it
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if let Some(idle) = self.take_idle(&key) {
                tracing::trace!(target: TARGET, "sessionless request on a pooled backend link");
                return Ok(Pooled {
                    conn: idle.conn.take(),
                    init: Some(idle.init),
                    slot: Some(Slot {
                        pool: Arc::clone(self),
                        key,
                        busy,
                        total: idle.total,
                    }),
                });
            }
            match Arc::clone(&self.total).try_acquire_owned() {
                Ok(permit) => break LinkPermit::new(permit),
                Err(_) if self.evict_one() => {}
                Err(_) => {
                    // full and nothing idle: wait for a link to close, or
                    // for one to become idle (then evict it, or take it)
                    tokio::select! {
                        permit = Arc::clone(&self.total).acquire_owned() => {
                            break LinkPermit::new(permit.map_err(|_| closed())?);
                        }
                        () = released => {}
                    }
                }
            }
        };
        let conn = match open().await {
            Ok(conn) => conn,
            Err(e) => {
                drop((busy, total));
                prune(&mut self.state(), &key, self.limits.max_per_key);
                return Err(e);
            }
        };
        Ok(Pooled {
            conn,
            init: None,
            slot: Some(Slot {
                pool: Arc::clone(self),
                key,
                busy,
                total,
            }),
        })
    }

    /// The most recently used idle link of `key` that is still good.
    fn take_idle(&self, key: &PoolKey) -> Option<Idle> {
        let mut dead = Vec::new();
        let found = {
            let mut state = self.state();
            let entry = state.keys.get_mut(key)?;
            loop {
                let Some(mut idle) = entry.idle.pop() else {
                    break None;
                };
                if self.expired(&idle) || !drain_idle(&mut idle.conn.0) {
                    dead.push(idle);
                    continue;
                }
                break Some(idle);
            }
        };
        if !dead.is_empty() {
            tracing::debug!(target: TARGET, closed = dead.len(), "closed pooled backend links that ended or expired");
        }
        drop(dead); // closes them, outside the lock
        found
    }

    fn expired(&self, idle: &Idle) -> bool {
        self.limits
            .idle_timeout
            .is_some_and(|t| idle.since.elapsed() >= t)
    }

    /// Closes the idle link unused the longest, of any key; `false` when
    /// none is idle.
    fn evict_one(&self) -> bool {
        let evicted = {
            let mut state = self.state();
            let oldest = state
                .keys
                .iter()
                .filter_map(|(k, e)| e.idle.first().map(|i| (i.seq, k.clone())))
                .min_by_key(|(seq, _)| *seq);
            oldest.and_then(|(_, key)| {
                let entry = state.keys.get_mut(&key)?;
                let idle = entry.idle.remove(0);
                prune(&mut state, &key, self.limits.max_per_key);
                Some(idle)
            })
        };
        if evicted.is_some() {
            tracing::debug!(target: TARGET, "pool full: closed the backend link idle the longest");
        }
        evicted.is_some()
    }

    fn checkin(self: &Arc<Self>, key: PoolKey, mut idle: Idle) {
        if self.closed.is_cancelled() || idle.conn.0.closed.is_cancelled() {
            return;
        }
        self.start_reaper();
        {
            let mut state = self.state();
            idle.seq = state.next_seq;
            state.next_seq += 1;
            if let Some(entry) = state.keys.get_mut(&key) {
                entry.idle.push(idle);
            }
        }
        self.released.notify_waiters();
    }

    /// Starts, once, the task that closes expired idle links; it ends with
    /// the pool.
    fn start_reaper(self: &Arc<Self>) {
        let Some(idle_timeout) = self.limits.idle_timeout else {
            return;
        };
        self.reaper.call_once(|| {
            let weak: Weak<Self> = Arc::downgrade(self);
            let closed = self.closed.clone();
            let period = (idle_timeout / 2).max(Duration::from_millis(10));
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(period) => {}
                        () = closed.cancelled() => return,
                    }
                    let Some(pool) = weak.upgrade() else { return };
                    pool.expire();
                }
            });
        });
    }

    /// Closes the idle links older than the idle timeout.
    pub(crate) fn expire(&self) {
        let mut expired = Vec::new();
        {
            let mut state = self.state();
            let keys: Vec<PoolKey> = state.keys.keys().cloned().collect();
            for key in keys {
                if let Some(entry) = state.keys.get_mut(&key) {
                    let (old, fresh): (Vec<Idle>, Vec<Idle>) =
                        entry.idle.drain(..).partition(|i| self.expired(i));
                    entry.idle = fresh;
                    expired.extend(old);
                }
                prune(&mut state, &key, self.limits.max_per_key);
            }
        }
        if !expired.is_empty() {
            tracing::debug!(target: TARGET, closed = expired.len(), "closed idle pooled backend links");
        }
    }

    /// A place for one `subscriptions/listen` stream of `key`: `None` when
    /// `key` has `max_per_key` open, or the pool `max_total`.
    pub(crate) fn listen_slot(self: &Arc<Self>, key: PoolKey) -> Option<ListenSlot> {
        let mut state = self.state();
        let n = state.listens.get(&key).copied().unwrap_or(0);
        if n >= self.limits.max_per_key || state.listens_total >= self.limits.max_total {
            return None;
        }
        state.listens.insert(key.clone(), n + 1);
        state.listens_total += 1;
        #[cfg(feature = "metrics")]
        metrics::gauge!(crate::metrics::SESSIONLESS_LISTEN_STREAMS).increment(1.0);
        Some(ListenSlot {
            pool: Arc::clone(self),
            key,
        })
    }

    /// Cancelled when the pool closes: listen streams end gracefully.
    pub(crate) fn closing(&self) -> CancellationToken {
        self.closed.clone()
    }

    /// Closes every idle link and ends every listen stream; links in use
    /// close when their requests end. Nothing is pooled afterwards.
    pub(crate) fn close(&self) {
        self.closed.cancel();
        let idle: Vec<Idle> = {
            let mut state = self.state();
            state
                .keys
                .values_mut()
                .flat_map(|e| e.idle.drain(..))
                .collect()
        };
        drop(idle);
    }
}

/// Removes `key`'s entry when nothing uses it: no idle link, no busy one,
/// nobody waiting for one.
fn prune(state: &mut State, key: &PoolKey, max_per_key: usize) {
    if let Some(entry) = state.keys.get(key)
        && entry.idle.is_empty()
        && entry.busy.available_permits() == max_per_key
        && Arc::strong_count(&entry.busy) == 1
    {
        state.keys.remove(key);
    }
}

/// Discards what the backend sent on an idle link (its own notifications,
/// answering its pings and refusing its other requests); `false` when the
/// backend went away.
fn drain_idle(conn: &mut Connection) -> bool {
    if conn.closed.is_cancelled() {
        return false;
    }
    loop {
        match conn.incoming.try_recv() {
            Ok(Message::Request(r)) => {
                let answer = if r.method == "ping" {
                    jsonrpc::Response::result(r.id, Value::Object(Map::new()))
                } else {
                    jsonrpc::Response::error(
                        Some(r.id),
                        ErrorObject::new(
                            codes::METHOD_NOT_FOUND,
                            "no sessionless request is in progress on this connection",
                        ),
                    )
                };
                if conn.outgoing.try_send(Message::Response(answer)).is_err() {
                    return false;
                }
            }
            Ok(_) => {}
            Err(TryRecvError::Empty) => return true,
            Err(TryRecvError::Disconnected) => return false,
        }
    }
}

/// A place in the pool held by a checked-out link.
struct Slot {
    pool: Arc<Pool>,
    key: PoolKey,
    busy: OwnedSemaphorePermit,
    total: LinkPermit,
}

/// A backend link checked out of a [`Pool`] for one request (or a detached
/// one, outside any pool). Derefs to its [`Connection`]. Dropped, it closes
/// the connection; [`release`](Self::release) hands it back instead.
pub(crate) struct Pooled {
    conn: Connection,
    /// The backend's `InitializeResult`: `None` until the link is
    /// initialized.
    pub(crate) init: Option<Map<String, Value>>,
    slot: Option<Slot>,
}

impl fmt::Debug for Pooled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pooled")
            .field("initialized", &self.init.is_some())
            .field("pooled", &self.slot.is_some())
            .finish()
    }
}

impl Pooled {
    /// A link outside any pool (a `subscriptions/listen` stream's):
    /// [`release`](Self::release) closes it.
    pub(crate) fn detached(conn: Connection) -> Self {
        Self {
            conn,
            init: None,
            slot: None,
        }
    }

    /// Hands the link back to its pool, idle and ready for the next request
    /// of its key. Call it only when the backend answered the link's request
    /// completely; a link that is not initialized, is closed or detached is
    /// closed instead.
    pub(crate) fn release(mut self) {
        let Some(slot) = self.slot.take() else { return };
        let Some(init) = self.init.take() else { return };
        if self.conn.closed.is_cancelled() || self.conn.outgoing.is_closed() {
            return;
        }
        let conn = std::mem::replace(&mut self.conn, closed_connection());
        let Slot {
            pool,
            key,
            busy,
            total,
        } = slot;
        pool.checkin(
            key,
            Idle {
                conn: IdleConnection(conn),
                init,
                since: Instant::now(),
                seq: 0,
                total,
            },
        );
        // after the checkin: a request of the key waiting for a busy permit
        // finds the link idle
        drop(busy);
    }
}

/// A connection to nothing, already closed: what a released [`Pooled`]
/// keeps in place of the connection it handed back.
fn closed_connection() -> Connection {
    let (outgoing, _) = tokio::sync::mpsc::channel(1);
    let (_, incoming) = tokio::sync::mpsc::channel(1);
    let closed = CancellationToken::new();
    closed.cancel();
    Connection::new(outgoing, incoming, closed)
}

impl Deref for Pooled {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.conn.closed.cancel();
        if let Some(slot) = self.slot.take() {
            let mut state = slot.pool.state();
            drop(slot.busy);
            prune(&mut state, &slot.key, slot.pool.limits.max_per_key);
        }
    }
}

/// One open `subscriptions/listen` stream, counted against the pool's
/// limits until dropped.
pub(crate) struct ListenSlot {
    pool: Arc<Pool>,
    key: PoolKey,
}

impl fmt::Debug for ListenSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ListenSlot")
    }
}

impl Drop for ListenSlot {
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        metrics::gauge!(crate::metrics::SESSIONLESS_LISTEN_STREAMS).decrement(1.0);
        let mut state = self.pool.state();
        state.listens_total = state.listens_total.saturating_sub(1);
        if let Some(n) = state.listens.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                state.listens.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests;
