//! The rules across the `oauth-*` options and the other options.

use super::{DcrMode, OnOff, UpstreamKind};
use crate::config::{Config, ConfigError, options::StoreKind};

/// The authentication options that name another authorization server's
/// tokens, which `oauth-issuer` excludes.
const OTHER_TOKEN_SOURCES: [&str; 7] = [
    "jwt-secret-env",
    "jwt-public-key-file",
    "jwt-jwks-url",
    "jwt-oidc-issuer",
    "auth-server-url",
    "introspection-url",
    "authorization-server",
];

/// `(scheme, host, path)` of an absolute http(s) URL without query or
/// fragment, or why not.
fn http_url(text: &str) -> Result<(String, String, String), &'static str> {
    let (scheme, rest) = text
        .split_once("://")
        .filter(|(s, _)| matches!(s.to_ascii_lowercase().as_str(), "http" | "https"))
        .ok_or("must be an absolute http(s) URL")?;
    if rest.contains(['?', '#']) {
        return Err("must not have a query or fragment");
    }
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    if authority.is_empty() || authority.contains('@') {
        return Err("must name a host (and no user information)");
    }
    let host = if authority.starts_with('[') {
        authority
            .split_inclusive(']')
            .next()
            .unwrap_or(authority)
            .trim_matches(['[', ']'])
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    Ok((
        scheme.to_ascii_lowercase(),
        host.to_ascii_lowercase(),
        path.trim_end_matches('/').to_owned(),
    ))
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The identity provider and who may log in through it.
fn check_upstream(
    config: &Config,
    err: &dyn Fn(&str, &str) -> ConfigError,
) -> Result<(), ConfigError> {
    let oauth = &config.oauth;
    match oauth.oauth_upstream.get() {
        UpstreamKind::Oidc => {
            let Some(upstream) = &oauth.oauth_upstream_issuer else {
                return Err(err(
                    "oauth-issuer",
                    "needs `oauth-upstream-issuer` (an OIDC provider) or `oauth-upstream = \"github\"`: \
                     the identity provider users log in with",
                ));
            };
            http_url(upstream.text()).map_err(|m| err("oauth-upstream-issuer", m))?;
            if oauth.oauth_upstream_github_url.is_some() {
                return Err(err(
                    "oauth-upstream-github-url",
                    "is only used with `oauth-upstream = \"github\"`",
                ));
            }
            if !oauth.oauth_allow_github_org.is_empty() {
                return Err(err(
                    "oauth-allow-github-org",
                    "needs `oauth-upstream = \"github\"`: only GitHub knows its organisations",
                ));
            }
        }
        UpstreamKind::Github => {
            if oauth.oauth_upstream_issuer.is_some() {
                return Err(err(
                    "oauth-upstream-issuer",
                    "is not used with `oauth-upstream = \"github\"` (GitHub Enterprise Server: \
                     `oauth-upstream-github-url`)",
                ));
            }
            if let Some(url) = &oauth.oauth_upstream_github_url {
                http_url(url.text()).map_err(|m| err("oauth-upstream-github-url", m))?;
            }
        }
    }
    if oauth.oauth_upstream_client_id.is_none() {
        let key = match oauth.oauth_upstream.get() {
            UpstreamKind::Oidc => "oauth-upstream-issuer",
            UpstreamKind::Github => "oauth-upstream",
        };
        return Err(err(
            key,
            "needs `oauth-upstream-client-id`: mcp-bastion's client id at the provider",
        ));
    }
    if oauth.oauth_allow_subject.is_empty()
        && oauth.oauth_allow_email_domain.is_empty()
        && oauth.oauth_allow_group.is_empty()
        && oauth.oauth_allow_github_org.is_empty()
        && !oauth.oauth_allow_any_user
    {
        return Err(err(
            "oauth-issuer",
            "nobody may log in: add `oauth-allow-subject`, `oauth-allow-email-domain`, \
             `oauth-allow-group`, `oauth-allow-github-org` or `oauth-allow-any-user`",
        ));
    }
    for entry in oauth.oauth_allow_github_org.iter() {
        let mut parts = entry.split('/');
        let well_formed = parts.next().is_some_and(|org| !org.is_empty())
            && parts.next().is_none_or(|team| !team.is_empty())
            && parts.next().is_none();
        if !well_formed {
            return Err(err(
                "oauth-allow-github-org",
                &format!("`{entry}` must be an organisation (`acme`) or a team (`acme/platform`)"),
            ));
        }
    }
    Ok(())
}

/// The rules across the `oauth-*` options and the others. `err(key,
/// message)` makes an error naming where `key` was set.
pub(in crate::config) fn check(
    config: &Config,
    err: &dyn Fn(&str, &str) -> ConfigError,
) -> Result<(), ConfigError> {
    let oauth = &config.oauth;
    let Some(issuer) = &oauth.oauth_issuer else {
        if let Some(key) = oauth.set_keys().first() {
            return Err(err(
                key,
                "needs `oauth-issuer` (which turns the authorization server on)",
            ));
        }
        return Ok(());
    };
    let (scheme, host, path) = http_url(issuer.text()).map_err(|m| err("oauth-issuer", m))?;
    if scheme != "https" && !is_loopback_host(&host) {
        return Err(err(
            "oauth-issuer",
            "must be an https URL (plain http only on a loopback host, for tests): tokens and \
             codes travel through it",
        ));
    }
    let prefix = config.general.prefix();
    if path != prefix {
        return Err(err(
            "oauth-issuer",
            &format!(
                "its path (`{path}`) must be the `path-prefix` (`{prefix}`): the issuer is the \
                 public base URL the MCP endpoints are served under"
            ),
        ));
    }
    check_upstream(config, err)?;
    match (*oauth.oauth_dcr.get(), &oauth.oauth_dcr_token_env) {
        (DcrMode::Token, None) => {
            return Err(err(
                "oauth-dcr",
                "`token` needs `oauth-dcr-token-env`: the variable holding the initial access token",
            ));
        }
        (DcrMode::Open | DcrMode::Off, Some(_)) => {
            return Err(err(
                "oauth-dcr-token-env",
                "is only used with `oauth-dcr = \"token\"`",
            ));
        }
        _ => {}
    }
    if *oauth.oauth_cimd.get() == OnOff::Off
        && (oauth.oauth_cimd_allow_loopback || oauth.oauth_cimd_ca_file.is_some())
    {
        let key = if oauth.oauth_cimd_allow_loopback {
            "oauth-cimd-allow-loopback"
        } else {
            "oauth-cimd-ca-file"
        };
        return Err(err(key, "has no effect with `oauth-cimd = \"off\"`"));
    }
    if !oauth.oauth_signing_key_previous_file.is_empty() && oauth.oauth_signing_key_file.is_none() {
        return Err(err(
            "oauth-signing-key-previous-file",
            "needs `oauth-signing-key-file`: the current key the previous ones were rotated to",
        ));
    }
    if *oauth.oauth_store.get() == StoreKind::Redis {
        if config.rate_limit.redis_url.is_none() {
            return Err(err(
                "oauth-store",
                "`redis` needs `redis-url`: the Redis the replicas share",
            ));
        }
        if oauth.oauth_signing_key_file.is_none() {
            return Err(err(
                "oauth-store",
                "`redis` needs `oauth-signing-key-file`: replicas must sign and verify with the \
                 same key (give each the same file)",
            ));
        }
        if oauth.oauth_secrets_key_env.is_none() {
            return Err(err(
                "oauth-store",
                "`redis` needs `oauth-secrets-key-env`: replicas must seal and open the users' \
                 upstream tokens with the same key (give each the same variable)",
            ));
        }
    }
    for uri in oauth.oauth_redirect_allow.iter() {
        http_url(uri).map_err(|m| err("oauth-redirect-allow", &format!("`{uri}` {m}")))?;
    }
    for scope in oauth.oauth_scope.iter() {
        if scope.is_empty()
            || !scope
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        {
            return Err(err(
                "oauth-scope",
                &format!("`{scope}` is not a scope token (printable ASCII, no spaces or quotes)"),
            ));
        }
    }
    let clients = oauth
        .oauth_client
        .clients()
        .map_err(|m| err("oauth-client", &m))?;
    for client in &clients {
        for uri in &client.redirect_uris {
            if !uri.contains("://") {
                return Err(err(
                    "oauth-client",
                    &format!("client `{}`: `{uri}` is not an absolute URL", client.id),
                ));
            }
        }
    }
    let auth = &config.auth;
    let others = [
        auth.jwt_secret_env.is_some(),
        auth.jwt_public_key_file.is_some(),
        auth.jwt_jwks_url.is_some(),
        auth.jwt_oidc_issuer.is_some(),
        auth.auth_server_url.is_some(),
        auth.introspection_url.is_some(),
        !auth.authorization_server.is_empty(),
    ];
    if let Some((key, _)) = OTHER_TOKEN_SOURCES.iter().zip(others).find(|(_, set)| *set) {
        return Err(err(
            key,
            "cannot be used with `oauth-issuer`: with it mcp-bastion is the authorization server \
             of its endpoints and accepts its own tokens (and API keys), not another server's",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn issuer_urls_are_split_and_checked() {
        assert_eq!(
            http_url("https://mcp.example.com/k/abc/").unwrap(),
            ("https".into(), "mcp.example.com".into(), "/k/abc".into())
        );
        assert_eq!(http_url("http://[::1]:8080").unwrap().1, "::1".to_owned());
        assert!(http_url("mcp.example.com").is_err());
        assert!(http_url("https://mcp.example.com/?x=1").is_err());
        assert!(http_url("https://user@mcp.example.com").is_err());
        assert!(is_loopback_host("127.0.0.1") && is_loopback_host("::1"));
        assert!(!is_loopback_host("10.0.0.1"));
    }
}
