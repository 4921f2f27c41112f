//! The configuration of the `mcp-bastion` binary, as a library: the binary
//! reads it through [`config::load`], and the fuzz targets exercise the same
//! code (`fuzz/`, target `config_toml`).
//!
//! ```
//! use std::collections::BTreeMap;
//! use mcp_bastion_cli::config::{ConfigFile, Inputs, load};
//!
//! let file = ConfigFile {
//!     path: "mcp-bastion.toml".into(),
//!     text: "session-mode = \"shared\"\ntools-deny = [\"*delete*\"]\ncommand = [\"node\", \"server.js\"]\n".into(),
//! };
//! let env = BTreeMap::new();
//! let loaded = load(Inputs { flags: Default::default(), env: &env, file: Some(file) }).unwrap();
//! let filter = loaded.config.server.tool_filter().unwrap();
//! assert!(!filter.allows("delete_file") && filter.allows("read_file"));
//! // each value says where it came from, secrets masked
//! assert!(loaded.render().contains("session-mode = \"shared\"  # config line 1"));
//! ```
//!
//! The binary itself (flags, startup, serving) is `src/main.rs` and its
//! modules; see [`config`] for where settings come from and which wins.

pub mod config;
