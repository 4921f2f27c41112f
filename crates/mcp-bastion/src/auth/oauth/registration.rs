//! RFC 7591 dynamic client registration, by policy (open, off, or with an
//! initial access token), with redirect URIs limited to the operator's
//! allowlist (exact URLs, and loopback redirects on any port when enabled).

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Json,
    body::Bytes,
    extract::{ConnectInfo, State},
    response::{IntoResponse, Response},
};
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq as _;

use super::{
    DcrPolicy, RecordKind,
    clients::{Client, ClientKind, digest},
    error::{EndpointError, no_store},
    server::Inner,
};

#[derive(Deserialize)]
struct Registration {
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    response_types: Option<Vec<String>>,
    #[serde(default)]
    scope: Option<String>,
}

/// The longest client name kept (it is shown on the consent page).
const MAX_NAME: usize = 200;

pub(crate) async fn register(
    State(inner): State<Arc<Inner>>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if matches!(inner.dcr, DcrPolicy::Open)
        && let Some(limit) = &inner.dcr_limit
        && let Err(refused) = limit.check(peer.map(|c| c.0.0.ip()), &headers).await
    {
        return refused.into_response();
    }
    match registered(&inner, &headers, &body).await {
        Ok(doc) => {
            let mut res = (StatusCode::CREATED, Json(doc)).into_response();
            no_store(&mut res);
            res
        }
        Err(e) => e.into_response(),
    }
}

async fn registered(
    inner: &Inner,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<serde_json::Value, EndpointError> {
    match &inner.dcr {
        DcrPolicy::Open => {}
        DcrPolicy::Off => {
            return Err(EndpointError::new(
                "access_denied",
                "registration is disabled",
            ));
        }
        DcrPolicy::InitialToken(want) => {
            let got = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(|t| <[u8; 32]>::from(<sha2::Sha256 as sha2::Digest>::digest(t.as_bytes())));
            if !got.is_some_and(|g| bool::from(g.ct_eq(want))) {
                return Err(EndpointError::new(
                    "invalid_client",
                    "registration needs a valid initial access token",
                ));
            }
        }
    }
    let reg: Registration = serde_json::from_slice(body).map_err(|_| {
        EndpointError::new(
            "invalid_client_metadata",
            "the body is not valid client metadata",
        )
    })?;
    if reg.redirect_uris.is_empty() {
        return Err(EndpointError::new(
            "invalid_redirect_uri",
            "redirect_uris is required",
        ));
    }
    if reg
        .redirect_uris
        .iter()
        .any(|u| url::Url::parse(u).is_err() || !inner.redirects.allows(u))
    {
        return Err(EndpointError::new(
            "invalid_redirect_uri",
            "a redirect URI is not allowed by this server",
        ));
    }
    if reg.grant_types.as_ref().is_some_and(|g| {
        g.iter()
            .any(|t| t != "authorization_code" && t != "refresh_token")
    }) || reg
        .response_types
        .as_ref()
        .is_some_and(|r| r.iter().any(|t| t != "code"))
    {
        return Err(EndpointError::new(
            "invalid_client_metadata",
            "only the authorization_code and refresh_token grants and the code response are supported",
        ));
    }
    let method = reg
        .token_endpoint_auth_method
        .clone()
        .unwrap_or_else(|| "client_secret_basic".to_owned());
    let secret = match method.as_str() {
        "none" => None,
        "client_secret_basic" | "client_secret_post" => Some(super::random_token()),
        _ => {
            return Err(EndpointError::new(
                "invalid_client_metadata",
                "token_endpoint_auth_method must be none, client_secret_basic or client_secret_post",
            ));
        }
    };
    if let Some(scope) = &reg.scope
        && scope
            .split_whitespace()
            .any(|s| !inner.scopes.iter().any(|c| c == s))
    {
        return Err(EndpointError::new(
            "invalid_client_metadata",
            "a scope is not offered",
        ));
    }
    let name = reg.client_name.map(|n| {
        n.chars()
            .filter(|c| !c.is_control())
            .take(MAX_NAME)
            .collect::<String>()
    });
    let client = Client {
        id: super::random_token(),
        name: name.clone(),
        redirect_uris: reg.redirect_uris.clone(),
        secret_sha256: secret.as_deref().map(digest),
        kind: ClientKind::Registered,
        used_at: None,
    };
    inner
        .records
        .put(
            RecordKind::Client,
            &client.id,
            &client,
            Some(inner.dcr_unused_ttl),
        )
        .await
        .map_err(|_| EndpointError::unavailable())?;
    let mut doc = json!({
        "client_id": client.id,
        "client_id_issued_at": super::unix_now(),
        "redirect_uris": reg.redirect_uris,
        "token_endpoint_auth_method": method,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    });
    if let Some(name) = name {
        doc["client_name"] = json!(name);
    }
    if let Some(scope) = reg.scope {
        doc["scope"] = json!(scope);
    }
    if let Some(secret) = secret {
        doc["client_secret"] = json!(secret);
        doc["client_secret_expires_at"] = json!(0);
    }
    Ok(doc)
}
