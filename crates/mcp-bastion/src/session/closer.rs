//! [`SessionCloser`]: how the session layer ends a transport session.

/// Ends one transport session, closing its backend connection (a
/// per-session stdio child exits).
///
/// [`SessionLayer`](super::SessionLayer) calls it when it ends a session on
/// its own: idle or maximum lifetime reached, or evicted by the
/// per-principal cap. Our [`StreamableHttp`](crate::transport::StreamableHttp)
/// and [`Sse`](crate::transport::Sse) implement it (beside their own session
/// tables); for another transport
/// (rmcp's `StreamableHttpService`), implement it over that transport's own
/// session manager. Without a closer the layer still refuses the ended
/// session (404), and the transport's own idle timeout releases it later.
pub trait SessionCloser: Send + Sync + 'static {
    /// Ends session `id`; `false` when this transport did not know it.
    fn close_session(&self, id: &str) -> bool;
}

impl<T: SessionCloser + ?Sized> SessionCloser for std::sync::Arc<T> {
    fn close_session(&self, id: &str) -> bool {
        (**self).close_session(id)
    }
}
