//! The proxies' backend as the harness builds it (`benches::build`): the
//! `bench-echo` profile, statically linked, answering MCP over stdio.
#![allow(clippy::unwrap_used)]

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
};

use benches::build::{self, Linking};
use serde_json::{Value, json};

/// Writes `message` as one line; reads and returns one line of answer when
/// `answered`.
fn send(
    stdin: &mut impl Write,
    stdout: &mut impl BufRead,
    message: &Value,
    answered: bool,
) -> Value {
    writeln!(stdin, "{message}").unwrap();
    stdin.flush().unwrap();
    if !answered {
        return Value::Null;
    }
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let reply: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        reply["id"], message["id"],
        "{message} answered with {reply}"
    );
    reply
}

#[test]
fn the_harness_builds_the_echo_server_statically_and_it_answers_over_stdio() {
    let echo = build::build_echo_server(&tests::binaries::target_dir()).unwrap();
    assert_eq!(echo.linking, Linking::Static, "{echo:?}");

    let mut child = Command::new(&echo.path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut send =
        |message: Value, answered: bool| send(&mut stdin, &mut stdout, &message, answered);

    let init = send(
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "echo-server-test", "version": "1"}}}),
        true,
    );
    assert!(
        init["result"]["capabilities"]["tools"].is_object(),
        "{init}"
    );
    send(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        false,
    );
    let tools = send(
        json!({"jsonrpc": "2.0", "id": "tools", "method": "tools/list"}),
        true,
    );
    assert_eq!(tools["result"]["tools"][0]["name"], "echo", "{tools}");
    for i in 1..=3 {
        let text = format!("message {i}");
        let reply = send(
            json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"message": text}}}),
            true,
        );
        assert_eq!(
            reply["result"]["content"][0]["text"],
            text.as_str(),
            "{reply}"
        );
    }

    // end of input ends the server
    drop(stdin);
    assert!(child.wait().unwrap().success());
}
