//! The in-memory store: one process, lazy expiry plus a sweep on insert.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;

use super::{SessionRecord, SessionStore, StoreError};
use crate::boxed::BoxFuture;

/// Session records in this process's memory (the default store).
///
/// Expiry follows tokio's clock, so tests with a paused clock see records
/// expire exactly when they advance it.
#[derive(Debug, Clone, Default)]
pub struct MemorySessionStore {
    map: Arc<Mutex<HashMap<String, (SessionRecord, Instant)>>>,
}

impl MemorySessionStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of records that have not expired.
    pub fn len(&self) -> usize {
        let now = Instant::now();
        self.lock().values().filter(|(_, at)| *at > now).count()
    }

    /// True when no record is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (SessionRecord, Instant)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live record of `id`: what both `get` and `get_now` answer.
    fn lookup(&self, id: &str) -> Option<SessionRecord> {
        let now = Instant::now();
        self.lock()
            .get(id)
            .filter(|(_, at)| *at > now)
            .map(|(r, _)| r.clone())
    }

    /// Refreshes the live record of `id`: what both `touch` and `touch_now`
    /// do.
    fn refresh(&self, id: &str, last_seen_ms: u64, ttl: Duration) {
        let now = Instant::now();
        if let Some((record, at)) = self.lock().get_mut(id).filter(|(_, at)| *at > now) {
            record.last_seen_ms = last_seen_ms;
            *at = now + ttl;
        }
    }
}

/// Every operation is done when it is called; the futures are ready.
impl SessionStore for MemorySessionStore {
    fn put(
        &self,
        record: SessionRecord,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        let now = Instant::now();
        let mut map = self.lock();
        map.retain(|_, (_, at)| *at > now);
        map.insert(record.id.clone(), (record, now + ttl));
        Box::pin(std::future::ready(Ok(())))
    }

    fn get(&self, id: &str) -> BoxFuture<'static, Result<Option<SessionRecord>, StoreError>> {
        Box::pin(std::future::ready(Ok(self.lookup(id))))
    }

    fn touch(
        &self,
        id: &str,
        last_seen_ms: u64,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        self.refresh(id, last_seen_ms, ttl);
        Box::pin(std::future::ready(Ok(())))
    }

    fn remove(&self, id: &str) -> BoxFuture<'static, Result<(), StoreError>> {
        self.lock().remove(id);
        Box::pin(std::future::ready(Ok(())))
    }

    fn get_now(&self, id: &str) -> Option<Result<Option<SessionRecord>, StoreError>> {
        Some(Ok(self.lookup(id)))
    }

    fn touch_now(
        &self,
        id: &str,
        last_seen_ms: u64,
        ttl: Duration,
    ) -> Option<Result<(), StoreError>> {
        self.refresh(id, last_seen_ms, ttl);
        Some(Ok(()))
    }
}
