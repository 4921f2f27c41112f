//! The consent page: which client (name, redirect host) asks for which
//! scopes; approve or refuse. The form carries a CSRF token and must come
//! from the browser that logged in (the cookie); the page cannot be framed.
//! An approval is remembered per user and client; then a code goes to the
//! client.

use std::sync::Arc;

use axum::{
    Form,
    extract::State,
    response::{IntoResponse, Response},
};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::{
    RecordKind,
    authorize::{browser_cookie, error_redirect, redirect_with},
    clients::digest,
    error::ErrorPage,
    page,
    records::{
        AuthRequest, CODE_TTL, CONSENT_TTL, CodeSlot, ConsentRequest, GRANT_TTL, RememberedConsent,
        consent_key,
    },
    sealed::Sealed,
    server::{CONSENT_PATH, Inner},
    upstream::Identity,
};

/// Shows the consent page for a logged-in user.
pub(crate) async fn ask(
    inner: &Inner,
    request: AuthRequest,
    identity: Identity,
    grant_id: String,
    upstream: Sealed,
    browser: &str,
) -> Response {
    let id = super::random_token();
    let csrf = super::random_token();
    let host = url::Url::parse(&request.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let client = request
        .client_name
        .clone()
        .unwrap_or_else(|| request.client_id.clone());
    let scopes: String = request
        .scope
        .iter()
        .map(|s| format!("<li><code>{}</code></li>", page::escape(s)))
        .collect();
    // a GitHub user without a verified email is better known by login
    // than by numeric id
    let who = identity
        .email
        .clone()
        .or_else(|| identity.login.clone())
        .unwrap_or_else(|| identity.sub.clone());
    let body = format!(
        "<p>Signed in as <strong>{who}</strong>.</p>\
         <p><strong>{client}</strong> (client id <code>{client_id}</code>) asks for access to \
         this server. After you approve, you are sent back to <strong>{host}</strong>.</p>\
         <p>It asks for:</p><ul>{scopes}</ul>\
         <form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"consent_id\" value=\"{id}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Refuse</button></form>",
        who = page::escape(&who),
        client = page::escape(&client),
        client_id = page::escape(&request.client_id),
        host = page::escape(&host),
        action = page::escape(&inner.url(CONSENT_PATH)),
    );
    let record = ConsentRequest {
        request,
        identity,
        grant_id,
        upstream,
        csrf: digest(&csrf),
        browser: browser.to_owned(),
    };
    if inner
        .records
        .put(RecordKind::ConsentRequest, &id, &record, Some(CONSENT_TTL))
        .await
        .is_err()
    {
        return ErrorPage::unavailable().into_response();
    }
    page::render(StatusCode::OK, "Authorize access", &body)
}

#[derive(Deserialize)]
pub(crate) struct ConsentForm {
    consent_id: String,
    csrf: String,
    decision: String,
}

/// The user's answer.
pub(crate) async fn decide(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Form(form): Form<ConsentForm>,
) -> Response {
    let stale = || {
        ErrorPage::bad_request(
            "Consent expired",
            "This consent form is unknown, expired or was already answered. Start again from the application.",
        )
        .into_response()
    };
    let record: ConsentRequest = match inner
        .records
        .take(RecordKind::ConsentRequest, &form.consent_id)
        .await
    {
        Ok(Some(r)) => r,
        Ok(None) => return stale(),
        Err(_) => return ErrorPage::unavailable().into_response(),
    };
    let same_browser = browser_cookie(&headers)
        .is_some_and(|c| super::constant_time_eq(&digest(c), &record.browser));
    if !same_browser || !super::constant_time_eq(&digest(&form.csrf), &record.csrf) {
        return stale();
    }
    let req = record.request;
    if form.decision != "approve" {
        return error_redirect(
            &inner,
            &req.redirect_uri,
            req.state.as_deref(),
            "access_denied",
            "the user refused",
        );
    }
    let remembered = RememberedConsent {
        scope: req.scope.clone(),
    };
    if inner
        .records
        .put(
            RecordKind::Consent,
            &consent_key(&record.identity.sub, &req.client_id),
            &remembered,
            Some(GRANT_TTL),
        )
        .await
        .is_err()
    {
        return ErrorPage::unavailable().into_response();
    }
    issue_code(
        &inner,
        req,
        record.identity.sub,
        record.grant_id,
        record.upstream,
    )
    .await
}

/// Issues a code for an approved request and sends it to the client.
pub(crate) async fn issue_code(
    inner: &Inner,
    request: AuthRequest,
    sub: String,
    grant_id: String,
    upstream: Sealed,
) -> Response {
    let code = super::random_token();
    let redirect_uri = request.redirect_uri.clone();
    let state = request.state.clone();
    let slot = CodeSlot::Live {
        request,
        sub,
        grant_id,
        upstream,
        issued_at: super::unix_now(),
    };
    if inner
        .records
        .put(RecordKind::Code, &digest(&code), &slot, Some(CODE_TTL))
        .await
        .is_err()
    {
        return ErrorPage::unavailable().into_response();
    }
    redirect_with(inner, &redirect_uri, &[("code", &code)], state.as_deref())
}
