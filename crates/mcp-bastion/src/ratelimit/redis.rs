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

/// Sliding window, the arithmetic of `window::check` in microseconds: a hash
/// per key with the last admission `l` and one counter per slot, fields
/// `0`..`SLOTS` (slot `j` in field `j % (SLOTS + 1)`). Arguments: limit,
/// window, slot length, cost, slots, and (tests only) the time to use instead
/// of Redis's `TIME`. Returns `{allowed, remaining, retry µs, reset µs}`.
const SLIDING_WINDOW: &str = r"
local n = tonumber(ARGV[1])
local w = tonumber(ARGV[2])
local l = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local slots = tonumber(ARGV[5])
local ring = slots + 1
local now = tonumber(ARGV[6])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local fields = {'l'}
for i = 0, slots do fields[#fields + 1] = tostring(i) end
local s = redis.call('HMGET', KEYS[1], unpack(fields))
local last = tonumber(s[1]) or 0
if now < last then now = last end
local k = math.floor(now / l)
local head = math.floor(last / l)
local live = {}
local total = 0
for age = 0, slots do
  local c = 0
  local j = k - age
  if now - last < w and j >= 0 and j <= head and head - j <= slots then
    c = tonumber(s[2 + (j % ring)]) or 0
  end
  live[age] = c
  total = total + c
end
if cost <= n and total + cost <= n then
  -- integers as %d: a number argument would be written in floating point
  local args = {'l', string.format('%d', now)}
  for age = 0, slots do
    local j = k - age
    if j >= 0 then
      local c = live[age]
      if age == 0 then c = c + cost end
      args[#args + 1] = tostring(j % ring)
      args[#args + 1] = string.format('%d', c)
    end
  end
  redis.call('HSET', KEYS[1], unpack(args))
  redis.call('PEXPIRE', KEYS[1], math.ceil(w / 1000) + 1)
  return {1, n - total - cost, 0, w}
end
local quiet_at = last + w - now
if quiet_at < 0 then quiet_at = 0 end
local retry = quiet_at
if cost > n then
  retry = w
else
  local left = total
  for j = 1, ring do
    left = left - live[ring - j]
    if left + cost <= n then
      local at = (k + j) * l - now
      if at < retry then retry = at end
      break
    end
  end
end
return {0, 0, retry, quiet_at}
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
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
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
    /// A store for `redis://[:password@]host:port[/db]` (or `rediss://` for
    /// TLS, checked against the Mozilla roots built in), with prefix
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

    /// Checks the certificate of a `rediss://` (TLS) server against the CA
    /// certificates of this PEM bundle instead of the built-in roots: a
    /// Redis whose certificate a private CA issued (a self-hosted Redis with
    /// `tls-cert-file`). Managed Redis services with public certificates need
    /// nothing: `rediss://` alone checks them against the Mozilla roots.
    ///
    /// A bundle for a `redis://` (plain) URL is refused: it would protect
    /// nothing, and is most likely a URL missing its `s`.
    ///
    /// ```
    /// use mcp_bastion::ratelimit::RedisStore;
    ///
    /// let plain = RedisStore::open("redis://127.0.0.1:6379").unwrap();
    /// assert!(plain.with_root_certificates(b"-----BEGIN CERTIFICATE-----").is_err());
    /// ```
    pub fn with_root_certificates(self, pem: &[u8]) -> Result<Self, RedisUrlError> {
        let info = self.inner.client.get_connection_info().clone();
        if !matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. }) {
            return Err(RedisUrlError(
                "a CA bundle is for a `rediss://` (TLS) URL, not `redis://`".into(),
            ));
        }
        let client = Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            },
        )
        // the error's kind only: its text could hold part of the URL
        .map_err(|e| RedisUrlError(format!("the CA bundle: {:?}", e.kind())))?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                conn: OnceCell::new(),
                prefix: self.inner.prefix.clone(),
                timeout: self.inner.timeout,
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
            // `s`: the slotted window (`w`, the weighted two-window counter
            // of earlier versions, kept another shape of state)
            Algorithm::SlidingWindow => {
                format!("s{}/{}ms", limit.count(), limit.period().as_millis())
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
        self.check_at(key, limit, cost, None).await
    }

    /// [`check`](Self::check), at `now_us` (microseconds) instead of Redis's
    /// clock for the sliding window: the tests compare the script with
    /// `window::check` on chosen times.
    pub(crate) async fn check_at(
        &self,
        key: &RateKey,
        limit: &Limit,
        cost: u32,
        now_us: Option<u64>,
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
                    let g = window::Geometry::new(
                        u64::try_from(limit.period().as_micros()).unwrap_or(u64::MAX),
                    );
                    let mut script = self.store.inner.sliding.key(&redis_key);
                    script
                        .arg(limit.count())
                        .arg(g.window)
                        .arg(g.slot)
                        .arg(cost)
                        .arg(window::SLOTS);
                    if let Some(now) = now_us {
                        script.arg(now);
                    }
                    let r: Vec<i64> = script.invoke_async(&mut conn).await.map_err(store_error)?;
                    let [allowed, remaining, retry_us, reset_us] = r[..] else {
                        return Err(StoreError("unexpected script reply".into()));
                    };
                    let v = |x: i64| u64::try_from(x).unwrap_or(0);
                    let verdict = window::Verdict {
                        allowed: allowed == 1,
                        remaining: u32::try_from(remaining).unwrap_or(0),
                        retry_after: v(retry_us),
                        reset: v(reset_us),
                    };
                    Ok(verdict.decision(limit, Duration::from_micros))
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

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used)]
    use std::{
        io::{Read, Write},
        net::{TcpListener, TcpStream},
        process::{Child, Command, Stdio},
    };

    use super::*;
    use crate::ratelimit::window::{Geometry, WindowState};

    /// A throwaway `redis-server` on an ephemeral loopback port.
    pub(crate) struct Server(Child);

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    pub(crate) async fn redis_server() -> (Server, String) {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (install it with `bash .ci/deps/redis.sh`)");
        let server = Server(child);
        for _ in 0..400 {
            if let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", port)) {
                let mut pong = [0u8; 7];
                if tcp.write_all(b"PING\r\n").is_ok() && tcp.read_exact(&mut pong).is_ok() {
                    return (server, format!("redis://127.0.0.1:{port}"));
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server did not start on {port}");
    }

    /// The Lua script and `window::check` are the same arithmetic: fed the
    /// same times (microseconds since 1970, as Redis's `TIME` gives them) and
    /// costs, with bursts and gaps of exactly a slot or a window, they make
    /// the same decisions with the same `Retry-After` and reset, to the
    /// microsecond.
    #[tokio::test]
    async fn the_script_decides_exactly_like_the_in_memory_window() {
        let (_server, url) = redis_server().await;
        let store = RedisStore::open(&url).unwrap();
        // periods of 10 s and more: the keys' expiry runs on Redis's own clock
        for spec in ["3/10s", "20/10s", "1/min", "8/h", "7/45s"] {
            let limit: Limit = spec.parse().unwrap();
            let limiter = store.limiter("test", &limit);
            let g = Geometry::new(limit.period().as_micros() as u64);
            let mut state = WindowState::default();
            let mut now = 1_764_000_000_123_457u64;
            let mut seed = 0x2545_f491_4f6c_dd1du64;
            let mut refused = 0;
            for step in 0..300 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                now += match seed % 8 {
                    0 | 1 => 0,
                    2 => 1,
                    3 => g.slot,
                    4 => g.window,
                    _ => (seed >> 8) % (g.window / 3),
                };
                let cost = 1 + ((seed >> 40) % 3) as u32;
                let got = limiter
                    .check_at(&RateKey::Global, &limit, cost, Some(now))
                    .await
                    .unwrap();
                let want = window::check(&mut state, limit.count(), g, now, cost)
                    .decision(&limit, Duration::from_micros);
                assert_eq!(got, want, "{spec}, step {step}, at {now} µs, cost {cost}");
                refused += usize::from(!got.allowed);
            }
            assert!(refused > 10, "{spec}: the sequence must reach the limit");
        }
    }
}
