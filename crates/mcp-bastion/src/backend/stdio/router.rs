//! Request-id rewriting and message routing between sessions and one child.
//!
//! [`Router`] is a synchronous state machine: the engine feeds it what
//! sessions and the child send, and it answers with [`Out`] messages to
//! deliver. Both modes use it; a per-session child simply has one session.
//!
//! Rules (in one place):
//! - A client request gets a fresh numeric id on the child side, unique for
//!   the child's lifetime; the response gets the client's id back. A
//!   `_meta.progressToken` gets a fresh token the same way, and
//!   `notifications/progress` goes only to the session that owns the token,
//!   with its own token restored. A client's `notifications/cancelled` is
//!   rewritten to the child-side id.
//! - With a shared `initialize`, the first session's `initialize` goes to the
//!   child and its result is kept; later sessions are answered from it, and
//!   `notifications/initialized` reaches the child once.
//! - A request from the child (sampling, elicitation, roots, ping) goes to the
//!   session owning the most recently started request still in flight, else
//!   to the most recently active session, with a fresh id that the session's
//!   response gives back. Other notifications from the child go to every
//!   session.
//! - A request in flight fails with `REQUEST_TIMEOUT` at its deadline (and the
//!   child is told `notifications/cancelled`), or with `INTERNAL_ERROR` when
//!   the child goes away.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BinaryHeap, HashMap},
    time::Duration,
};

use serde_json::{Value, json};
use tokio::time::Instant;

use super::TARGET;
use crate::jsonrpc::{ErrorObject, Message, Notification, Request, RequestId, Response, codes};

/// A session attached to the child.
pub(crate) type SessionKey = u64;

/// A message the engine must deliver.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Out {
    /// To the child's stdin.
    Child(Message),
    /// To one session's `incoming`.
    Session(SessionKey, Message),
}

/// A client request the child has not answered yet.
#[derive(Debug)]
struct Pending {
    session: SessionKey,
    client_id: RequestId,
    is_initialize: bool,
    progress_token: Option<i64>,
    deadline: Option<Instant>,
}

/// Where a child-side progress token leads.
#[derive(Debug)]
struct ProgressRoute {
    session: SessionKey,
    token: Value,
}

/// A child request handed to a session, waiting for its response.
#[derive(Debug)]
struct ServerRequest {
    session: SessionKey,
    child_id: RequestId,
}

#[derive(Debug)]
enum InitState {
    Idle,
    InFlight {
        child_id: i64,
        waiters: Vec<(SessionKey, RequestId)>,
    },
    Ready(Value),
}

/// Routing state for one child.
#[derive(Debug)]
pub(crate) struct Router {
    share_initialize: bool,
    timeout: Option<Duration>,
    next_id: i64,
    tick: u64,
    /// Each session and when it was last active (a tick).
    sessions: HashMap<SessionKey, u64>,
    /// Keyed by child-side id, which grows with time: the last entry is the
    /// most recently started request.
    pending: BTreeMap<i64, Pending>,
    by_client: HashMap<(SessionKey, RequestId), i64>,
    progress: HashMap<i64, ProgressRoute>,
    /// Keyed by the id the session sees.
    server_requests: HashMap<i64, ServerRequest>,
    /// Deadlines of `pending`; entries of finished requests are skipped.
    deadlines: BinaryHeap<Reverse<(Instant, i64)>>,
    init: InitState,
    initialized_sent: bool,
}

impl Router {
    /// A router; `share_initialize` caches the first `initialize` result for
    /// later sessions (shared mode).
    pub(crate) fn new(share_initialize: bool, timeout: Option<Duration>) -> Self {
        Self {
            share_initialize,
            timeout,
            next_id: 0,
            tick: 0,
            sessions: HashMap::new(),
            pending: BTreeMap::new(),
            by_client: HashMap::new(),
            progress: HashMap::new(),
            server_requests: HashMap::new(),
            deadlines: BinaryHeap::new(),
            init: InitState::Idle,
            initialized_sent: false,
        }
    }

