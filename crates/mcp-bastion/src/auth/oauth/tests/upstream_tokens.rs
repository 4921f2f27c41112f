//! The user's upstream tokens: sealed in the store, handed to what asks
//! through the principal, refreshed one at a time before they expire, and
//! the grant ended when the provider refuses.

use std::time::Duration;

use super::*;
use crate::upstream_token::UpstreamTokenError;

/// An MCP endpoint that answers with the principal's upstream token (or
/// why there is none).
fn upstream_echo(auth: impl Authenticator) -> Router {
    Router::new()
        .route(
            "/mcp",
            post(|p: Principal| async move {
                match p.upstream_access() {
                    None => "none".to_owned(),
                    Some(a) => match a.access_token().await {
                        Ok(t) => t.secret().to_owned(),
                        Err(e) => format!("{e:?}"),
                    },
                }
            }),
        )
        .layer(McpAuthLayer::new(auth))
}

async fn upstream_of(mcp: &Router, token: &str) -> (StatusCode, String) {
    let res = send(
        mcp,
        Request::post("/mcp")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    (res.status(), text(res).await)
}

/// Logs alice in and redeems the code: (access token, refresh token).
async fn tokens_for(app: &Router, idp: &Idp) -> (String, String) {
    let (code, verifier) = code_for(app, idp, "alice").await;
    let (status, body, _) = token(app, &redeem(&code, &verifier)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

/// The one grant record in `store`, raw.
async fn grant_record(store: &MemoryStore, access: &str) -> (String, Value) {
    let payload = access.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    let id = claims["grant_id"].as_str().unwrap().to_owned();
    let record = store.get(RecordKind::Grant, &id).await.unwrap().unwrap();
    (id, record)
}

#[tokio::test]
async fn upstream_tokens_are_sealed_at_rest_and_reach_only_the_grants_principal() {
    let idp = idp().await;
    let store = Arc::new(MemoryStore::new());
    let server = builder(&idp).store(store.clone()).build().unwrap();
    let app = server.router();
    let (access, _) = tokens_for(&app, &idp).await;
    let (id, record) = grant_record(&store, &access).await;
    let raw = record.to_string();
    assert!(
        !raw.contains("upstream-access") && !raw.contains("upstream-refresh"),
        "{raw}"
    );
    let mcp = upstream_echo(server.authenticator());
    assert_eq!(
        upstream_of(&mcp, &access).await,
        (StatusCode::OK, "upstream-access".to_owned())
    );
    // the plain JWT authenticator attaches nothing
    let plain = upstream_echo(server.jwt_authenticator());
    assert_eq!(upstream_of(&plain, &access).await.1, "none");
    // the sealed value moved into another grant does not open there
    let mut other = record.clone();
    other["id"] = json!("another-grant");
    store
        .put(RecordKind::Grant, "another-grant", other, None)
        .await
        .unwrap();
    let moved = token_manager::GrantTokens::access(&server.inner, "another-grant");
    assert_eq!(
        moved.access_token().await.unwrap_err(),
        UpstreamTokenError::Absent
    );
    // a tampered ciphertext is absent too (and the principal's Debug shows nothing)
    let mut tampered = record.clone();
    let sealed = tampered["upstream"].as_str().unwrap().to_owned();
    let flipped = if sealed.ends_with('A') { 'B' } else { 'A' };
    tampered["upstream"] = json!(format!("{}{flipped}", &sealed[..sealed.len() - 1]));
    store
        .put(RecordKind::Grant, &id, tampered, None)
        .await
        .unwrap();
    assert_eq!(upstream_of(&mcp, &access).await.1, "Absent");
}

#[tokio::test]
async fn a_server_with_another_secrets_key_cannot_open_the_tokens() {
    let idp = idp().await;
    let store = Arc::new(MemoryStore::new());
    let key = SecretsKey::generate();
    let one = builder(&idp)
        .store(store.clone())
        .secrets_key(key.clone())
        .build()
        .unwrap();
    let (access, _) = tokens_for(&one.router(), &idp).await;
    let (id, _) = grant_record(&store, &access).await;
    let same = builder(&idp)
        .store(store.clone())
        .secrets_key(key)
        .build()
        .unwrap();
    let other = builder(&idp).store(store.clone()).build().unwrap();
    let opened = token_manager::GrantTokens::access(&same.inner, &id);
    assert_eq!(
        opened.access_token().await.unwrap().secret(),
        "upstream-access"
    );
    let not = token_manager::GrantTokens::access(&other.inner, &id);
    assert_eq!(
        not.access_token().await.unwrap_err(),
        UpstreamTokenError::Absent
    );
}

#[tokio::test]
async fn a_shared_store_needs_a_secrets_key() {
    struct Shared(MemoryStore);
    impl OAuthStore for Shared {
        fn put<'a>(
            &'a self,
            kind: RecordKind,
            key: &'a str,
            value: Value,
            ttl: Option<Duration>,
        ) -> crate::boxed::BoxFuture<'a, Result<(), StoreError>> {
            self.0.put(kind, key, value, ttl)
        }
        fn get<'a>(
            &'a self,
            kind: RecordKind,
            key: &'a str,
        ) -> crate::boxed::BoxFuture<'a, Result<Option<Value>, StoreError>> {
            self.0.get(kind, key)
        }
        fn take<'a>(
            &'a self,
            kind: RecordKind,
            key: &'a str,
        ) -> crate::boxed::BoxFuture<'a, Result<Option<Value>, StoreError>> {
            self.0.take(kind, key)
        }
        fn swap<'a>(
            &'a self,
            kind: RecordKind,
            key: &'a str,
            value: Value,
            ttl: Option<Duration>,
        ) -> crate::boxed::BoxFuture<'a, Result<Option<Value>, StoreError>> {
            self.0.swap(kind, key, value, ttl)
        }
        fn is_shared(&self) -> bool {
            true
        }
    }
    let idp = idp().await;
    let shared = || Arc::new(Shared(MemoryStore::new()));
    assert!(matches!(
        builder(&idp).store(shared()).build(),
        Err(OAuthConfigError::SecretsKeyRequired)
    ));
    assert!(
        builder(&idp)
            .store(shared())
            .secrets_key(SecretsKey::generate())
            .build()
            .is_ok()
    );
}

