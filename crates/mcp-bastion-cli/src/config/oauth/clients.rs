//! `--oauth-client`: static clients, as `ID=REDIRECT_URI` texts or (in the
//! file) tables with an optional secret digest.

use std::fmt;

use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{self, MapAccess, SeqAccess, Visitor},
};

use crate::config::value::{FromText, List, Parsed};

/// A static client: its id, redirect URIs, a name for the consent page, and
/// (confidential clients) the SHA-256 of its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// The `client_id`.
    pub id: String,
    /// A name shown on the consent page.
    pub name: Option<String>,
    /// Its redirect URIs.
    pub redirect_uris: Vec<String>,
    /// The SHA-256 of its secret (a confidential client); file only.
    pub secret_sha256: Option<[u8; 32]>,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("id", &self.id)
            .field("redirect_uris", &self.redirect_uris)
            .field("confidential", &self.secret_sha256.is_some())
            .finish()
    }
}

impl FromText for OAuthClient {
    fn from_text(text: &str) -> Result<Self, String> {
        let (id, uri) = text
            .split_once('=')
            .map(|(i, u)| (i.trim(), u.trim()))
            .filter(|(i, u)| !i.is_empty() && !u.is_empty())
            .ok_or(
                "expected ID=REDIRECT_URI, e.g. `inspector=http://localhost:6274/oauth/callback`",
            )?;
        Ok(Self {
            id: id.to_owned(),
            name: None,
            redirect_uris: vec![uri.to_owned()],
            secret_sha256: None,
        })
    }
}

/// 64 hex digits as 32 bytes.
fn sha256_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// `--oauth-client`: the static clients, `ID=REDIRECT_URI` texts or (in the
/// file) tables. Several entries with one id are one client with all their
/// redirect URIs ([`clients`](Self::clients)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OAuthClients(Vec<Parsed<OAuthClient>>);

impl OAuthClients {
    /// Whether none is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The clients, entries with the same id merged (in first-seen order).
    ///
    /// # Errors
    ///
    /// Two entries of one id that give different secrets or names.
    pub fn clients(&self) -> Result<Vec<OAuthClient>, String> {
        let mut out: Vec<OAuthClient> = Vec::new();
        for entry in self.0.iter().map(Parsed::get) {
            let Some(seen) = out.iter_mut().find(|c| c.id == entry.id) else {
                out.push(entry.clone());
                continue;
            };
            for (mine, theirs) in [
                (
                    seen.secret_sha256.map(|s| s.to_vec()),
                    entry.secret_sha256.map(|s| s.to_vec()),
                ),
                (
                    seen.name.as_ref().map(|n| n.as_bytes().to_vec()),
                    entry.name.as_ref().map(|n| n.as_bytes().to_vec()),
                ),
            ] {
                if mine.is_some() && theirs.is_some() && mine != theirs {
                    return Err(format!(
                        "client `{}` is given twice with a different name or secret",
                        entry.id
                    ));
                }
            }
            seen.secret_sha256 = seen.secret_sha256.or(entry.secret_sha256);
            if seen.name.is_none() {
                seen.name.clone_from(&entry.name);
            }
            for uri in &entry.redirect_uris {
                if !seen.redirect_uris.contains(uri) {
                    seen.redirect_uris.push(uri.clone());
                }
            }
        }
        Ok(out)
    }
}

impl Serialize for OAuthClients {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter())
    }
}

/// One `[[oauth-client]]` table (keys with `-` or `_`).
fn client_table<'de, A: MapAccess<'de>>(mut map: A) -> Result<Parsed<OAuthClient>, A::Error> {
    let mut client = OAuthClient {
        id: String::new(),
        name: None,
        redirect_uris: Vec::new(),
        secret_sha256: None,
    };
    while let Some(key) = map.next_key::<String>()? {
        match key.replace('_', "-").as_str() {
            "id" => client.id = map.next_value::<Parsed<String>>()?.get().clone(),
            "name" => client.name = Some(map.next_value::<Parsed<String>>()?.get().clone()),
            "redirect-uris" | "redirect-uri" => {
                client.redirect_uris = map.next_value::<List<String>>()?.to_vec();
            }
            "secret-sha256" => {
                let hex = map.next_value::<Parsed<String>>()?;
                client.secret_sha256 = Some(sha256_hex(hex.get()).ok_or_else(|| {
                    de::Error::custom(
                        "`secret-sha256` must be 64 hex digits (the SHA-256 of the secret)",
                    )
                })?);
            }
            "secret" => {
                return Err(de::Error::custom(
                    "a client secret is never written in the configuration: give its SHA-256 as `secret-sha256` (e.g. `printf %s SECRET | sha256sum`)",
                ));
            }
            other => {
                return Err(de::Error::custom(format!(
                    "unknown key `{other}` in a client table; expected id, name, redirect-uris, secret-sha256"
                )));
            }
        }
    }
    if client.id.is_empty() || client.redirect_uris.is_empty() {
        return Err(de::Error::custom(
            "a client table needs `id` and `redirect-uris`",
        ));
    }
    let mut text = format!("{}={}", client.id, client.redirect_uris.join(","));
    if client.secret_sha256.is_some() {
        text.push_str(" (confidential)");
    }
    Ok(Parsed::known(text, client))
}

struct ClientsVisitor;

impl<'de> Visitor<'de> for ClientsVisitor {
    type Value = OAuthClients;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ID=REDIRECT_URI, a client table, or an array of them")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<OAuthClients, E> {
        Parsed::parse(v)
            .map(|p| OAuthClients(vec![p]))
            .map_err(E::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<OAuthClients, A::Error> {
        client_table(map).map(|c| OAuthClients(vec![c]))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OAuthClients, A::Error> {
        let mut out = Vec::new();
        while let Some(OAuthClients(mut one)) = seq.next_element::<OAuthClients>()? {
            out.append(&mut one);
        }
        Ok(OAuthClients(out))
    }
}

impl<'de> Deserialize<'de> for OAuthClients {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ClientsVisitor)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn a_client_is_id_equals_uri_and_entries_of_one_id_merge() {
        let a = Parsed::<OAuthClient>::parse("app=https://app.example/cb").unwrap();
        let b = Parsed::<OAuthClient>::parse("app=https://app.example/cb2").unwrap();
        let clients = OAuthClients(vec![a, b]).clients().unwrap();
        assert_eq!(clients.len(), 1);
        assert_eq!(
            clients[0].redirect_uris,
            ["https://app.example/cb", "https://app.example/cb2"]
        );
        assert!(Parsed::<OAuthClient>::parse("app").is_err());
        assert!(Parsed::<OAuthClient>::parse("=https://x").is_err());
    }

    #[test]
    fn secret_digests_are_64_hex_digits() {
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(sha256_hex(hex).unwrap()[0], 0x9f);
        assert!(sha256_hex(&hex[1..]).is_none());
        assert!(sha256_hex(&hex.replace('9', "g")).is_none());
    }
}
