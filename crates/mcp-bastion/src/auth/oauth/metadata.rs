//! RFC 8414 authorization server metadata: exactly what this server does,
//! at `/.well-known/oauth-authorization-server`, its path-inserted form for
//! an issuer with a path, and the OIDC discovery paths some clients try
//! first.

use std::sync::Arc;

use axum::{Json, extract::State, response::IntoResponse};
use http::{HeaderValue, header};
use serde_json::{Value, json};

use super::{
    DcrPolicy,
    server::{AUTHORIZE_PATH, Inner, JWKS_PATH, REGISTER_PATH, REVOKE_PATH, TOKEN_PATH},
};

/// The client authentication methods of the token and revocation endpoints.
const AUTH_METHODS: [&str; 3] = ["none", "client_secret_basic", "client_secret_post"];

/// The paths the document is served at, for an issuer path (`""` or
/// `/tenant`).
pub(crate) fn paths(issuer_path: &str) -> Vec<String> {
    let mut paths = vec![
        format!("/.well-known/oauth-authorization-server{issuer_path}"),
        format!("/.well-known/openid-configuration{issuer_path}"),
    ];
    if !issuer_path.is_empty() {
        paths.push(format!("{issuer_path}/.well-known/openid-configuration"));
        paths.push(format!(
            "{issuer_path}/.well-known/oauth-authorization-server"
        ));
    }
    paths
}

/// The metadata document.
pub(crate) fn document(inner: &Inner) -> Value {
    let mut doc = json!({
        "issuer": inner.issuer,
        "authorization_endpoint": inner.url(AUTHORIZE_PATH),
        "token_endpoint": inner.url(TOKEN_PATH),
        "revocation_endpoint": inner.url(REVOKE_PATH),
        "jwks_uri": inner.url(JWKS_PATH),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "scopes_supported": inner.scopes,
        "client_id_metadata_document_supported": inner.cimd.is_some(),
        "authorization_response_iss_parameter_supported": true,
    });
    if !matches!(inner.dcr, DcrPolicy::Off) {
        doc["registration_endpoint"] = json!(inner.url(REGISTER_PATH));
    }
    doc
}

pub(crate) async fn serve(State(inner): State<Arc<Inner>>) -> impl IntoResponse {
    let mut res = Json(document(&inner)).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=300"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    res
}
