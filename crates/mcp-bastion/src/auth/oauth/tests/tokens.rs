//! Metadata, and what the token endpoint issues and refuses.
#![allow(clippy::unwrap_used)]

use axum::body::Body;
use http::{Request, StatusCode, header};
use serde_json::{Value, json};

use super::*;
use crate::auth::{AuthError, Credential, CredentialSource, InvalidToken};

#[tokio::test]
async fn metadata_advertises_exactly_what_is_supported() {
    let idp = idp().await;
    let oauth = builder(&idp).build().unwrap();
    // the RFC 9728 document of the resource names this issuer
    let prm = oauth.protected_resource_metadata().document(None);
    assert_eq!(prm["resource"], RESOURCE);
    assert_eq!(prm["authorization_servers"], json!([ISSUER]));
    let app = oauth.router();
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let res = send(&app, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(res.status(), StatusCode::OK);
        let doc: Value = serde_json::from_str(&text(res).await).unwrap();
        assert_eq!(doc["issuer"], ISSUER);
        assert_eq!(doc["response_types_supported"], json!(["code"]));
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(doc["client_id_metadata_document_supported"], true);
        assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
        assert_eq!(doc["scopes_supported"], json!(["mcp", "admin"]));
        assert_eq!(
            doc["registration_endpoint"],
            format!("{ISSUER}/oauth/register")
        );
        assert!(!doc.to_string().contains("offline_access"));
    }
    let res = send(
        &app,
        Request::get("/oauth/jwks.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let jwks: Value = serde_json::from_str(&text(res).await).unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "ES256");

    // an issuer with a path: the path-inserted form
    let app = builder(&idp)
        .issuer("https://mcp.example.com/tenant")
        .dcr(DcrPolicy::Off)
        .build()
        .unwrap()
        .router();
    let res = send(
        &app,
        Request::get("/.well-known/oauth-authorization-server/tenant")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let doc: Value = serde_json::from_str(&text(res).await).unwrap();
    assert_eq!(
        doc["token_endpoint"],
        "https://mcp.example.com/tenant/oauth/token"
    );
    assert!(doc.get("registration_endpoint").is_none());
}

#[tokio::test]
async fn issued_tokens_pass_mcp_auth_and_are_only_for_this_resource() {
    let idp = idp().await;
    let oauth = builder(&idp).build().unwrap();
    let app = oauth.router();
    let (code, verifier) = code_for(&app, &idp, "alice").await;
    let (status, body, cache) = token(&app, &redeem(&code, &verifier)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(cache.as_deref(), Some("no-store"));
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "mcp admin");
    let access = body["access_token"].as_str().unwrap();

    // verified locally with the key published at the JWKS endpoint
    let res = send(
        &app,
        Request::get("/oauth/jwks.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let jwks: Value = serde_json::from_str(&text(res).await).unwrap();
    let jwk = &jwks["keys"][0];
    let published = jsonwebtoken::DecodingKey::from_ec_components(
        jwk["x"].as_str().unwrap(),
        jwk["y"].as_str().unwrap(),
    )
    .unwrap();
    let jwt = crate::auth::JwtAuthenticator::builder()
        .key(jwk["kid"].as_str().map(str::to_owned), published)
        .issuer(ISSUER)
        .audience(RESOURCE)
        .build()
        .unwrap();
    let mcp_app = mcp(jwt);
    assert_eq!(call(&mcp_app, access).await, StatusCode::OK);
    assert_eq!(
        call(&mcp(oauth.jwt_authenticator()), access).await,
        StatusCode::OK
    );
    let p = oauth.jwt_authenticator().verify(access).await.unwrap();
    assert_eq!(p.subject(), "alice");
    assert_eq!(p.claim("client_id"), Some(&json!("app")));
    assert!(p.has_scope("mcp"));

    // the same issuer and key, another resource: refused
    let other = builder(&idp)
        .resource("https://other.example.com/mcp")
        .signing_key(oauth.signing_key().clone())
        .build()
        .unwrap();
    let other_app = other.router();
    let (code, verifier) = code_for(&other_app, &idp, "alice").await;
    let form =
        redeem(&code, &verifier).replace("&resource=https%3A%2F%2Fmcp.example.com%2Fmcp", "");
    let (_, body, _) = token(&other_app, &form).await;
    let foreign = body["access_token"].as_str().unwrap();
    assert_eq!(call(&mcp_app, foreign).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_reused_code_is_refused_and_revokes_what_it_issued() {
    let idp = idp().await;
    let oauth = builder(&idp).build().unwrap();
    let app = oauth.router();
    let mcp_app = mcp(oauth.authenticator());
    let (code, verifier) = code_for(&app, &idp, "alice").await;
    let (_, body, _) = token(&app, &redeem(&code, &verifier)).await;
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(call(&mcp_app, &access).await, StatusCode::OK);

    let (status, body, _) = token(&app, &redeem(&code, &verifier)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "the code was already used");
    assert_eq!(call(&mcp_app, &access).await, StatusCode::UNAUTHORIZED);
    let (_, body, _) = token(
        &app,
        &format!("grant_type=refresh_token&client_id=app&refresh_token={refresh}"),
    )
    .await;
    assert_eq!(body["error"], "invalid_grant");
}

/// A token request form from a code and its verifier.
type FormOf = fn(String, String) -> String;

#[tokio::test]
async fn codes_are_bound_to_verifier_redirect_client_and_resource() {
    let idp = idp().await;
    let app = builder(&idp).build().unwrap().router();
    let cases: [(&str, FormOf, &str); 4] = [
        (
            "wrong verifier",
            |c, _| redeem(&c, &random_token()),
            "the PKCE code_verifier does not match",
        ),
        (
            "another redirect URI",
            |c, v| redeem(&c, &v).replace("4000", "4001"),
            "redirect_uri differs from the authorization request's",
        ),
        (
            "another client",
            |c, v| {
                redeem(&c, &v).replace(
                    "client_id=app",
                    "client_id=private&client_secret=private-secret",
                )
            },
            "the code was issued to another client",
        ),
        (
            "no verifier",
            |c, v| redeem(&c, &v).replace(&format!("&code_verifier={v}"), ""),
            "the PKCE code_verifier does not match",
        ),
    ];
    for (name, form, description) in cases {
        let (code, verifier) = code_for(&app, &idp, "alice").await;
        let (status, body, _) = token(&app, &form(code.clone(), verifier.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(body["error_description"], description, "{name}");
        // the code is spent
        let (_, body, _) = token(&app, &redeem(&code, &verifier)).await;
        assert_eq!(body["error"], "invalid_grant", "{name}");
    }
    // a confidential client without its secret
    let (status, body, _) = token(
        &app,
        "grant_type=authorization_code&client_id=private&code=x",
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_grant() {
    let idp = idp().await;
    let oauth = builder(&idp).build().unwrap();
    let app = oauth.router();
    let mcp_app = mcp(oauth.authenticator());
    let (code, verifier) = code_for(&app, &idp, "alice").await;
    let (_, first, _) = token(&app, &redeem(&code, &verifier)).await;
    let refresh = |t: &Value| {
        format!(
            "grant_type=refresh_token&client_id=app&refresh_token={}",
            t["refresh_token"].as_str().unwrap()
        )
    };
    let (status, second, cache) = token(&app, &refresh(&first)).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(cache.as_deref(), Some("no-store"));
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    let access = second["access_token"].as_str().unwrap();
    assert_eq!(call(&mcp_app, access).await, StatusCode::OK);

    // the first refresh token again: refused, and the whole grant is gone
    let (_, body, _) = token(&app, &refresh(&first)).await;
    assert_eq!(
        body["error_description"],
        "the refresh token was already used"
    );
    let (_, body, _) = token(&app, &refresh(&second)).await;
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(call(&mcp_app, access).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn revocation_ends_access() {
    let idp = idp().await;
    let oauth = builder(&idp).build().unwrap();
    let app = oauth.router();
    let tokens = oauth.authenticator();
    let mcp_app = mcp(tokens.clone());
    let (code, verifier) = code_for(&app, &idp, "alice").await;
    let (_, body, _) = token(&app, &redeem(&code, &verifier)).await;
    let access = body["access_token"].as_str().unwrap();
    // verified once: later requests are answered without a future (the
    // verified-token cache and the memory store), grant checked all the same
    assert_eq!(call(&mcp_app, access).await, StatusCode::OK);
    let (parts, _) = Request::get("/mcp").body(()).unwrap().into_parts();
    let credential = Credential::new(access, CredentialSource::Bearer);
    let now = tokens.authenticate_now(&parts, Some(&credential));
    let principal = now.expect("answered now").unwrap().unwrap();
    assert_eq!(principal.subject(), "alice");
    assert!(principal.upstream_access().is_some());
    let res = send(
        &app,
        Request::post("/oauth/revoke")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("client_id=app&token={access}")))
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(matches!(
        tokens.authenticate_now(&parts, Some(&credential)),
        Some(Err(AuthError::InvalidToken(InvalidToken::Rejected)))
    ));
    assert_eq!(call(&mcp_app, access).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn redirect_uri_at_the_token_endpoint_follows_the_authorization_request() {
    let idp = idp().await;
    let app = builder(&idp).build().unwrap().router();
    // named at /authorize: required at /token
    let (code, verifier) = code_for(&app, &idp, "alice").await;
    let form = redeem(&code, &verifier)
        .replace("&redirect_uri=http%3A%2F%2F127.0.0.1%3A4000%2Fcallback", "");
    let (status, body, _) = token(&app, &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // omitted at /authorize (one registered): may be omitted at /token
    let (verifier, challenge) = pkce();
    let uri = authorize_uri("app", &challenge, "")
        .replace("&redirect_uri=http%3A%2F%2F127.0.0.1%3A4000%2Fcallback", "");
    let res = login(&app, &idp, &uri, "alice", None).await;
    let code = param(&location(&res), "code").unwrap();
    let form = redeem(&code, &verifier)
        .replace("&redirect_uri=http%3A%2F%2F127.0.0.1%3A4000%2Fcallback", "");
    let (status, body, _) = token(&app, &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[test]
fn a_generated_key_is_persisted_and_loaded_again() {
    let dir = std::env::temp_dir().join(format!("mcp-bastion-oauth-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("signing.pem");
    let _ = std::fs::remove_file(&path);
    let first = SigningKey::load_or_generate(&path).unwrap();
    let again = SigningKey::load_or_generate(&path).unwrap();
    assert_eq!(first.kid(), again.kid());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "readable by others: {mode:o}");
    }
    std::fs::write(&path, "not a key").unwrap();
    assert!(matches!(
        SigningKey::load_or_generate(&path),
        Err(OAuthConfigError::SigningKey)
    ));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_code_older_than_sixty_seconds_is_refused() {
    let idp = idp().await;
    let store = std::sync::Arc::new(MemoryStore::new());
    let app = builder(&idp).store(store.clone()).build().unwrap().router();
    let (verifier, challenge) = pkce();
    let request = super::super::records::AuthRequest {
        client_id: "app".into(),
        client_name: None,
        redirect_uri: REDIRECT.into(),
        redirect_uri_named: true,
        state: None,
        code_challenge: challenge,
        scope: vec!["mcp".into()],
        resource: RESOURCE.into(),
    };
    // a code as the consent step writes it, issued 61 s ago (a store that keeps it longer than
    // its time to live, or a clock that moved, must not make it redeemable)
    let slot = super::super::records::CodeSlot::Live {
        request,
        sub: "alice".into(),
        grant_id: "g".into(),
        upstream: sealed::Sealed::default(),
        issued_at: unix_now() - 61,
    };
    store
        .put(
            RecordKind::Code,
            &super::super::clients::digest("old-code"),
            serde_json::to_value(&slot).unwrap(),
            None,
        )
        .await
        .unwrap();
    let (status, body, _) = token(&app, &redeem("old-code", &verifier)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error_description"], "the code is unknown or expired");
}
