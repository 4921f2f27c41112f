//! Criterion benchmark of one RS256 JWT verification: `jsonwebtoken::decode`
//! with the key in hand (the raw cost), against `JwtAuthenticator::verify`
//! through a warm `JwksCache` (the key set served by this bench on a loopback
//! port and fetched once), with the signature checked every time
//! (`no_verified_cache`) and with the default reuse of verified tokens.
//! Target (issue 8): the JWKS path with the signature checked ≤ 1.2× the raw
//! one.
//!
//! ```text
//! cargo bench -p benches --bench jwt
//! ```
//!
//! `cargo run -p benches --release -- all` runs it too and reports the ratio
//! in `docs/benchmarks.md`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::{
    hint::black_box,
    path::{Path, PathBuf},
    time::Instant,
};

use benches::jwt;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use mcp_bastion::auth::JwtAuthenticator;
use serde_json::Value;

fn verify(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let token = jwt::token("bench-client").unwrap();

    // the raw cost: the decoding key already built, the same validation
    let set: JwkSet = serde_json::from_str(jwt::JWKS_JSON).unwrap();
    let key = DecodingKey::from_jwk(&set.keys[0]).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[jwt::ISSUER]);
    validation.set_audience(&[jwt::AUDIENCE]);
    c.bench_function("jwt/raw_jsonwebtoken", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<Value>(black_box(&token), &key, &validation)
                .unwrap()
                .claims
        })
    });

    // through the JWKS cache, warm
    let addr = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, jwt::jwks_router()).await });
        addr
    });
    let build = |token_cache: bool| {
        let builder = jwt::verifier(addr);
        let builder = if token_cache {
            builder
        } else {
            builder.no_verified_cache()
        };
        let auth = builder.build().unwrap();
        rt.block_on(auth.verify(&token)).unwrap();
        auth
    };
    // every call checks the signature, with the key from the JWKS cache
    let jwks_only = build(false);
    // the default: a token verified once is reused while valid
    let auth = build(true);
    let fetches = |a: &JwtAuthenticator| a.jwks().map(|j| j.fetch_count());
    let before = (fetches(&jwks_only), fetches(&auth));
    c.bench_function("jwt/jwks_cache", |b| {
        b.to_async(&rt)
            .iter(|| async { jwks_only.verify(black_box(&token)).await.unwrap() })
    });
    c.bench_function("jwt/jwks_cache_and_verified_tokens", |b| {
        b.to_async(&rt)
            .iter(|| async { auth.verify(black_box(&token)).await.unwrap() })
    });
    assert_eq!(
        (fetches(&jwks_only), fetches(&auth)),
        before,
        "each key set was fetched once, before measuring"
    );

    // The ratios, measured call by call alternately (raw, JWKS, JWKS and
    // verified tokens, raw, …) so that other work on the machine weighs on
    // every side alike: ratios of the medians.
    let mut times = [(); 3].map(|()| Vec::with_capacity(CALLS));
    rt.block_on(async {
        for _ in 0..CALLS {
            let start = Instant::now();
            black_box(jsonwebtoken::decode::<Value>(black_box(&token), &key, &validation).unwrap());
            times[0].push(start.elapsed());
            let start = Instant::now();
            black_box(jwks_only.verify(black_box(&token)).await.unwrap());
            times[1].push(start.elapsed());
            let start = Instant::now();
            black_box(auth.verify(black_box(&token)).await.unwrap());
            times[2].push(start.elapsed());
        }
    });
    let [raw, cached, reused] = times.map(|mut t| {
        t.sort();
        t[CALLS / 2]
    });
    let ratio = cached.as_secs_f64() / raw.as_secs_f64();
    let reused_ratio = reused.as_secs_f64() / raw.as_secs_f64();
    println!(
        "jwt/paired: medians of {CALLS} alternating calls: raw {raw:?}; through the JWKS cache {cached:?} ({ratio:.3}×); \
         with verified tokens reused {reused:?} ({reused_ratio:.4}×)"
    );
    let dir = criterion_dir().join("jwt");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(
        dir.join("paired.json"),
        serde_json::json!({
            "ratio": ratio,
            "raw_ns": raw.as_nanos() as u64,
            "cached_ns": cached.as_nanos() as u64,
            "reused_ns": reused.as_nanos() as u64,
            "calls": CALLS,
        })
        .to_string(),
    );
}

/// Calls of each kind in the alternating measurement.
const CALLS: usize = 2001;

/// Where criterion writes its results: `$CARGO_TARGET_DIR/criterion`, or
/// `target/criterion` of the workspace.
fn criterion_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("criterion")
}

criterion_group!(benches, verify);
criterion_main!(benches);
