//! What each fuzz target checks, as plain functions: the `fuzz_targets/`
//! binaries call them under libFuzzer, and `src/bin/scaling.rs` times the same
//! parsers on large inputs. Every function panics (which libFuzzer reports as
//! a crash) only when an invariant of mcp-bastion is broken.

use std::{
    path::PathBuf,
    pin::pin,
    str::FromStr,
    task::{Context, Poll, Waker},
};

use axum::response::IntoResponse;
use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderMap, HeaderValue, header};
use mcp_bastion::{
    auth::{AuthError, Challenge},
    inspect::McpRequest,
    jsonrpc::Message,
    protocol::{
        HEADER_METHOD, HEADER_NAME, HEADER_PROTOCOL_VERSION, HEADER_SESSION_ID, ProtocolVersion,
    },
    ratelimit::{Algorithm, Limit},
    session::{check_route_key, new_session_id, route_key_of, validate_session_id},
    transport::sse_codec::encode_event,
};

/// Splits `data` at the first `sep`: (before, after); all of it when absent.
fn split(data: &[u8], sep: u8) -> (&[u8], Option<&[u8]>) {
    match data.iter().position(|b| *b == sep) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    }
}

/// Target 1: the body (and headers, query) parser of `McpInspectLayer`.
///
/// Input: one flags byte (which `MCP-Protocol-Version` to send, whether to
/// send `Mcp-Method` / `Mcp-Name` / `Mcp-Session-Id` and a query), then the
/// header values and query separated by `\n`, then the body.
pub fn jsonrpc_inspect(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut headers = HeaderMap::new();
    let versions = ProtocolVersion::ALL;
    match usize::from(flags & 0x7) {
        0 => {}
        i if i <= versions.len() => {
            headers.insert(
                HEADER_PROTOCOL_VERSION,
                HeaderValue::from_static(versions[i - 1].as_str()),
            );
        }
        _ => {
            headers.insert(
                HEADER_PROTOCOL_VERSION,
                HeaderValue::from_static("1999-01-01"),
            );
        }
    }
    let mut rest = rest;
    let take_line = |rest: &mut &[u8]| -> Vec<u8> {
        let (line, after) = split(rest, b'\n');
        let line = line.to_vec();
        *rest = after.unwrap_or_default();
        line
    };
    for (bit, name) in [
        (0x08, HEADER_METHOD),
        (0x10, HEADER_NAME),
        (0x20, HEADER_SESSION_ID),
    ] {
        if flags & bit != 0 {
            let line = take_line(&mut rest);
            if let Ok(v) = HeaderValue::from_bytes(&line) {
                headers.insert(name, v);
            }
        }
    }
    let query =
        (flags & 0x40 != 0).then(|| String::from_utf8_lossy(&take_line(&mut rest)).into_owned());
    let body = Bytes::copy_from_slice(rest);
    match McpRequest::parse(&headers, query.as_deref(), body.clone()) {
        Ok(req) => {
            assert_eq!(req.body(), &body);
            let messages = req.messages();
            assert!(
                !messages.is_empty(),
                "a parsed body holds at least one message"
            );
            for m in messages {
                // Every accepted message survives serialization unchanged.
                let value = serde_json::to_value(m).expect("a message serializes");
                assert_eq!(&Message::from_value(value).expect("and parses back"), m);
            }
            let _ = (req.kind(), req.method(), req.id(), req.has_requests());
            let _ = (req.is_initialize(), req.named_target(), req.session_id());
            assert!(req.request_ids().count() <= messages.len());
            assert!(req.tool_names().count() <= messages.len());
            if let (Some(h), Some(m)) = (headers.get(HEADER_METHOD), req.method()) {
                assert_eq!(
                    h.as_bytes(),
                    m.as_bytes(),
                    "a disagreeing Mcp-Method was accepted"
                );
            }
        }
        Err(rejection) => {
            let status = rejection.status();
            assert!(status.is_client_error(), "{status}");
            let _ = rejection.error_object();
            assert_eq!(rejection.into_response().status(), status);
        }
    }
}

/// Runs a stream that never waits (its input is all in memory) to its end.
fn collect_ready<S: Stream>(stream: S) -> Vec<S::Item> {
    let mut stream = pin!(stream);
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    loop {
        match stream.as_mut().poll_next(&mut cx) {
            Poll::Ready(Some(item)) => out.push(item),
            Poll::Ready(None) => return out,
            Poll::Pending => panic!("an in-memory stream is never pending"),
        }
    }
}

/// What a client reads back: (event, id, data) of each event.
pub type Decoded = (Option<String>, Option<String>, String);

