//! Where SSE events are kept so a client that lost its connection can resume
//! with `Last-Event-ID`.
//!
//! Event ids are `<stream>-<seq>`: `seq` grows across the whole session, so
//! ids are unique per session and name the stream they belong to. A store
//! only keeps messages; the transport owns the id format.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
};

use bytes::Bytes;

use crate::jsonrpc::Message;

/// A stream within a session (a POST's response stream, or the GET stream).
pub type StreamId = u64;

/// Keeps the events of each stream for replay.
///
/// Called with the session's routing lock held: implementations must not
/// block for long.
pub trait EventStore: Send + Sync + 'static {
    /// Records `message` as event `seq` of `stream`.
    fn append(&self, session: &str, stream: StreamId, seq: u64, message: &Message);
    /// Events of `stream` after `seq`, oldest first.
    fn replay_after(&self, session: &str, stream: StreamId, seq: u64) -> Vec<(u64, Message)>;
    /// Drops everything about a session that ended.
    fn forget(&self, session: &str);

    /// Records an event whose message the transport has already encoded:
    /// `json` is `message.to_json()`. The default calls
    /// [`append`](Self::append); a store that keeps encoded text overrides it
    /// and saves a copy of the message per event.
    fn append_encoded(
        &self,
        session: &str,
        stream: StreamId,
        seq: u64,
        message: &Message,
        json: &Bytes,
    ) {
        let _ = json;
        self.append(session, stream, seq, message);
    }

    /// Events of `stream` after `seq`, oldest first, each as its message's
    /// JSON. The default encodes what [`replay_after`](Self::replay_after)
    /// returns.
    fn replay_encoded_after(&self, session: &str, stream: StreamId, seq: u64) -> Vec<(u64, Bytes)> {
        self.replay_after(session, stream, seq)
            .into_iter()
            .map(|(seq, msg)| (seq, Bytes::from(msg.to_json())))
            .collect()
    }
}

/// The stored events of one session, all its streams in one ring, oldest
/// first: storing an event is a push (and, when full, a pop of the oldest),
/// with no per-stream map to grow and shrink on every request. A replay,
/// rare, scans the ring (at most `capacity` entries) for its stream.
/// Events are kept as their JSON text (shared with the frame the transport
/// sent, so storing one costs a reference count, not a copy of the message).
#[derive(Debug, Default)]
struct SessionEvents {
    ring: VecDeque<(StreamId, u64, Bytes)>,
}

/// The default store: in memory, bounded to the last `capacity` events of
/// each session, all its streams together.
///
/// The bound is per session, not per stream, because every POSTed request
/// opens a stream of its own: a per-stream bound would keep one event per
/// request for as long as the session lives (a long-lived session calling a
/// tool in a loop grew by about 1 KB per call; see `docs/benchmarks.md`).
/// The oldest events go first, and a stream whose events are all gone is
/// forgotten.
#[derive(Debug)]
pub struct InMemoryEventStore {
    capacity: usize,
    sessions: Mutex<HashMap<String, SessionEvents>>,
}

impl InMemoryEventStore {
    /// The default bound: 64 events per session. A replay needs the events a
    /// client missed while its stream was down, the newest ones, so this
    /// covers a session's last 64 answers (or a long stream's last 64
    /// messages). Every stored event stays in memory as long as its session,
    /// so the bound is also each busy session's cost: about 250 bytes an
    /// event for a small tool's answer, 16 KB a session here, where 256 made
    /// 64 KB (2 MB over 32 sessions calling a tool in a loop). Give
    /// [`new`](Self::new) a larger bound for streams that send many
    /// notifications a client must not miss.
    pub const DEFAULT_CAPACITY: usize = 64;

    /// A store keeping at most `capacity` events per session.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            sessions: Mutex::new(HashMap::new()),
        }
    }
}

impl Default for InMemoryEventStore {
    /// [`InMemoryEventStore::DEFAULT_CAPACITY`] events per session.
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

impl InMemoryEventStore {
    fn push(&self, session: &str, stream: StreamId, seq: u64, json: Bytes) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        // Look up before inserting: no owned key is made per event.
        let events = match sessions.get_mut(session) {
            Some(events) => events,
            None => sessions.entry(session.to_owned()).or_default(),
        };
        if events.ring.len() >= self.capacity {
            events.ring.pop_front();
        }
        events.ring.push_back((stream, seq, json));
    }
}

impl EventStore for InMemoryEventStore {
    fn append(&self, session: &str, stream: StreamId, seq: u64, message: &Message) {
        self.push(session, stream, seq, Bytes::from(message.to_json()));
    }

    fn append_encoded(
        &self,
        session: &str,
        stream: StreamId,
        seq: u64,
        _message: &Message,
        json: &Bytes,
    ) {
        self.push(session, stream, seq, json.clone());
    }

    fn replay_after(&self, session: &str, stream: StreamId, seq: u64) -> Vec<(u64, Message)> {
        self.replay_encoded_after(session, stream, seq)
            .into_iter()
            .filter_map(|(seq, json)| Some((seq, Message::from_slice(&json).ok()?)))
            .collect()
    }

