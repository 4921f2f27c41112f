//! The rate-limit flags of `mcp-bastion` and the layer they build.

use std::str::FromStr;

use clap::Args;
use mcp_bastion::{
    net::{InvalidCidr, TrustedProxies, parse_cidr},
    ratelimit::{
        FailurePolicy, KeyBy, Limit, McpRateLimitLayer, MethodLimit, RateLimitPolicy, RedisStore,
        TierMatch, ToolLimit,
    },
};

/// Rate limits, concurrency caps, trusted proxies and the Redis store.
#[derive(Debug, Clone, Args)]
pub struct RateLimitArgs {
    /// Limit on every request, e.g. `100/min`, `10/s`, `5000/h`, `10/s gcra burst=20`.
    #[arg(long, env = "MCP_BASTION_RATE_LIMIT", value_name = "LIMIT")]
    pub rate_limit: Option<Limit>,

    /// What limits are counted per.
    #[arg(long, env = "MCP_BASTION_RATE_LIMIT_KEY", value_name = "KEY", default_value = "ip",
          value_parser = ["principal", "key", "ip", "session", "global"])]
    pub rate_limit_key: String,

    /// Limit on one tool, `TOOL=LIMIT` (repeatable); each call of a batch counts.
    #[arg(long = "tool-rate-limit", value_name = "TOOL=LIMIT", value_parser = parse_tool_limit)]
    pub tool_rate_limit: Vec<ToolLimit>,

    /// Limit on one JSON-RPC method, `METHOD=LIMIT` (repeatable), e.g. `resources/read=30/min`.
    #[arg(long = "method-rate-limit", value_name = "METHOD=LIMIT", value_parser = parse_method_limit)]
    pub method_rate_limit: Vec<MethodLimit>,

    /// A principal holding SCOPE gets LIMIT instead of `--rate-limit`, `SCOPE=LIMIT`
    /// (repeatable; the first scope the principal holds wins; tool and method limits still apply).
    #[arg(long = "tier-rate-limit", value_name = "SCOPE=LIMIT", value_parser = parse_tier_limit)]
    pub tier_rate_limit: Vec<(String, Limit)>,

    /// At most N requests in flight per key (a streamed answer counts until it ends).
    #[arg(long, value_name = "N")]
    pub max_concurrent: Option<u32>,

    /// At most N open GET streams (`/mcp` GET, `/sse`) per key.
    #[arg(long, value_name = "N")]
    pub max_streams: Option<u32>,

    /// A proxy whose Forwarded / X-Forwarded-For / X-Real-IP headers are believed (repeatable).
    #[arg(long = "trusted-proxy", env = "MCP_BASTION_TRUSTED_PROXIES", value_name = "CIDR",
          value_delimiter = ',', value_parser = parse_proxy)]
    pub trusted_proxy: Vec<ipnet::IpNet>,

    /// Share the counters in Redis (`redis://[:password@]host:port[/db]`).
    #[arg(long, env = "MCP_BASTION_REDIS_URL", value_name = "URL", value_parser = parse_redis, hide_env_values = true)]
    pub redis_url: Option<RedisStore>,

    /// When Redis cannot be reached: let requests through (open) or refuse them with 503 (closed).
    #[arg(long, value_name = "open|closed", default_value = "open", value_parser = FailurePolicy::from_str)]
    pub redis_failure: FailurePolicy,

    /// Leave the RateLimit-Policy / RateLimit headers off allowed answers.
    #[arg(long)]
    pub no_rate_limit_headers: bool,
}

fn split_pair(s: &str, what: &str) -> Result<(String, Limit), String> {
    let (name, limit) = s
        .split_once('=')
        .filter(|(n, _)| !n.trim().is_empty())
        .ok_or_else(|| format!("expected {what}=LIMIT, e.g. `search=10/min`"))?;
    let limit = limit.parse::<Limit>().map_err(|e| e.to_string())?;
    Ok((name.trim().to_owned(), limit))
}

fn parse_tool_limit(s: &str) -> Result<ToolLimit, String> {
    let (tool, limit) = split_pair(s, "TOOL")?;
    Ok(ToolLimit {
        tool,
        limit,
        key: None,
    })
}

fn parse_method_limit(s: &str) -> Result<MethodLimit, String> {
    let (method, limit) = split_pair(s, "METHOD")?;
    Ok(MethodLimit {
        method,
        limit,
        key: None,
    })
}

fn parse_tier_limit(s: &str) -> Result<(String, Limit), String> {
    split_pair(s, "SCOPE")
}

fn parse_proxy(s: &str) -> Result<ipnet::IpNet, InvalidCidr> {
    parse_cidr(s)
}

fn parse_redis(s: &str) -> Result<RedisStore, String> {
    RedisStore::open(s).map_err(|e| e.to_string())
}

impl RateLimitArgs {
    /// The layer these flags describe. Without any limit or cap it lets
    /// everything through untouched (no headers).
    pub fn layer(&self) -> McpRateLimitLayer {
        let key = KeyBy::from_str(&self.rate_limit_key).unwrap_or_default();
        let mut policy = RateLimitPolicy::new().key(key);
        if let Some(limit) = self.rate_limit {
            policy = policy.default_limit(limit);
        }
        for t in &self.tool_rate_limit {
            policy = policy.tool_limit(t.clone());
        }
        for m in &self.method_rate_limit {
            policy = policy.method_limit(m.clone());
        }
        let tiers = self.tier_rate_limit.iter().map(|(scope, limit)| {
            (
                TierMatch::scope(scope.as_str()),
                policy.clone().default_limit(*limit),
            )
        });
        let tiers: Vec<_> = tiers.collect();
        let mut layer = McpRateLimitLayer::new(policy);
        for (tier, policy) in tiers {
            layer = layer.tier(tier, policy);
        }
        let mut layer = layer
            .trusted_proxies(TrustedProxies::new(self.trusted_proxy.iter().copied()))
            .headers(!self.no_rate_limit_headers)
            .failure_policy(self.redis_failure);
        if let Some(n) = self.max_concurrent {
            layer = layer.max_concurrent(n);
        }
        if let Some(n) = self.max_streams {
            layer = layer.max_streams(n);
        }
        if let Some(store) = &self.redis_url {
            layer = layer.redis(store.clone());
        }
        layer
    }
}
