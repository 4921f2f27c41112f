use tower::Layer;

use super::{DEFAULT_MAX_BODY_BYTES, McpInspect};

/// Applies [`McpInspect`] to a service. See the [module docs](super).
#[derive(Debug, Clone, Copy)]
pub struct McpInspectLayer {
    pub(super) max_body_bytes: usize,
}

impl McpInspectLayer {
    /// A layer with the default 4 MiB body limit.
    pub fn new() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// Sets the largest accepted body; bigger bodies are answered 413.
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }
}

impl Default for McpInspectLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for McpInspectLayer {
    type Service = McpInspect<S>;

    fn layer(&self, inner: S) -> Self::Service {
        McpInspect {
            inner,
            max_body_bytes: self.max_body_bytes,
        }
    }
}
