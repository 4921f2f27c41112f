//! The names most servers need, for one glob import:
//!
//! ```
//! use mcp_bastion::prelude::*;
//!
//! let stack = McpStack::new().auth(McpAuthLayer::new(
//!     ApiKeys::new().key("s3cret", Principal::new("alice")),
//! ));
//! # let _ = stack;
//! ```

#[cfg(feature = "auth")]
pub use crate::auth::{
    ApiKeys, JwtAuthenticator, McpAuthLayer, McpScopeLayer, ProtectedResourceMetadata, ScopePolicy,
};
#[cfg(feature = "rmcp")]
pub use crate::backend::rmcp::RmcpBackend;
#[cfg(feature = "stdio")]
pub use crate::backend::stdio::StdioBackend;
#[cfg(feature = "upstream")]
pub use crate::backend::upstream::UpstreamBackend;
#[cfg(feature = "cors")]
pub use crate::cors::AllowedOrigins;
#[cfg(feature = "inspect")]
pub use crate::inspect::{McpInspectLayer, McpRequest};
#[cfg(feature = "metrics")]
pub use crate::metrics::McpMetricsLayer;
#[cfg(feature = "ratelimit")]
pub use crate::ratelimit::{KeyBy, McpRateLimitLayer, RateLimitPolicy};
#[cfg(feature = "session-layer")]
pub use crate::session::{SessionLayer, SessionParams};
#[cfg(feature = "stack")]
pub use crate::stack::McpStack;
#[cfg(feature = "inspect")]
pub use crate::trace::McpTraceLayer;
#[cfg(feature = "sse")]
pub use crate::transport::Sse;
#[cfg(feature = "streamable-http")]
pub use crate::transport::StreamableHttp;
pub use crate::{backend::Backend, principal::Principal};
