//! The user's upstream token in a mapped header of their session's upstream requests.
#![allow(clippy::unwrap_used)]

use super::*;

/// An upstream token source answering `answer`.
struct FixedUpstream(Result<&'static str, crate::upstream_token::UpstreamTokenError>);

impl crate::upstream_token::UpstreamTokenSource for FixedUpstream {
    fn access_token(
        &self,
    ) -> crate::boxed::BoxFuture<
        '_,
        Result<crate::upstream_token::UpstreamToken, crate::upstream_token::UpstreamTokenError>,
    > {
        let answer = self.0.map(crate::upstream_token::UpstreamToken::new);
        Box::pin(async move { answer })
    }
}

fn session_of(
    answer: Result<&'static str, crate::upstream_token::UpstreamTokenError>,
) -> SessionContext {
    let mut ctx = SessionContext::default();
    ctx.extensions.insert(
        crate::principal::Principal::new("alice").with_upstream_access(
            crate::upstream_token::UpstreamAccess::new(FixedUpstream(answer)),
        ),
    );
    ctx
}

#[tokio::test]
async fn the_users_upstream_token_goes_in_the_mapped_header_of_their_session_only() {
    let fake = Fake::default();
    let url = serve(fake.clone(), streamable_router()).await;
    let backend = UpstreamBackend::builder(format!("{url}/mcp"))
        .header("X-Tenant", "acme")
        .header_from_upstream_token("Authorization")
        .build()
        .unwrap();
    let mut alice = backend
        .connect(session_of(Ok("idp-access-1")))
        .await
        .unwrap();
    initialize(&mut alice).await;
    let init = fake.posted("initialize").unwrap();
    assert_eq!(init.headers["authorization"], "Bearer idp-access-1");
    assert_eq!(init.headers["x-tenant"], "acme");
    alice.outgoing.send(call(2, "steps")).await.unwrap();
    next(&mut alice).await;
    next(&mut alice).await;
    let tool = fake.posted("tools/call").unwrap();
    assert_eq!(tool.headers["authorization"], "Bearer idp-access-1");
    // another principal (no upstream token): no Authorization at all
    fake.received.lock().unwrap().clear();
    let mut ctx = SessionContext::default();
    ctx.extensions
        .insert(crate::principal::Principal::new("bob"));
    let mut bob = backend.connect(ctx).await.unwrap();
    initialize(&mut bob).await;
    assert!(
        fake.posted("initialize")
            .unwrap()
            .headers
            .get("authorization")
            .is_none()
    );
    // a token that cannot be had refuses the session
    let refused = backend
        .connect(session_of(Err(
            crate::upstream_token::UpstreamTokenError::Refused,
        )))
        .await;
    assert!(matches!(refused, Err(BackendError::Unavailable(_))));
    // another header gets the token as is
    let raw = UpstreamBackend::builder(format!("{url}/mcp"))
        .header_from_upstream_token("X-Upstream-Token")
        .build()
        .unwrap();
    fake.received.lock().unwrap().clear();
    let mut conn = raw.connect(session_of(Ok("idp-access-2"))).await.unwrap();
    initialize(&mut conn).await;
    assert_eq!(
        fake.posted("initialize").unwrap().headers["x-upstream-token"],
        "idp-access-2"
    );
    // the backend's Debug names the header, never a value
    assert!(!format!("{backend:?}").contains("idp-access"));
}

#[test]
fn the_upstream_token_header_must_be_free() {
    let build = |b: UpstreamBackendBuilder| b.build().map(|_| ()).map_err(|e| e.to_string());
    let base = || UpstreamBackend::builder("http://127.0.0.1:1/mcp");
    assert!(build(base().header_from_upstream_token("Mcp-Session-Id")).is_err());
    assert!(build(base().header_from_upstream_token("bad name")).is_err());
    assert!(build(base().header("X-T", "v").header_from_upstream_token("x-t")).is_err());
    assert!(
        build(
            base()
                .bearer("t")
                .header_from_upstream_token("Authorization")
        )
        .is_err()
    );
    assert!(build(base().bearer("t").header_from_upstream_token("X-Token")).is_ok());
}