#[tokio::test]
async fn a_token_about_to_expire_is_refreshed_once_for_concurrent_requests() {
    let idp = idp().await;
    // the login's token lives 30 s: inside the 60 s margin
    idp.refreshes.lock().unwrap().code_expires_in = Some(30);
    let store = Arc::new(MemoryStore::new());
    let server = builder(&idp).store(store.clone()).build().unwrap();
    let (access, _) = tokens_for(&server.router(), &idp).await;
    let mcp = upstream_echo(server.authenticator());
    let answers = futures_util::future::join_all((0..8).map(|_| upstream_of(&mcp, &access))).await;
    for answer in answers {
        assert_eq!(answer, (StatusCode::OK, "upstream-access-1".to_owned()));
    }
    assert_eq!(idp.refreshes.lock().unwrap().calls, 1, "one refresh");
    // stored sealed, and fresh now (3600 s): no further refresh
    let (_, record) = grant_record(&store, &access).await;
    assert!(!record.to_string().contains("upstream-access-1"));
    assert_eq!(upstream_of(&mcp, &access).await.1, "upstream-access-1");
    assert_eq!(idp.refreshes.lock().unwrap().calls, 1);
    // the lease is given back
    let (id, _) = grant_record(&store, &access).await;
    assert!(
        store
            .get(RecordKind::Grant, &format!("{id}.refreshing"))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_refused_refresh_of_an_expired_token_ends_the_grant() {
    let idp = idp().await;
    {
        let mut r = idp.refreshes.lock().unwrap();
        r.code_expires_in = Some(0);
        r.refuse = true;
    }
    let server = builder(&idp).build().unwrap();
    let app = server.router();
    let (access, refresh) = tokens_for(&app, &idp).await;
    let mcp = upstream_echo(server.authenticator());
    assert_eq!(
        upstream_of(&mcp, &access).await,
        (StatusCode::OK, "Refused".to_owned())
    );
    // the client's next request is refused, and so is its refresh: it logs in again
    assert_eq!(upstream_of(&mcp, &access).await.0, StatusCode::UNAUTHORIZED);
    let (status, body, _) = token(
        &app,
        &format!("grant_type=refresh_token&client_id=app&refresh_token={refresh}"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_description"], "the grant is revoked");
}

#[tokio::test]
async fn a_refused_refresh_keeps_a_token_that_has_not_expired() {
    let idp = idp().await;
    {
        let mut r = idp.refreshes.lock().unwrap();
        r.code_expires_in = Some(30);
        r.refuse = true;
    }
    let server = builder(&idp).build().unwrap();
    let (access, _) = tokens_for(&server.router(), &idp).await;
    let mcp = upstream_echo(server.authenticator());
    assert_eq!(upstream_of(&mcp, &access).await.1, "upstream-access");
    assert_eq!(upstream_of(&mcp, &access).await.0, StatusCode::OK);
}

#[tokio::test]
async fn two_replicas_sharing_a_store_refresh_a_grant_once() {
    let idp = idp().await;
    idp.refreshes.lock().unwrap().code_expires_in = Some(30);
    let store = Arc::new(MemoryStore::new());
    let key = SecretsKey::generate();
    let replica = || {
        builder(&idp)
            .store(store.clone())
            .secrets_key(key.clone())
            .build()
            .unwrap()
    };
    let (one, two) = (replica(), replica());
    let (access, _) = tokens_for(&one.router(), &idp).await;
    let (id, _) = grant_record(&store, &access).await;
    // each replica has its own in-process lock: only the store's lease keeps them to one refresh
    let calls = (0..4).map(|i| {
        let server = if i % 2 == 0 { &one } else { &two };
        token_manager::GrantTokens::access(&server.inner, &id)
    });
    let tokens = futures_util::future::join_all(
        calls
            .collect::<Vec<_>>()
            .iter()
            .map(|a| async move { a.access_token().await.unwrap().secret().to_owned() }),
    )
    .await;
    assert!(
        tokens.iter().all(|t| t == "upstream-access-1"),
        "{tokens:?}"
    );
    assert_eq!(idp.refreshes.lock().unwrap().calls, 1, "one refresh");
}