    fn fresh_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    fn touch(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// Adds a session.
    pub(crate) fn attach(&mut self, key: SessionKey) {
        let now = self.touch();
        self.sessions.insert(key, now);
    }

    /// Removes a session: the child is told to cancel its requests, and its
    /// unanswered child requests are answered with an error. An `initialize`
    /// in flight stays, so its result still reaches the cache.
    pub(crate) fn detach(&mut self, key: SessionKey, out: &mut Vec<Out>) {
        if self.sessions.remove(&key).is_none() {
            return;
        }
        let abandoned: Vec<i64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.session == key && !p.is_initialize)
            .map(|(id, _)| *id)
            .collect();
        for child_id in abandoned {
            self.finish(child_id);
            out.push(Out::Child(cancelled(child_id, "session closed")));
        }
        if let InitState::InFlight { waiters, .. } = &mut self.init {
            waiters.retain(|(s, _)| *s != key);
        }
        let unanswered: Vec<i64> = self
            .server_requests
            .iter()
            .filter(|(_, r)| r.session == key)
            .map(|(id, _)| *id)
            .collect();
        for id in unanswered {
            if let Some(r) = self.server_requests.remove(&id) {
                out.push(Out::Child(Message::Response(Response::error(
                    Some(r.child_id),
                    ErrorObject::new(codes::INTERNAL_ERROR, "client session closed"),
                ))));
            }
        }
    }

    /// Removes a pending request and everything that points at it.
    fn finish(&mut self, child_id: i64) -> Option<Pending> {
        let p = self.pending.remove(&child_id)?;
        self.by_client.remove(&(p.session, p.client_id.clone()));
        if let Some(token) = p.progress_token {
            self.progress.remove(&token);
        }
        if self.pending.is_empty() {
            self.deadlines.clear();
        }
        Some(p)
    }

    /// Handles a message a session sent.
    pub(crate) fn on_session_message(
        &mut self,
        key: SessionKey,
        msg: Message,
        now: Instant,
        out: &mut Vec<Out>,
    ) {
        let tick = self.touch();
        let Some(last_active) = self.sessions.get_mut(&key) else {
            return;
        };
        *last_active = tick;
        match msg {
            Message::Request(req) => self.session_request(key, req, now, out),
            Message::Notification(n) => self.session_notification(key, n, out),
            Message::Response(resp) => {
                let Some(RequestId::Number(id)) = resp.id else {
                    return;
                };
                match self.server_requests.get(&id) {
                    Some(r) if r.session == key => {
                        if let Some(r) = self.server_requests.remove(&id) {
                            out.push(Out::Child(Message::Response(Response {
                                id: Some(r.child_id),
                                outcome: resp.outcome,
                            })));
                        }
                    }
                    _ => {
                        tracing::debug!(target: TARGET, id, "dropping a response to no request of this session")
                    }
                }
            }
        }
    }

    fn session_request(&mut self, key: SessionKey, req: Request, now: Instant, out: &mut Vec<Out>) {
        let is_initialize = req.method == "initialize";
        if is_initialize && self.share_initialize {
            match &mut self.init {
                InitState::Ready(result) => {
                    let reply = Response::result(req.id, result.clone());
                    out.push(Out::Session(key, Message::Response(reply)));
                    return;
                }
                InitState::InFlight { waiters, .. } => {
                    waiters.push((key, req.id));
                    return;
                }
                InitState::Idle => {}
            }
        }
        let child_id = self.fresh_id();
        let Request {
            id,
            method,
            mut params,
        } = req;
        let progress_token = match progress_token_mut(&mut params) {
            Some(token) => {
                let fresh = self.fresh_id();
                let original = std::mem::replace(token, Value::from(fresh));
                self.progress.insert(
                    fresh,
                    ProgressRoute {
                        session: key,
                        token: original,
                    },
                );
                Some(fresh)
            }
            None => None,
        };
        let deadline = self.timeout.map(|t| now + t);
        if let Some(d) = deadline {
            self.deadlines.push(Reverse((d, child_id)));
        }
        if is_initialize && self.share_initialize {
            self.init = InitState::InFlight {
                child_id,
                waiters: Vec::new(),
            };
        }
        self.by_client.insert((key, id.clone()), child_id);
        self.pending.insert(
            child_id,
            Pending {
                session: key,
                client_id: id,
                is_initialize,
                progress_token,
                deadline,
            },
        );
        out.push(Out::Child(Message::Request(Request {
            id: RequestId::Number(child_id),
            method,
            params,
        })));
    }

