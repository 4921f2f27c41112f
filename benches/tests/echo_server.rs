//! The proxies' backend as the harness builds it (`benches::build`): the
//! `bench-echo` profile, statically linked, answering MCP over stdio.
#![allow(clippy::unwrap_used)]

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Command, Stdio},
};

use benches::build;
use serde_json::{Value, json};

/// One JSON-RPC exchange over the child's stdin and stdout.
fn exchange(
    stdin: &mut impl Write,
    stdout: &mut impl BufRead,
    message: &Value,
    answered: bool,
) -> Option<Value> {
    writeln!(stdin, "{message}").unwrap();
    stdin.flush().unwrap();
    answered.then(|| {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
    })
}

#[test]
fn the_harness_builds_the_echo_server_statically_and_it_answers_over_stdio() {
    let path = build::build_echo_server(&build::target_dir()).unwrap();
    assert_eq!(
        build::statically_linked(&path),
        Some(true),
        "{} should be statically linked",
        path.display()
    );

    let mut child = Command::new(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "echo-server-test", "version": "1"}}});
    let reply = exchange(&mut stdin, &mut stdout, &init, true).unwrap();
    assert_eq!(reply["id"], 1);
    assert!(
        reply["result"]["capabilities"]["tools"].is_object(),
        "{reply}"
    );
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    exchange(&mut stdin, &mut stdout, &initialized, false);
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": "over a pipe"}}});
    let reply = exchange(&mut stdin, &mut stdout, &call, true).unwrap();
    assert_eq!(reply["id"], 2);
    assert_eq!(
        reply["result"]["content"][0]["text"], "over a pipe",
        "{reply}"
    );

    // end of input ends the server
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn statically_linked_tells_a_dynamic_executable_from_a_file_that_is_not_one() {
    // this test binary links libc dynamically
    let exe = std::env::current_exe().unwrap();
    assert_eq!(build::statically_linked(&exe), Some(false));
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    assert_eq!(build::statically_linked(&manifest), None);
    assert_eq!(build::statically_linked(Path::new("/no/such/file")), None);
}
