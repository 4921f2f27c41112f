//! Criterion benchmarks of one rate-limit decision through `McpRateLimit`, the
//! path the layer takes for every request (client IP from the peer address,
//! key, limiter, `RateLimit` headers on the answer), against the same layer
//! with no limit, measured in the same run: in memory (sliding window and
//! GCRA; target: median under 1 µs) and in Redis
//! (one round trip to a `redis-server` this bench starts on an ephemeral
//! loopback port, when `redis-server` is installed).
//!
//! ```text
//! cargo bench -p benches --bench ratelimit
//! ```
//!
//! Results and the machine they came from: `docs/benchmarks.md`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::{
    convert::Infallible,
    net::{Ipv4Addr, SocketAddr},
};

use axum::{body::Body, extract::ConnectInfo};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use mcp_bastion::ratelimit::{McpRateLimitLayer, RateLimitPolicy, RedisStore};
use tests::redis::Redis;
use tower::{Layer, Service, service_fn};

/// A GET from one of 1024 client IPs (a realistic spread over the map).
fn request(i: u32) -> Request<Body> {
    let mut req = Request::get("/mcp").body(Body::empty()).unwrap();
    let ip = Ipv4Addr::from(0x0a00_0000 + (i % 1024));
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((ip, 40_000))));
    req
}

fn bench_layer(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    layer: McpRateLimitLayer,
) {
    let svc = layer.layer(service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    }));
    let mut i = 0u32;
    c.bench_function(name, |b| {
        // building the request is not the layer's work: it is done outside the timing
        b.to_async(rt).iter_batched(
            || {
                i = i.wrapping_add(1);
                (svc.clone(), request(i))
            },
            |(mut svc, req)| async move { svc.call(req).await.unwrap() },
            BatchSize::SmallInput,
        )
    });
}

fn in_memory(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // limits high enough that every decision is "allowed": the steady state
    for (name, limit) in [
        ("ratelimit/in_memory/sliding_window", "1000000000/s"),
        ("ratelimit/in_memory/gcra", "1000000000/s gcra"),
    ] {
        let layer =
            McpRateLimitLayer::new(RateLimitPolicy::new().default_limit(limit.parse().unwrap()));
        bench_layer(c, &rt, name, layer);
    }
    let baseline = McpRateLimitLayer::new(RateLimitPolicy::new());
    bench_layer(c, &rt, "ratelimit/no_limit_baseline", baseline);
}

fn in_redis(c: &mut Criterion) {
    if !Redis::installed() {
        eprintln!(
            "redis-server not found: skipping the Redis benchmarks (install it with .ci/deps/redis.sh)"
        );
        return;
    }
    let redis = Redis::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = redis.url();
    for (name, limit) in [
        ("ratelimit/redis/sliding_window", "1000000000/s"),
        ("ratelimit/redis/gcra", "1000000000/s gcra"),
    ] {
        let store = RedisStore::open(&url).unwrap();
        let layer =
            McpRateLimitLayer::new(RateLimitPolicy::new().default_limit(limit.parse().unwrap()))
                .redis(store);
        bench_layer(c, &rt, name, layer);
    }
    drop(redis);
}

criterion_group!(benches, in_memory, in_redis);
criterion_main!(benches);