/// Decodes SSE bytes delivered in the given chunks with `sse-stream`, the
/// decoder of the upstream backend (independent of mcp-bastion's encoder).
pub fn sse_decode(chunks: Vec<Bytes>) -> Vec<Decoded> {
    let stream = futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    collect_ready(sse_stream::SseByteStream::new(stream))
        .into_iter()
        .map(|e| {
            let e = e.expect("our own encoding always decodes");
            (e.event, e.id, e.data.unwrap_or_default())
        })
        .collect()
}

/// Target 2: `encode_event` then decode, for any event name, id and data.
///
/// Input: flags byte, a split point byte, then `event \0 id \0 data` (lossy
/// UTF-8). Two events are encoded back to back and the wire is cut into two
/// chunks at an arbitrary byte, as a network would.
pub fn sse_round_trip(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Some((&cut, rest)) = rest.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut parts = text.splitn(3, '\0');
    let event = parts.next().unwrap_or_default();
    let id = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let event = (flags & 1 != 0).then_some(event);
    let id = (flags & 2 != 0).then_some(id);

    let one = encode_event(event, id, body);
    let two = encode_event(None, None, "second");
    let mut wire = one.to_vec();
    wire.extend_from_slice(&two);
    let at = (usize::from(cut) * wire.len()) / 255;
    let wire = Bytes::from(wire);
    let decoded = sse_decode(vec![wire.slice(..at), wire.slice(at..)]);

    assert_eq!(decoded.len(), 2, "{wire:?}");
    let (got_event, got_id, got_data) = &decoded[0];
    let normalized = body.replace("\r\n", "\n").replace('\r', "\n");
    assert_eq!(got_data, &normalized);
    // Line breaks in an event name or id are dropped by the encoder, never
    // turned into a field of their own.
    let strip = |s: &str| s.replace(['\r', '\n'], "");
    match event.map(strip) {
        // An empty event name means "message": either spelling is right.
        Some(e) if e.is_empty() => {}
        e => assert_eq!(got_event, &e),
    }
    match id.map(strip) {
        // The SSE grammar ignores an id containing NUL; `\0` is our separator
        // here, so that cannot happen, but the decoder may drop it too.
        Some(i) if i.contains('\0') => {}
        i => assert_eq!(got_id, &i),
    }
    assert_eq!(decoded[1], (None, None, "second".to_owned()));
}

/// Parses a `WWW-Authenticate` value: `scheme` then `name="quoted"` params
/// separated by `, ` (RFC 9110 §11.6.1), undoing the quoted-string escapes.
/// Independent of mcp-bastion's writer.
pub fn parse_challenge(value: &str) -> Option<(String, Vec<(String, String)>)> {
    let (scheme, mut rest) = value.split_once(' ').unwrap_or((value, ""));
    let mut params = Vec::new();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=')?;
        let mut chars = after.strip_prefix('"')?.char_indices();
        let mut v = String::new();
        let end = loop {
            match chars.next()? {
                (_, '\\') => v.push(chars.next()?.1),
                (i, '"') => break i + 2,
                (_, c) => v.push(c),
            }
        };
        params.push((name.trim().to_owned(), v));
        rest = &after[end..];
        rest = match rest.strip_prefix(',') {
            Some(r) => r.trim_start_matches(' '),
            None if rest.is_empty() => rest,
            None => return None,
        };
    }
    Some((scheme.to_owned(), params))
}

/// What a value becomes on the wire once sanitized: visible ASCII and space.
fn sanitized(value: &str) -> String {
    value.chars().filter(|c| matches!(c, ' '..='~')).collect()
}

/// Target 3: `WWW-Authenticate` from arbitrary scopes and descriptions.
///
/// Input (lossy UTF-8): `description \0 resource_metadata \0 scope \0 scope…`.
/// The header must be a valid `HeaderValue` and parse back to the same
/// parameters, sanitized.
pub fn www_authenticate(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let description = parts.next().unwrap_or_default();
    let metadata = parts.next();
    let scopes: Vec<String> = parts.map(str::to_owned).collect();

    let direct = Challenge::bearer()
        .param("error_description", description)
        .param("scope", &scopes.join(" "));
    let expect = vec![
        ("error_description".to_owned(), sanitized(description)),
        ("scope".to_owned(), sanitized(&scopes.join(" "))),
    ];
    check_challenge(&direct.to_string(), &expect);

    let error = AuthError::InsufficientScope(scopes.clone());
    let challenge = error.challenge(metadata).expect("403 has a challenge");
    let mut expect = Vec::new();
    if let Some(m) = metadata {
        expect.push(("resource_metadata".to_owned(), sanitized(m)));
    }
    expect.push(("error".to_owned(), "insufficient_scope".to_owned()));
    expect.push(("scope".to_owned(), sanitized(&scopes.join(" "))));
    expect.push((
        "error_description".to_owned(),
        "the request needs scopes that were not granted".to_owned(),
    ));
    let text = challenge.to_string();
    check_challenge(&text, &expect);
    // And the response carries exactly that header.
    let res = error.to_response(metadata, None);
    assert_eq!(res.status(), http::StatusCode::FORBIDDEN);
    let sent = res
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .expect("a 403 carries WWW-Authenticate");
    assert_eq!(sent.as_bytes(), text.as_bytes());
}

