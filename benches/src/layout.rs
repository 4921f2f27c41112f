//! The proxies' backend's code layout: the functions it runs, first.
//!
//! A process's RSS counts every page of its executable it has mapped, and
//! the kernel maps code 64 KiB at a time around each page fault
//! (`fault_around_bytes`), every page of the window that is in the page
//! cache. `bench-echo-server` runs about 450 KB of its 1.5 MB of code, spread
//! over nearly every 64 KiB window, so each of the per-session proxy's 32
//! children mapped 1.4 MB of code. Linked with the functions it runs first
//! ([`HOT_SYMBOLS`], given to the linker as `--symbol-ordering-file`), a
//! child maps 0.55 MB of code, nine windows.
//!
//! [`HOT_SYMBOLS`] is generated, not written: `cargo run -p benches --release
//! -- hot-symbols` runs the echo server under valgrind's callgrind through
//! [`echo_workload`] and lists every function it entered ([`generate`]).
//! The names are mangled, so they hold for one toolchain and `Cargo.lock`;
//! where they drift, the linker places what it still finds and the layout
//! degrades, never the build. [`check`] says how much of it took effect, and
//! the report prints it.

use std::{
    collections::{BTreeSet, HashSet},
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
};

use crate::elf::Elf;

/// The list of the echo server's hot functions, relative to the `benches`
/// package: one mangled symbol name per line, `#` starts a comment.
pub const HOT_SYMBOLS: &str = "echo-server/hot-symbols.txt";

/// The path of [`HOT_SYMBOLS`] in this checkout.
pub fn hot_symbols_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(HOT_SYMBOLS)
}

/// A copy of [`HOT_SYMBOLS`] in `dir`, named by a hash of its content, for
/// the linker: cargo relinks when a flag changes, not when a file a flag
/// names does, so a regenerated list must come under a new name. `None`
/// when this checkout has no list.
pub fn linker_copy(dir: &Path) -> Result<Option<PathBuf>, String> {
    let Ok(list) = std::fs::read(hot_symbols_path()) else {
        return Ok(None);
    };
    // FNV-1a: stable from one build of the harness to the next
    let hash = list.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let copy = dir.join(format!("hot-symbols-{hash:016x}.txt"));
    if !copy.is_file() {
        // written aside and renamed into place: a linker started by another
        // build (the tests build in parallel) never reads half a list
        static WRITES: AtomicUsize = AtomicUsize::new(0);
        let n = WRITES.fetch_add(1, Ordering::Relaxed);
        let aside = dir.join(format!(
            ".hot-symbols-{hash:016x}.{}.{n}",
            std::process::id()
        ));
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&aside, &list))
            .and_then(|()| std::fs::rename(&aside, &copy))
            .map_err(|e| format!("{}: {e}", copy.display()))?;
    }
    Ok(Some(copy))
}

/// `rustc` flags that make lld place the functions listed at `list` first
/// in `.text`, without a warning for each name it does not find.
pub fn link_flags(list: &Path) -> Vec<String> {
    vec![
        "-C".into(),
        format!("link-arg=-Wl,--symbol-ordering-file={}", list.display()),
        "-C".into(),
        "link-arg=-Wl,--no-warn-symbol-ordering".into(),
    ]
}

/// The names a symbol-ordering file lists (comments and blank lines left out).
pub fn read_list(text: &str) -> Vec<&str> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .filter(|line| !line.is_empty())
        .collect()
}

/// How much of a layout took effect in a linked executable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayoutCheck {
    /// Names in the list.
    pub listed: usize,
    /// Of those, functions the executable defines.
    pub found: usize,
    /// Their total size in bytes.
    pub hot_bytes: u64,
    /// Bytes from the start of `.text` to the end of the last of them: close
    /// to `hot_bytes` when they were placed first, the whole of `.text` when
    /// they were not.
    pub span: u64,
    /// The size of `.text`.
    pub text_bytes: u64,
}

impl LayoutCheck {
    /// Whether the listed functions were found and placed together at the
    /// start of `.text`: at least 90% of them found, in a span at most 1.5×
    /// their size (glibc's objects are one section each, so a listed
    /// function can bring unlisted neighbours along).
    pub fn applied(&self) -> bool {
        self.listed > 0 && self.found * 10 >= self.listed * 9 && self.span * 2 <= self.hot_bytes * 3
    }
}

/// How the functions listed in `list` lie in `elf`'s `.text`; `None` when it
/// has no `.text` or no symbol table.
pub fn check(elf: &Elf, list: &[&str]) -> Option<LayoutCheck> {
    let text = elf.section(".text")?;
    if elf.functions.is_empty() {
        return None;
    }
    let listed: HashSet<&str> = list.iter().copied().collect();
    let in_text = |a: u64| a >= text.address && a < text.address.saturating_add(text.size);
    let mut seen = HashSet::new();
    let (mut hot_bytes, mut end) = (0, text.address);
    for f in &elf.functions {
        if listed.contains(f.name.as_str()) && in_text(f.address) && seen.insert(&f.name) {
            hot_bytes += f.size;
            end = end.max(f.address.saturating_add(f.size));
        }
    }
    Some(LayoutCheck {
        listed: listed.len(),
        found: seen.len(),
        hot_bytes,
        span: end - text.address,
        text_bytes: text.size,
    })
}

