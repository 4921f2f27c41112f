//! The typed records kept in the [`OAuthStore`](super::OAuthStore) and the
//! few operations on them. Upstream tokens are kept [`Sealed`] (encrypted
//! under the secrets key, bound to their grant id) from the login on; every
//! record that holds a token has a redacting `Debug` or none at all.

use std::time::Duration;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::{OAuthStore, RecordKind, StoreError, sealed::Sealed, upstream::Identity};

/// How long a login at the provider may take.
pub(crate) const LOGIN_TTL: Duration = Duration::from_secs(600);
/// How long a consent page stays answerable.
pub(crate) const CONSENT_TTL: Duration = Duration::from_secs(600);
/// How long a code is redeemable (and its tombstone kept).
pub(crate) const CODE_TTL: Duration = Duration::from_secs(60);
/// How long a grant and its refresh tokens live without use.
pub(crate) const GRANT_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// A validated authorization request of a client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AuthRequest {
    pub client_id: String,
    pub client_name: Option<String>,
    pub redirect_uri: String,
    /// Whether the request named `redirect_uri` (then the token request
    /// must name it too; OAuth 2.1 §4.1.3).
    #[serde(default)]
    pub redirect_uri_named: bool,
    pub state: Option<String>,
    pub code_challenge: String,
    pub scope: Vec<String>,
    pub resource: String,
}

/// A login sent to the provider, under mcp-bastion's upstream `state`.
#[derive(Serialize, Deserialize)]
pub(crate) struct PendingLogin {
    pub request: AuthRequest,
    pub verifier: String,
    pub nonce: String,
    /// Digest of the browser-binding cookie set with the redirect.
    pub browser: String,
}

/// A consent page shown, under its id.
#[derive(Serialize, Deserialize)]
pub(crate) struct ConsentRequest {
    pub request: AuthRequest,
    pub identity: Identity,
    /// The id the grant will have: chosen at login, so that the upstream
    /// tokens are sealed for it once, the moment they arrive.
    pub grant_id: String,
    pub upstream: Sealed,
    /// Digest of the CSRF token in the form.
    pub csrf: String,
    pub browser: String,
}

/// A code slot: the code's record until redeemed, then a tombstone naming
/// the grant the code started (revoked if the code comes back).
#[derive(Serialize, Deserialize)]
#[serde(tag = "slot", rename_all = "snake_case")]
// a transient value on its way to or from the store, never kept in bulk
#[allow(clippy::large_enum_variant)]
pub(crate) enum CodeSlot {
    Live {
        request: AuthRequest,
        sub: String,
        /// The id of the grant the code starts (the upstream tokens are
        /// sealed for it).
        grant_id: String,
        upstream: Sealed,
        issued_at: u64,
    },
    Redeemed {
        grant_id: Option<String>,
    },
}

/// One user's authorization of one client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Grant {
    pub id: String,
    pub client_id: String,
    pub sub: String,
    pub scope: Vec<String>,
    pub resource: String,
    /// The identity provider's tokens of the login, sealed with this
    /// grant's id as associated data.
    pub upstream: Sealed,
    pub revoked: bool,
}

/// A refresh-token slot: live until used once, then rotated (and a second
/// use revokes the grant).
#[derive(Serialize, Deserialize)]
#[serde(tag = "slot", rename_all = "snake_case")]
pub(crate) enum RefreshSlot {
    Live { grant_id: String },
    Rotated { grant_id: String },
}

/// Scopes a user approved for a client.
#[derive(Serialize, Deserialize)]
pub(crate) struct RememberedConsent {
    pub scope: Vec<String>,
}

/// Typed access to the store.
#[derive(Clone)]
pub(crate) struct Records(pub std::sync::Arc<dyn OAuthStore>);

fn to_value<T: Serialize>(v: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(v).map_err(|_| StoreError)
}

fn from_value<T: DeserializeOwned>(v: Option<serde_json::Value>) -> Option<T> {
    v.and_then(|v| serde_json::from_value(v).ok())
}

impl Records {
    pub(crate) async fn put<T: Serialize>(
        &self,
        kind: RecordKind,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.0.put(kind, key, to_value(value)?, ttl).await
    }

    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        kind: RecordKind,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        Ok(from_value(self.0.get(kind, key).await?))
    }

    pub(crate) async fn take<T: DeserializeOwned>(
        &self,
        kind: RecordKind,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        Ok(from_value(self.0.take(kind, key).await?))
    }

    pub(crate) async fn swap<T: Serialize, U: DeserializeOwned>(
        &self,
        kind: RecordKind,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<Option<U>, StoreError> {
        Ok(from_value(
            self.0.swap(kind, key, to_value(value)?, ttl).await?,
        ))
    }

    /// Marks a grant revoked (its refresh tokens and, through the
    /// revocation-aware authenticator, its access tokens stop working).
    pub(crate) async fn revoke_grant(&self, grant_id: &str) -> Result<(), StoreError> {
        if let Some(mut grant) = self.get::<Grant>(RecordKind::Grant, grant_id).await? {
            grant.revoked = true;
            grant.upstream = Sealed::default();
            self.put(RecordKind::Grant, grant_id, &grant, Some(GRANT_TTL))
                .await?;
        }
        Ok(())
    }

    /// Whether a grant exists and is not revoked.
    pub(crate) async fn grant_active(&self, grant_id: &str) -> Result<bool, StoreError> {
        if let Some(active) = self.grant_active_now(grant_id) {
            return active;
        }
        Ok(self
            .0
            .get(RecordKind::Grant, grant_id)
            .await?
            .is_some_and(|g| g.get("revoked") == Some(&NOT_REVOKED)))
    }

    /// [`grant_active`](Self::grant_active) when the store answers without
    /// waiting (the memory store): this runs on every MCP request, so it
    /// reads the one field, not the whole record.
    pub(crate) fn grant_active_now(&self, grant_id: &str) -> Option<Result<bool, StoreError>> {
        let revoked = self.0.field_now(RecordKind::Grant, grant_id, "revoked")?;
        Some(revoked.map(|r| r == Some(NOT_REVOKED)))
    }
}

/// A grant's `revoked` field while it is live.
const NOT_REVOKED: serde_json::Value = serde_json::Value::Bool(false);

/// The key of a remembered consent.
pub(crate) fn consent_key(sub: &str, client_id: &str) -> String {
    super::clients::digest(&format!("{sub}\n{client_id}"))
}