fn check_challenge(text: &str, expect: &[(String, String)]) {
    assert!(
        HeaderValue::from_str(text).is_ok(),
        "not a valid header value: {text:?}"
    );
    assert!(text.bytes().all(|b| (b' '..=b'~').contains(&b)), "{text:?}");
    let (scheme, params) = parse_challenge(text).unwrap_or_else(|| panic!("unparsable: {text:?}"));
    assert_eq!(scheme, "Bearer");
    assert_eq!(params, expect, "{text:?}");
}

/// Target 4: the rate-limit syntax (`100/min`, `10/s gcra burst=20`…).
/// Whatever parses is a usable limit, and its `Display` parses back to it.
pub fn limit_syntax(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(limit) = Limit::from_str(&text) else {
        return;
    };
    assert!(limit.count() > 0);
    assert!(!limit.period().is_zero());
    assert!(limit.burst() > 0);
    if limit.algorithm() == Algorithm::SlidingWindow {
        assert_eq!(limit.burst(), limit.count());
    }
    let _ = limit.emission_interval();
    let shown = limit.to_string();
    let again = Limit::from_str(&shown).unwrap_or_else(|e| panic!("{shown:?} does not parse: {e}"));
    assert_eq!(again, limit, "{text:?} shown as {shown:?}");
}

/// Target 6: session ids and their route keys.
/// Input (lossy UTF-8): a candidate id; its first 40 bytes also serve as a
/// candidate route key.
pub fn session_id(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let valid = validate_session_id(&text).is_ok();
    if valid {
        assert!((1..=mcp_bastion::session::MAX_SESSION_ID_LEN).contains(&text.len()));
        assert!(text.bytes().all(|b| b.is_ascii_graphic()));
    }
    if let Some(key) = route_key_of(&text) {
        assert!(check_route_key(key).is_ok());
        assert!(text.starts_with(key) && text[key.len()..].starts_with('.'));
    }
    let key: String = text.chars().take(40).collect();
    match new_session_id(Some(&key)) {
        Ok(id) => {
            assert!(check_route_key(&key).is_ok());
            assert!(validate_session_id(&id).is_ok(), "{id:?}");
            assert_eq!(route_key_of(&id), Some(key.as_str()));
        }
        Err(_) => assert!(check_route_key(&key).is_err()),
    }
}

/// Target 5: the binary's configuration, from TOML text to the effective
/// configuration `check-config` prints, through the real loader of
/// `mcp_bastion_cli::config` (the file layer alone: no flags, no variables).
///
/// Input: the text of the `--config` file (lossy UTF-8).
pub fn config_toml(data: &[u8]) {
    use mcp_bastion_cli::config::is_secret;
    let text = String::from_utf8_lossy(data);
    match load_config_text(&text) {
        Ok(loaded) => {
            let rendered = loaded.render();
            // Secrets never reach the rendered configuration.
            for line in rendered
                .lines()
                .filter(|l| !l.starts_with('#') && !l.starts_with('[') && !l.is_empty())
            {
                let (name, rest) = line.split_once(" = ").expect("`name = value  # origin`");
                if is_secret(name) {
                    let value = rest.rsplit_once("  # ").map_or(rest, |(v, _)| v);
                    assert!(
                        value
                            .replace("\"********\"", "")
                            .chars()
                            .all(|c| matches!(c, '[' | ']' | ',' | ' ')),
                        "secret {name} rendered: {line:?}"
                    );
                }
            }
            // Every value from the file names a line of the file.
            let lines = text.lines().count().max(1);
            for line in rendered.lines() {
                if let Some((_, n)) = line.rsplit_once("# config line ") {
                    let n: usize = n.parse().expect("a line number");
                    assert!((1..=lines).contains(&n), "line {n} of {lines}: {line:?}");
                }
            }
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(!shown.is_empty());
        }
    }
}

/// The configuration of one file's text, as the binary reads it.
pub fn load_config_text(
    text: &str,
) -> Result<mcp_bastion_cli::config::Loaded, mcp_bastion_cli::config::ConfigError> {
    use mcp_bastion_cli::config::{ConfigFile, Inputs, load};
    let env = std::collections::BTreeMap::new();
    load(Inputs {
        flags: Default::default(),
        env: &env,
        file: Some(ConfigFile {
            path: PathBuf::from("fuzz.toml"),
            text: text.to_owned(),
        }),
    })
}

/// The configuration of one file, as the binary reads it: the rendered
/// effective configuration, or the error shown to the operator.
pub fn layer_config_file(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    load_config_text(&text)
        .map(|l| l.render())
        .map_err(|e| e.to_string())
}