/// Drives an MCP session with the echo server over its stdin and stdout:
/// `initialize`, `notifications/initialized`, `tools/list`, then `calls`
/// calls of `echo`, checking every answer. The work the harness's load puts
/// on each backend, and what [`generate`] traces.
pub fn echo_workload(
    stdin: &mut impl Write,
    stdout: &mut impl BufRead,
    calls: usize,
) -> Result<(), String> {
    let mut send = |message: serde_json::Value, answered: bool| {
        writeln!(stdin, "{message}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cannot write to the echo server: {e}"))?;
        if !answered {
            return Ok(serde_json::Value::Null);
        }
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .map_err(|e| format!("cannot read from the echo server: {e}"))?;
        let reply: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| format!("the echo server answered {line:?}, not JSON: {e}"))?;
        if reply["id"] == message["id"] && reply.get("result").is_some() {
            Ok(reply)
        } else {
            Err(format!("the echo server answered {message} with {reply}"))
        }
    };
    let reply = send(
        serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "bench-echo-workload", "version": "1"}}}),
        true,
    )?;
    if !reply["result"]["capabilities"]["tools"].is_object() {
        return Err(format!("the echo server offers no tools: {reply}"));
    }
    send(
        serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        false,
    )?;
    let reply = send(
        serde_json::json!({"jsonrpc": "2.0", "id": "tools", "method": "tools/list"}),
        true,
    )?;
    if reply["result"]["tools"][0]["name"] != "echo" {
        return Err(format!("the echo server lists no `echo` tool: {reply}"));
    }
    for i in 1..=calls {
        let text = format!("message {i}");
        let reply = send(
            serde_json::json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"message": text}}}),
            true,
        )?;
        if reply["result"]["content"][0]["text"] != text.as_str() {
            return Err(format!("`echo` did not send back {text:?}: {reply}"));
        }
    }
    Ok(())
}

/// glibc functions a static executable runs at start-up to set up the vDSO,
/// which valgrind hides from the programs it runs: listed even though
/// callgrind never sees them (a page-fault profile of the native start-up
/// found `_dl_new_object` alone in an otherwise cold 64 KiB).
pub const VDSO_SETUP: [&str; 7] = [
    "_dl_new_object",
    "_dl_setup_hash",
    "_dl_add_to_namespace_list",
    "_dl_lookup_symbol_x",
    "do_lookup_x",
    "check_match",
    "_dl_name_match_p",
];

/// Traces the echo server at `echo_server` under callgrind through
/// [`echo_workload`] and writes the functions it entered, and the
/// [`VDSO_SETUP`] it defines, to `out`, sorted, under a header saying how
/// the list was made. Returns how many it wrote.
///
/// glibc picks its string functions at start-up by CPU (`memcpy` may be
/// `__memmove_avx_unaligned_erms` here and `__memmove_evex_unaligned_erms`
/// there, and valgrind's emulated CPU picks yet another), so every variant
/// of a string function the server called is listed.
pub fn generate(echo_server: &Path, out: &Path) -> Result<usize, String> {
    let elf = Elf::read(echo_server)
        .filter(|elf| !elf.functions.is_empty())
        .ok_or_else(|| format!("{} has no symbol table", echo_server.display()))?;
    let trace = std::env::temp_dir().join(format!("bench-echo-callgrind.{}", std::process::id()));
    let mut child = Command::new("valgrind")
        .args(["--tool=callgrind", "--demangle=no", "-q"])
        .arg(format!("--callgrind-out-file={}", trace.display()))
        .arg(echo_server)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run valgrind (is it installed?): {e}"))?;
    let workload = match (child.stdin.take(), child.stdout.take()) {
        (Some(mut stdin), Some(stdout)) => {
            echo_workload(&mut stdin, &mut BufReader::new(stdout), 50)
        }
        _ => Err("no pipes to the echo server".into()),
    };
    let status = child.wait().map_err(|e| e.to_string())?;
    workload?;
    if !status.success() {
        return Err(format!("valgrind exited with {status}"));
    }
    let text = std::fs::read_to_string(&trace).map_err(|e| format!("{}: {e}", trace.display()));
    let _ = std::fs::remove_file(&trace);
    let entered = entered_functions(&text?);

    let defined: BTreeSet<&str> = elf.functions.iter().map(|f| f.name.as_str()).collect();
    let families: Vec<String> = entered.iter().filter_map(|n| string_family(n)).collect();
    let hot: BTreeSet<&str> = defined
        .iter()
        .copied()
        .filter(|n| {
            entered.contains(*n)
                || VDSO_SETUP.contains(n)
                || families.iter().any(|f| n.starts_with(f.as_str()))
        })
        .collect();
    let mut file = String::from(
        "# The functions bench-echo-server runs, which the harness links first (benches/src/layout.rs).\n\
         # Generated by `cargo run -p benches --release -- hot-symbols` (valgrind's callgrind); do not edit.\n",
    );
    for name in &hot {
        file.push_str(name);
        file.push('\n');
    }
    std::fs::write(out, file).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(hot.len())
}

