//! The compiled policy: one counter per rule, and the decision for a request.

use std::{net::IpAddr, sync::Arc};

use http::{HeaderValue, Method, request::Parts};

use super::{
    Decision, FailurePolicy, KeyBy, Limit, RateLimitPolicy, RateLimitRejection, TierMatch,
    concurrency::Concurrency,
    declared,
    key::RateKey,
    rejection::{HeaderLine, PolicyDecision, RateLimitHeaders, policy_item, sf_string},
    store::{Limiter, StoreError, StoreHealth, quota_of},
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
    /// No rule counts in a shared store: every decision can be made without
    /// waiting ([`Engine::check_now`]).
    all_memory: bool,
}

/// What the engine decided.
pub(crate) enum Outcome<'a> {
    Allowed(Allowed<'a>),
    Refused(RateLimitRejection),
}

/// The rules that applied to an allowed request, with their decisions. The
/// first is held inline: one rule is the common case, and then nothing is
/// allocated.
#[derive(Default)]
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

    /// The `RateLimit-Policy` and `RateLimit` values for these decisions
    /// (`None` when no rule applied).
    pub(crate) fn headers(&self) -> Option<RateLimitHeaders> {
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
        RateLimitHeaders::new(lines, policy)
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
        let tiers: Vec<_> = config
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
        let all_memory = !every_rule(&base, &tiers).any(|r| r.limiter.is_shared());
        Engine {
            base,
            tiers,
            all_memory,
            proxies: config.proxies.clone(),
            headers: config.headers,
            failure: config.failure,
            health: StoreHealth::default(),
            epoch,
            concurrency,
        }
    }

    /// Checks every rule that applies, most specific first; stops at the
    /// first refusal. `None` when a rule counts in a shared store: then only
    /// [`Engine::check`] can decide.
    pub(crate) fn check_now(&self, parts: &Parts, ip: Option<IpAddr>) -> Option<Outcome<'_>> {
        // decided up front, not at the first shared rule: by then the memory
        // rules before it would have been spent
        if !self.all_memory {
            return None;
        }
        let (rules, mcp) = self.rules_for(parts);
        let mut allowed = Allowed::default();
        for rule in rules {
            let Some((key, cost)) = rule.charge(parts, mcp, ip) else {
                continue;
            };
            // all in memory: never `None`
            let result = rule
                .limiter
                .check_now(&key, &rule.limit, cost, self.epoch)
                .map(Ok);
            if let Err(refused) = self.settle(rule, &key, result, &mut allowed, mcp) {
                return Some(Outcome::Refused(refused));
            }
        }
        Some(Outcome::Allowed(allowed))
    }

    /// [`Engine::check_now`] for any store: waits for the shared one.
    pub(crate) async fn check(&self, parts: &Parts, ip: Option<IpAddr>) -> Outcome<'_> {
        let (rules, mcp) = self.rules_for(parts);
        let mut allowed = Allowed::default();
        for rule in rules {
            let Some((key, cost)) = rule.charge(parts, mcp, ip) else {
                continue;
            };
            let result = match rule.limiter.check_now(&key, &rule.limit, cost, self.epoch) {
                Some(decision) => Some(Ok(decision)),
                // while the shared store is down, only one probe a second reaches it
                None if self.health.should_try() => {
                    Some(rule.limiter.check_shared(&key, &rule.limit, cost).await)
                }
                None => None,
            };
            if let Err(refused) = self.settle(rule, &key, result, &mut allowed, mcp) {
                return Outcome::Refused(refused);
            }
        }
        Outcome::Allowed(allowed)
    }

    /// The rules of the request's tier (the base policy's without one), and
    /// what the inspect layer parsed.
    fn rules_for<'p>(&self, parts: &'p Parts) -> (&[Rule], Option<&'p McpRequest>) {
        let compiled = parts
            .extensions
            .get::<Principal>()
            .and_then(|p| self.tiers.iter().find(|(m, _)| m.matches(p)))
            .map_or(&self.base, |(_, c)| c);
        (&compiled.rules, parts.extensions.get::<McpRequest>())
    }

    /// Applies one rule's answer: `result` is `None` when the shared store
    /// was skipped (known to be down). Records an allowance in `allowed`, or
    /// returns the refusal, by the limit or by the failure policy.
    fn settle<'a>(
        &'a self,
        rule: &'a Rule,
        key: &RateKey,
        result: Option<Result<Decision, StoreError>>,
        allowed: &mut Allowed<'a>,
        mcp: Option<&McpRequest>,
    ) -> Result<(), RateLimitRejection> {
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
                    let earlier = std::mem::take(allowed).into_applied().map(pd).collect();
                    return Err(RateLimitRejection::limited(
                        pd((rule, decision)),
                        earlier,
                        mcp,
                    ));
                }
                allowed.push((rule, decision));
            }
            failed => {
                match failed {
                    Some(Err(e)) => self.health.failed(&e, self.failure),
                    _ => self.health.skipped(),
                }
                if self.failure == FailurePolicy::Closed {
                    return Err(RateLimitRejection::unavailable(rule.name.clone(), mcp));
                }
            }
        }
        Ok(())
    }

    /// Keys held in memory over every rule.
    pub(crate) fn keys_in_memory(&self) -> usize {
        every_rule(&self.base, &self.tiers)
            .map(|r| r.limiter.len())
            .sum()
    }
}

/// The rules of the base policy and of every tier.
fn every_rule<'a>(
    base: &'a Compiled,
    tiers: &'a [(TierMatch, Compiled)],
) -> impl Iterator<Item = &'a Rule> {
    base.rules
        .iter()
        .chain(tiers.iter().flat_map(|(_, c)| c.rules.iter()))
}

impl Rule {
    /// The key this rule counts the request under and how many units it
    /// spends; `None` when the rule does not apply to it.
    fn charge(
        &self,
        parts: &Parts,
        mcp: Option<&McpRequest>,
        ip: Option<IpAddr>,
    ) -> Option<(RateKey, u32)> {
        let cost = cost(&self.scope, &parts.method, mcp);
        (cost > 0).then(|| (self.key.resolve(parts, ip), cost))
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
