//! The callback from the identity provider: the login's `state` and the
//! browser's cookie must match the pending login; the provider's code is
//! exchanged with mcp-bastion's PKCE verifier; the ID token is verified
//! (`iss`, `aud`, `exp`, `nonce`); the user must be allowed. Then the
//! consent page, unless this user already approved this client for these
//! scopes.

use std::sync::Arc;

use axum::{
    extract::{Query, State},
    response::{IntoResponse, Response},
};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::{
    RecordKind,
    authorize::{browser_cookie, error_redirect},
    consent,
    error::ErrorPage,
    records::{PendingLogin, RememberedConsent, consent_key},
    server::{CALLBACK_PATH, Inner},
    upstream::UpstreamError,
};

#[derive(Deserialize)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

pub(crate) async fn callback(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let expired = || {
        ErrorPage::bad_request(
            "Login expired",
            "This login is unknown or expired, or was started in another browser. Start again from the application.",
        )
        .into_response()
    };
    let Some(state) = q.state.as_deref() else {
        return expired();
    };
    let login: PendingLogin = match inner.records.take(RecordKind::Login, state).await {
        Ok(Some(login)) => login,
        Ok(None) => return expired(),
        Err(_) => return ErrorPage::unavailable().into_response(),
    };
    let same_browser = browser_cookie(&headers)
        .is_some_and(|c| super::constant_time_eq(&super::clients::digest(c), &login.browser));
    if !same_browser {
        return expired();
    }
    let req = &login.request;
    if q.error.is_some() {
        return error_redirect(
            &inner,
            &req.redirect_uri,
            req.state.as_deref(),
            "access_denied",
            "the login at the identity provider did not complete",
        );
    }
    let Some(code) = q.code.as_deref() else {
        return expired();
    };
    let exchanged = inner
        .upstream
        .exchange(
            code,
            &inner.url(CALLBACK_PATH),
            &login.verifier,
            &login.nonce,
        )
        .await;
    let (identity, upstream) = match exchanged {
        Ok(ok) => ok,
        Err(UpstreamError::Unavailable) => return ErrorPage::unavailable().into_response(),
        Err(e) => {
            tracing::warn!(cause = ?e, "upstream login refused");
            return ErrorPage::bad_request(
                "Login failed",
                "The identity provider's answer could not be verified. Start again from the application.",
            )
            .into_response();
        }
    };
    if !inner.login.admits(&identity) {
        return ErrorPage {
            status: StatusCode::FORBIDDEN,
            title: "Access refused",
            detail: "Your account is not allowed to use this server. Ask its operator for access.",
        }
        .into_response();
    }
    let remembered: Option<RememberedConsent> = match inner
        .records
        .get(
            RecordKind::Consent,
            &consent_key(&identity.sub, &req.client_id),
        )
        .await
    {
        Ok(r) => r,
        Err(_) => return ErrorPage::unavailable().into_response(),
    };
    // the grant's id is chosen now, so the tokens are sealed for it at once
    let grant_id = super::random_token();
    let upstream = inner.secrets.seal(&grant_id, &upstream);
    if remembered.is_some_and(|r| req.scope.iter().all(|s| r.scope.contains(s))) {
        return consent::issue_code(&inner, login.request, identity.sub, grant_id, upstream).await;
    }
    consent::ask(
        &inner,
        login.request,
        identity,
        grant_id,
        upstream,
        &login.browser,
    )
    .await
}
