//! The RS256 key of target 3 and of the JWT criterion bench: a throwaway key
//! committed in `benches/keys/` (it protects nothing), the JWKS that serves
//! its public half, and tokens it signs.

use std::{
    net::SocketAddr,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{Router, http::header::CONTENT_TYPE, routing::get};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcp_bastion::auth::{JwtAuthenticator, JwtBuilder};
use serde_json::json;

/// The private key (PKCS#1 PEM).
pub const PRIVATE_PEM: &str = include_str!("../keys/bench-rs256.pem");
/// The JWKS with its public half, as served at [`JWKS_PATH`].
pub const JWKS_JSON: &str = include_str!("../keys/bench-rs256.jwks.json");
/// The `kid` in the JWKS and in every token's header.
pub const KID: &str = "bench-1";
/// Where `bench-server full-stack` serves [`JWKS_JSON`].
pub const JWKS_PATH: &str = "/jwks.json";
/// The issuer the full stack expects.
pub const ISSUER: &str = "https://issuer.bench.invalid";
/// The audience the full stack expects (its resource).
pub const AUDIENCE: &str = "https://mcp.bench.invalid/mcp";

/// A token for `subject`, valid for a day, with `scope` `"mcp"`.
pub fn token(subject: &str) -> Result<String, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let claims = json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "iat": now,
        "exp": now + 86_400,
        "scope": "mcp",
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(KID.to_owned());
    let key = EncodingKey::from_rsa_pem(PRIVATE_PEM.as_bytes()).map_err(|e| e.to_string())?;
    jsonwebtoken::encode(&header, &claims, &key).map_err(|e| e.to_string())
}

/// A router serving [`JWKS_JSON`] at [`JWKS_PATH`].
pub fn jwks_router() -> Router {
    Router::new().route(
        JWKS_PATH,
        get(|| async { ([(CONTENT_TYPE, "application/json")], JWKS_JSON) }),
    )
}

/// A verifier of this key's tokens: RS256 only, [`ISSUER`] and [`AUDIENCE`]
/// required, keys from the JWKS a [`jwks_router`] serves at `addr`.
pub fn verifier(addr: SocketAddr) -> JwtBuilder {
    JwtAuthenticator::builder()
        .jwks_url(format!("http://{addr}{JWKS_PATH}"))
        .algorithms([Algorithm::RS256])
        .issuer(ISSUER)
        .audience(AUDIENCE)
}
