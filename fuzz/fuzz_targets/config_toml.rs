//! cargo-fuzz target: see `mcp_bastion_fuzz::config_toml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_bastion_fuzz::config_toml(data));