    fn session_notification(&mut self, key: SessionKey, mut n: Notification, out: &mut Vec<Out>) {
        match n.method.as_str() {
            "notifications/cancelled" => {
                let Some(slot) = n.params.as_mut().and_then(|p| p.get_mut("requestId")) else {
                    return;
                };
                let Ok(client_id) = serde_json::from_value::<RequestId>(slot.clone()) else {
                    return;
                };
                let Some(&child_id) = self.by_client.get(&(key, client_id)) else {
                    return;
                };
                // The spec forbids cancelling `initialize`; keep waiting for it.
                if self.pending.get(&child_id).is_some_and(|p| p.is_initialize) {
                    return;
                }
                self.finish(child_id);
                *slot = Value::from(child_id);
                out.push(Out::Child(Message::Notification(n)));
            }
            // Once per child, from whichever session sends it first: the
            // session that initialized the child may be gone already.
            "notifications/initialized" if self.share_initialize => {
                if !std::mem::replace(&mut self.initialized_sent, true) {
                    out.push(Out::Child(Message::Notification(n)));
                }
            }
            _ => out.push(Out::Child(Message::Notification(n))),
        }
    }

    /// Handles a message the child sent.
    pub(crate) fn on_child_message(&mut self, msg: Message, out: &mut Vec<Out>) {
        match msg {
            Message::Response(resp) => self.child_response(resp, out),
            Message::Request(req) => self.child_request(req, out),
            Message::Notification(n) => self.child_notification(n, out),
        }
    }

    fn child_response(&mut self, resp: Response, out: &mut Vec<Out>) {
        let Some(RequestId::Number(child_id)) = resp.id else {
            if let Err(e) = &resp.outcome {
                tracing::warn!(target: TARGET, code = e.code, "backend reported an error about no request: {}", e.message);
            }
            return;
        };
        let Some(p) = self.finish(child_id) else {
            tracing::debug!(target: TARGET, child_id, "dropping a response to a finished request");
            return;
        };
        if p.is_initialize && self.share_initialize {
            for (session, id) in self.settle_init(child_id, resp.outcome.as_ref().ok()) {
                out.push(Out::Session(
                    session,
                    Message::Response(Response {
                        id: Some(id),
                        outcome: resp.outcome.clone(),
                    }),
                ));
            }
        }
        out.push(Out::Session(
            p.session,
            Message::Response(Response {
                id: Some(p.client_id),
                outcome: resp.outcome,
            }),
        ));
    }

    /// Ends the shared `initialize` `child_id`: caches `result` (or forgets
    /// the attempt) and returns the sessions waiting for it.
    fn settle_init(
        &mut self,
        child_id: i64,
        result: Option<&Value>,
    ) -> Vec<(SessionKey, RequestId)> {
        match std::mem::replace(&mut self.init, InitState::Idle) {
            InitState::InFlight {
                child_id: id,
                waiters,
            } if id == child_id => {
                if let Some(result) = result {
                    self.init = InitState::Ready(result.clone());
                }
                waiters
            }
            other => {
                self.init = other;
                Vec::new()
            }
        }
    }

    fn child_request(&mut self, req: Request, out: &mut Vec<Out>) {
        let busy = self
            .pending
            .values()
            .rev()
            .map(|p| p.session)
            .find(|s| self.sessions.contains_key(s));
        let target = busy.or_else(|| {
            self.sessions
                .iter()
                .max_by_key(|(_, last_active)| **last_active)
                .map(|(k, _)| *k)
        });
        let Some(session) = target else {
            let reply = if req.method == "ping" {
                Response::result(req.id, json!({}))
            } else {
                Response::error(
                    Some(req.id),
                    ErrorObject::new(
                        codes::INTERNAL_ERROR,
                        "no client session to handle the request",
                    ),
                )
            };
            out.push(Out::Child(Message::Response(reply)));
            return;
        };
        let id = self.fresh_id();
        self.server_requests.insert(
            id,
            ServerRequest {
                session,
                child_id: req.id,
            },
        );
        out.push(Out::Session(
            session,
            Message::Request(Request {
                id: RequestId::Number(id),
                method: req.method,
                params: req.params,
            }),
        ));
    }

