//! The Redis store: records shared by every replica, expiring by TTL.
//!
//! Each session is one hash, `<prefix>session:<id>`, with fields `record`
//! (the [`SessionRecord`] as JSON) and `last_seen` (ms since the Unix epoch),
//! and a `PEXPIRE` that every `put` and `touch` restarts. `touch` is one Lua
//! script, so it never resurrects a record that expired or was removed.

use std::{fmt, time::Duration};

use redis::aio::ConnectionManager;

use super::{SessionRecord, SessionStore, StoreError};
use crate::boxed::BoxFuture;

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "mcp-bastion:";

const TOUCH: &str = "if redis.call('EXISTS', KEYS[1]) == 1 then \
    redis.call('HSET', KEYS[1], 'last_seen', ARGV[1]); \
    redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0";

/// Session records in Redis, shared by replicas.
///
/// ```no_run
/// # async fn run() -> Result<(), mcp_bastion::session::StoreError> {
/// use mcp_bastion::session::{RedisSessionStore, SessionLayer};
///
/// let store = RedisSessionStore::connect("redis://127.0.0.1:6379").await?;
/// let layer = SessionLayer::new().store(store).replica_id("r1");
/// # let _ = layer; Ok(()) }
/// ```
///
/// Captured parameters are stored as they are (a replica needs them to
/// serve the session), so treat the Redis instance as holding credentials:
/// no public network, `requirepass`/ACLs, TLS across hosts.
#[derive(Clone)]
pub struct RedisSessionStore {
    conn: ConnectionManager,
    prefix: String,
}

impl fmt::Debug for RedisSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSessionStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn err(e: impl fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisSessionStore {
    /// Connects to `url` (`redis://[:password@]host:port[/db]`, or
    /// `rediss://` with TLS when the redis crate has it). The connection
    /// reconnects by itself.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::from_client(redis::Client::open(url).map_err(err)?).await
    }

    /// Connects with an existing client (the rate limiter's, to share one
    /// `--redis-url`).
    pub async fn from_client(client: redis::Client) -> Result<Self, StoreError> {
        let conn = ConnectionManager::new(client).await.map_err(err)?;
        Ok(Self {
            conn,
            prefix: DEFAULT_PREFIX.to_owned(),
        })
    }

    /// Sets the key prefix (default `mcp-bastion:`), to share one Redis
    /// between deployments.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    fn key(&self, id: &str) -> String {
        format!("{}session:{id}", self.prefix)
    }
}

impl SessionStore for RedisSessionStore {
    fn put(
        &self,
        record: SessionRecord,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        let mut conn = self.conn.clone();
        let key = self.key(&record.id);
        Box::pin(async move {
            let json = serde_json::to_string(&record).map_err(err)?;
            redis::pipe()
                .atomic()
                .cmd("DEL")
                .arg(&key)
                .ignore()
                .cmd("HSET")
                .arg(&key)
                .arg("record")
                .arg(json)
                .arg("last_seen")
                .arg(record.last_seen_ms)
                .ignore()
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(ms(ttl))
                .ignore()
                .query_async::<()>(&mut conn)
                .await
                .map_err(err)
        })
    }

    fn get(&self, id: &str) -> BoxFuture<'static, Result<Option<SessionRecord>, StoreError>> {
        let mut conn = self.conn.clone();
        let key = self.key(id);
        Box::pin(async move {
            let (json, last_seen): (Option<String>, Option<u64>) = redis::cmd("HMGET")
                .arg(&key)
                .arg("record")
                .arg("last_seen")
                .query_async(&mut conn)
                .await
                .map_err(err)?;
            let Some(json) = json else { return Ok(None) };
            let mut record: SessionRecord = serde_json::from_str(&json).map_err(err)?;
            if let Some(seen) = last_seen {
                record.last_seen_ms = seen;
            }
            Ok(Some(record))
        })
    }

    fn touch(
        &self,
        id: &str,
        last_seen_ms: u64,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        let mut conn = self.conn.clone();
        let key = self.key(id);
        Box::pin(async move {
            redis::cmd("EVAL")
                .arg(TOUCH)
                .arg(1)
                .arg(&key)
                .arg(last_seen_ms)
                .arg(ms(ttl))
                .query_async::<()>(&mut conn)
                .await
                .map_err(err)
        })
    }

    fn remove(&self, id: &str) -> BoxFuture<'static, Result<(), StoreError>> {
        let mut conn = self.conn.clone();
        let key = self.key(id);
        Box::pin(async move {
            redis::cmd("DEL")
                .arg(&key)
                .query_async::<()>(&mut conn)
                .await
                .map_err(err)
        })
    }
}
