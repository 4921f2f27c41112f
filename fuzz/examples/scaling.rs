//! No quadratic blow-up: times each fuzzed parser on adversarial inputs of 1,
//! 2 and 4 MiB and prints the time per MiB, and the ratio of the 4 MiB figure
//! to the 1 MiB one (about 1 when linear, about 4 when quadratic), and the
//! figure at 8 MiB, to tell a cache or allocation step from growth.
//!
//! `cargo run --release --manifest-path fuzz/Cargo.toml --example scaling`
//! (or `.ci/fuzz scaling`). It prints figures and never fails: it is a
//! measurement, read by a person (`docs/security.md` has the last run).

use std::{
    hint::black_box,
    str::FromStr,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use mcp_bastion::{
    auth::{AuthError, Challenge},
    inspect::McpRequest,
    protocol::HEADER_PROTOCOL_VERSION,
    ratelimit::Limit,
    session::{route_key_of, validate_session_id},
    transport::sse_codec::encode_event,
};
use mcp_bastion_fuzz::{layer_config_file, parse_challenge, sse_decode};

const MIB: usize = 1024 * 1024;

/// `unit` repeated to `size` bytes (whole units), between `head` and `tail`.
fn fill(head: &str, unit: &str, tail: &str, size: usize) -> String {
    let n = size.saturating_sub(head.len() + tail.len()) / unit.len();
    let mut s = String::with_capacity(size);
    s.push_str(head);
    for _ in 0..n {
        s.push_str(unit);
    }
    s.push_str(tail);
    s
}

/// Fastest of a few runs.
fn time(mut f: impl FnMut()) -> Duration {
    (0..7)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn row(name: &str, make: &dyn Fn(usize) -> String, run: &dyn Fn(&str)) {
    let mut per_mib = Vec::new();
    for mib in [1, 2, 4, 8] {
        let input = make(mib * MIB);
        let took = time(|| run(&input));
        per_mib.push(took.as_secs_f64() * 1000.0 * MIB as f64 / input.len() as f64);
    }
    println!(
        "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
        per_mib[0],
        per_mib[1],
        per_mib[2],
        per_mib[2] / per_mib[0].max(1e-9),
        per_mib[3]
    );
}

fn inspect(body: &str, version: Option<&'static str>, query: Option<&str>) {
    let mut headers = HeaderMap::new();
    if let Some(v) = version {
        headers.insert(HEADER_PROTOCOL_VERSION, HeaderValue::from_static(v));
    }
    let _ = black_box(McpRequest::parse(
        &headers,
        query,
        Bytes::copy_from_slice(body.as_bytes()),
    ));
}

fn main() {
    println!(
        "| parser / input shape | ms per MiB at 1 MiB | at 2 MiB | at 4 MiB | ratio 4 MiB : 1 MiB | at 8 MiB |"
    );
    println!("|---|---|---|---|---|---|");

    // 1. JSON-RPC inspection.
    row(
        "jsonrpc: nesting `[[[[…` (refused at depth 128)",
        &|n| {
            fill(
                r#"{"jsonrpc":"2.0","id":1,"method":"m","params":"#,
                "[",
                "",
                n,
            )
        },
        &|s| inspect(s, None, None),
    );
    row(
        "jsonrpc: tools/call with many arguments",
        &|n| {
            // distinct keys: a map of one key would be too easy
            let mut s = String::from(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"#,
            );
            let mut i = 0u32;
            while s.len() + 16 < n {
                s.push_str(&format!(r#""k{i}":0,"#));
                i += 1;
            }
            s.push_str(r#""z":0}}}"#);
            s
        },
        &|s| inspect(s, None, None),
    );
    row(
        "jsonrpc: batch of tiny notifications (2025-03-26)",
        &|n| {
            let mut s = fill("[", r#"{"jsonrpc":"2.0","method":"n"},"#, "", n);
            s.pop();
            s.push(']');
            s
        },
        &|s| inspect(s, Some("2025-03-26"), None),
    );
    row(
        "jsonrpc: one string of `\\u00e9` escapes",
        &|n| {
            fill(
                r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"s":""#,
                r"\u00e9",
                r#""}}"#,
                n,
            )
        },
        &|s| inspect(s, None, None),
    );
    row(
        "jsonrpc: query of many `a=%41&` pairs",
        &|n| fill("", "a=%41&", "sessionId=x", n),
        &|q| inspect(r#"{"jsonrpc":"2.0","method":"n"}"#, None, Some(q)),
    );

    // 2. SSE encode, then decode with sse-stream.
    let sse = |data: &str, chunk: usize| {
        let wire = encode_event(Some("message"), Some("1-1"), data);
        let chunks: Vec<Bytes> = (0..wire.len())
            .step_by(chunk)
            .map(|i| wire.slice(i..(i + chunk).min(wire.len())))
            .collect();
        black_box(sse_decode(chunks));
    };
    row(
        "sse: data of `\\n` only (one field per byte)",
        &|n| "\n".repeat(n),
        &|s| sse(s, usize::MAX),
    );
    row(
        "sse: data of `\\r\\n` pairs",
        &|n| "\r\n".repeat(n / 2),
        &|s| sse(s, usize::MAX),
    );
    row(
        "sse: one long line, in 1 KiB network chunks",
        &|n| "a".repeat(n),
        &|s| sse(s, 1024),
    );
    row(
        "sse: many tiny events back to back, 1 KiB chunks",
        &|n| "x\n\n".repeat(n / 3),
        &|s| {
            // `\n\n` inside data is data: encode each as its own event
            let mut wire = Vec::with_capacity(s.len() * 3);
            for _ in 0..s.len() / 3 {
                wire.extend_from_slice(&encode_event(None, None, "x"));
            }
            let wire = Bytes::from(wire);
            let chunks = (0..wire.len())
                .step_by(1024)
                .map(|i| wire.slice(i..(i + 1024).min(wire.len())))
                .collect();
            black_box(sse_decode(chunks));
        },
    );

    // 3. WWW-Authenticate.
    row(
        "www-authenticate: description of `\"` (each escaped)",
        &|n| "\"".repeat(n),
        &|s| {
            let c = Challenge::bearer()
                .param("error_description", s)
                .to_string();
            black_box(HeaderValue::from_str(&c).is_ok());
            black_box(parse_challenge(&c));
        },
    );
    row(
        "www-authenticate: many one-letter scopes",
        &|n| "a ".repeat(n / 2),
        &|s| {
            let scopes = s.split(' ').map(str::to_owned).collect();
            let e = AuthError::InsufficientScope(scopes);
            let c = e.challenge(Some("https://x/")).map(|c| c.to_string());
            black_box(c.map(|c| HeaderValue::from_str(&c).is_ok()));
        },
    );
    row(
        "www-authenticate: non-ASCII (all dropped)",
        &|n| "é".repeat(n / 2),
        &|s| {
            black_box(Challenge::bearer().param("scope", s).to_string());
        },
    );

    // 4. Limit syntax.
    row(
        "limit: `1/s` then many ` gcra` options",
        &|n| fill("1/s", " gcra", "", n),
        &|s| drop(black_box(Limit::from_str(s))),
    );
    row(
        "limit: a count of many zeros",
        &|n| fill("", "0", "1/s", n),
        &|s| drop(black_box(Limit::from_str(s))),
    );
    row(
        "limit: separators only, then `1/s`",
        &|n| fill("", " ,;", "1/s", n),
        &|s| drop(black_box(Limit::from_str(s))),
    );

    // 5. Configuration layering (the file is written before timing).
    let path =
        std::env::temp_dir().join(format!("mcp-bastion-scaling-{}.toml", std::process::id()));
    let config = |s: &str| {
        std::fs::write(&path, s).expect("scratch file");
        time(|| drop(black_box(layer_config_file(&path))))
    };
    let config_row = |name: &str, make: &dyn Fn(usize) -> String| {
        let mut per_mib = Vec::new();
        for mib in [1, 2, 4, 8] {
            let input = make(mib * MIB);
            per_mib.push(config(&input).as_secs_f64() * 1000.0 * MIB as f64 / input.len() as f64);
        }
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            per_mib[0],
            per_mib[1],
            per_mib[2],
            per_mib[2] / per_mib[0].max(1e-9),
            per_mib[3]
        );
    };
    config_row(
        "config: a list of many values (`pass-env = [\"a\", …]`)",
        &|n| {
            let mut s = fill("pass-env = [", "\"a\", ", "", n);
            s.push(']');
            s
        },
    );
    config_row("config: comment lines, then keys", &|n| {
        fill(
            "",
            "# comment\n",
            "json-response = true\nmax-concurrent = 5\n",
            n,
        )
    });
    config_row("config: nested arrays `[[[[…` (refused)", &|n| {
        fill("command = ", "[", "", n)
    });
    config_row("config: a long string value", &|n| {
        fill("path-prefix = \"", "a", "\"\n", n)
    });
    let _ = std::fs::remove_file(&path);

    // 6. Session ids.
    row(
        "session id: long run of `a`, then `.`",
        &|n| fill("", "a", ".x", n),
        &|s| {
            black_box(validate_session_id(s).is_ok());
            black_box(route_key_of(s));
        },
    );
}
