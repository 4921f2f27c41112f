//! Where session records live: [`MemorySessionStore`] (the default, one
//! process) or, with the `redis` feature, [`RedisSessionStore`] (shared by
//! every replica).
//!
//! A [`SessionRecord`] is what another replica needs to validate a session:
//! the principal that opened it, the captured parameters, the replica that
//! owns it and two timestamps. Records expire after a TTL that the
//! session's requests (at most once per touch interval, a sixteenth of the
//! idle timeout and at most 1 s) and open streams refresh, so a store never
//! grows with sessions whose clients vanished.

use std::{collections::BTreeMap, fmt, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};

use crate::boxed::BoxFuture;

mod memory;
#[cfg(feature = "redis")]
mod redis;

pub use memory::MemorySessionStore;
#[cfg(feature = "redis")]
pub use redis::RedisSessionStore;

/// One session as the store keeps it.
///
/// `Debug` prints parameter names only: values may be credentials.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The session id (`[route-key.]hex`).
    pub id: String,
    /// The subject of the principal that opened it; `None` when no
    /// authentication ran.
    pub principal: Option<String>,
    /// The captured parameters, shared: a record read from the store and
    /// the [`SessionParams`](super::SessionParams) made from it hold the
    /// same map. Stored as a plain JSON object.
    pub params: Arc<BTreeMap<String, String>>,
    /// The replica id (route key) of the replica whose transport holds it.
    pub owner: Option<String>,
    /// When it opened, in ms since the Unix epoch.
    pub created_at_ms: u64,
    /// Its last request, in ms since the Unix epoch.
    pub last_seen_ms: u64,
}

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("id", &crate::session::session_fingerprint(&self.id))
            .field("principal", &self.principal)
            .field("params", &self.params.keys().collect::<Vec<_>>())
            .field("owner", &self.owner)
            .field("created_at_ms", &self.created_at_ms)
            .field("last_seen_ms", &self.last_seen_ms)
            .finish()
    }
}

/// A store failed (Redis unreachable, a corrupt record).
#[derive(Debug, thiserror::Error)]
#[error("session store error: {0}")]
pub struct StoreError(pub String);

/// Keeps [`SessionRecord`]s with a TTL.
///
/// Implementations must be cheap to share (`Arc` inside) and must let a
/// record expire `ttl` after its last `put` or `touch`.
///
/// # Answering at once
///
/// A store that can answer without waiting (it keeps records in this
/// process) may also implement [`get_now`](Self::get_now) and
/// [`touch_now`](Self::touch_now). The session layer asks them first on
/// every request of an existing session, and when they answer it decides
/// the request without a boxed future; when they return `None` (the
/// default) it awaits [`get`](Self::get) and [`touch`](Self::touch). The
/// two forms must agree: same record, same effect.
pub trait SessionStore: Send + Sync + 'static {
    /// Stores (or replaces) a record that expires after `ttl`.
    fn put(
        &self,
        record: SessionRecord,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), StoreError>>;

    /// The record of `id`, if it exists and has not expired.
    fn get(&self, id: &str) -> BoxFuture<'static, Result<Option<SessionRecord>, StoreError>>;

    /// Records activity: sets `last_seen_ms` and restarts the TTL. A missing
    /// record stays missing.
    fn touch(
        &self,
        id: &str,
        last_seen_ms: u64,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), StoreError>>;

    /// Forgets a record.
    fn remove(&self, id: &str) -> BoxFuture<'static, Result<(), StoreError>>;

    /// [`get`](Self::get) answered at once, or `None` when this store cannot
    /// answer without awaiting (then the caller uses `get`). The default is
    /// `None`: a store with I/O (Redis) keeps it.
    fn get_now(&self, id: &str) -> Option<Result<Option<SessionRecord>, StoreError>> {
        let _ = id;
        None
    }

    /// [`touch`](Self::touch) done at once, or `None` when this store cannot
    /// do it without awaiting (then nothing happened, and the caller uses
    /// `touch`). The default is `None`.
    fn touch_now(
        &self,
        id: &str,
        last_seen_ms: u64,
        ttl: Duration,
    ) -> Option<Result<(), StoreError>> {
        let _ = (id, last_seen_ms, ttl);
        None
    }
}

impl<T: SessionStore + ?Sized> SessionStore for std::sync::Arc<T> {
    fn put(
        &self,
        record: SessionRecord,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        (**self).put(record, ttl)
    }
    fn get(&self, id: &str) -> BoxFuture<'static, Result<Option<SessionRecord>, StoreError>> {
        (**self).get(id)
    }
    fn touch(
        &self,
        id: &str,
        last_seen_ms: u64,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        (**self).touch(id, last_seen_ms, ttl)
    }
    fn remove(&self, id: &str) -> BoxFuture<'static, Result<(), StoreError>> {
        (**self).remove(id)
    }
    fn get_now(&self, id: &str) -> Option<Result<Option<SessionRecord>, StoreError>> {
        (**self).get_now(id)
    }
    fn touch_now(
        &self,
        id: &str,
        last_seen_ms: u64,
        ttl: Duration,
    ) -> Option<Result<(), StoreError>> {
        (**self).touch_now(id, last_seen_ms, ttl)
    }
}
