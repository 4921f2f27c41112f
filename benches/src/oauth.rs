//! Target 3 with mcp-bastion's own access tokens: the authorization server
//! that `bench-server full-stack-oauth` builds (its signing key is the
//! throwaway ES256 key committed in `benches/keys/`, its store holds one live
//! grant), and the tokens the clients send, signed by the same key for that
//! grant as the token endpoint would issue them. Each request is verified by
//! `OAuthServer::authenticator`: ES256 with the published key, `iss`, `aud`,
//! then the grant looked up in the store (not revoked).

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcp_bastion::auth::oauth::{
    MemoryStore, OAuthServer, OAuthStore, RecordKind, SigningKey, UpstreamOidc,
};
use serde_json::json;

/// The private key (PKCS#8 PEM).
pub const PRIVATE_PEM: &str = include_str!("../keys/bench-es256.pem");
/// The issuer, which is also the resource (as the binary configures it).
pub const ISSUER: &str = "https://mcp.bench.invalid";
/// The grant every token is issued under.
pub const GRANT_ID: &str = "bench-grant";
/// The client the grant is for.
pub const CLIENT_ID: &str = "bench-oauth-client";

/// The authorization server: the bench key, one live grant in a memory
/// store, an upstream that is never contacted (nobody logs in here).
///
/// # Errors
///
/// The key or the server cannot be built, or the grant cannot be stored.
pub async fn server() -> Result<OAuthServer, String> {
    let key = SigningKey::from_pem(PRIVATE_PEM.as_bytes()).map_err(|e| e.to_string())?;
    let store = Arc::new(MemoryStore::new());
    // the grant as the token endpoint stores it
    let grant = json!({
        "id": GRANT_ID,
        "client_id": CLIENT_ID,
        "sub": "bench-client",
        "scope": ["mcp"],
        "resource": ISSUER,
        "upstream": {},
        "revoked": false,
    });
    store
        .put(RecordKind::Grant, GRANT_ID, grant, None)
        .await
        .map_err(|e| e.to_string())?;
    OAuthServer::builder()
        .issuer(ISSUER)
        .resource(ISSUER)
        .scopes(["mcp"])
        .signing_key(key)
        .store(store)
        .upstream(UpstreamOidc::new("https://idp.bench.invalid", "bench"))
        .allow_any_user()
        .build()
        .map_err(|e| e.to_string())
}

/// An access token for `subject` under [`GRANT_ID`], valid for a day, with
/// the claims the token endpoint issues.
///
/// # Errors
///
/// The key does not load or the token cannot be signed.
pub fn token(subject: &str) -> Result<String, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let kid = SigningKey::from_pem(PRIVATE_PEM.as_bytes())
        .map_err(|e| e.to_string())?
        .kid()
        .to_owned();
    let claims = json!({
        "iss": ISSUER,
        "aud": ISSUER,
        "sub": subject,
        "client_id": CLIENT_ID,
        "scope": "mcp",
        "iat": now,
        "exp": now + 86_400,
        "jti": format!("bench-{now}"),
        "grant_id": GRANT_ID,
    });
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid);
    header.typ = Some("at+jwt".into());
    let key = EncodingKey::from_ec_pem(PRIVATE_PEM.as_bytes()).map_err(|e| e.to_string())?;
    jsonwebtoken::encode(&header, &claims, &key).map_err(|e| e.to_string())
}
