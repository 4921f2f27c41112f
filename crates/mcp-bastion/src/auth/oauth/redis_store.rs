//! [`RedisOAuthStore`]: the records of the authorization server in Redis,
//! shared by every replica that uses the same Redis and prefix, so that a
//! login started on one replica can return to another and a code issued on
//! one is redeemed on another.
//!
//! | operation | Redis |
//! |---|---|
//! | `put` | `SET key json [PX ttl]` |
//! | `get` | `GET key` |
//! | `take` | `GETDEL key` (atomic: one of two concurrent takes gets the record) |
//! | `swap` | `SET key json GET [PX ttl]` (atomic: single use of codes and refresh tokens rests on it) |
//!
//! Keys are `<prefix><kind>:<key>` (prefix `mcp-bastion:oauth:` by
//! default), values the records as JSON, every record with its TTL (Redis
//! expires them). The keys are ids and SHA-256 digests, never secrets (the
//! `state` of a pending login and the id of a consent page, which the
//! server looks up as they are, are digested here); the values hold upstream tokens, so treat the Redis
//! instance as holding credentials (no public network, `requirepass` or
//! ACLs, TLS across hosts). Errors are logged by kind, without keys or
//! values, and answered as [`StoreError`].
//!
//! Needs Redis 7 (`SET … GET` with `PX`, `GETDEL`).

use std::{fmt, time::Duration};

use redis::{
    Client,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use serde_json::Value;

use super::{OAuthStore, RecordKind, StoreError, clients::digest};
use crate::boxed::BoxFuture;

/// The default key prefix.
pub const DEFAULT_OAUTH_PREFIX: &str = "mcp-bastion:oauth:";

/// The records of the authorization server in Redis.
///
/// ```no_run
/// use std::sync::Arc;
/// use mcp_bastion::auth::oauth::{OAuthServer, RedisOAuthStore};
///
/// let store = RedisOAuthStore::open("redis://127.0.0.1:6379")?.prefix("prod:oauth:");
/// let builder = OAuthServer::builder().store(Arc::new(store));
/// # let _ = builder;
/// # Ok::<(), mcp_bastion::auth::oauth::StoreError>(())
/// ```
///
/// The connection is opened on first use and reopened by itself; each
/// operation waits at most the timeout (default 1 s), then fails with
/// [`StoreError`] (the endpoints answer `temporarily_unavailable`, and
/// [`OAuthTokens`](super::OAuthTokens) refuses to authenticate: fail closed).
#[derive(Clone)]
pub struct RedisOAuthStore {
    conn: ConnectionManager,
    prefix: String,
}

impl fmt::Debug for RedisOAuthStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // the URL may hold a password, the records tokens: neither is shown
        f.debug_struct("RedisOAuthStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisOAuthStore {
    /// A store on `redis://[:password@]host:port[/db]` (the URL is checked
    /// here; the connection is made on first use).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the URL is not a Redis URL.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let client = Client::open(url).map_err(|e| failed("open", &e))?;
        Self::new(client)
    }

    /// A store on an existing client (to share one `--redis-url` with the
    /// rate limiter and the session store), with a 1 s timeout.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the connection manager cannot be made.
    pub fn new(client: Client) -> Result<Self, StoreError> {
        Self::with_timeout(client, Duration::from_secs(1))
    }

    /// [`new`](Self::new) with a timeout per operation (connecting included).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the connection manager cannot be made.
    pub fn with_timeout(client: Client, timeout: Duration) -> Result<Self, StoreError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| failed("connect", &e))?;
        Ok(Self {
            conn,
            prefix: DEFAULT_OAUTH_PREFIX.to_owned(),
        })
    }

    /// Sets the key prefix (default `mcp-bastion:oauth:`), to share one
    /// Redis between deployments. Replicas of one deployment use the same.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    fn key(&self, kind: RecordKind, key: &str) -> String {
        match kind {
            // a login's upstream `state` and a consent page's id are
            // single-use browser secrets that the callers use as they are:
            // a key list (`SCAN`, `MONITOR`) must not show them
            RecordKind::Login | RecordKind::ConsentRequest => {
                format!("{}{}:{}", self.prefix, kind_name(kind), digest(key))
            }
            _ => format!("{}{}:{key}", self.prefix, kind_name(kind)),
        }
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        cmd: redis::Cmd,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        cmd.query_async(&mut conn).await.map_err(|e| failed(op, &e))
    }
}

/// The namespace of a record kind in keys.
fn kind_name(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Login => "login",
        RecordKind::ConsentRequest => "consent-request",
        RecordKind::Code => "code",
        RecordKind::Grant => "grant",
        RecordKind::Refresh => "refresh",
        RecordKind::Consent => "consent",
        RecordKind::Client => "client",
    }
}

/// Logs a Redis failure by its kind (never a key or a value) and maps it.
fn failed(op: &'static str, e: &redis::RedisError) -> StoreError {
    tracing::warn!(op, kind = ?e.kind(), "OAuth store: Redis failed");
    StoreError
}

