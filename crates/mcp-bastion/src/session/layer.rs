use std::{collections::BTreeSet, fmt, sync::Arc, time::Duration};

use http::HeaderName;
use tower::Layer;

use super::{
    MemorySessionStore, SessionCloser, SessionService, SessionStore,
    config::{OverflowPolicy, SessionConfig, SessionConfigError},
    registry::Shared,
};

/// Applies [`SessionService`] to a service. See the [module docs](super).
///
/// Built once, then cloned: every clone and every service it makes share one
/// store and one set of live sessions.
#[derive(Clone)]
pub struct SessionLayer {
    shared: Arc<Shared>,
}

impl Default for SessionLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayer")
            .field("config", &self.shared.config)
            .field("closers", &self.shared.closers.len())
            .field("live_sessions", &self.shared.live_count())
            .finish()
    }
}

impl SessionLayer {
    /// A layer with an in-memory store, a 30-minute idle timeout, no maximum
    /// lifetime, no per-principal cap, and nothing captured.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared::new(
                SessionConfig::default(),
                Arc::new(MemorySessionStore::new()),
                Vec::new(),
            )),
        }
    }

    fn map(
        self,
        f: impl FnOnce(&mut SessionConfig, &mut Vec<Arc<dyn SessionCloser>>, &mut Arc<dyn SessionStore>),
    ) -> Self {
        let (mut config, mut closers, mut store) = (
            self.shared.config.clone(),
            self.shared.closers.clone(),
            Arc::clone(&self.shared.store),
        );
        f(&mut config, &mut closers, &mut store);
        Self {
            shared: Arc::new(Shared::new(config, store, closers)),
        }
    }

    fn map_config(self, f: impl FnOnce(&mut SessionConfig)) -> Self {
        self.map(|c, _, _| f(c))
    }

    /// Captures the query parameter `name` on the request that opens a
    /// session (repeatable).
    pub fn capture_param(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.map_config(|c| {
            c.capture.insert(name);
        })
    }

    /// Captures the request header `header` as parameter `name`.
    pub fn capture_header(
        self,
        header: &str,
        name: impl Into<String>,
    ) -> Result<Self, SessionConfigError> {
        let header = HeaderName::try_from(header)
            .map_err(|_| SessionConfigError::BadHeader(header.to_owned()))?;
        let name = name.into();
        Ok(self.map_config(|c| c.headers.push((header, name))))
    }

    /// Declares a parameter sensitive: its value is never logged nor shown
    /// by `Debug`. Names containing `auth`, `token`, `key`, `secret`,
    /// `password`… are sensitive already.
    pub fn sensitive_param(self, name: impl AsRef<str>) -> Self {
        let name = name.as_ref().to_ascii_lowercase();
        self.map_config(|c| {
            Arc::make_mut(&mut c.sensitive).insert(name);
        })
    }

    /// Ends sessions with no request in flight and no stream open for this
    /// long (default 30 minutes; `None`: never).
    pub fn idle_timeout(self, idle: Option<Duration>) -> Self {
        self.map_config(|c| c.idle = idle)
    }

    /// Ends sessions this long after they opened, busy or not (default:
    /// never).
    pub fn max_lifetime(self, max: Option<Duration>) -> Self {
        self.map_config(|c| c.max_lifetime = max)
    }

    /// At most `max` live sessions per principal on this replica; `policy`
    /// says whether the oldest idle one is ended or the new one refused.
    /// Requests without a `Principal` are not capped.
    pub fn max_sessions_per_principal(self, max: usize, policy: OverflowPolicy) -> Self {
        self.map_config(|c| {
            c.max_per_principal = Some(max.max(1));
            c.overflow = policy;
        })
    }

    /// This replica's id, recorded as the owner of the sessions it opens. Use
    /// the same value as the transports' `route_key`, so ids route back here.
    pub fn replica_id(self, id: impl Into<String>) -> Self {
        let id = id.into();
        self.map_config(|c| c.replica_id = Some(id))
    }

    /// Like [`replica_id`](Self::replica_id), checking the id is a valid
    /// route key.
    pub fn try_replica_id(self, id: impl Into<String>) -> Result<Self, SessionConfigError> {
        let id = id.into();
        super::check_route_key(&id).map_err(|_| SessionConfigError::BadReplicaId)?;
        Ok(self.replica_id(id))
    }

    /// Where session records live (default: [`MemorySessionStore`]).
    pub fn store(self, store: impl SessionStore) -> Self {
        self.map(|_, _, s| *s = Arc::new(store))
    }

    /// Adds a transport that can end one of its sessions; the layer uses it
    /// to end idle, expired and evicted sessions.
    pub fn closer(self, closer: impl SessionCloser) -> Self {
        self.map(|_, c, _| c.push(Arc::new(closer)))
    }

    /// Live sessions this replica owns.
    pub fn session_count(&self) -> usize {
        self.shared.live_count()
    }

    /// The query parameters captured when a session opens (session data for
    /// the backend, never credentials: `McpStack` tells its authentication
    /// layer so).
    pub fn captured_params(&self) -> impl Iterator<Item = &str> {
        self.shared.config.capture.iter().map(String::as_str)
    }

    /// The names treated as sensitive, besides the built-in words.
    pub fn sensitive_params(&self) -> &BTreeSet<String> {
        &self.shared.config.sensitive
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}
