//! The pool's rules with fake connections (the binary's tests run it over
//! real stdio children): reuse, one request at a time per link, discard on
//! drop, idle expiry, bounds, keys.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use tokio::sync::mpsc;

use super::*;
use crate::jsonrpc::Notification;

/// The backend's side of a fake connection.
struct Peer {
    to_client: mpsc::Sender<Message>,
    _from_client: mpsc::Receiver<Message>,
    closed: CancellationToken,
    n: usize,
}

/// Opens numbered fake connections and keeps their backend sides.
#[derive(Default)]
struct Fake {
    opened: AtomicUsize,
    peers: Mutex<Vec<Peer>>,
}

impl Fake {
    fn open(&self) -> impl Future<Output = Result<Connection, BackendError>> + use<> {
        let n = self.opened.fetch_add(1, Ordering::SeqCst);
        let (outgoing, from_client) = mpsc::channel(8);
        let (to_client, incoming) = mpsc::channel(8);
        let closed = CancellationToken::new();
        self.peers.lock().unwrap().push(Peer {
            to_client,
            _from_client: from_client,
            closed: closed.clone(),
            n,
        });
        let conn = Connection::new(outgoing, incoming, closed);
        async move { Ok(conn) }
    }

    fn opened(&self) -> usize {
        self.opened.load(Ordering::SeqCst)
    }

    fn closed(&self, n: usize) -> bool {
        self.peers.lock().unwrap()[n].closed.is_cancelled()
    }
}

fn init() -> Map<String, Value> {
    json!({"protocolVersion": "2025-11-25"})
        .as_object()
        .unwrap()
        .clone()
}

fn key(subject: &str) -> PoolKey {
    let mut ext = http::Extensions::new();
    ext.insert(Principal::new(subject));
    PoolKey::of(&ext, &Map::new())
}

fn pool(max_per_key: usize, max_total: usize) -> Arc<Pool> {
    Arc::new(Pool::new(PoolLimits {
        idle_timeout: Some(Duration::from_secs(60)),
        max_per_key,
        max_total,
    }))
}

/// Checks out a link of `key`, initializing it if it is new.
async fn take(pool: &Arc<Pool>, fake: &Fake, key: PoolKey) -> Pooled {
    let mut link = pool.checkout(key, || fake.open()).await.unwrap();
    if link.init.is_none() {
        link.init = Some(init());
    }
    link
}

#[tokio::test]
async fn a_released_link_serves_the_next_request_of_its_key() {
    let (pool, fake) = (pool(8, 128), Fake::default());
    let first = pool.checkout(key("alice"), || fake.open()).await.unwrap();
    assert!(first.init.is_none(), "a new link is not initialized yet");
    let mut first = first;
    first.init = Some(init());
    first.release();
    assert_eq!(pool.idle_links(), 1);

    let again = pool.checkout(key("alice"), || fake.open()).await.unwrap();
    assert_eq!(
        again.init,
        Some(init()),
        "the pooled link comes initialized"
    );
    assert_eq!(fake.opened(), 1, "no second connection");
    assert_eq!(pool.open_links(), 1);
    assert!(!fake.closed(0));
    again.release();

    // another principal never gets alice's link
    let bob = take(&pool, &fake, key("bob")).await;
    assert_eq!(fake.opened(), 2);
    drop(bob);
}

#[tokio::test]
async fn concurrent_requests_of_one_key_get_one_link_each() {
    let (pool, fake) = (pool(8, 128), Fake::default());
    let a = take(&pool, &fake, key("alice")).await;
    let b = take(&pool, &fake, key("alice")).await;
    assert_eq!(fake.opened(), 2, "a busy link is never shared");
    assert_eq!(pool.open_links(), 2);
    a.release();
    b.release();
    assert_eq!(pool.idle_links(), 2);
    // both reused, the most recently released first
    let c = take(&pool, &fake, key("alice")).await;
    let d = take(&pool, &fake, key("alice")).await;
    assert_eq!(fake.opened(), 2);
    drop((c, d));
}

#[tokio::test]
async fn a_dropped_link_is_closed_and_never_reused() {
    let (pool, fake) = (pool(8, 128), Fake::default());
    // a cancelled request (or a backend that closed) drops its link
    let link = take(&pool, &fake, key("alice")).await;
    drop(link);
    assert!(fake.closed(0), "dropping closes the connection");
    assert_eq!(pool.open_links(), 0);
    assert_eq!(pool.idle_links(), 0);
    let next = take(&pool, &fake, key("alice")).await;
    assert_eq!(fake.opened(), 2, "a new connection, not the dropped one");
    // a link released before it was initialized is closed as well
    let mut fresh = pool.checkout(key("bob"), || fake.open()).await.unwrap();
    fresh.init = None;
    fresh.release();
    assert!(fake.closed(2));
    assert_eq!(pool.idle_links(), 0);
    drop(next);
}

