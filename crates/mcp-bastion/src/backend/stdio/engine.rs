//! The task that serves one child: it moves messages between the child and
//! the sessions attached to it, through the [`Router`].
//!
//! The engine never waits on a slow party. Session messages are accepted only
//! while the child's stdin queue has room (backpressure flows to the
//! clients), the child's stdout is always read, and delivery to a session is
//! `try_send`: a session that stops reading its generous queue is closed
//! rather than allowed to stall the others.

use std::{collections::HashMap, time::Duration};

use tokio::{
    sync::{
        mpsc::{self, error::TrySendError},
        watch,
    },
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use super::{
    TARGET,
    process::{ChildIo, ExitReport},
    router::{Out, Router, SessionKey},
};
use crate::{
    backend::Connection,
    jsonrpc::{ErrorObject, Message, codes},
};

/// Client messages a connection buffers before `send` waits.
const OUTGOING_QUEUE: usize = 64;
/// Server messages buffered for a session before it counts as stuck.
const INCOMING_QUEUE: usize = 1024;
/// Session messages waiting for the engine.
const ENGINE_QUEUE: usize = 256;
/// After the child exits, how long its last stdout lines may still arrive.
const DRAIN: Duration = Duration::from_millis(100);
/// After stdout closes, how long to wait for the exit status.
const EXIT_WAIT: Duration = Duration::from_millis(250);

enum Control {
    Attach {
        key: SessionKey,
        incoming: mpsc::Sender<Message>,
    },
    Detach(SessionKey),
}

/// How sessions reach a running engine. Cheap to clone.
#[derive(Clone)]
pub(crate) struct EngineHandle {
    control: mpsc::UnboundedSender<Control>,
    messages: mpsc::Sender<(SessionKey, Message)>,
}

impl EngineHandle {
    /// Whether the engine (and so its child) is still running.
    pub(crate) fn is_alive(&self) -> bool {
        !self.control.is_closed()
    }

    /// Attaches a new session; `None` if the engine has ended.
    pub(crate) fn open_session(&self, key: SessionKey) -> Option<Connection> {
        let (out_tx, out_rx) = mpsc::channel(OUTGOING_QUEUE);
        let (in_tx, in_rx) = mpsc::channel(INCOMING_QUEUE);
        self.control
            .send(Control::Attach {
                key,
                incoming: in_tx,
            })
            .ok()?;
        let closed = CancellationToken::new();
        tokio::spawn(forward(
            key,
            out_rx,
            closed.clone(),
            self.messages.clone(),
            self.control.clone(),
        ));
        Some(Connection::new(out_tx, in_rx, closed))
    }
}

/// Moves one session's client messages to the engine until the session ends,
/// then detaches it.
async fn forward(
    key: SessionKey,
    mut outgoing: mpsc::Receiver<Message>,
    closed: CancellationToken,
    messages: mpsc::Sender<(SessionKey, Message)>,
    control: mpsc::UnboundedSender<Control>,
) {
    loop {
        tokio::select! {
            biased;
            () = closed.cancelled() => break,
            () = messages.closed() => break,
            msg = outgoing.recv() => {
                let Some(msg) = msg else { break };
                tokio::select! {
                    biased;
                    () = closed.cancelled() => break,
                    sent = messages.send((key, msg)) => if sent.is_err() { break },
                }
            }
        }
    }
    let _ = control.send(Control::Detach(key));
}

/// Starts the engine for `child`. With `per_session`, the engine (and the
/// child) end when the session detaches; otherwise they live until the child
/// exits or every handle is dropped.
pub(crate) fn start(
    child: ChildIo,
    per_session: bool,
    request_timeout: Option<Duration>,
) -> EngineHandle {
    let (control_tx, control) = mpsc::unbounded_channel();
    let (messages_tx, messages) = mpsc::channel(ENGINE_QUEUE);
    let ChildIo {
        pid,
        stdin,
        stdout,
        exit,
        terminate,
    } = child;
    let engine = Engine {
        router: Router::new(!per_session, request_timeout),
        sessions: HashMap::new(),
        had_session: false,
        per_session,
        outbox: Vec::new(),
        pid,
        stdin,
        terminate,
    };
    tokio::spawn(engine.run(control, messages, stdout, exit));
    EngineHandle {
        control: control_tx,
        messages: messages_tx,
    }
}

struct Engine {
    router: Router,
    sessions: HashMap<SessionKey, mpsc::Sender<Message>>,
    had_session: bool,
    per_session: bool,
    outbox: Vec<Out>,
    pid: Option<u32>,
    stdin: mpsc::Sender<Message>,
    terminate: CancellationToken,
}

impl Engine {
    async fn run(
        mut self,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut messages: mpsc::Receiver<(SessionKey, Message)>,
        mut stdout: mpsc::Receiver<Message>,
        mut exit: watch::Receiver<Option<ExitReport>>,
    ) {
        let mut messages_open = true;
        // `Some(why)` when the child went away.
        let gone: Option<String> = loop {
            let deadline = self.router.next_deadline();
            tokio::select! {
                biased;
                c = control.recv() => match c {
                    Some(c) => self.control(c),
                    None => break None,
                },
                msg = stdout.recv() => match msg {
                    Some(msg) => self.router.on_child_message(msg, &mut self.outbox),
                    None => break Some(self.stdout_closed(&mut exit).await),
                },
                report = exited(&mut exit) => {
                    self.drain(&mut stdout).await;
                    break Some(format!("backend process exited ({report})"));
                }
                () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    self.router.expire(Instant::now(), &mut self.outbox);
                }
                m = messages.recv(), if messages_open && self.stdin.capacity() > 0 => match m {
                    Some((key, msg)) => {
                        // An Attach sent before this message may still be queued.
                        while let Ok(c) = control.try_recv() {
                            self.control(c);
                        }
                        self.router.on_session_message(key, msg, Instant::now(), &mut self.outbox);
                    }
                    None => messages_open = false,
                },
            }
            self.flush();
            if self.per_session && self.had_session && self.sessions.is_empty() {
                break None;
            }
        };
        if let Some(why) = gone {
            tracing::debug!(target: TARGET, pid = self.pid, "{why}; failing requests in flight");
            let error = ErrorObject::new(codes::INTERNAL_ERROR, why);
            self.router.fail_all(&error, &mut self.outbox);
            self.flush();
        }
        // Idempotent; a no-op if the child has exited. Dropping `sessions`
        // ends every session's `incoming`.
        self.terminate.cancel();
    }

    fn control(&mut self, c: Control) {
        match c {
            Control::Attach { key, incoming } => {
                self.router.attach(key);
                self.sessions.insert(key, incoming);
                self.had_session = true;
            }
            Control::Detach(key) => self.drop_session(key),
        }
    }

    fn drop_session(&mut self, key: SessionKey) {
        self.sessions.remove(&key);
        self.router.detach(key, &mut self.outbox);
    }

    /// Stdout closed: usually the child is exiting. Waits briefly for its
    /// status; a child that lives on without stdout is terminated.
    async fn stdout_closed(&mut self, exit: &mut watch::Receiver<Option<ExitReport>>) -> String {
        match tokio::time::timeout(EXIT_WAIT, exited(exit)).await {
            Ok(report) => format!("backend process exited ({report})"),
            Err(_) => {
                self.terminate.cancel();
                "backend process closed its stdout".to_owned()
            }
        }
    }

    /// Delivers what the child wrote just before exiting.
    async fn drain(&mut self, stdout: &mut mpsc::Receiver<Message>) {
        let until = Instant::now() + DRAIN;
        while let Ok(Some(msg)) = tokio::time::timeout_at(until, stdout.recv()).await {
            self.router.on_child_message(msg, &mut self.outbox);
            self.flush();
        }
    }

    fn flush(&mut self) {
        while !self.outbox.is_empty() {
            for out in std::mem::take(&mut self.outbox) {
                match out {
                    Out::Child(msg) => match self.stdin.try_send(msg) {
                        Ok(()) => {}
                        Err(TrySendError::Full(_)) => {
                            tracing::warn!(target: TARGET, pid = self.pid, "backend stdin queue is full; dropping a message to it");
                        }
                        Err(TrySendError::Closed(_)) => {
                            tracing::debug!(target: TARGET, pid = self.pid, "backend stdin is closed; dropping a message to it");
                        }
                    },
                    Out::Session(key, msg) => self.deliver(key, msg),
                }
            }
        }
    }

    fn deliver(&mut self, key: SessionKey, msg: Message) {
        let Some(tx) = self.sessions.get(&key) else {
            return;
        };
        match tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!(target: TARGET, pid = self.pid, session = key, "a session is not reading backend messages; closing it");
                self.drop_session(key);
            }
            Err(TrySendError::Closed(_)) => self.drop_session(key),
        }
    }
}

/// Resolves once the child has exited and been reaped.
async fn exited(exit: &mut watch::Receiver<Option<ExitReport>>) -> ExitReport {
    match exit.wait_for(Option::is_some).await {
        Ok(report) => report.unwrap_or(ExitReport::UNKNOWN),
        // The supervisor is gone without a report (runtime shutdown).
        Err(_) => ExitReport::UNKNOWN,
    }
}
