//! cargo-fuzz target: see `mcp_bastion_fuzz::limit_syntax`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_bastion_fuzz::limit_syntax(data));
