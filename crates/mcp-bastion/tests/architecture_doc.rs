//! docs/architecture.md's table of modules matches the tree: every module it names exists in
//! `src/`, and every module of `lib.rs` is in the table.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::{collections::BTreeSet, path::Path};

const CRATE: &str = env!("CARGO_MANIFEST_DIR");

/// The module names in the first column of the "Modules of `mcp-bastion`" table.
fn documented() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(Path::new(CRATE).join("../../docs/architecture.md")).unwrap();
    let section = doc
        .split("## Modules of `mcp-bastion`")
        .nth(1)
        .expect("the section of modules")
        .split("\n## ")
        .next()
        .unwrap();
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(name, _)| name.to_owned()))
        .collect()
}

/// The modules `lib.rs` declares.
fn declared() -> BTreeSet<String> {
    let lib = std::fs::read_to_string(Path::new(CRATE).join("src/lib.rs")).unwrap();
    lib.lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("pub mod ").or(l.strip_prefix("mod ")))
        .map(|l| l.trim_end_matches(';').to_owned())
        .collect()
}

#[test]
fn every_module_the_architecture_page_names_exists() {
    for module in documented() {
        let src = Path::new(CRATE).join("src");
        assert!(
            src.join(format!("{module}.rs")).exists() || src.join(&module).join("mod.rs").exists(),
            "docs/architecture.md names `{module}`, which is not in crates/mcp-bastion/src"
        );
    }
}

#[test]
fn every_module_of_the_crate_is_on_the_architecture_page() {
    let documented = documented();
    let missing: Vec<String> = declared()
        .into_iter()
        .filter(|m| !documented.contains(m))
        .collect();
    assert!(
        missing.is_empty(),
        "modules missing from docs/architecture.md's table: {missing:?}"
    );
}
