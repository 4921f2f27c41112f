//! The compiled policy: one counter per rule, and the decision for a request.

use std::{net::IpAddr, sync::Arc};

use http::{HeaderMap, HeaderValue, Method, request::Parts};

use super::{
    Decision, FailurePolicy, KeyBy, Limit, RateLimitPolicy, RateLimitRejection, TierMatch,
    concurrency::Concurrency,
    declared,
    rejection::{HeaderLine, PolicyDecision, insert_headers, policy_item, sf_string},
    store::{Limiter, StoreHealth, quota_of},
};
use crate::{inspect::McpRequest, net::TrustedProxies, principal::Principal};

/// Where the counters live.
#[derive(Clone, Default)]
pub(crate) enum StoreConfig {
    #[default]
    Memory,
    #[cfg(feature = "redis")]
    Redis(super::redis::RedisStore),
}

/// Everything the layer was configured with.
#[derive(Clone, Default)]
pub(crate) struct Config {
    pub(crate) policy: RateLimitPolicy,
    pub(crate) tiers: Vec<(TierMatch, RateLimitPolicy)>,
    pub(crate) declared: bool,
    pub(crate) proxies: TrustedProxies,
    pub(crate) headers: bool,
    pub(crate) store: StoreConfig,
    pub(crate) failure: FailurePolicy,
    pub(crate) max_concurrent: Option<u32>,
    pub(crate) max_streams: Option<u32>,
    pub(crate) concurrency_key: Option<KeyBy>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    Default,
    Method(String),
    Tool(String),
}

struct Rule {
    name: Arc<str>,
    /// The name as a structured-field string, for the `RateLimit` header.
    sf_name: Box<str>,
    /// This rule's `RateLimit-Policy` item, and the whole header when it is
    /// the only rule that applied: both constant, so made once.
    policy: Box<str>,
    policy_value: Option<HeaderValue>,
    scope: Scope,
    limit: Limit,
    key: KeyBy,
    limiter: Limiter,
}

struct Compiled {
    /// Most specific first: a refusal by a tool limit leaves the method and
    /// default limits unspent.
    rules: Vec<Rule>,
}

pub(crate) struct Engine {
    base: Compiled,
    tiers: Vec<(TierMatch, Compiled)>,
    pub(crate) proxies: TrustedProxies,
    pub(crate) headers: bool,
    failure: FailurePolicy,
    pub(crate) health: StoreHealth,
    epoch: tokio::time::Instant,
    pub(crate) concurrency: Option<Concurrency>,
}

/// What the engine decided.
pub(crate) enum Outcome<'a> {
    Allowed(Allowed<'a>),
    Refused(RateLimitRejection),
}

