#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use axum::{Router, body::Body, response::IntoResponse, routing::post};
use http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::{inspect::McpInspectLayer, principal::Principal};

async fn body_text(res: axum::response::Response) -> String {
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn challenge_values_cannot_break_out_of_their_quotes() {
    let c = Challenge::bearer()
        .param("error_description", "a\"b\\c\r\nSet-Cookie: x=1\u{7f}é")
        .to_string();
    assert_eq!(c, r#"Bearer error_description="a\"b\\cSet-Cookie: x=1""#);
    assert!(http::HeaderValue::from_str(&c).is_ok());
}

#[test]
fn insufficient_scope_challenge_lists_every_scope_needed() {
    let e = AuthError::InsufficientScope(vec!["tools:admin".into(), "files:write".into()]);
    let res = e.to_response(Some("https://x/.well-known/oauth-protected-resource"), None);
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer resource_metadata="https://x/.well-known/oauth-protected-resource", error="insufficient_scope", scope="tools:admin files:write", error_description="the request needs scopes that were not granted""#
    );
}

#[test]
fn credential_debug_is_redacted_and_sources_are_checked() {
    let c = Credential::new("s3cr3t-token", CredentialSource::Bearer);
    assert!(!format!("{c:?}").contains("s3cr3t"));
    let parts = |uri: &str, headers: &[(&str, &str)]| {
        let mut b = Request::get(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    };
    let s = CredentialSources::new();
    assert_eq!(s.extract(&parts("/", &[])).unwrap(), None);
    let c = s
        .extract(&parts("/", &[("authorization", "bearer abc")]))
        .unwrap()
        .unwrap();
    assert_eq!((c.secret(), c.source()), ("abc", &CredentialSource::Bearer));
    // another scheme is not a bearer credential
    assert_eq!(
        s.extract(&parts("/", &[("authorization", "Basic Zm9vOmJhcg==")]))
            .unwrap(),
        None
    );
    assert!(matches!(
        s.extract(&parts("/", &[("authorization", "Bearer ")])),
        Err(AuthError::InvalidToken(InvalidToken::Malformed))
    ));
    assert!(matches!(
        s.extract(&parts("/?token=abc", &[])),
        Err(AuthError::InvalidRequest(_))
    ));
    let q = CredentialSources::new().query_params(["apiKey"]);
    let c = q
        .extract(&parts("/messages?session_id=1&apiKey=k%2B1", &[]))
        .unwrap()
        .unwrap();
    assert_eq!((c.secret(), c.from_query()), ("k+1", Some("apiKey")));
    // the same credential twice is fine; two different ones are not
    assert!(
        q.extract(&parts("/?apiKey=k", &[("x-api-key", "k")]))
            .is_ok()
    );
    assert!(matches!(
        q.extract(&parts("/?apiKey=k", &[("x-api-key", "j")])),
        Err(AuthError::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn api_keys_compare_digests_and_unknown_keys_are_invalid_tokens() {
    let keys = ApiKeys::new().key("sk-1", Principal::new("one").with_scopes(["a"]));
    assert_eq!(keys.lookup("sk-1").unwrap().subject(), "one");
    assert!(keys.lookup("sk-2").is_none());
    assert!(
        keys.lookup("sk-1")
            .unwrap()
            .key_id()
            .unwrap()
            .starts_with("sha256:")
    );
    let app = Router::new()
        .route("/mcp", post(|| async { "ok" }))
        .layer(McpAuthLayer::new(keys));
    let res = app
        .oneshot(
            Request::post("/mcp")
                .header("authorization", "Bearer sk-2")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body: Value = serde_json::from_str(&body_text(res).await).unwrap();
    assert_eq!(body["error"]["code"], -32001);
}

#[tokio::test]
async fn closures_authenticate_and_any_of_prefers_503_over_401() {
    let down = from_fn(|_: &http::request::Parts, _: Option<&Credential>| async {
        Err(AuthError::Unavailable("down"))
    });
    let refuse = from_fn(|_: &http::request::Parts, _: Option<&Credential>| async {
        Err(AuthError::InvalidToken(InvalidToken::Rejected))
    });
    let tenant = from_fn(|parts: &http::request::Parts, _: Option<&Credential>| {
        let t = parts
            .headers
            .get("x-tenant")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        async move { Ok(t.map(Principal::new)) }
    });
    let (parts, ()) = Request::get("/")
        .header("x-tenant", "acme")
        .body(())
        .unwrap()
        .into_parts();
    let chain = AnyOf::new().with(refuse).with(down).with(tenant);
    let p = chain.authenticate(&parts, None).await.unwrap().unwrap();
    assert_eq!(p.subject(), "acme");
    let (parts, ()) = Request::get("/").body(()).unwrap().into_parts();
    assert_eq!(
        chain.authenticate(&parts, None).await,
        Err(AuthError::Unavailable("down"))
    );
}

#[test]
fn jwt_builder_refuses_unsafe_configurations() {
    assert_eq!(
        JwtAuthenticator::builder()
            .audience("a")
            .build()
            .unwrap_err(),
        JwtConfigError::NoKeys
    );
    assert_eq!(
        JwtAuthenticator::builder()
            .secret(b"0123456789abcdef0123456789abcdef")
            .build()
            .unwrap_err(),
        JwtConfigError::NoAudience
    );
    assert_eq!(
        JwtAuthenticator::builder()
            .secret(b"short")
            .audience("a")
            .build()
            .unwrap_err(),
        JwtConfigError::ShortSecret
    );
    assert_eq!(
        JwtAuthenticator::builder()
            .rsa_pem(b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
            .audience("a")
            .build()
            .unwrap_err(),
        JwtConfigError::BadPem("RSA")
    );
    let dbg = format!(
        "{:?}",
        JwtAuthenticator::builder().secret(b"0123456789abcdef0123456789abcdef-secret")
    );
    assert!(!dbg.contains("secret\""), "{dbg}");
    assert!(!dbg.contains("0123456789abcdef"), "{dbg}");
}

/// The inner service of the layer in the tests below: answers 200 and counts
/// its clones (the layer's slow path keeps a clone for the next request).
#[derive(Default)]
struct CountingClones {
    clones: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Clone for CountingClones {
    fn clone(&self) -> Self {
        self.clones
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self {
            clones: self.clones.clone(),
        }
    }
}

impl tower::Service<Request<Body>> for CountingClones {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let who = req
            .extensions()
            .get::<Principal>()
            .map_or("nobody", |p| p.subject())
            .to_owned();
        std::future::ready(Ok(who.into_response()))
    }
}

async fn call_with(
    svc: &mut (
             impl tower::Service<
        Request<Body>,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
    > + Send
         ),
    bearer: &str,
) -> (StatusCode, String) {
    let req = Request::post("/mcp")
        .header("authorization", format!("Bearer {bearer}"))
        .body(Body::empty())
        .unwrap();
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    (res.status(), body_text(res).await)
}

#[tokio::test]
async fn a_verdict_known_at_once_passes_the_request_on_without_a_clone_of_the_inner_service() {
    use tower::Layer;
    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-secret";
    let inner = CountingClones::default();
    let clones = inner.clones.clone();
    let count = || clones.load(std::sync::atomic::Ordering::SeqCst);

    // a static API key, accepted or refused: always known at once
    let keys = ApiKeys::new().key("sk-1", Principal::new("one"));
    let jwt = JwtAuthenticator::builder()
        .secret(SECRET)
        .audience("mcp")
        .build()
        .unwrap();
    let mut svc = McpAuthLayer::new(AnyOf::new().with(keys).with(jwt)).layer(inner);
    assert_eq!(
        call_with(&mut svc, "sk-1").await,
        (StatusCode::OK, "one".into())
    );
    assert_eq!(
        call_with(&mut svc, "sk-2").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(count(), 0);

    // a JWT: its first request checks the signature (awaited, one clone);
    // the same token again is a verified-token cache hit, known at once
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &json!({"sub": "alice", "aud": "mcp", "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    assert_eq!(
        call_with(&mut svc, &token).await,
        (StatusCode::OK, "alice".into())
    );
    assert_eq!(count(), 1);
    for _ in 0..3 {
        assert_eq!(
            call_with(&mut svc, &token).await,
            (StatusCode::OK, "alice".into())
        );
    }
    assert_eq!(count(), 1);
}

#[tokio::test]
async fn any_of_answers_at_once_only_when_every_authenticator_it_asks_does() {
    let (parts, ()) = Request::get("/").body(()).unwrap().into_parts();
    let key = |k: &str| Credential::new(k, CredentialSource::Bearer);
    let keys = || ApiKeys::new().key("sk-1", Principal::new("one"));
    let slow = from_fn(|_: &http::request::Parts, _: Option<&Credential>| async { Ok(None) });
    // the first accepts at once: the slow one is never asked
    let chain = AnyOf::new().with(keys()).with(slow);
    let now = chain.authenticate_now(&parts, Some(&key("sk-1")));
    assert_eq!(now.unwrap().unwrap().unwrap().subject(), "one");
    // the key is unknown: the slow one must be asked, so no answer now
    assert!(chain.authenticate_now(&parts, Some(&key("sk-2"))).is_none());
    // with only answers known at once, a refusal is one too
    let only_keys = AnyOf::new().with(keys()).with(keys());
    assert_eq!(
        only_keys.authenticate_now(&parts, Some(&key("sk-2"))),
        Some(Ok(None))
    );
}

#[tokio::test]
async fn metadata_is_served_at_the_well_known_and_suffixed_paths() {
    let md = ProtectedResourceMetadata::new()
        .resource("https://mcp.example.com/mcp")
        .authorization_server("https://auth.example.com")
        .scopes(["tools:admin"]);
    let app: Router = md.router("/mcp");
    for path in [WELL_KNOWN_PATH, "/.well-known/oauth-protected-resource/mcp"] {
        let res = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let doc: Value = serde_json::from_str(&body_text(res).await).unwrap();
        assert_eq!(doc["resource"], "https://mcp.example.com/mcp");
        assert_eq!(
            doc["authorization_servers"],
            json!(["https://auth.example.com"])
        );
        assert_eq!(doc["scopes_supported"], json!(["tools:admin"]));
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    }
}

/// Our legacy SSE transport behind the auth layer; its backend is never
/// reached (a stream's backend session opens on its first POST).
#[cfg(feature = "sse")]
fn sse_endpoint_app() -> Router {
    use crate::{
        backend::{Backend, BackendError, Connection, SessionContext},
        boxed::BoxFuture,
    };
    struct Unused;
    impl Backend for Unused {
        fn connect(
            &self,
            _: SessionContext,
        ) -> BoxFuture<'static, Result<Connection, BackendError>> {
            Box::pin(async { Err(BackendError::Unavailable("unused".into())) })
        }
    }
    let keys = ApiKeys::new().key("k=y+1/z", Principal::new("sse"));
    crate::transport::Sse::new(Unused)
        .into_router()
        .layer(McpAuthLayer::new(keys).credentials(CredentialSources::new().query_params(["auth"])))
}

/// The first event of a stream that does not end.
#[cfg(feature = "sse")]
async fn first_event(res: axum::response::Response) -> String {
    use http_body_util::BodyExt;
    let frame = res.into_body().frame().await.unwrap().unwrap();
    String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap()
}

#[cfg(feature = "sse")]
#[tokio::test]
async fn a_query_credential_is_carried_into_the_legacy_sse_endpoint_event() {
    let res = sse_endpoint_app()
        .oneshot(
            Request::get("/sse?auth=k%3Dy%2B1%2Fz")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let sid = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    assert_eq!(
        first_event(res).await,
        format!("event: endpoint\ndata: messages?session_id={sid}&auth=k%3Dy%2B1%2Fz\n\n")
    );
    // a header credential is not copied anywhere
    let res = sse_endpoint_app()
        .oneshot(
            Request::get("/sse")
                .header("x-api-key", "k=y+1/z")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let sid = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    assert_eq!(
        first_event(res).await,
        format!("event: endpoint\ndata: messages?session_id={sid}\n\n")
    );
}

fn tools_list_answer() -> Value {
    json!({"jsonrpc": "2.0", "id": 2, "result": {"tools": [
        {"name": "echo", "inputSchema": {}},
        {"name": "wipe", "inputSchema": {}}
    ]}})
}

fn scoped_app(sse: bool) -> Router {
    let keys = ApiKeys::new().key("sk-user", Principal::new("user")).key(
        "sk-admin",
        Principal::new("admin").with_scopes(["tools:admin"]),
    );
    let answer = move || async move {
        let a = tools_list_answer().to_string();
        if sse {
            (
                [("content-type", "text/event-stream")],
                format!("event: message\ndata: {a}\n\n"),
            )
                .into_response()
        } else {
            ([("content-type", "application/json")], a).into_response()
        }
    };
    Router::new()
        .route("/mcp", post(answer).get(answer))
        .layer(McpScopeLayer::new(
            ScopePolicy::new().tool("wipe", ["tools:admin"]),
        ))
        .layer(McpInspectLayer::new())
        .layer(McpAuthLayer::new(keys))
}

async fn list_tools(app: &Router, key: &str, method: http::Method) -> Vec<String> {
    let mut req = Request::builder()
        .method(method.clone())
        .uri("/mcp")
        .header("x-api-key", key);
    let body = if method == http::Method::POST {
        req = req.header("content-type", "application/json");
        Body::from(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#)
    } else {
        Body::empty()
    };
    let res = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let is_sse = res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream");
    let json = if is_sse {
        use futures_util::StreamExt;
        let mut events = sse_stream::SseStream::new(res.into_body());
        events.next().await.unwrap().unwrap().data.unwrap()
    } else {
        body_text(res).await
    };
    let v: Value = serde_json::from_str(&json).unwrap();
    v["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn tools_list_is_filtered_in_json_and_sse_answers_and_on_get_streams() {
    for sse in [false, true] {
        let app = scoped_app(sse);
        assert_eq!(
            list_tools(&app, "sk-user", http::Method::POST).await,
            ["echo"],
            "sse={sse}"
        );
        assert_eq!(
            list_tools(&app, "sk-admin", http::Method::POST).await,
            ["echo", "wipe"],
            "sse={sse}"
        );
    }
    // the legacy transport answers on the GET stream
    let app = scoped_app(true);
    assert_eq!(
        list_tools(&app, "sk-user", http::Method::GET).await,
        ["echo"]
    );
}

#[tokio::test]
async fn a_call_without_the_tool_scope_is_a_403_challenge_echoing_the_id() {
    let app = scoped_app(false);
    let call = |key: &'static str, tool: &'static str| {
        Request::post("/mcp")
            .header("x-api-key", key)
            .header("content-type", "application/json")
            .body(Body::from(format!(
                r#"{{"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{{"name":"{tool}"}}}}"#
            )))
            .unwrap()
    };
    let res = app.clone().oneshot(call("sk-user", "wipe")).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let c = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        c.contains(r#"error="insufficient_scope""#) && c.contains(r#"scope="tools:admin""#),
        "{c}"
    );
    let body: Value = serde_json::from_str(&body_text(res).await).unwrap();
    assert_eq!(body["id"], "c1");
    assert_eq!(
        body["error"]["data"]["requiredScopes"],
        json!(["tools:admin"])
    );
    assert_eq!(
        app.clone()
            .oneshot(call("sk-user", "echo"))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.oneshot(call("sk-admin", "wipe"))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[test]
fn scope_policy_covers_methods_resources_and_prompts() {
    let p = ScopePolicy::new()
        .parse_rule("method:resources/read=res:read")
        .unwrap()
        .parse_rule("resource:file:///secret/*=res:secret")
        .unwrap()
        .parse_rule("prompt:admin-prompt=prompts:admin")
        .unwrap()
        .parse_rule("deploy=ops,tools:admin")
        .unwrap();
    let msg = |v: Value| crate::jsonrpc::Message::from_value(v).unwrap();
    let read = msg(
        json!({"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///secret/key"}}),
    );
    assert_eq!(
        p.required(&read),
        BTreeSet::from(["res:read".to_owned(), "res:secret".to_owned()])
    );
    let prompt = msg(
        json!({"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"admin-prompt"}}),
    );
    assert_eq!(
        p.required(&prompt),
        BTreeSet::from(["prompts:admin".to_owned()])
    );
    let granted = BTreeSet::from(["ops".to_owned()]);
    assert!(!p.tool_allowed("deploy", &granted));
    assert!(p.parse_rule("no-equals").is_err());
    assert!(ScopePolicy::new().parse_rule("t=bad\"scope").is_err());
}
