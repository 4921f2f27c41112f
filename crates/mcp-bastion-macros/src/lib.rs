//! Attribute macros for mcp-bastion. `#[rate_limit]` arrives with the
//! rate-limiting layer; this crate exists now so the workspace layout is final.