/// The rules that applied to an allowed request, with their decisions. The
/// first is held inline: one rule is the common case, and then nothing is
/// allocated.
pub(crate) struct Allowed<'a> {
    first: Option<(&'a Rule, Decision)>,
    rest: Vec<(&'a Rule, Decision)>,
}

impl<'a> Allowed<'a> {
    fn push(&mut self, applied: (&'a Rule, Decision)) {
        if self.first.is_none() {
            self.first = Some(applied);
        } else {
            self.rest.push(applied);
        }
    }

    fn into_applied(self) -> impl Iterator<Item = (&'a Rule, Decision)> {
        self.first.into_iter().chain(self.rest)
    }

    /// Adds `RateLimit-Policy` and `RateLimit` for these decisions.
    pub(crate) fn insert_headers(&self, headers: &mut HeaderMap) {
        let policy = match (&self.first, self.rest.is_empty()) {
            (Some((rule, _)), true) => rule.policy_value.clone(),
            _ => None,
        };
        let lines = self
            .first
            .iter()
            .chain(&self.rest)
            .map(|(rule, decision)| HeaderLine {
                policy: &rule.policy,
                name: &rule.sf_name,
                decision,
            });
        insert_headers(headers, lines, policy);
    }
}

impl Engine {
    pub(crate) fn new(config: &Config) -> Self {
        let epoch = tokio::time::Instant::now();
        let mut policy = config.policy.clone();
        if config.declared {
            for d in declared::declared_tool_limits() {
                if policy.tools.iter().any(|t| t.tool == d.tool) {
                    continue; // configuration wins over the code's declaration
                }
                match d.to_tool_limit() {
                    Ok(t) => policy = policy.tool_limit(t),
                    Err(e) => {
                        tracing::error!(target: "mcp_bastion::ratelimit", tool = d.tool, "ignoring #[rate_limit]: {e}")
                    }
                }
            }
        }
        let base = compile(&policy, "", config, epoch);
        let tiers = config
            .tiers
            .iter()
            .enumerate()
            .map(|(i, (m, p))| (m.clone(), compile(p, &format!("tier{i}."), config, epoch)))
            .collect();
        let concurrency =
            (config.max_concurrent.is_some() || config.max_streams.is_some()).then(|| {
                Concurrency::new(
                    config
                        .concurrency_key
                        .clone()
                        .unwrap_or_else(|| config.policy.key.clone()),
                    config.max_concurrent,
                    config.max_streams,
                )
            });
        Engine {
            base,
            tiers,
            proxies: config.proxies.clone(),
            headers: config.headers,
            failure: config.failure,
            health: StoreHealth::default(),
            epoch,
            concurrency,
        }
    }

    /// Checks every rule that applies, most specific first; stops at the
    /// first refusal.
    pub(crate) async fn check(&self, parts: &Parts, ip: Option<IpAddr>) -> Outcome<'_> {
        let compiled = parts
            .extensions
            .get::<Principal>()
            .and_then(|p| self.tiers.iter().find(|(m, _)| m.matches(p)))
            .map_or(&self.base, |(_, c)| c);
        let mcp = parts.extensions.get::<McpRequest>();
        let mut decisions = Allowed {
            first: None,
            rest: Vec::new(),
        };
        for rule in &compiled.rules {
            let cost = cost(&rule.scope, &parts.method, mcp);
            if cost == 0 {
                continue;
            }
            let key = rule.key.resolve(parts, ip);
            // while the shared store is down, only one probe a second reaches it
            let result = if rule.limiter.is_shared() && !self.health.should_try() {
                None
            } else {
                Some(
                    rule.limiter
                        .check(&key, &rule.limit, cost, self.epoch)
                        .await,
                )
            };
            match result {
                Some(Ok(decision)) => {
                    self.health.succeeded();
                    if !decision.allowed {
                        tracing::debug!(target: "mcp_bastion::ratelimit", policy = %rule.name, %key, retry_after = ?decision.retry_after, "rate limited");
                        let pd = |(rule, decision): (&Rule, Decision)| PolicyDecision {
                            name: rule.name.clone(),
                            limit: rule.limit,
                            decision,
                        };
                        let earlier = decisions.into_applied().map(pd).collect();
                        return Outcome::Refused(RateLimitRejection::limited(
                            pd((rule, decision)),
                            earlier,
                            mcp,
                        ));
                    }
                    decisions.push((rule, decision));
                }
                failed => {
                    match failed {
                        Some(Err(e)) => self.health.failed(&e, self.failure),
                        _ => self.health.skipped(),
                    }
                    if self.failure == FailurePolicy::Closed {
                        return Outcome::Refused(RateLimitRejection::unavailable(
                            rule.name.clone(),
                            mcp,
                        ));
                    }
                }
            }
        }
        Outcome::Allowed(decisions)
    }

    /// Keys held in memory over every rule.
    pub(crate) fn keys_in_memory(&self) -> usize {
        self.base
            .rules
            .iter()
            .chain(self.tiers.iter().flat_map(|(_, c)| c.rules.iter()))
            .map(|r| r.limiter.len())
            .sum()
    }
}

/// How many units a request spends of a rule.
fn cost(scope: &Scope, method: &Method, mcp: Option<&McpRequest>) -> u32 {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    match (scope, mcp) {
        (Scope::Default, Some(req)) => count(req.request_ids().count()),
        (Scope::Default, None) if method == Method::GET => 1,
        // a POST the inspect layer did not see: count it, it is a request
        (Scope::Default, None) if method == Method::POST => 1,
        (Scope::Default, None) => 0,
        (Scope::Method(m), Some(req)) => count(
            req.messages()
                .iter()
                .filter(|msg| msg.method() == Some(m))
                .count(),
        ),
        (Scope::Tool(t), Some(req)) => count(req.tool_names().filter(|n| n == t).count()),
        (_, None) => 0,
    }
}

fn compile(
    policy: &RateLimitPolicy,
    prefix: &str,
    config: &Config,
    epoch: tokio::time::Instant,
) -> Compiled {
    let mut rules = Vec::new();
    let mut push = |name: String, scope: Scope, limit: Limit, key: Option<&KeyBy>| {
        let key = key.unwrap_or(&policy.key).clone();
        let limiter = limiter(&format!("{prefix}{name}"), &limit, config, epoch);
        let policy = policy_item(&name, &limit, quota_of(&limit));
        rules.push(Rule {
            sf_name: sf_string(&name).into(),
            policy_value: HeaderValue::try_from(policy.as_str()).ok(),
            policy: policy.into(),
            name: name.into(),
            scope,
            limit,
            key,
            limiter,
        });
    };
    for t in &policy.tools {
        push(
            format!("tool.{}", t.tool),
            Scope::Tool(t.tool.clone()),
            t.limit,
            t.key.as_ref(),
        );
    }
    for m in &policy.methods {
        push(
            format!("method.{}", m.method),
            Scope::Method(m.method.clone()),
            m.limit,
            m.key.as_ref(),
        );
    }
    if let Some(l) = policy.default {
        push("default".to_owned(), Scope::Default, l, None);
    }
    Compiled { rules }
}

#[cfg_attr(not(feature = "redis"), allow(unused_variables))]
fn limiter(id: &str, limit: &Limit, config: &Config, epoch: tokio::time::Instant) -> Limiter {
    match &config.store {
        StoreConfig::Memory => Limiter::memory(limit, epoch),
        #[cfg(feature = "redis")]
        StoreConfig::Redis(store) => Limiter::Redis(store.limiter(id, limit)),
    }
}