#[tokio::test]
async fn a_link_whose_backend_went_away_while_idle_is_replaced() {
    let (pool, fake) = (pool(8, 128), Fake::default());
    take(&pool, &fake, key("alice")).await.release();
    // the backend sent a notification while idle, then went away
    {
        let peers = fake.peers.lock().unwrap();
        let note = Notification {
            method: "notifications/tools/list_changed".into(),
            params: None,
        };
        peers[0]
            .to_client
            .try_send(Message::Notification(note))
            .unwrap();
    }
    fake.peers.lock().unwrap()[0].to_client = mpsc::channel(1).0;
    let link = take(&pool, &fake, key("alice")).await;
    assert_eq!(fake.opened(), 2, "the dead link was not handed out");
    assert!(fake.closed(0));
    drop(link);
}

#[tokio::test]
async fn what_a_backend_sent_on_an_idle_link_does_not_reach_the_next_request() {
    let (pool, fake) = (pool(8, 128), Fake::default());
    take(&pool, &fake, key("alice")).await.release();
    {
        let peers = fake.peers.lock().unwrap();
        let note = Notification {
            method: "notifications/message".into(),
            params: Some(json!({"level": "info", "data": "idle"})),
        };
        peers[0]
            .to_client
            .try_send(Message::Notification(note))
            .unwrap();
    }
    let mut link = take(&pool, &fake, key("alice")).await;
    assert_eq!(fake.opened(), 1, "still alive: reused");
    assert!(
        link.incoming.try_recv().is_err(),
        "the idle notification was discarded"
    );
    assert_eq!(fake.peers.lock().unwrap()[0].n, 0);
}

#[tokio::test(start_paused = true)]
async fn idle_links_end_after_the_idle_timeout() {
    let (pool, fake) = (pool(8, 128), Fake::default());
    take(&pool, &fake, key("alice")).await.release();
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(pool.idle_links(), 1, "within the timeout it stays");
    assert!(!fake.closed(0));
    // the reaper runs every 30 s (half the timeout); the clock is paused,
    // so this sleep only lets it run, in order
    tokio::time::sleep(Duration::from_secs(71)).await;
    assert_eq!(pool.idle_links(), 0);
    assert_eq!(pool.open_links(), 0);
    assert!(fake.closed(0), "the expired link was closed");
    let link = take(&pool, &fake, key("alice")).await;
    assert_eq!(fake.opened(), 2);
    drop(link);
}

#[tokio::test(start_paused = true)]
async fn a_link_idle_past_the_timeout_is_never_handed_out() {
    let (pool, fake) = (
        Arc::new(Pool::new(PoolLimits {
            idle_timeout: Some(Duration::from_secs(60)),
            max_per_key: 8,
            max_total: 128,
        })),
        Fake::default(),
    );
    take(&pool, &fake, key("alice")).await.release();
    // jump the clock: whether the reaper ran first or not, the link is gone
    tokio::time::advance(Duration::from_secs(61)).await;
    let link = take(&pool, &fake, key("alice")).await;
    assert_eq!(fake.opened(), 2);
    assert!(fake.closed(0));
    drop(link);
}

#[tokio::test]
async fn a_key_at_its_bound_waits_for_one_of_its_links() {
    let (pool, fake) = (pool(1, 128), Fake::default());
    let first = take(&pool, &fake, key("alice")).await;
    let waiting = {
        let pool = Arc::clone(&pool);
        tokio::spawn(async move {
            let fake = Fake::default();
            let link = pool.checkout(key("alice"), || fake.open()).await.unwrap();
            (link.init.is_some(), fake.opened())
        })
    };
    // other keys are not held up
    let bob = take(&pool, &fake, key("bob")).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!waiting.is_finished(), "alice's second request waits");
    first.release();
    let (reused, opened) = waiting.await.unwrap();
    assert!(reused, "it got alice's released link");
    assert_eq!(opened, 0);
    drop(bob);
}

#[tokio::test]
async fn a_full_pool_closes_the_longest_idle_link_for_a_new_key() {
    let (pool, fake) = (pool(8, 2), Fake::default());
    take(&pool, &fake, key("alice")).await.release();
    take(&pool, &fake, key("bob")).await.release();
    assert_eq!(pool.open_links(), 2);
    let carol = take(&pool, &fake, key("carol")).await;
    assert!(fake.closed(0), "alice's link, idle the longest, made room");
    assert!(!fake.closed(1));
    assert_eq!(pool.open_links(), 2);

    // full with nothing idle: a new key waits until a link is released
    let dave = take(&pool, &fake, key("dave")).await; // evicts bob's
    assert!(fake.closed(1));
    let waiting = {
        let pool = Arc::clone(&pool);
        tokio::spawn(async move {
            let fake = Fake::default();
            let link = pool.checkout(key("erin"), || fake.open()).await.unwrap();
            drop(link);
            fake.opened()
        })
    };
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!waiting.is_finished(), "no room: erin waits");
    carol.release(); // idle now: erin evicts it
    assert_eq!(waiting.await.unwrap(), 1);
    assert!(fake.closed(2));
    drop(dave);
}