    fn replay_encoded_after(&self, session: &str, stream: StreamId, seq: u64) -> Vec<(u64, Bytes)> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions
            .get(session)
            .map(|events| {
                events
                    .ring
                    .iter()
                    .filter(|(s, n, _)| *s == stream && *n > seq)
                    .map(|(_, n, json)| (*n, json.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn forget(&self, session: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(session);
    }
}

/// Formats an event id.
pub(crate) fn event_id(stream: StreamId, seq: u64) -> String {
    format!("{stream}-{seq}")
}

/// Parses an event id made by [`event_id`].
pub(crate) fn parse_event_id(id: &str) -> Option<(StreamId, u64)> {
    let (stream, seq) = id.trim().split_once('-')?;
    Some((stream.parse().ok()?, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::Notification;

    fn note(n: u64) -> Message {
        Message::Notification(Notification {
            method: format!("n{n}"),
            params: None,
        })
    }

    #[test]
    fn replays_only_the_named_stream_after_the_id() {
        let store = InMemoryEventStore::new(10);
        store.append("s", 1, 1, &note(1));
        store.append("s", 2, 2, &note(2));
        store.append("s", 1, 3, &note(3));
        let replay = store.replay_after("s", 1, 1);
        assert_eq!(replay, vec![(3, note(3))]);
        assert!(store.replay_after("other", 1, 0).is_empty());
        store.forget("s");
        assert!(store.replay_after("s", 1, 0).is_empty());
    }

    #[test]
    fn keeps_at_most_capacity_events_per_session_across_streams() {
        // One stream per request, as POSTs make them: the session stays bounded.
        let store = InMemoryEventStore::new(3);
        for i in 1..=100 {
            store.append("s", i, i, &note(i));
        }
        let kept: usize = (1..=100).map(|s| store.replay_after("s", s, 0).len()).sum();
        assert_eq!(kept, 3);
        assert_eq!(store.replay_after("s", 100, 0), vec![(100, note(100))]);
        assert!(store.replay_after("s", 97, 0).is_empty());
        let sessions = store.sessions.lock().unwrap();
        assert_eq!(sessions["s"].ring.len(), 3);
    }

    #[test]
    fn the_default_store_keeps_a_sessions_last_64_events() {
        let store = InMemoryEventStore::default();
        for i in 1..=100 {
            store.append("s", 1, i, &note(i));
        }
        let replay = store.replay_after("s", 1, 0);
        assert_eq!(replay.len(), InMemoryEventStore::DEFAULT_CAPACITY);
        assert_eq!(replay.first(), Some(&(37, note(37))));
        assert_eq!(replay.last(), Some(&(100, note(100))));
    }

    #[test]
    fn keeps_at_most_capacity_events_per_stream() {
        let store = InMemoryEventStore::new(2);
        for i in 1..=5 {
            store.append("s", 1, i, &note(i));
        }
        assert_eq!(store.replay_after("s", 1, 0).len(), 2);
    }

    #[test]
    fn encoded_events_are_shared_not_copied_and_replay_as_messages() {
        let store = InMemoryEventStore::new(10);
        let json = Bytes::from(note(7).to_json());
        store.append_encoded("s", 1, 7, &note(7), &json);
        let replay = store.replay_encoded_after("s", 1, 0);
        assert_eq!(replay.len(), 1);
        assert_eq!(replay[0].0, 7);
        // The very buffer the transport sent: a reference, not a copy.
        assert_eq!(replay[0].1.as_ptr(), json.as_ptr());
        assert_eq!(store.replay_after("s", 1, 0), vec![(7, note(7))]);
        // `append` and `append_encoded` share one bound and one order.
        store.append("s", 1, 8, &note(8));
        assert_eq!(
            store.replay_after("s", 1, 6),
            vec![(7, note(7)), (8, note(8))]
        );
    }

    /// A store with only the required methods: the provided ones fall back.
    #[derive(Default)]
    struct Plain(Mutex<Vec<(u64, Message)>>);

    impl EventStore for Plain {
        fn append(&self, _: &str, _: StreamId, seq: u64, message: &Message) {
            self.0.lock().unwrap().push((seq, message.clone()));
        }
        fn replay_after(&self, _: &str, _: StreamId, seq: u64) -> Vec<(u64, Message)> {
            let events = self.0.lock().unwrap();
            events.iter().filter(|(s, _)| *s > seq).cloned().collect()
        }
        fn forget(&self, _: &str) {}
    }

    #[test]
    fn a_store_without_encoded_methods_still_works() {
        let store = Plain::default();
        store.append_encoded("s", 1, 1, &note(1), &Bytes::from_static(b"ignored"));
        assert_eq!(store.replay_after("s", 1, 0), vec![(1, note(1))]);
        assert_eq!(
            store.replay_encoded_after("s", 1, 0),
            vec![(1, Bytes::from(note(1).to_json()))]
        );
    }

    #[test]
    fn event_ids_round_trip_and_garbage_is_refused() {
        assert_eq!(parse_event_id(&event_id(3, 99)), Some((3, 99)));
        for bad in ["", "3", "a-1", "1-b", "-1"] {
            assert_eq!(parse_event_id(bad), None, "{bad}");
        }
    }
}
