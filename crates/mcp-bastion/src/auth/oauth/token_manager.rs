//! The token manager: a grant's upstream access token for the backends,
//! refreshed with the provider's `refresh_token` grant before it expires.
//!
//! | situation | answer |
//! |---|---|
//! | the token lives longer than the margin (default 60 s), or says no expiry | the stored token, no call to the provider |
//! | within the margin | one refresh per grant at a time: in this process the others wait for it; across replicas a lease record in the store makes the others wait for the stored result |
//! | the provider refuses the refresh (or there is no refresh token) and the token expired | [`Refused`](UpstreamTokenError::Refused): the grant is revoked, so the client's next request gets 401 and its user logs in again |
//! | the provider or the store cannot be reached | the stored token while it has not expired, else [`Unavailable`](UpstreamTokenError::Unavailable) |
//! | the grant is revoked, or its sealed tokens do not open | [`Absent`](UpstreamTokenError::Absent) |
//!
//! Why refuse rather than proceed without a token: a backend run for a user
//! with a stale token or none fails later and less clearly (or acts
//! anonymously); refusing the session names the cause, and the revoked
//! grant sends the client back through login, which brings fresh tokens.
//! The store's record is the truth: every decision re-reads it after
//! waiting, and a refused refresh first checks whether another replica
//! already stored new tokens.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use serde_json::json;

use super::{
    RecordKind,
    records::{GRANT_TTL, Grant},
    server::Inner,
    upstream::{UpstreamError, UpstreamTokens},
};
use crate::{
    boxed::BoxFuture,
    upstream_token::{UpstreamAccess, UpstreamToken, UpstreamTokenError, UpstreamTokenSource},
};

/// How long a replica's refresh lease lives (a crashed replica's lease
/// frees itself).
const LEASE_TTL: Duration = Duration::from_secs(20);
/// How often a waiting replica looks at the grant again, and how long at most.
const LEASE_POLL: Duration = Duration::from_millis(100);
const LEASE_WAIT: Duration = Duration::from_secs(15);

/// The refreshes in flight in this process, one lock per grant.
#[derive(Debug)]
pub(crate) struct TokenManager {
    margin: Duration,
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl TokenManager {
    pub(crate) fn new(margin: Duration) -> Self {
        Self {
            margin,
            locks: Mutex::new(HashMap::new()),
        }
    }

    fn lock_for(&self, grant_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(lock) = locks.get(grant_id).and_then(Weak::upgrade) {
            return lock;
        }
        // forget the grants nobody is refreshing any more
        locks.retain(|_, l| l.strong_count() > 0);
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(grant_id.to_owned(), Arc::downgrade(&lock));
        lock
    }

    fn fresh(&self, tokens: &UpstreamTokens) -> bool {
        tokens
            .expires_at
            .is_none_or(|at| at > super::unix_now().saturating_add(self.margin.as_secs()))
    }
}

fn expired(tokens: &UpstreamTokens) -> bool {
    tokens.expires_at.is_some_and(|at| at <= super::unix_now())
}

fn token(tokens: UpstreamTokens) -> UpstreamToken {
    UpstreamToken::new(tokens.access_token)
}

/// The [`UpstreamTokenSource`] of one grant, attached to the principals its
/// access tokens authenticate.
pub(crate) struct GrantTokens {
    pub(crate) grant_id: String,
    pub(crate) inner: Arc<Inner>,
}

impl GrantTokens {
    pub(crate) fn access(inner: &Arc<Inner>, grant_id: &str) -> UpstreamAccess {
        UpstreamAccess::new(Self {
            grant_id: grant_id.to_owned(),
            inner: inner.clone(),
        })
    }

    fn lease_key(&self) -> String {
        format!("{}.refreshing", self.grant_id)
    }

    /// The grant's live tokens as stored now.
    async fn stored(&self) -> Result<UpstreamTokens, UpstreamTokenError> {
        let grant: Option<Grant> = self
            .inner
            .records
            .get(RecordKind::Grant, &self.grant_id)
            .await
            .map_err(|_| UpstreamTokenError::Unavailable)?;
        let grant = grant
            .filter(|g| !g.revoked)
            .ok_or(UpstreamTokenError::Absent)?;
        self.inner
            .secrets
            .open(&self.grant_id, &grant.upstream)
            .ok_or(UpstreamTokenError::Absent)
    }

