//! The rate-limit flags of `mcp-bastion` and the layer their configuration builds.

use std::str::FromStr;

use clap::Args;
use mcp_bastion::{
    net::TrustedProxies,
    ratelimit::{KeyBy, McpRateLimitLayer, RateLimitPolicy, TierMatch},
};
use mcp_bastion_cli::config::RateLimitConfig;
use serde::Serialize;

/// Rate limits, concurrency caps, trusted proxies and the Redis store, as given.
#[derive(Debug, Clone, Default, Args, Serialize)]
#[command(next_help_heading = "Rate limits")]
#[serde(rename_all = "kebab-case")]
pub struct RateLimitFlags {
    /// Limit on every request, e.g. `100/min`, `10/s`, `5000/h`, `10/s gcra burst=20`.
    #[arg(long, value_name = "LIMIT")]
    pub rate_limit: Option<String>,

    /// What limits are counted per: principal, key, ip, session or global [default: ip].
    #[arg(long, value_name = "KEY")]
    pub rate_limit_key: Option<String>,

    /// Limit on one tool, `TOOL=LIMIT` (repeatable); each call of a batch counts.
    #[arg(long, value_name = "TOOL=LIMIT")]
    pub tool_rate_limit: Vec<String>,

    /// Limit on one JSON-RPC method, `METHOD=LIMIT` (repeatable), e.g. `resources/read=30/min`.
    #[arg(long, value_name = "METHOD=LIMIT")]
    pub method_rate_limit: Vec<String>,

    /// A principal holding SCOPE gets LIMIT instead of `--rate-limit`, `SCOPE=LIMIT`
    /// (repeatable; the first scope the principal holds wins; tool and method limits still apply).
    #[arg(long, value_name = "SCOPE=LIMIT")]
    pub tier_rate_limit: Vec<String>,

    /// At most N requests in flight per key (a streamed answer counts until it ends).
    #[arg(long, value_name = "N")]
    pub max_concurrent: Option<String>,

    /// At most N open GET streams (`/mcp` GET, `/sse`) per key.
    #[arg(long, value_name = "N")]
    pub max_streams: Option<String>,

    /// A proxy whose Forwarded / X-Forwarded-For / X-Real-IP headers are
    /// believed (repeatable, or comma-separated).
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub trusted_proxy: Vec<String>,

    /// Share the counters in Redis (`redis://[:password@]host:port[/db]`,
    /// or `rediss://` for TLS).
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,

    /// Check the certificate of a `rediss://` Redis against the CA
    /// certificates in this PEM file instead of the Mozilla roots built in
    /// (a Redis whose certificate a private CA issued).
    #[arg(long, value_name = "FILE")]
    pub redis_ca: Option<String>,

    /// When Redis cannot be reached: let requests through (open) or refuse
    /// them with 503 (closed) [default: open].
    #[arg(long, value_name = "open|closed")]
    pub redis_failure: Option<String>,

    /// Leave the RateLimit-Policy / RateLimit headers off allowed answers.
    #[arg(long)]
    pub no_rate_limit_headers: bool,
}

/// The layer `config` describes. Without any limit or cap it lets
/// everything through untouched (no headers).
pub fn layer(config: &RateLimitConfig) -> McpRateLimitLayer {
    let key = clap::ValueEnum::to_possible_value(config.rate_limit_key.get())
        .and_then(|name| KeyBy::from_str(name.get_name()).ok())
        .unwrap_or_default();
    let mut policy = RateLimitPolicy::new().key(key);
    if let Some(limit) = &config.rate_limit {
        policy = policy.default_limit(*limit.get());
    }
    for t in config.tool_rate_limit.iter() {
        policy = policy.tool_limit(t.clone());
    }
    for m in config.method_rate_limit.iter() {
        policy = policy.method_limit(m.clone());
    }
    let tiers: Vec<_> = config
        .tier_rate_limit
        .iter()
        .map(|tier| {
            (
                TierMatch::scope(tier.scope.as_str()),
                policy.clone().default_limit(tier.limit),
            )
        })
        .collect();
    let mut layer = McpRateLimitLayer::new(policy);
    for (tier, policy) in tiers {
        layer = layer.tier(tier, policy);
    }
    let mut layer = layer
        .trusted_proxies(TrustedProxies::new(config.trusted_proxy.iter().copied()))
        .headers(!config.no_rate_limit_headers)
        .failure_policy(*config.redis_failure.get());
    if let Some(n) = &config.max_concurrent {
        layer = layer.max_concurrent(*n.get());
    }
    if let Some(n) = &config.max_streams {
        layer = layer.max_streams(*n.get());
    }
    if let Some(store) = &config.redis_url {
        layer = layer.redis(store.get().clone());
    }
    layer
}