fn px(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn set(key: &str, value: &Value, ttl: Option<Duration>) -> Result<redis::Cmd, StoreError> {
    let json = serde_json::to_string(value).map_err(|_| StoreError)?;
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(json);
    if let Some(ttl) = ttl {
        cmd.arg("PX").arg(px(ttl));
    }
    Ok(cmd)
}

fn parse(op: &'static str, json: Option<String>) -> Result<Option<Value>, StoreError> {
    json.map(|j| {
        serde_json::from_str(&j).map_err(|_| {
            tracing::warn!(op, "OAuth store: a record in Redis is not JSON");
            StoreError
        })
    })
    .transpose()
}

impl OAuthStore for RedisOAuthStore {
    fn put<'a>(
        &'a self,
        kind: RecordKind,
        key: &'a str,
        value: Value,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let cmd = set(&self.key(kind, key), &value, ttl)?;
            self.run::<()>("put", cmd).await
        })
    }

    fn get<'a>(
        &'a self,
        kind: RecordKind,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        Box::pin(async move {
            let mut cmd = redis::cmd("GET");
            cmd.arg(self.key(kind, key));
            parse("get", self.run("get", cmd).await?)
        })
    }

    fn take<'a>(
        &'a self,
        kind: RecordKind,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        Box::pin(async move {
            let mut cmd = redis::cmd("GETDEL");
            cmd.arg(self.key(kind, key));
            parse("take", self.run("take", cmd).await?)
        })
    }

    fn swap<'a>(
        &'a self,
        kind: RecordKind,
        key: &'a str,
        value: Value,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        Box::pin(async move {
            let mut cmd = set(&self.key(kind, key), &value, ttl)?;
            cmd.arg("GET");
            parse("swap", self.run("swap", cmd).await?)
        })
    }

    /// Yes: replicas read each other's records (and so need one
    /// [`SecretsKey`](super::SecretsKey) to open each other's sealed tokens).
    fn is_shared(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::ratelimit::redis_test_server;

    async fn raw<T: redis::FromRedisValue>(url: &str, cmd: &mut redis::Cmd) -> T {
        let client = Client::open(url).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        cmd.query_async(&mut conn).await.unwrap()
    }

    #[tokio::test]
    async fn records_are_json_under_prefixed_keys_with_their_ttl() {
        let (_server, url) = redis_test_server().await;
        let store = RedisOAuthStore::open(&url).unwrap().prefix("t1:");
        store
            .put(
                RecordKind::Code,
                "digest",
                json!({"a": 1}),
                Some(Duration::from_secs(60)),
            )
            .await
            .unwrap();
        store
            .put(RecordKind::Client, "id", json!("c"), None)
            .await
            .unwrap();
        let stored: String = raw(&url, redis::cmd("GET").arg("t1:code:digest")).await;
        assert_eq!(stored, r#"{"a":1}"#);
        let ttl: i64 = raw(&url, redis::cmd("PTTL").arg("t1:code:digest")).await;
        assert!((59_000..=60_000).contains(&ttl), "{ttl}");
        let ttl: i64 = raw(&url, redis::cmd("PTTL").arg("t1:client:id")).await;
        assert_eq!(ttl, -1, "no TTL: kept");
        assert_eq!(
            store.get(RecordKind::Code, "digest").await.unwrap(),
            Some(json!({"a": 1}))
        );
        // kinds are namespaces, prefixes deployments
        assert_eq!(store.get(RecordKind::Grant, "digest").await.unwrap(), None);
        let other = RedisOAuthStore::open(&url).unwrap().prefix("t2:");
        assert_eq!(other.get(RecordKind::Code, "digest").await.unwrap(), None);

        // a login's state is not a key: its digest is
        store
            .put(RecordKind::Login, "the-state", json!(1), None)
            .await
            .unwrap();
        let keys: Vec<String> = raw(&url, redis::cmd("KEYS").arg("t1:login:*")).await;
        assert_eq!(keys, [format!("t1:login:{}", digest("the-state"))]);
        assert_eq!(
            store.take(RecordKind::Login, "the-state").await.unwrap(),
            Some(json!(1))
        );

        // a record expires with its TTL
        store
            .put(
                RecordKind::Login,
                "s",
                json!(1),
                Some(Duration::from_millis(50)),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(store.get(RecordKind::Login, "s").await.unwrap(), None);

        // take removes; swap replaces and keeps the new TTL
        assert_eq!(
            store.take(RecordKind::Client, "id").await.unwrap(),
            Some(json!("c"))
        );
        assert_eq!(store.take(RecordKind::Client, "id").await.unwrap(), None);
        let old = store
            .swap(
                RecordKind::Code,
                "digest",
                json!("tomb"),
                Some(Duration::from_secs(5)),
            )
            .await
            .unwrap();
        assert_eq!(old, Some(json!({"a": 1})));
        let ttl: i64 = raw(&url, redis::cmd("PTTL").arg("t1:code:digest")).await;
        assert!((4_000..=5_000).contains(&ttl), "{ttl}");
        assert_eq!(
            store
                .swap(RecordKind::Refresh, "new", json!(1), None)
                .await
                .unwrap(),
            None
        );
    }

    /// Of many concurrent redemptions of one code, on as many connections
    /// (replicas), exactly one sees the live record.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn swap_is_atomic_across_connections() {
        let (_server, url) = redis_test_server().await;
        let first = RedisOAuthStore::open(&url).unwrap();
        first
            .put(RecordKind::Code, "c", json!("live"), None)
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let store = Arc::new(RedisOAuthStore::open(&url).unwrap());
            tasks.push(tokio::spawn(async move {
                store
                    .swap(RecordKind::Code, "c", json!("redeemed"), None)
                    .await
                    .unwrap()
            }));
        }
        let mut live = 0;
        for t in tasks {
            match t.await.unwrap() {
                Some(v) if v == json!("live") => live += 1,
                Some(v) => assert_eq!(v, json!("redeemed")),
                None => panic!("the record vanished"),
            }
        }
        assert_eq!(live, 1);
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_a_store_error_in_bounded_time() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        let store = RedisOAuthStore::with_timeout(client, Duration::from_millis(200)).unwrap();
        let started = std::time::Instant::now();
        assert!(store.get(RecordKind::Grant, "g").await.is_err());
        assert!(
            store
                .put(RecordKind::Grant, "g", json!(1), None)
                .await
                .is_err()
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            !format!("{store:?}").contains("127.0.0.1"),
            "the URL is not shown"
        );
    }
}