    async fn current(&self) -> Result<UpstreamToken, UpstreamTokenError> {
        let manager = &self.inner.token_manager;
        let tokens = self.stored().await?;
        if manager.fresh(&tokens) {
            return Ok(token(tokens));
        }
        let lock = manager.lock_for(&self.grant_id);
        let _one_at_a_time = lock.lock().await;
        // the request this one waited for may have refreshed already
        let tokens = self.stored().await?;
        if manager.fresh(&tokens) {
            return Ok(token(tokens));
        }
        let lease = self
            .inner
            .records
            .swap(
                RecordKind::Grant,
                &self.lease_key(),
                &json!({"refreshing": true}),
                Some(LEASE_TTL),
            )
            .await
            .map_err(|_| UpstreamTokenError::Unavailable)?;
        if lease.is_some_and(|v: serde_json::Value| !v.is_null()) {
            return self.wait_for_other_replica(tokens).await;
        }
        let outcome = self.refresh(tokens).await;
        let _ = self
            .inner
            .records
            .take::<serde_json::Value>(RecordKind::Grant, &self.lease_key())
            .await;
        outcome
    }

    /// Another replica holds the lease: its result lands in the store.
    async fn wait_for_other_replica(
        &self,
        mut tokens: UpstreamTokens,
    ) -> Result<UpstreamToken, UpstreamTokenError> {
        let deadline = tokio::time::Instant::now() + LEASE_WAIT;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(LEASE_POLL).await;
            tokens = self.stored().await?;
            if self.inner.token_manager.fresh(&tokens) {
                return Ok(token(tokens));
            }
        }
        if expired(&tokens) {
            Err(UpstreamTokenError::Unavailable)
        } else {
            Ok(token(tokens))
        }
    }

    async fn refresh(&self, old: UpstreamTokens) -> Result<UpstreamToken, UpstreamTokenError> {
        let Some(refresh_token) = old.refresh_token.clone() else {
            return self.refused(old).await;
        };
        match self.inner.upstream.refresh(&refresh_token).await {
            Ok(new) => self.store(new).await,
            Err(UpstreamError::Unavailable) => {
                tracing::warn!(
                    target: "mcp_bastion::auth::oauth",
                    "the identity provider could not be reached to refresh a user's token"
                );
                if expired(&old) {
                    Err(UpstreamTokenError::Unavailable)
                } else {
                    Ok(token(old))
                }
            }
            Err(_) => {
                // another replica may have rotated the refresh token first
                if let Ok(now) = self.stored().await
                    && now.access_token != old.access_token
                    && !expired(&now)
                {
                    return Ok(token(now));
                }
                self.refused(old).await
            }
        }
    }

    /// No refresh possible: the stored token while it lives; after that the
    /// grant ends, so that the user logs in again.
    async fn refused(&self, old: UpstreamTokens) -> Result<UpstreamToken, UpstreamTokenError> {
        if !expired(&old) {
            return Ok(token(old));
        }
        tracing::warn!(
            target: "mcp_bastion::auth::oauth",
            "the identity provider refused to refresh a user's token; the grant is revoked so the user logs in again"
        );
        let _ = self.inner.records.revoke_grant(&self.grant_id).await;
        Err(UpstreamTokenError::Refused)
    }

    /// Seals and stores refreshed tokens in the grant, unless the grant was
    /// revoked meanwhile (then it stays revoked).
    async fn store(&self, new: UpstreamTokens) -> Result<UpstreamToken, UpstreamTokenError> {
        let records = &self.inner.records;
        let mut grant: Grant = records
            .get(RecordKind::Grant, &self.grant_id)
            .await
            .map_err(|_| UpstreamTokenError::Unavailable)?
            .filter(|g: &Grant| !g.revoked)
            .ok_or(UpstreamTokenError::Absent)?;
        grant.upstream = self.inner.secrets.seal(&self.grant_id, &new);
        let was: Option<Grant> = records
            .swap(RecordKind::Grant, &self.grant_id, &grant, Some(GRANT_TTL))
            .await
            .map_err(|_| UpstreamTokenError::Unavailable)?;
        if was.is_none_or(|g| g.revoked) {
            // revoked between the read and the write: put the revocation back
            let _ = records.revoke_grant(&self.grant_id).await;
            return Err(UpstreamTokenError::Absent);
        }
        tracing::debug!(target: "mcp_bastion::auth::oauth", "a user's upstream token was refreshed");
        Ok(token(new))
    }
}

impl UpstreamTokenSource for GrantTokens {
    fn access_token(&self) -> BoxFuture<'_, Result<UpstreamToken, UpstreamTokenError>> {
        Box::pin(self.current())
    }
}
