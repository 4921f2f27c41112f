//! Answers sent before the request body is read reach clients that are still sending: the
//! binary lingers (reads and discards the rest of the body, bounded) instead of closing on a
//! client mid-write, which Node's `fetch` (and the TypeScript SDK on it) and Python's `urllib`
//! report as `EPIPE` / a reset instead of the answer. See `mcp_bastion::linger`.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use serde_json::Value;
use tests::{Server, everything_stdio, script_report};

/// Every client's report: (client name, its answer).
fn reports(url: &str) -> Vec<(&'static str, Value)> {
    let node = script_report("early_answer.mjs", &["--url", url]);
    let python = script_report("early_answer.py", &["--url", url]);
    vec![
        ("node fetch", node["fetch"].clone()),
        ("TypeScript SDK", node["sdk"].clone()),
        ("python urllib", python["urllib"].clone()),
        ("python httpx", python["httpx"].clone()),
    ]
}

/// The status a client saw (`status`, or the SDK's error `code`).
fn status(answer: &Value) -> Option<u64> {
    answer["status"].as_u64().or(answer["code"].as_u64())
}

/// The JSON-RPC error in the body a client read (the SDK quotes it in its message).
fn json_rpc_code(answer: &Value) -> Option<i64> {
    let text = answer["body"]
        .as_str()
        .or(answer["message"].as_str())
        .unwrap_or_default();
    let json = &text[text.find('{')?..];
    serde_json::from_str::<Value>(json).ok()?["error"]["code"].as_i64()
}

#[test]
fn a_body_over_the_limit_gets_413_with_its_json_rpc_error_in_every_client() {
    let server = Server::bastion(&["--session-mode", "shared"], &everything_stdio());
    for (client, answer) in reports(&server.url("/mcp")) {
        assert_eq!(status(&answer), Some(413), "{client}: {answer}");
        assert_eq!(json_rpc_code(&answer), Some(-32600), "{client}: {answer}");
    }
}

#[test]
fn a_large_unauthenticated_post_gets_401_with_its_challenge() {
    let server = Server::bastion(
        &["--session-mode", "shared", "--api-key", "KEY-EARLY-2b7e"],
        &everything_stdio(),
    );
    for (client, answer) in reports(&server.url("/mcp")) {
        assert_eq!(status(&answer), Some(401), "{client}: {answer}");
        if client != "TypeScript SDK" {
            assert!(
                answer["wwwAuthenticate"]
                    .as_str()
                    .or(answer["www_authenticate"].as_str())
                    .is_some_and(|c| c.starts_with("Bearer")),
                "{client} read the challenge: {answer}"
            );
        }
    }
}

/// A client that declares a 1 GiB body and keeps sending after its 413 is cut off once the
/// lingering bound (64 MiB discarded) is passed: lingering is no slowloris vector.
#[test]
fn a_client_that_keeps_sending_is_cut_off_at_the_bound() {
    let server = Server::bastion(&["--session-mode", "shared"], &everything_stdio());
    let addr = server.base_url().trim_start_matches("http://").to_owned();
    let mut tcp = TcpStream::connect(&addr).unwrap();
    tcp.set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        tcp,
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n",
        1u64 << 30
    )
    .unwrap();
    let mut reader = tcp.try_clone().unwrap();
    let answer = std::thread::spawn(move || {
        let mut head = [0u8; 64];
        let n = reader.read(&mut head).unwrap_or(0);
        String::from_utf8_lossy(&head[..n]).into_owned()
    });
    let chunk = vec![b' '; 64 * 1024];
    let mut sent: u64 = 0;
    while sent < 1 << 30 {
        match tcp.write(&chunk) {
            Ok(n) => sent += n as u64,
            Err(_) => break,
        }
    }
    let head = answer.join().unwrap();
    assert!(
        head.starts_with("HTTP/1.1 413"),
        "the answer came first: {head:?}"
    );
    // read and discarded up to the bound (so a client that stops in time reads its answer),
    // then cut off
    assert!(
        (64 << 20..256 << 20).contains(&sent),
        "cut off near the 64 MiB bound, not after {} MiB",
        sent >> 20
    );
}
