//! One child for all sessions: id rewriting, initialize caching, progress and
//! sampling routing, failure.

use std::time::Duration;

use serde_json::json;
use tokio::task::JoinSet;

use super::{Client, fixture, reaped_within, request};
use crate::{
    backend::{
        SessionContext,
        stdio::{StdioBackend, StdioMode},
    },
    jsonrpc::{Message, RequestId, Response, codes},
};

fn shared() -> StdioBackend {
    fixture()
        .mode(StdioMode::Shared)
        .build()
        .expect("valid config")
}

async fn session(backend: &StdioBackend) -> Client {
    Client::connect(backend, SessionContext::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_sessions_using_the_same_ids_each_get_their_own_answers() {
    const SESSIONS: i64 = 50;
    const REQUESTS: i64 = 20;
    let backend = shared();
    let mut tasks = JoinSet::new();
    for s in 0..SESSIONS {
        let backend = backend.clone();
        tasks.spawn(async move {
            let mut client = session(&backend).await;
            client.initialize(0).await;
            for n in 1..=REQUESTS {
                client
                    .send(request(n, "echo", json!({"session": s, "n": n})))
                    .await;
            }
            let mut seen = Vec::new();
            for _ in 1..=REQUESTS {
                let resp = client.response().await;
                let Some(RequestId::Number(id)) = resp.id else {
                    panic!("a numeric id: {resp:?}")
                };
                let result = resp.outcome.expect("a result");
                assert_eq!(
                    result["echo"],
                    json!({"session": s, "n": id}),
                    "session {s}"
                );
                seen.push(id);
            }
            seen.sort_unstable();
            assert_eq!(seen, (1..=REQUESTS).collect::<Vec<_>>(), "session {s}");
            client
        });
    }
    let mut clients = Vec::new();
    while let Some(done) = tasks.join_next().await {
        clients.push(done.expect("session task"));
    }
    assert_eq!(backend.live_children(), 1);
    let stats = clients[0].call(99, "stats", json!({})).await;
    assert_eq!(stats, json!({"initialize": 1, "initialized": 1}));
}

#[tokio::test]
async fn initialize_is_answered_from_the_cache_after_the_first_session() {
    let backend = shared();
    let mut a = session(&backend).await;
    let mut b = session(&backend).await;
    let first = a.initialize("a-init").await;
    let second = b.initialize(99).await; // `call` checks the id is 99
    assert_eq!(first, second);
    let stats = b.call(1, "stats", json!({})).await;
    assert_eq!(stats, json!({"initialize": 1, "initialized": 1}));
    assert_eq!(a.pid(2).await, b.pid(2).await);
}

#[tokio::test]
async fn progress_notifications_reach_only_the_session_that_owns_the_token() {
    let backend = shared();
    let mut a = session(&backend).await;
    let mut b = session(&backend).await;
    a.initialize(0).await;
    b.initialize(0).await;
    let params = |tag: &str| json!({"tag": tag, "count": 5, "_meta": {"progressToken": "tok"}});
    a.send(request(1, "progress", params("A"))).await;
    b.send(request(1, "progress", params("B"))).await;
    for (client, tag) in [(&mut a, "A"), (&mut b, "B")] {
        for i in 1..=5 {
            let Some(Message::Notification(n)) = client.recv().await else {
                panic!("a progress notification")
            };
            assert_eq!(n.method, "notifications/progress");
            let p = n.params.expect("params");
            assert_eq!(
                p["progressToken"], "tok",
                "the client's own token is restored"
            );
            assert_eq!(p["message"], tag, "only its own progress");
            assert_eq!(p["progress"], i);
        }
        let resp = client.response().await;
        assert_eq!(resp.id, Some(RequestId::Number(1)));
        let seen = resp.outcome.expect("a result")["token"].clone();
        assert_ne!(seen, "tok", "the child saw a rewritten token");
    }
}

#[tokio::test]
async fn a_sampling_request_goes_to_the_session_whose_call_is_in_flight() {
    let backend = shared();
    let mut a = session(&backend).await;
    let mut b = session(&backend).await;
    a.initialize(0).await;
    b.initialize(0).await;
    a.send(request(
        1,
        "sample",
        json!({"tag": "for-a", "delay_ms": 300}),
    ))
    .await;
    // B is the most recently active session, but A's call is in flight.
    b.call(1, "echo", json!({})).await;

    let Some(Message::Request(ask)) = a.recv().await else {
        panic!("a sampling request")
    };
    assert_eq!(ask.method, "sampling/createMessage");
    assert_eq!(
        ask.params.as_ref().expect("params")["messages"][0]["content"]["text"],
        "for-a"
    );
    a.send(Message::Response(Response::result(
        ask.id,
        json!({"model": "a-model"}),
    )))
    .await;
    let resp = a.response().await;
    assert_eq!(resp.id, Some(RequestId::Number(1)));
    assert_eq!(
        resp.outcome.expect("a result")["sampled"],
        json!({"model": "a-model"})
    );
    assert!(b.conn.incoming.try_recv().is_err(), "B saw nothing");
}

#[tokio::test]
async fn other_notifications_from_the_child_reach_every_session() {
    let backend = shared();
    let mut a = session(&backend).await;
    let mut b = session(&backend).await;
    a.initialize(0).await;
    b.initialize(0).await;
    a.send(request(1, "notify", json!({}))).await;
    for client in [&mut a, &mut b] {
        let Some(Message::Notification(n)) = client.recv().await else {
            panic!("a notification")
        };
        assert_eq!(n.method, "notifications/tools/list_changed");
    }
    assert_eq!(a.response().await.id, Some(RequestId::Number(1)));
}

#[tokio::test]
async fn a_closing_session_leaves_the_child_running_for_the_others() {
    let backend = shared();
    let mut a = session(&backend).await;
    let mut b = session(&backend).await;
    a.initialize(0).await;
    b.initialize(0).await;
    let pid = a.pid(1).await;
    a.send(request(2, "hang", json!({}))).await;
    // Once this is answered the child has the hung request.
    assert_eq!(
        a.call(3, "cancellations", json!({})).await["hung"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    drop(a);
    assert_eq!(b.pid(1).await, pid);
    // The closed session's request was cancelled in the child.
    let seen = b.call(2, "cancellations", json!({})).await;
    assert_eq!(
        seen["cancelled"],
        json!([{"requestId": seen["hung"][0], "reason": "session closed"}])
    );
}

#[tokio::test]
async fn child_exit_fails_every_session_and_the_next_connect_respawns() {
    let backend = shared();
    let mut a = session(&backend).await;
    let mut b = session(&backend).await;
    a.initialize(0).await;
    b.initialize(0).await;
    let pid = a.pid(1).await;
    b.send(request(1, "hang", json!({}))).await;
    // Once this is answered the child has B's hung request.
    assert_eq!(
        b.call(2, "cancellations", json!({})).await["hung"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    a.send(request(2, "hang", json!({}))).await;
    a.send(request(3, "crash", json!({}))).await;

    let mut failed_a = Vec::new();
    for _ in 0..2 {
        let resp = a.response().await;
        assert_eq!(
            resp.outcome.expect_err("an error").code,
            codes::INTERNAL_ERROR
        );
        failed_a.push(resp.id);
    }
    failed_a.sort_by_key(|id| format!("{id:?}"));
    assert_eq!(
        failed_a,
        [Some(RequestId::Number(2)), Some(RequestId::Number(3))]
    );
    let resp = b.response().await;
    assert_eq!(resp.id, Some(RequestId::Number(1)));
    assert_eq!(
        resp.outcome.expect_err("an error").code,
        codes::INTERNAL_ERROR
    );
    a.assert_ended().await;
    b.assert_ended().await;
    assert!(reaped_within(pid, Duration::from_secs(1)).await);

    let mut c = session(&backend).await;
    c.initialize(0).await;
    assert_ne!(c.pid(1).await, pid);
    assert_eq!(
        c.call(2, "stats", json!({})).await,
        json!({"initialize": 1, "initialized": 1})
    );
}