#[tokio::test]
async fn a_failed_connect_leaves_nothing_behind() {
    let pool = pool(8, 128);
    let failed = pool
        .checkout(key("alice"), || async {
            Err(BackendError::Unavailable("down".into()))
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(pool.open_links(), 0);
    assert!(pool.state().keys.is_empty(), "no entry kept for the key");
}

#[tokio::test]
async fn listen_streams_are_bounded_per_key_and_in_total() {
    let pool = pool(2, 3);
    let a1 = pool.listen_slot(key("alice")).unwrap();
    let _a2 = pool.listen_slot(key("alice")).unwrap();
    assert!(pool.listen_slot(key("alice")).is_none(), "per key");
    let _b1 = pool.listen_slot(key("bob")).unwrap();
    assert!(pool.listen_slot(key("carol")).is_none(), "in total");
    drop(a1);
    assert!(pool.listen_slot(key("carol")).is_some());
}

#[tokio::test]
async fn close_ends_idle_links_and_pools_nothing_more() {
    let (pool, fake) = (pool(8, 128), Fake::default());
    take(&pool, &fake, key("alice")).await.release();
    let busy = take(&pool, &fake, key("alice")).await;
    let busy2 = take(&pool, &fake, key("alice")).await;
    assert_eq!(fake.opened(), 2);
    let closing = pool.closing();
    busy.release();
    pool.close();
    assert!(closing.is_cancelled(), "listen streams are told");
    assert!(fake.closed(0));
    busy2.release();
    assert!(fake.closed(1), "released after close: closed, not pooled");
    assert_eq!(pool.idle_links(), 0);
}

#[cfg(feature = "session-layer")]
#[test]
fn keys_tell_principals_params_and_capabilities_apart() {
    let with = |p: Option<Principal>, params: &[(&str, &str)], caps: Value| {
        let mut ext = http::Extensions::new();
        if let Some(p) = p {
            ext.insert(p);
        }
        if !params.is_empty() {
            ext.insert(crate::session::SessionParams::new(params.iter().copied()));
        }
        PoolKey::of(&ext, caps.as_object().unwrap())
    };
    let alice = || Some(Principal::new("alice"));
    let base = with(alice(), &[], json!({}));
    assert_eq!(base, with(alice(), &[], json!({})));
    assert_ne!(base, with(Some(Principal::new("bob")), &[], json!({})));
    assert_ne!(base, with(None, &[], json!({})), "anonymous is its own key");
    assert_eq!(with(None, &[], json!({})), with(None, &[], json!({})));
    assert_ne!(
        base,
        with(alice(), &[("github_token", "A")], json!({})),
        "captured params"
    );
    assert_ne!(
        with(alice(), &[("github_token", "A")], json!({})),
        with(alice(), &[("github_token", "B")], json!({}))
    );
    assert_ne!(
        base,
        with(
            Some(Principal::new("alice").with_env([("GH", "x")])),
            &[],
            json!({})
        ),
        "principal environment"
    );
    assert_ne!(
        base,
        with(alice(), &[], json!({"elicitation": {}})),
        "declared capabilities"
    );
    assert_ne!(
        with(alice(), &[], json!({"elicitation": {"form": {}}})),
        with(alice(), &[], json!({"elicitation": {"url": {}}}))
    );
    // capabilities a link is not initialized with do not split the pool,
    // nor does the order of keys
    assert_eq!(base, with(alice(), &[], json!({"experimental": {"x": {}}})));
    assert_eq!(
        with(
            alice(),
            &[],
            json!({"sampling": {}, "roots": {"listChanged": true}})
        ),
        with(
            alice(),
            &[],
            json!({"roots": {"listChanged": true}, "sampling": {}})
        )
    );
    // a refreshed token (new exp, iat, jti) keeps the key; another claim does not
    let claims =
        |v: Value| Some(Principal::new("alice").with_claims(v.as_object().unwrap().clone()));
    assert_eq!(
        with(
            claims(json!({"org": "a", "exp": 1, "iat": 0, "jti": "x"})),
            &[],
            json!({})
        ),
        with(
            claims(json!({"org": "a", "exp": 2, "iat": 1, "jti": "y"})),
            &[],
            json!({})
        )
    );
    assert_ne!(
        with(claims(json!({"org": "a"})), &[], json!({})),
        with(claims(json!({"org": "b"})), &[], json!({}))
    );
    // a subject cannot pose as subject + key id
    assert_ne!(
        with(Some(Principal::new("ab")), &[], json!({})),
        with(Some(Principal::new("a").with_key_id("b")), &[], json!({}))
    );
    assert_eq!(
        format!("{:?}", with(alice(), &[("t", "secret")], json!({}))),
        "PoolKey(..)"
    );
}
