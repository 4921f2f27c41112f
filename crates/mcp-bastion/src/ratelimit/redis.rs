//! Counters in Redis, shared by every process that uses the same store and
//! prefix. Each decision is one atomic Lua script (one round trip) that reads
//! Redis's own clock (`TIME`), so replicas with skewed clocks agree.

use std::{sync::Arc, time::Duration};

use redis::{
    Client, Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use tokio::sync::OnceCell;

use super::{Algorithm, Decision, Limit, key::RateKey, store::StoreError, window};

/// Sliding window: `HSET key w <window> p <previous count> c <current count>`.
/// Admits iff `p·(W−e) + (c+cost)·W ≤ N·W`, the comparison of the in-memory
/// counter. Returns `{allowed, p, c (before), e}` in milliseconds.
const SLIDING_WINDOW: &str = r"
local limit = tonumber(ARGV[1])
local w = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local idx = math.floor(now / w)
local e = now - idx * w
local s = redis.call('HMGET', KEYS[1], 'w', 'p', 'c')
local sw = tonumber(s[1])
local p = tonumber(s[2]) or 0
local c = tonumber(s[3]) or 0
if sw ~= idx then
  if sw == idx - 1 then p = c else p = 0 end
  c = 0
end
local allowed = 0
if p * (w - e) + (c + cost) * w <= limit * w then
  allowed = 1
  redis.call('HSET', KEYS[1], 'w', idx, 'p', p, 'c', c + cost)
  redis.call('PEXPIRE', KEYS[1], 2 * w)
end
return {allowed, p, c, e}
";

/// GCRA: the key holds the theoretical arrival time (µs). Returns
/// `{allowed, retry µs, tat − now µs}`.
const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + cost * interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return {0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0, new_tat - now}
";

/// A Redis connection (reconnecting on its own) and a key prefix, for
/// [`McpRateLimitLayer::redis`](super::McpRateLimitLayer::redis).
///
/// The connection is opened on the first decision; an unreachable Redis is
/// never a panic, it is the layer's [`FailurePolicy`](super::FailurePolicy).
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    conn: OnceCell<ConnectionManager>,
    prefix: String,
    timeout: Duration,
    sliding: Script,
    gcra: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // the URL may hold a password: never print it
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

/// The Redis URL could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("invalid Redis URL: {0}")]
pub struct RedisUrlError(String);

impl RedisStore {
    /// A store for `redis://[:password@]host:port[/db]`, with prefix
    /// `mcp-bastion:rl:` and a 500 ms timeout per decision.
    pub fn open(url: &str) -> Result<Self, RedisUrlError> {
        Self::with_options(url, "mcp-bastion:rl:", Duration::from_millis(500))
    }

    /// A store with a key prefix and a per-decision timeout (connecting
    /// included): past it, the failure policy decides.
    pub fn with_options(url: &str, prefix: &str, timeout: Duration) -> Result<Self, RedisUrlError> {
        let client = Client::open(url).map_err(|e| RedisUrlError(format!("{:?}", e.kind())))?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                conn: OnceCell::new(),
                prefix: prefix.to_owned(),
                timeout,
                sliding: Script::new(SLIDING_WINDOW),
                gcra: Script::new(GCRA),
            }),
        })
    }

    /// The Redis client, so another store (sessions) can share the same
    /// `--redis-url`.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    pub(crate) fn limiter(&self, rule: &str, limit: &Limit) -> RedisLimiter {
        // the limit is part of the key: changing it starts fresh counters
        // instead of reading another limit's state
        let params = match limit.algorithm() {
            Algorithm::SlidingWindow => {
                format!("w{}/{}ms", limit.count(), limit.period().as_millis())
            }
            Algorithm::Gcra => format!(
                "g{}/{}ms/b{}",
                limit.count(),
                limit.period().as_millis(),
                limit.burst()
            ),
        };
        RedisLimiter {
            store: self.clone(),
            prefix: format!("{}{rule}:{params}:", self.inner.prefix),
        }
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let conn = self
            .inner
            .conn
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.inner.timeout))
                    .set_response_timeout(Some(self.inner.timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                ConnectionManager::new_lazy_with_config(self.inner.client.clone(), config)
            })
            .await
            .map_err(store_error)?;
        Ok(conn.clone())
    }
}

fn store_error(e: redis::RedisError) -> StoreError {
    StoreError(e.to_string().into())
}

/// One rule's counters in Redis.
pub(crate) struct RedisLimiter {
    store: RedisStore,
    prefix: String,
}

impl RedisLimiter {
    pub(crate) async fn check(
        &self,
        key: &RateKey,
        limit: &Limit,
        cost: u32,
    ) -> Result<Decision, StoreError> {
        if limit.algorithm() == Algorithm::Gcra && cost > limit.burst() {
            return Ok(Decision::refused(limit, limit.period(), limit.period()));
        }
        let redis_key = format!("{}{key}", self.prefix);
        let timeout = self.store.inner.timeout;
        let run = async {
            let mut conn = self.store.connection().await?;
            match limit.algorithm() {
                Algorithm::SlidingWindow => {
                    let window_ms = limit.period().as_millis().max(1) as u64;
                    let r: Vec<i64> = self
                        .store
                        .inner
                        .sliding
                        .key(&redis_key)
                        .arg(limit.count())
                        .arg(window_ms)
                        .arg(cost)
                        .invoke_async(&mut conn)
                        .await
                        .map_err(store_error)?;
                    let [allowed, prev, cur, elapsed_ms] = r[..] else {
                        return Err(StoreError("unexpected script reply".into()));
                    };
                    let n = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
                    let elapsed = u128::from(elapsed_ms.max(0) as u64) * 1_000_000;
                    let mut d = window::decide(limit, n(prev), n(cur), elapsed, cost);
                    // Redis decided; the local arithmetic only fills in the numbers
                    if (allowed == 1) != d.allowed {
                        d.allowed = allowed == 1;
                        d.remaining = 0;
                        d.retry_after = if d.allowed {
                            Duration::ZERO
                        } else {
                            Duration::from_millis(1)
                        };
                    }
                    Ok(d)
                }
                Algorithm::Gcra => {
                    let interval = limit.emission_interval();
                    let interval_us = interval.as_micros().max(1) as u64;
                    let r: Vec<i64> = self
                        .store
                        .inner
                        .gcra
                        .key(&redis_key)
                        .arg(interval_us)
                        .arg(limit.burst())
                        .arg(cost)
                        .invoke_async(&mut conn)
                        .await
                        .map_err(store_error)?;
                    let [allowed, retry_us, used_us] = r[..] else {
                        return Err(StoreError("unexpected script reply".into()));
                    };
                    let used = Duration::from_micros(used_us.max(0) as u64);
                    if allowed == 1 {
                        let capacity = u64::from(limit.burst()) * interval_us;
                        let remaining =
                            capacity.saturating_sub(used_us.max(0) as u64) / interval_us;
                        Ok(Decision::allowed(limit, remaining as u32, used))
                    } else {
                        let wait = Duration::from_micros(retry_us.max(0) as u64);
                        Ok(Decision::refused(limit, wait, used))
                    }
                }
            }
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(StoreError("timed out".into())),
        }
    }
}
