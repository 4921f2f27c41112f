//! The token endpoint (`authorization_code`, `refresh_token`) and RFC 7009
//! revocation.
//!
//! | request | answer |
//! |---|---|
//! | a confidential client without its secret, an unknown client | 401 `invalid_client` |
//! | an unknown or expired code (older than 60 s) | `invalid_grant` |
//! | a code presented again | `invalid_grant`, and the grant it started is revoked |
//! | a code of another client, another `redirect_uri` or `resource`, a wrong PKCE verifier | `invalid_grant` (the code is spent) |
//! | a refresh token presented again after rotation | `invalid_grant`, and its grant is revoked |
//!
//! Every answer carries `Cache-Control: no-store`.

use std::sync::Arc;

use axum::{
    Json,
    body::Bytes,
    extract::State,
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;

use super::{
    RecordKind,
    clients::{Client, digest},
    error::{EndpointError, no_store},
    keys::AccessClaims,
    records::{CODE_TTL, CodeSlot, GRANT_TTL, Grant, RefreshSlot},
    server::Inner,
};

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    resource: Option<String>,
    scope: Option<String>,
    token: Option<String>,
}

pub(crate) async fn token(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = async {
        let form: TokenForm = serde_urlencoded::from_bytes(&body)
            .map_err(|_| EndpointError::invalid_request("the body is not a form"))?;
        let client = authenticate_client(&inner, &headers, &form).await?;
        match form.grant_type.as_deref() {
            Some("authorization_code") => redeem_code(&inner, &client, &form).await,
            Some("refresh_token") => refresh(&inner, &client, &form).await,
            _ => Err(EndpointError::new(
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
            )),
        }
    }
    .await;
    match answer {
        Ok(body) => {
            let mut res = Json(body).into_response();
            no_store(&mut res);
            res
        }
        Err(e) => e.into_response(),
    }
}

/// The client of a token or revocation request, authenticated by its
/// secret when it has one (Basic or form), by its id alone when public.
async fn authenticate_client(
    inner: &Inner,
    headers: &HeaderMap,
    form: &TokenForm,
) -> Result<Arc<Client>, EndpointError> {
    let basic = basic_credentials(headers);
    let (id, secret) = match (&basic, &form.client_id) {
        (Some((id, secret)), form_id) => {
            if form_id.as_deref().is_some_and(|f| f != id) {
                return Err(EndpointError::invalid_request("two different client ids"));
            }
            (id.as_str(), Some(secret.as_str()))
        }
        (None, Some(id)) => (id.as_str(), form.client_secret.as_deref()),
        (None, None) => {
            return Err(EndpointError::new(
                "invalid_client",
                "client authentication failed",
            ));
        }
    };
    let unknown = || EndpointError::new("invalid_client", "client authentication failed");
    let client = inner.client(id).await.map_err(|e| match e {
        super::server::ClientLookup::Unavailable => EndpointError::unavailable(),
        _ => unknown(),
    })?;
    if client.secret_sha256.is_some() && !secret.is_some_and(|s| client.secret_matches(s)) {
        return Err(unknown());
    }
    Ok(client)
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((decode(id), decode(secret)))
}

async fn redeem_code(
    inner: &Inner,
    client: &Client,
    form: &TokenForm,
) -> Result<serde_json::Value, EndpointError> {
    let code = form
        .code
        .as_deref()
        .ok_or_else(|| EndpointError::invalid_request("code is required"))?;
    let key = digest(code);
    let spent = CodeSlot::Redeemed { grant_id: None };
    let slot: Option<CodeSlot> = inner
        .records
        .swap(RecordKind::Code, &key, &spent, Some(CODE_TTL))
        .await
        .map_err(|_| EndpointError::unavailable())?;
    let (request, sub, grant_id, upstream, issued_at) = match slot {
        None => {
            return Err(EndpointError::invalid_grant(
                "the code is unknown or expired",
            ));
        }
        Some(CodeSlot::Redeemed { grant_id }) => {
            if let Some(grant_id) = grant_id {
                let _ = inner.records.revoke_grant(&grant_id).await;
                tracing::warn!("an authorization code was presented twice; its grant is revoked");
            }
            // keep the tombstone naming the grant, in case it comes a third time
            return Err(EndpointError::invalid_grant("the code was already used"));
        }
        Some(CodeSlot::Live {
            request,
            sub,
            grant_id,
            upstream,
            issued_at,
        }) => (request, sub, grant_id, upstream, issued_at),
    };
    if super::unix_now().saturating_sub(issued_at) > CODE_TTL.as_secs() {
        return Err(EndpointError::invalid_grant(
            "the code is unknown or expired",
        ));
    }
    if request.client_id != client.id {
        return Err(EndpointError::invalid_grant(
            "the code was issued to another client",
        ));
    }
    let redirect_matches = match form.redirect_uri.as_deref() {
        Some(uri) => uri == request.redirect_uri,
        None => !request.redirect_uri_named,
    };
    if !redirect_matches {
        return Err(EndpointError::invalid_grant(
            "redirect_uri differs from the authorization request's",
        ));
    }
    if form
        .resource
        .as_deref()
        .is_some_and(|r| r.trim_end_matches('/') != request.resource.trim_end_matches('/'))
    {
        return Err(EndpointError::new(
            "invalid_target",
            "the resource differs from the authorization request's",
        ));
    }
    let verifier = form.code_verifier.as_deref().unwrap_or("");
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !well_formed || !super::constant_time_eq(&super::s256(verifier), &request.code_challenge) {
        return Err(EndpointError::invalid_grant(
            "the PKCE code_verifier does not match",
        ));
    }
    let grant = Grant {
        id: grant_id,
        client_id: client.id.clone(),
        sub,
        scope: request.scope,
        resource: request.resource,
        upstream,
        revoked: false,
    };
    inner
        .records
        .put(RecordKind::Grant, &grant.id, &grant, Some(GRANT_TTL))
        .await
        .map_err(|_| EndpointError::unavailable())?;
    let tombstone = CodeSlot::Redeemed {
        grant_id: Some(grant.id.clone()),
    };
    inner
        .records
        .put(RecordKind::Code, &key, &tombstone, Some(CODE_TTL))
        .await
        .map_err(|_| EndpointError::unavailable())?;
    inner.touch_client(client).await;
    inner.issue(&grant).await
}

