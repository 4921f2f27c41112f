//! The proxies' backend as the harness builds it (`benches::build`): the
//! `bench-echo` profile, statically linked, its hot functions first,
//! answering MCP over stdio.
#![allow(clippy::unwrap_used)]

use std::{
    io::BufReader,
    path::Path,
    process::{Command, Stdio},
};

use benches::{
    build,
    elf::{self, Elf},
    layout,
};

#[test]
fn the_harness_builds_the_echo_server_statically_and_it_answers_over_stdio() {
    let path = build::build_echo_server(&build::target_dir()).unwrap();
    assert_eq!(
        elf::statically_linked(&path),
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
    // initialize, tools/list and three calls of `echo`, every answer checked
    layout::echo_workload(&mut stdin, &mut stdout, 3).unwrap();

    // end of input ends the server
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn the_echo_servers_hot_functions_are_linked_first() {
    let path = build::build_echo_server(&build::target_dir()).unwrap();
    let elf = Elf::read(&path).unwrap();
    let list = std::fs::read_to_string(layout::hot_symbols_path()).unwrap();
    let list = layout::read_list(&list);
    let check = layout::check(&elf, &list).expect("a .text section and a symbol table");
    // a list that no longer matches this toolchain and Cargo.lock fails here:
    // regenerate it with `cargo run -p benches --release -- hot-symbols`
    assert!(
        check.applied(),
        "{check:?}: the functions of {} should be found and placed first in .text",
        layout::HOT_SYMBOLS
    );
    assert!(
        check.span < check.text_bytes / 2,
        "{check:?}: the hot code should be well under half of the code"
    );
}

#[test]
fn statically_linked_tells_a_dynamic_executable_from_a_file_that_is_not_one() {
    // this test binary links libc dynamically
    let exe = std::env::current_exe().unwrap();
    assert_eq!(elf::statically_linked(&exe), Some(false));
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    assert_eq!(elf::statically_linked(&manifest), None);
    assert_eq!(elf::statically_linked(Path::new("/no/such/file")), None);
}
