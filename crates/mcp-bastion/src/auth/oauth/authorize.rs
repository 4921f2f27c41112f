//! The authorization endpoint: checks the client's request, then sends the
//! browser to the operator's identity provider with mcp-bastion's own PKCE,
//! `state` and `nonce`, bound to the browser by a cookie.
//!
//! | request | answer |
//! |---|---|
//! | unknown client, unusable metadata document | error page (400), never a redirect |
//! | `redirect_uri` not registered (exactly; loopback on any port) | error page (400) |
//! | `response_type` other than `code` | redirect, `unsupported_response_type` |
//! | no `code_challenge`, or a method other than `S256` | redirect, `invalid_request` |
//! | `resource` other than this server's | redirect, `invalid_target` |
//! | a scope not configured | redirect, `invalid_scope` |

use std::sync::Arc;

use axum::{
    extract::{Query, State},
    response::{IntoResponse, Redirect, Response},
};
use http::{HeaderValue, header};
use serde::Deserialize;

use super::{
    RecordKind,
    error::ErrorPage,
    records::{AuthRequest, LOGIN_TTL, PendingLogin},
    server::{BROWSER_COOKIE, CALLBACK_PATH, ClientLookup, Inner},
};

#[derive(Deserialize)]
pub(crate) struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    scope: Option<String>,
    resource: Option<String>,
}

pub(crate) async fn authorize(
    State(inner): State<Arc<Inner>>,
    Query(q): Query<AuthorizeQuery>,
) -> Response {
    match start(&inner, q).await {
        Ok(res) | Err(res) => res,
    }
}

async fn start(inner: &Inner, q: AuthorizeQuery) -> Result<Response, Response> {
    let client_id = q.client_id.as_deref().ok_or_else(|| {
        ErrorPage::bad_request("Unknown client", "The request names no client_id.").into_response()
    })?;
    let client = inner.client(client_id).await.map_err(|e| {
        match e {
            ClientLookup::Unknown => ErrorPage::bad_request(
                "Unknown client",
                "This application is not registered with this server.",
            ),
            ClientLookup::Document(e) => ErrorPage::bad_request("Unknown client", e.detail()),
            ClientLookup::Unavailable => ErrorPage::unavailable(),
        }
        .into_response()
    })?;
    let redirect_uri = client
        .redirect_uri(q.redirect_uri.as_deref())
        .ok_or_else(|| {
            ErrorPage::bad_request(
                "Invalid redirect URI",
                "The redirect_uri is not one registered for this application.",
            )
            .into_response()
        })?;
    // from here on, errors go back to the client
    let fail = |code: &str, description: &str| {
        error_redirect(inner, &redirect_uri, q.state.as_deref(), code, description)
    };
    if q.response_type.as_deref() != Some("code") {
        return Err(fail(
            "unsupported_response_type",
            "only response_type=code is supported",
        ));
    }
    let Some(challenge) = q.code_challenge.filter(|c| is_challenge(c)) else {
        return Err(fail("invalid_request", "code_challenge (S256) is required"));
    };
    if q.code_challenge_method.as_deref() != Some("S256") {
        return Err(fail(
            "invalid_request",
            "code_challenge_method must be S256",
        ));
    }
    if q.resource
        .as_deref()
        .is_some_and(|r| r.trim_end_matches('/') != inner.resource.trim_end_matches('/'))
    {
        return Err(fail("invalid_target", "the resource is not this server's"));
    }
    let scope: Vec<String> = match q.scope.as_deref().map(str::split_whitespace) {
        Some(requested) => {
            let requested: Vec<String> = requested.map(str::to_owned).collect();
            if requested.iter().any(|s| !inner.scopes.contains(s)) {
                return Err(fail("invalid_scope", "a requested scope is not offered"));
            }
            requested
        }
        None => inner.scopes.clone(),
    };
    let request = AuthRequest {
        client_id: client.id.clone(),
        client_name: client.name.clone(),
        redirect_uri,
        redirect_uri_named: q.redirect_uri.is_some(),
        state: q.state,
        code_challenge: challenge,
        scope,
        resource: inner.resource.clone(),
    };
    let state = super::random_token();
    let nonce = super::random_token();
    let verifier = super::random_token();
    let browser = super::random_token();
    let upstream_url = inner
        .upstream
        .authorization_url(
            &inner.url(CALLBACK_PATH),
            &state,
            &nonce,
            &super::s256(&verifier),
        )
        .await
        .map_err(|_| ErrorPage::unavailable().into_response())?;
    let login = PendingLogin {
        request,
        verifier,
        nonce,
        browser: super::clients::digest(&browser),
    };
    inner
        .records
        .put(RecordKind::Login, &state, &login, Some(LOGIN_TTL))
        .await
        .map_err(|_| ErrorPage::unavailable().into_response())?;
    let mut res = Redirect::to(&upstream_url).into_response();
    set_browser_cookie(inner, &mut res, &browser);
    Ok(res)
}

/// PKCE S256 challenges are 43 base64url characters.
fn is_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn set_browser_cookie(inner: &Inner, res: &mut Response, value: &str) {
    let path = if inner.issuer_path.is_empty() {
        "/"
    } else {
        &inner.issuer_path
    };
    let secure = if inner.secure_cookies { "; Secure" } else { "" };
    let cookie = format!(
        "{BROWSER_COOKIE}={value}; Path={path}; HttpOnly; SameSite=Lax; Max-Age=600{secure}"
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// A redirect to the client's (verified) redirect URI with `error`,
/// `state` and `iss` (RFC 9207).
pub(crate) fn error_redirect(
    inner: &Inner,
    redirect_uri: &str,
    state: Option<&str>,
    code: &str,
    description: &str,
) -> Response {
    redirect_with(
        inner,
        redirect_uri,
        &[("error", code), ("error_description", description)],
        state,
    )
}

/// A redirect to the client with these parameters plus `state` and `iss`.
pub(crate) fn redirect_with(
    inner: &Inner,
    redirect_uri: &str,
    params: &[(&str, &str)],
    state: Option<&str>,
) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return ErrorPage::bad_request("Invalid redirect URI", "The redirect_uri is not a URL.")
            .into_response();
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        if let Some(state) = state {
            q.append_pair("state", state);
        }
        q.append_pair("iss", &inner.issuer);
    }
    let mut res = Redirect::to(url.as_str()).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The value of the browser-binding cookie in a request.
pub(crate) fn browser_cookie(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == BROWSER_COOKIE)
        .map(|(_, value)| value)
}
