//! Session ids: cryptographically random, visible ASCII, optionally prefixed
//! by the owning replica's route key.
//!
//! Format: `[<route-key>.]<32 lowercase hex digits>` (128 random bits). The
//! route key is `[A-Za-z0-9_-]{1,32}`, so an nginx `map` can pick the replica
//! with `~^(?<route>[A-Za-z0-9_-]+)\.` without parsing anything else.

use rand::RngCore;

/// The longest session id mcp-bastion accepts from a client.
pub const MAX_SESSION_ID_LEN: usize = 128;

/// Why a string is not a session id (or not a route key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionIdError {
    /// Empty, too long, or with characters outside visible ASCII.
    #[error("session id must be 1..=128 visible ASCII characters")]
    Malformed,
    /// The route key has characters outside `[A-Za-z0-9_-]` or is too long.
    #[error("route key must be 1..=32 characters of [A-Za-z0-9_-]")]
    BadRouteKey,
}

/// A short, stable, non-reversible tag for a session id in logs and traces:
/// enough to correlate the lines of one session (the session layer's and the
/// `mcp.request` span's alike), useless to present as a session.
///
/// ```
/// use mcp_bastion::session::session_fingerprint;
///
/// let id = "0123456789abcdef0123456789abcdef";
/// assert_eq!(session_fingerprint(id), session_fingerprint(id));
/// assert_eq!(session_fingerprint(id).len(), 8);
/// assert!(!session_fingerprint(id).contains("0123456789"));
/// ```
pub fn session_fingerprint(session_id: &str) -> String {
    // FNV-1a: not for security (the id itself is random), only so that log
    // lines of one session match without the id being written down.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in session_id.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:08x}", hash >> 32)
}

/// Generates a new session id, optionally carrying a route key.
///
/// ```
/// let id = mcp_bastion::session::new_session_id(Some("r1")).unwrap();
/// assert!(id.starts_with("r1."));
/// assert_eq!(mcp_bastion::session::route_key_of(&id), Some("r1"));
/// ```
pub fn new_session_id(route_key: Option<&str>) -> Result<String, SessionIdError> {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let mut hex = String::with_capacity(32 + 34);
    if let Some(key) = route_key {
        check_route_key(key)?;
        hex.push_str(key);
        hex.push('.');
    }
    for b in bytes {
        hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(b & 0xf)]));
    }
    Ok(hex)
}

/// Checks a route key: `[A-Za-z0-9_-]{1,32}`.
pub fn check_route_key(key: &str) -> Result<(), SessionIdError> {
    let ok = (1..=32).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(SessionIdError::BadRouteKey)
    }
}

/// Checks that a client-sent session id is well formed (visible ASCII
/// 0x21..=0x7E, at most [`MAX_SESSION_ID_LEN`]). It says nothing about whether
/// the session exists.
pub fn validate_session_id(id: &str) -> Result<(), SessionIdError> {
    let ok = (1..=MAX_SESSION_ID_LEN).contains(&id.len())
        && id.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(SessionIdError::Malformed)
    }
}

/// The route key of a session id, if it has one.
pub fn route_key_of(id: &str) -> Option<&str> {
    let (key, _) = id.split_once('.')?;
    check_route_key(key).ok().map(|()| key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_random_visible_ascii() {
        let a = new_session_id(None).unwrap();
        let b = new_session_id(None).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(validate_session_id(&a).is_ok());
        assert_eq!(route_key_of(&a), None);
    }

    #[test]
    fn route_keys_are_checked() {
        assert!(new_session_id(Some("bad key")).is_err());
        assert!(new_session_id(Some("")).is_err());
        assert!(new_session_id(Some(&"k".repeat(33))).is_err());
        let id = new_session_id(Some("replica-2")).unwrap();
        assert_eq!(route_key_of(&id), Some("replica-2"));
    }

    #[test]
    fn malformed_client_ids_are_refused() {
        for bad in ["", "a b", "é", "a\n", &"x".repeat(129)] {
            assert!(validate_session_id(bad).is_err(), "{bad:?}");
        }
    }
}
