//! [`OAuthStore`]: where the authorization server keeps what lives between
//! requests (pending logins, consent requests, codes, grants, refresh
//! tokens, remembered consents, registered clients), and [`MemoryStore`].
//!
//! The trait is a small key-value contract with one atomic operation,
//! [`swap`](OAuthStore::swap), on which single use rests: a code or refresh
//! token is redeemed by swapping its record for a tombstone, so that of two
//! concurrent redemptions exactly one sees the live record and the other
//! sees the tombstone (and revokes the grant). A Redis store implements
//! `swap` with `SET … GET`. Secrets are never keys: codes and refresh
//! tokens are stored under their SHA-256.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::boxed::BoxFuture;

/// What kind of record a key names (a namespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecordKind {
    /// A login sent to the upstream identity provider, by its `state`.
    Login,
    /// A consent page shown to a user, by its id.
    ConsentRequest,
    /// An authorization code (or its tombstone), by its digest.
    Code,
    /// A grant: one user's authorization of one client.
    Grant,
    /// A refresh token (or its tombstone), by its digest.
    Refresh,
    /// A remembered consent, by user and client.
    Consent,
    /// A dynamically registered client, by its id.
    Client,
}

/// The store failed (a Redis store's connection, say).
#[derive(Debug, thiserror::Error)]
#[error("the OAuth store is unavailable")]
pub struct StoreError;

/// Records of the authorization server, as JSON values with a time to live
/// (`None`: no expiry).
pub trait OAuthStore: Send + Sync + 'static {
    /// Stores `value` under `key`, replacing any record there.
    fn put<'a>(
        &'a self,
        kind: RecordKind,
        key: &'a str,
        value: Value,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The live record under `key`.
    fn get<'a>(
        &'a self,
        kind: RecordKind,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>>;

    /// Removes and returns the record under `key`.
    fn take<'a>(
        &'a self,
        kind: RecordKind,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>>;

    /// Atomically replaces the record under `key` by `value` and returns the
    /// record that was there.
    fn swap<'a>(
        &'a self,
        kind: RecordKind,
        key: &'a str,
        value: Value,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>>;
}

/// The in-memory store of one process. Expired records are dropped when
/// read and swept every 1,024 writes.
///
/// ```
/// use mcp_bastion::auth::oauth::{MemoryStore, OAuthStore, RecordKind};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// store.put(RecordKind::Code, "k", serde_json::json!(1), None).await.unwrap();
/// let old = store.swap(RecordKind::Code, "k", serde_json::json!(2), None).await.unwrap();
/// assert_eq!(old, Some(serde_json::json!(1)));
/// # });
/// ```
#[derive(Default)]
pub struct MemoryStore {
    records: Mutex<Records>,
}

#[derive(Default)]
struct Records {
    map: HashMap<(RecordKind, String), (Value, Option<Instant>)>,
    writes: u32,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // records hold upstream tokens: count them, never show them
        let len = self.records.lock().map(|r| r.map.len()).unwrap_or(0);
        f.debug_struct("MemoryStore")
            .field("records", &len)
            .finish()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Records) -> T) -> Result<T, StoreError> {
        let mut records = self.records.lock().map_err(|_| StoreError)?;
        Ok(f(&mut records))
    }
}

impl Records {
    fn live(&mut self, kind: RecordKind, key: &str) -> Option<Value> {
        let k = (kind, key.to_owned());
        match self.map.get(&k) {
            Some((_, Some(at))) if *at <= Instant::now() => {
                self.map.remove(&k);
                None
            }
            Some((v, _)) => Some(v.clone()),
            None => None,
        }
    }

    fn insert(&mut self, kind: RecordKind, key: &str, value: Value, ttl: Option<Duration>) {
        self.writes = self.writes.wrapping_add(1);
        if self.writes.is_multiple_of(1024) {
            let now = Instant::now();
            self.map.retain(|_, (_, at)| at.is_none_or(|at| at > now));
        }
        let expires = ttl.map(|t| Instant::now() + t);
        self.map.insert((kind, key.to_owned()), (value, expires));
    }
}

impl OAuthStore for MemoryStore {
    fn put<'a>(
        &'a self,
        kind: RecordKind,
        key: &'a str,
        value: Value,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let r = self.with(|r| r.insert(kind, key, value, ttl));
        Box::pin(async move { r })
    }

    fn get<'a>(
        &'a self,
        kind: RecordKind,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        let r = self.with(|r| r.live(kind, key));
        Box::pin(async move { r })
    }

    fn take<'a>(
        &'a self,
        kind: RecordKind,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        let r = self.with(|r| {
            let v = r.live(kind, key);
            r.map.remove(&(kind, key.to_owned()));
            v
        });
        Box::pin(async move { r })
    }

    fn swap<'a>(
        &'a self,
        kind: RecordKind,
        key: &'a str,
        value: Value,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        let r = self.with(|r| {
            let old = r.live(kind, key);
            r.insert(kind, key, value, ttl);
            old
        });
        Box::pin(async move { r })
    }
}