    fn child_notification(&mut self, mut n: Notification, out: &mut Vec<Out>) {
        match n.method.as_str() {
            "notifications/progress" => {
                let Some(slot) = n.params.as_mut().and_then(|p| p.get_mut("progressToken")) else {
                    return;
                };
                let Some(route) = slot.as_i64().and_then(|t| self.progress.get(&t)) else {
                    return;
                };
                let session = route.session;
                *slot = route.token.clone();
                out.push(Out::Session(session, Message::Notification(n)));
            }
            "notifications/cancelled" => {
                // The child gives up on one of its own requests to a client.
                let Some(slot) = n.params.as_mut().and_then(|p| p.get_mut("requestId")) else {
                    return;
                };
                let Ok(child_id) = serde_json::from_value::<RequestId>(slot.clone()) else {
                    return;
                };
                let Some(id) = self
                    .server_requests
                    .iter()
                    .find(|(_, r)| r.child_id == child_id)
                    .map(|(id, _)| *id)
                else {
                    return;
                };
                if let Some(r) = self.server_requests.remove(&id) {
                    *slot = Value::from(id);
                    out.push(Out::Session(r.session, Message::Notification(n)));
                }
            }
            _ => {
                for key in self.sessions.keys() {
                    out.push(Out::Session(*key, Message::Notification(n.clone())));
                }
            }
        }
    }

    /// The earliest deadline of a request in flight, if any.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((d, _))| *d)
    }

    /// Fails every request whose deadline is at or before `now`.
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Vec<Out>) {
        while let Some(&Reverse((deadline, child_id))) = self.deadlines.peek() {
            if deadline > now {
                break;
            }
            self.deadlines.pop();
            let current = self
                .pending
                .get(&child_id)
                .is_some_and(|p| p.deadline == Some(deadline));
            if !current {
                continue;
            }
            let Some(p) = self.finish(child_id) else {
                continue;
            };
            let error = ErrorObject::new(
                codes::REQUEST_TIMEOUT,
                format!(
                    "backend did not answer within {:?}",
                    self.timeout.unwrap_or_default()
                ),
            );
            if p.is_initialize {
                if self.share_initialize {
                    for (session, id) in self.settle_init(child_id, None) {
                        out.push(Out::Session(
                            session,
                            Message::Response(Response::error(Some(id), error.clone())),
                        ));
                    }
                }
            } else {
                out.push(Out::Child(cancelled(child_id, "timeout")));
            }
            out.push(Out::Session(
                p.session,
                Message::Response(Response::error(Some(p.client_id), error)),
            ));
        }
    }

    /// Fails every request in flight with `error` (the child is gone).
    pub(crate) fn fail_all(&mut self, error: &ErrorObject, out: &mut Vec<Out>) {
        let waiters = match std::mem::replace(&mut self.init, InitState::Idle) {
            InitState::InFlight { waiters, .. } => waiters,
            _ => Vec::new(),
        };
        let pending = std::mem::take(&mut self.pending);
        let failed = waiters
            .into_iter()
            .chain(pending.into_values().map(|p| (p.session, p.client_id)));
        for (session, id) in failed {
            out.push(Out::Session(
                session,
                Message::Response(Response::error(Some(id), error.clone())),
            ));
        }
        self.by_client.clear();
        self.progress.clear();
        self.server_requests.clear();
        self.deadlines.clear();
    }
}

/// `params._meta.progressToken`, when present.
fn progress_token_mut(params: &mut Option<Value>) -> Option<&mut Value> {
    params.as_mut()?.get_mut("_meta")?.get_mut("progressToken")
}

/// `notifications/cancelled` for the child-side request `child_id`.
fn cancelled(child_id: i64, reason: &str) -> Message {
    Message::Notification(Notification {
        method: "notifications/cancelled".into(),
        params: Some(json!({ "requestId": child_id, "reason": reason })),
    })
}

#[cfg(test)]
mod tests;
