//! Memory of the in-memory limiter under a flood of distinct client IPs: one
//! million IPs, each making one request, through the real layer. Measured as
//! the growth of this process's resident set (its own test binary, so nothing
//! else allocates meanwhile), and then every key must be evicted once idle.
//!
//! The stated bound (docs/rate-limiting.md): under 192 bytes per key, i.e.
//! < 192 MB for a million keys held at once, for each algorithm (the exact
//! sliding window holds 48 bytes of state per key, plus the key and the hash
//! table's slack). Keys live until a window has passed since their last
//! admission (sliding window) or until their bucket is full again (GCRA).
#![allow(clippy::unwrap_used)]
#![cfg(feature = "ratelimit")]

use std::{
    convert::Infallible,
    net::{Ipv4Addr, SocketAddr},
    time::Duration,
};

use axum::{body::Body, extract::ConnectInfo};
use http::{Request, Response, StatusCode};
use mcp_bastion::ratelimit::{McpRateLimitLayer, RateLimitPolicy};
use tower::{Layer, Service, ServiceExt, service_fn};

const KEYS: u32 = 1_000_000;
const BOUND_BYTES_PER_KEY: u64 = 192;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

async fn flood(limit: &str) -> (u64, usize, usize) {
    let layer =
        McpRateLimitLayer::new(RateLimitPolicy::new().default_limit(limit.parse().unwrap()));
    let stats = layer.stats();
    let mut svc = layer.layer(service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    }));
    let before = rss_bytes();
    for i in 0..KEYS {
        let ip = Ipv4Addr::from(0x0a00_0000 + i);
        let mut req = Request::get("/mcp").body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((ip, 40_000))));
        let res = svc.ready().await.unwrap().call(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    let grown = rss_bytes().saturating_sub(before);
    let held = stats.keys_in_memory();
    // idle for a window (two, to be generous), the next request sweeps every stale key
    tokio::time::sleep(Duration::from_secs(130)).await;
    let mut req = Request::get("/mcp").body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 1], 1))));
    svc.ready().await.unwrap().call(req).await.unwrap();
    (grown, held, stats.keys_in_memory())
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_million_distinct_ips_stay_under_the_stated_bound_and_are_evicted() {
    for limit in ["100/min", "100/min gcra"] {
        let (grown, held, after) = flood(limit).await;
        println!(
            "{limit}: {KEYS} keys held, resident set grew {:.1} MiB ({} bytes/key); {after} key(s) after eviction",
            grown as f64 / (1024.0 * 1024.0),
            grown / u64::from(KEYS)
        );
        assert_eq!(held, KEYS as usize, "{limit}");
        assert!(
            grown < BOUND_BYTES_PER_KEY * u64::from(KEYS),
            "{limit}: {grown} bytes for {KEYS} keys is over the stated bound"
        );
        assert_eq!(after, 1, "{limit}: idle keys were not evicted");
    }
}
