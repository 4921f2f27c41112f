//! Whether the child speaks revision 2026-07-28: a `server/discover` on a
//! fresh connection (a child of its own), asked once and cached.

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};

use super::{Inner, StdioMode, TARGET};
use crate::{
    backend::{BackendError, handshake_versions},
    jsonrpc::{self, Message, RequestId, codes},
    protocol::{
        META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_PROTOCOL_VERSION, ProtocolVersion,
    },
};

/// The id of the probe's `server/discover` request.
const PROBE_ID: &str = "mcp-bastion/discover";

/// How long the probe waits for the child's answer. A child silent that
/// long (a handshake-era server that ignores requests before `initialize`)
/// is taken to speak the handshake revisions; pin
/// [`protocol_version`](super::StdioBackendBuilder::protocol_version) for a
/// 2026-07-28 server that starts slower than this.
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The revisions a connection speaks: the pinned one's era, a shared
/// child's (the handshake revisions), the cached probe, or a new probe. A
/// probe that fails (the child cannot start, or exits before answering) is
/// not cached and is an error; a child that answers (a result, or an error
/// such as method not found) or stays silent is cached.
pub(super) async fn connection_versions(inner: Arc<Inner>) -> Result<Vec<String>, BackendError> {
    match inner.pinned {
        Some(ProtocolVersion::V2026_07_28) => {
            return Ok(vec![ProtocolVersion::V2026_07_28.as_str().to_owned()]);
        }
        Some(_) => return Ok(handshake_versions()),
        None => {}
    }
    if inner.mode == StdioMode::Shared {
        return Ok(handshake_versions());
    }
    // one probe at a time; the others wait for its answer
    let mut known = inner.revisions.lock().await;
    if let Some(versions) = known.as_ref() {
        return Ok(versions.clone());
    }
    let versions = probe(&inner).await?;
    tracing::info!(target: TARGET, versions = ?versions, "stdio server protocol revisions");
    *known = Some(versions.clone());
    Ok(versions)
}

/// Spawns a child, sends it `server/discover` at 2026-07-28, and ends it.
async fn probe(inner: &Inner) -> Result<Vec<String>, BackendError> {
    let mut conn = inner.connect_probe()?;
    let id = RequestId::String(PROBE_ID.into());
    let discover = Message::Request(jsonrpc::Request {
        id: id.clone(),
        method: "server/discover".into(),
        params: Some(json!({ "_meta": {
            META_PROTOCOL_VERSION: ProtocolVersion::V2026_07_28.as_str(),
            META_CLIENT_CAPABILITIES: {},
            META_CLIENT_INFO: { "name": "mcp-bastion", "version": env!("CARGO_PKG_VERSION") },
        }})),
    });
    let ended = || {
        BackendError::Unavailable(
            "the backend process ended during the server/discover probe".into(),
        )
    };
    if conn.outgoing.send(discover).await.is_err() {
        conn.closed.cancel();
        return Err(ended());
    }
    let answer = tokio::time::timeout(PROBE_TIMEOUT, async {
        loop {
            match conn.incoming.recv().await? {
                Message::Response(r) if r.id.as_ref() == Some(&id) => return Some(r),
                Message::Request(r) => {
                    let answer = jsonrpc::Response::ping_or_refuse(r, "not served during a probe");
                    let _ = conn.outgoing.send(Message::Response(answer)).await;
                }
                _ => {}
            }
        }
    })
    .await;
    conn.closed.cancel();
    match answer {
        Err(_) => {
            tracing::info!(target: TARGET, timeout = ?PROBE_TIMEOUT, "stdio server did not answer server/discover: bridging 2026-07-28 requests");
            Ok(handshake_versions())
        }
        Ok(None) => Err(ended()),
        Ok(Some(response)) => match response.outcome {
            Ok(result) => Ok(supported_versions(&result)),
            // the engine's answer for a child that exited
            Err(err) if err.code == codes::INTERNAL_ERROR => Err(BackendError::Unavailable(
                format!("server/discover probe: {}", err.message),
            )),
            // method not found, not initialized, …: a handshake-era server
            Err(_) => Ok(handshake_versions()),
        },
    }
}

/// The `supportedVersions` of a `server/discover` result; the handshake
/// revisions when it names none.
fn supported_versions(result: &Value) -> Vec<String> {
    let versions: Vec<String> = result
        .get("supportedVersions")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if versions.is_empty() {
        handshake_versions()
    } else {
        versions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_versions_come_from_the_discover_result() {
        assert_eq!(
            supported_versions(&json!({"supportedVersions": ["2026-07-28"], "capabilities": {}})),
            ["2026-07-28"]
        );
        assert_eq!(supported_versions(&json!({})), handshake_versions());
        assert_eq!(
            supported_versions(&json!({"supportedVersions": "2026-07-28"})),
            handshake_versions()
        );
    }
}
