//! The configuration of the `mcp-bastion` binary, as a library: the binary
//! reads it through [`config::load`], and the fuzz targets exercise the same
//! code (`fuzz/`, target `config_toml`).
//!
//! The binary itself (flags, startup, serving) is `src/main.rs` and its
//! modules; see [`config`] for where settings come from and which wins.

pub mod config;