/// The names of the functions a callgrind output file records (`fn=` and
/// `cfn=` lines, whose names follow a `(id)` the first time only).
pub fn entered_functions(callgrind_out: &str) -> HashSet<String> {
    callgrind_out
        .lines()
        .filter_map(|line| line.strip_prefix("fn=").or(line.strip_prefix("cfn=")))
        .filter_map(|rest| rest.split_once(") ").map(|(_, name)| name))
        // callgrind marks a recursive activation as `name'2`
        .map(|name| name.split('\'').next().unwrap_or(name).to_owned())
        .collect()
}

/// The prefix shared by every CPU variant of a glibc string function, given
/// one variant (`__memchr_evex` → `__memchr_`) or its resolver
/// (`strcmp_ifunc` → `__strcmp_`).
fn string_family(name: &str) -> Option<String> {
    const BASES: [&str; 6] = ["__mem", "__str", "__stp", "__rawmem", "__wmem", "__wcs"];
    if let Some(base) = name.strip_suffix("_ifunc") {
        let base = format!("__{base}_");
        return BASES.iter().any(|b| base.starts_with(b)).then_some(base);
    }
    let (base, variant) = name.split_at(name.get(2..)?.find('_')? + 2);
    const VARIANTS: [&str; 7] = [
        "_sse",
        "_ssse3",
        "_avx",
        "_evex",
        "_erms",
        "_unaligned",
        "_aligned",
    ];
    (BASES.iter().any(|b| base.starts_with(b)) && VARIANTS.iter().any(|v| variant.starts_with(v)))
        .then(|| format!("{base}_"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::{Function, Section};

    #[test]
    fn string_functions_are_listed_with_every_cpu_variant() {
        assert_eq!(string_family("__memchr_evex").as_deref(), Some("__memchr_"));
        assert_eq!(
            string_family("__memmove_avx_unaligned_erms").as_deref(),
            Some("__memmove_")
        );
        assert_eq!(string_family("strcmp_ifunc").as_deref(), Some("__strcmp_"));
        assert_eq!(string_family("__libc_start_main"), None);
        assert_eq!(string_family("_int_malloc"), None);
        assert_eq!(string_family("__mem"), None);
    }

    #[test]
    fn callgrind_names_are_read_once_each_without_recursion_marks() {
        let out = "fn=(1) main\ncalls=1 0\ncfn=(2) _ZN4core3fmt5write17h0E\ncfn=(2)\n\
                   fn=(3) __memchr_evex'2\nfl=(1) x.rs\n";
        let names = entered_functions(out);
        let expected: HashSet<String> = ["main", "_ZN4core3fmt5write17h0E", "__memchr_evex"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(names, expected);
    }

    fn elf(functions: &[(&str, u64, u64)]) -> Elf {
        Elf {
            sections: vec![Section {
                name: ".text".into(),
                address: 0x1000,
                size: 0x1000,
            }],
            functions: functions
                .iter()
                .map(|&(name, address, size)| Function {
                    name: name.into(),
                    address,
                    size,
                })
                .collect(),
            interpreter: false,
        }
    }

    #[test]
    fn a_layout_is_applied_when_the_listed_functions_come_first() {
        let list = read_list("# hot\nhot_a\nhot_b  # a comment\n\nmissing\n");
        assert_eq!(list, ["hot_a", "hot_b", "missing"]);

        let first = elf(&[
            ("hot_a", 0x1000, 0x100),
            ("hot_b", 0x1100, 0x100),
            ("cold", 0x1200, 0xe00),
        ]);
        let c = check(&first, &list).unwrap_or_else(|| panic!("a .text and symbols"));
        assert_eq!(
            (c.listed, c.found, c.hot_bytes, c.span),
            (3, 2, 0x200, 0x200)
        );
        // two of three found is too few
        assert!(!c.applied());
        assert!(check(&first, &list[..2]).is_some_and(|c| c.applied()));

        let spread = elf(&[
            ("hot_a", 0x1000, 0x100),
            ("cold", 0x1100, 0xd00),
            ("hot_b", 0x1e00, 0x100),
        ]);
        let c = check(&spread, &list[..2]).unwrap_or_else(|| panic!("a .text and symbols"));
        assert_eq!(c.span, 0xf00);
        assert!(!c.applied());

        let stripped = Elf {
            functions: Vec::new(),
            ..first
        };
        assert_eq!(check(&stripped, &list), None);
    }
}
