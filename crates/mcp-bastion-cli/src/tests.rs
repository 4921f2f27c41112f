//! The flags against the configuration's keys and the documentation.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::{BTreeMap, BTreeSet};

use clap::{CommandFactory, Parser};
use mcp_bastion_cli::config::{Inputs, load};

use super::Cli;

/// The long names of the flags (but `--help`, `--version`, `--config`).
fn flag_names() -> BTreeSet<String> {
    Cli::command()
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !matches!(*l, "help" | "version" | "config"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_option_is_documented() {
    let doc = include_str!("../../../docs/configuration.md");
    let missing: Vec<String> = flag_names()
        .into_iter()
        .chain(["config".to_owned()])
        .filter(|l| !doc.contains(&format!("| `--{l}")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md lacks a row for: {missing:?}"
    );
}

#[test]
fn every_flag_is_a_configuration_key_with_the_same_name() {
    // a flag given lands in the configuration under its own key
    let cli =
        Cli::try_parse_from(["mcp-bastion", "--json-response", "--listen", "127.0.0.1:9"]).unwrap();
    let given = cli.given();
    assert_eq!(given.len(), 2, "{given:?}");
    let env = BTreeMap::new();
    let loaded = load(Inputs {
        flags: given,
        env: &env,
        file: None,
    })
    .unwrap();
    assert!(loaded.config.general.json_response);
    assert_eq!(loaded.config.general.listen.port(), 9);
    // every flag's key is one the file accepts (an unknown key is refused)
    for name in flag_names() {
        let file = mcp_bastion_cli::config::ConfigFile {
            path: "keys.toml".into(),
            text: format!("{name} = []\n"),
        };
        let e = load(Inputs {
            flags: Default::default(),
            env: &env,
            file: Some(file),
        })
        .err();
        if let Some(e) = e {
            assert!(!e.to_string().contains("unknown key"), "--{name}: {e}");
        }
    }
}

#[test]
fn repeated_and_comma_separated_flags_are_lists() {
    let cli = Cli::try_parse_from([
        "mcp-bastion",
        "--api-key",
        "a,b",
        "--pass-env",
        "X",
        "--pass-env",
        "Y",
        "--",
        "node",
        "srv.js",
    ])
    .unwrap();
    let env = BTreeMap::new();
    let loaded = load(Inputs {
        flags: cli.given(),
        env: &env,
        file: None,
    })
    .unwrap();
    assert_eq!(loaded.config.auth.api_key.to_vec(), ["a", "b"]);
    assert_eq!(loaded.config.server.pass_env.unwrap().to_vec(), ["X", "Y"]);
    assert_eq!(loaded.config.server.command, ["node", "srv.js"]);
}

#[test]
fn the_file_is_the_config_flag_or_else_mcp_bastion_config() {
    let dir = std::env::temp_dir();
    let path = |name: &str| {
        dir.join(format!(
            "mcp-bastion-main-{}-{name}.toml",
            std::process::id()
        ))
    };
    let (by_env, by_flag) = (path("env"), path("flag"));
    std::fs::write(&by_env, "keepalive-secs = 1\n").unwrap();
    std::fs::write(&by_flag, "keepalive-secs = 2\n").unwrap();
    let env = BTreeMap::from([(
        "MCP_BASTION_CONFIG".to_owned(),
        by_env.display().to_string(),
    )]);
    let cli = Cli::try_parse_from(["mcp-bastion"]).unwrap();
    let loaded = super::load_config(&cli, &env, None).unwrap();
    assert_eq!(*loaded.config.general.keepalive_secs.get(), 1);
    let flag = by_flag.display().to_string();
    let cli = Cli::try_parse_from(["mcp-bastion", "--config", flag.as_str()]).unwrap();
    let loaded = super::load_config(&cli, &env, None).unwrap();
    assert_eq!(*loaded.config.general.keepalive_secs.get(), 2);
    assert_eq!(loaded.file(), Some(by_flag.as_path()));
    let _ = std::fs::remove_file(by_env);
    let _ = std::fs::remove_file(by_flag);
}