async fn refresh(
    inner: &Inner,
    client: &Client,
    form: &TokenForm,
) -> Result<serde_json::Value, EndpointError> {
    let token = form
        .refresh_token
        .as_deref()
        .ok_or_else(|| EndpointError::invalid_request("refresh_token is required"))?;
    let key = digest(token);
    let current: Option<RefreshSlot> = inner
        .records
        .get(RecordKind::Refresh, &key)
        .await
        .map_err(|_| EndpointError::unavailable())?;
    let grant_id = match current {
        None => return Err(EndpointError::invalid_grant("the refresh token is unknown")),
        Some(RefreshSlot::Live { grant_id } | RefreshSlot::Rotated { grant_id }) => grant_id,
    };
    let rotated = RefreshSlot::Rotated {
        grant_id: grant_id.clone(),
    };
    let was: Option<RefreshSlot> = inner
        .records
        .swap(RecordKind::Refresh, &key, &rotated, Some(GRANT_TTL))
        .await
        .map_err(|_| EndpointError::unavailable())?;
    if !matches!(was, Some(RefreshSlot::Live { .. })) {
        let _ = inner.records.revoke_grant(&grant_id).await;
        tracing::warn!("a rotated refresh token was presented again; its grant is revoked");
        return Err(EndpointError::invalid_grant(
            "the refresh token was already used",
        ));
    }
    let mut grant: Grant = inner
        .records
        .get(RecordKind::Grant, &grant_id)
        .await
        .map_err(|_| EndpointError::unavailable())?
        .filter(|g: &Grant| !g.revoked)
        .ok_or_else(|| EndpointError::invalid_grant("the grant is revoked"))?;
    if grant.client_id != client.id {
        return Err(EndpointError::invalid_grant(
            "the refresh token belongs to another client",
        ));
    }
    if let Some(scope) = form.scope.as_deref() {
        let asked: Vec<String> = scope.split_whitespace().map(str::to_owned).collect();
        if asked.iter().any(|s| !grant.scope.contains(s)) {
            return Err(EndpointError::new(
                "invalid_scope",
                "a scope beyond the grant's",
            ));
        }
        grant.scope = asked;
    }
    inner.touch_client(client).await;
    inner.issue(&grant).await
}

/// RFC 7009: revokes the grant of a refresh or access token of the
/// authenticated client; answers 200 for unknown tokens too.
pub(crate) async fn revoke(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = async {
        let form: TokenForm = serde_urlencoded::from_bytes(&body)
            .map_err(|_| EndpointError::invalid_request("the body is not a form"))?;
        let client = authenticate_client(&inner, &headers, &form).await?;
        let token = form
            .token
            .as_deref()
            .ok_or_else(|| EndpointError::invalid_request("token is required"))?;
        let grant_id = match inner
            .records
            .get::<RefreshSlot>(RecordKind::Refresh, &digest(token))
            .await
            .map_err(|_| EndpointError::unavailable())?
        {
            Some(RefreshSlot::Live { grant_id } | RefreshSlot::Rotated { grant_id }) => {
                Some(grant_id)
            }
            None => access_token_grant(&inner, token),
        };
        if let Some(grant_id) = grant_id {
            let grant: Option<Grant> = inner
                .records
                .get(RecordKind::Grant, &grant_id)
                .await
                .map_err(|_| EndpointError::unavailable())?;
            if grant.is_some_and(|g| g.client_id == client.id) {
                inner
                    .records
                    .revoke_grant(&grant_id)
                    .await
                    .map_err(|_| EndpointError::unavailable())?;
            }
        }
        Ok::<_, EndpointError>(())
    }
    .await;
    match answer {
        Ok(()) => {
            let mut res = StatusCode::OK.into_response();
            no_store(&mut res);
            res
        }
        Err(e) => e.into_response(),
    }
}

/// The grant of one of our access tokens (signature checked; expiry not:
/// an expired token may still be revoked).
fn access_token_grant(inner: &Inner, token: &str) -> Option<String> {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.validate_exp = false;
    v.validate_aud = false;
    v.set_issuer(&[&inner.issuer]);
    v.set_required_spec_claims(&["iss"]);
    let kid = jsonwebtoken::decode_header(token).ok()?.kid?;
    let key = inner.live_keys().find(|k| k.kid() == kid)?;
    jsonwebtoken::decode::<AccessClaims>(token, &key.decoding_key(), &v)
        .ok()
        .map(|d| d.claims.grant_id)
}
