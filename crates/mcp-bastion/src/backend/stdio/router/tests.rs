//! The routing rules, without a process.

use super::*;

fn request(id: i64, method: &str, params: Value) -> Message {
    Message::Request(Request {
        id: RequestId::Number(id),
        method: method.into(),
        params: Some(params),
    })
}

fn notification(method: &str, params: Value) -> Message {
    Message::Notification(Notification {
        method: method.into(),
        params: Some(params),
    })
}

fn response(id: i64, result: Value) -> Message {
    Message::Response(Response::result(RequestId::Number(id), result))
}

/// The single message in `out`, which must go to the child.
fn to_child(out: &mut Vec<Out>) -> Message {
    assert_eq!(out.len(), 1, "{out:?}");
    match out.remove(0) {
        Out::Child(m) => m,
        other => panic!("expected a message to the child, got {other:?}"),
    }
}

fn child_id(msg: &Message) -> i64 {
    match msg.id() {
        Some(RequestId::Number(n)) => *n,
        other => panic!("expected a numeric id, got {other:?}"),
    }
}

#[test]
fn ids_are_rewritten_on_the_way_in_and_restored_on_the_way_out() {
    let mut r = Router::new(true, None);
    let now = Instant::now();
    let mut out = Vec::new();
    r.attach(1);
    r.attach(2);
    r.on_session_message(1, request(1, "tools/list", json!({})), now, &mut out);
    let a = child_id(&to_child(&mut out));
    r.on_session_message(2, request(1, "tools/list", json!({})), now, &mut out);
    let b = child_id(&to_child(&mut out));
    assert_ne!(a, b);
    r.on_child_message(response(b, json!("b")), &mut out);
    r.on_child_message(response(a, json!("a")), &mut out);
    assert_eq!(
        out,
        vec![
            Out::Session(2, response(1, json!("b"))),
            Out::Session(1, response(1, json!("a"))),
        ]
    );
}

#[test]
fn a_client_cancellation_names_the_child_side_id() {
    let mut r = Router::new(false, None);
    let now = Instant::now();
    let mut out = Vec::new();
    r.attach(1);
    r.on_session_message(1, request(9, "tools/call", json!({})), now, &mut out);
    let id = child_id(&to_child(&mut out));
    r.on_session_message(
        1,
        notification("notifications/cancelled", json!({"requestId": 9})),
        now,
        &mut out,
    );
    assert_eq!(
        to_child(&mut out),
        notification("notifications/cancelled", json!({"requestId": id}))
    );
    // The late answer is dropped.
    r.on_child_message(response(id, json!({})), &mut out);
    assert!(out.is_empty());
}

#[test]
fn a_closing_session_cancels_its_requests_and_answers_child_requests() {
    let mut r = Router::new(true, None);
    let now = Instant::now();
    let mut out = Vec::new();
    r.attach(1);
    r.on_session_message(1, request(1, "tools/call", json!({})), now, &mut out);
    let id = child_id(&to_child(&mut out));
    r.on_child_message(request(50, "roots/list", json!({})), &mut out);
    assert_eq!(out.len(), 1);
    out.clear();
    r.detach(1, &mut out);
    assert_eq!(
        out,
        vec![
            Out::Child(cancelled(id, "session closed")),
            Out::Child(Message::Response(Response::error(
                Some(RequestId::Number(50)),
                ErrorObject::new(codes::INTERNAL_ERROR, "client session closed"),
            ))),
        ]
    );
    assert!(r.sessions.is_empty());
}

#[test]
fn a_child_request_without_sessions_is_answered_by_the_proxy() {
    let mut r = Router::new(true, None);
    let mut out = Vec::new();
    r.on_child_message(request(3, "ping", json!({})), &mut out);
    assert_eq!(to_child(&mut out), response(3, json!({})));
    r.on_child_message(request(4, "sampling/createMessage", json!({})), &mut out);
    assert!(matches!(
        to_child(&mut out),
        Message::Response(Response { outcome: Err(e), .. }) if e.code == codes::INTERNAL_ERROR
    ));
}

#[test]
fn a_child_request_goes_to_the_most_recently_active_session_when_none_is_busy() {
    let mut r = Router::new(true, None);
    let now = Instant::now();
    let mut out = Vec::new();
    r.attach(1);
    r.attach(2);
    r.on_session_message(
        1,
        notification("notifications/roots/list_changed", json!({})),
        now,
        &mut out,
    );
    out.clear();
    r.on_child_message(request(7, "roots/list", json!({})), &mut out);
    assert!(
        matches!(out.as_slice(), [Out::Session(1, Message::Request(_))]),
        "{out:?}"
    );
}

#[test]
fn request_timeout_answers_the_session_and_cancels_in_the_child() {
    let timeout = Duration::from_millis(100);
    let mut r = Router::new(false, Some(timeout));
    let now = Instant::now();
    let mut out = Vec::new();
    r.attach(1);
    r.on_session_message(1, request(5, "tools/call", json!({})), now, &mut out);
    let id = child_id(&to_child(&mut out));
    assert_eq!(r.next_deadline(), Some(now + timeout));
    r.expire(now + timeout / 2, &mut out);
    assert!(out.is_empty());
    r.expire(now + timeout, &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[0],
        Out::Child(notification(
            "notifications/cancelled",
            json!({"requestId": id, "reason": "timeout"})
        ))
    );
    assert!(matches!(
        &out[1],
        Out::Session(1, Message::Response(Response { id: Some(RequestId::Number(5)), outcome: Err(e) }))
            if e.code == codes::REQUEST_TIMEOUT
    ));
    assert_eq!(r.next_deadline(), None);
}

#[test]
fn fail_all_answers_every_pending_request_and_init_waiter() {
    let mut r = Router::new(true, None);
    let now = Instant::now();
    let mut out = Vec::new();
    r.attach(1);
    r.attach(2);
    r.on_session_message(1, request(1, "initialize", json!({})), now, &mut out);
    r.on_session_message(2, request(1, "initialize", json!({})), now, &mut out);
    r.on_session_message(2, request(2, "tools/list", json!({})), now, &mut out);
    out.clear();
    r.fail_all(&ErrorObject::new(codes::INTERNAL_ERROR, "gone"), &mut out);
    let mut answered: Vec<(SessionKey, Option<RequestId>)> = out
        .iter()
        .map(|o| match o {
            Out::Session(k, m) => (*k, m.id().cloned()),
            Out::Child(m) => panic!("nothing goes to a dead child: {m:?}"),
        })
        .collect();
    answered.sort_by_key(|(k, id)| (*k, format!("{id:?}")));
    assert_eq!(
        answered,
        vec![
            (1, Some(RequestId::Number(1))),
            (2, Some(RequestId::Number(1))),
            (2, Some(RequestId::Number(2))),
        ]
    );
}

#[test]
fn shared_initialize_is_cached_and_initialized_reaches_the_child_once() {
    let mut r = Router::new(true, None);
    let now = Instant::now();
    let mut out = Vec::new();
    for key in 1..=3 {
        r.attach(key);
    }
    r.on_session_message(1, request(1, "initialize", json!({})), now, &mut out);
    let id = child_id(&to_child(&mut out));
    // Session 2 waits for the answer already in flight.
    r.on_session_message(2, request(7, "initialize", json!({})), now, &mut out);
    assert!(out.is_empty());
    r.on_child_message(response(id, json!({"v": 1})), &mut out);
    assert_eq!(
        out,
        vec![
            Out::Session(2, response(7, json!({"v": 1}))),
            Out::Session(1, response(1, json!({"v": 1}))),
        ]
    );
    out.clear();
    // Session 3 is answered from the cache.
    r.on_session_message(3, request(8, "initialize", json!({})), now, &mut out);
    assert_eq!(out, vec![Out::Session(3, response(8, json!({"v": 1})))]);
    out.clear();
    // The initializer leaves before sending `initialized`: the first session
    // to send it reaches the child, and only that one.
    r.detach(1, &mut out);
    assert!(out.is_empty());
    let initialized = notification("notifications/initialized", json!({}));
    r.on_session_message(3, initialized.clone(), now, &mut out);
    assert_eq!(to_child(&mut out), initialized);
    r.on_session_message(2, initialized, now, &mut out);
    assert!(out.is_empty());
}

#[test]
fn a_failed_initialize_is_not_cached() {
    let mut r = Router::new(true, None);
    let now = Instant::now();
    let mut out = Vec::new();
    r.attach(1);
    r.attach(2);
    r.on_session_message(1, request(1, "initialize", json!({})), now, &mut out);
    let id = child_id(&to_child(&mut out));
    r.on_session_message(2, request(1, "initialize", json!({})), now, &mut out);
    let failure = Message::Response(Response::error(
        Some(RequestId::Number(id)),
        ErrorObject::new(codes::INVALID_PARAMS, "unsupported version"),
    ));
    r.on_child_message(failure, &mut out);
    assert_eq!(out.len(), 2, "both sessions get the error: {out:?}");
    out.clear();
    // The next attempt goes to the child again.
    r.on_session_message(2, request(2, "initialize", json!({})), now, &mut out);
    assert!(matches!(to_child(&mut out), Message::Request(r) if r.method == "initialize"));
}

#[test]
fn progress_goes_to_the_owner_with_its_own_token_and_unknown_tokens_are_dropped() {
    let mut r = Router::new(true, None);
    let now = Instant::now();
    let mut out = Vec::new();
    r.attach(1);
    r.attach(2);
    let params = json!({"_meta": {"progressToken": "tok"}});
    r.on_session_message(1, request(1, "tools/call", params.clone()), now, &mut out);
    let Message::Request(to_child_1) = to_child(&mut out) else {
        panic!("a request")
    };
    r.on_session_message(2, request(1, "tools/call", params), now, &mut out);
    let Message::Request(to_child_2) = to_child(&mut out) else {
        panic!("a request")
    };
    let token_of = |req: &Request| {
        req.params
            .as_ref()
            .map(|p| p["_meta"]["progressToken"].clone())
    };
    let (t1, t2) = (token_of(&to_child_1), token_of(&to_child_2));
    assert_ne!(t1, t2);
    let progress = |token: Value| {
        notification(
            "notifications/progress",
            json!({"progressToken": token, "progress": 1}),
        )
    };
    r.on_child_message(progress(t2.clone().unwrap_or_default()), &mut out);
    assert_eq!(out, vec![Out::Session(2, progress(json!("tok")))]);
    out.clear();
    r.on_child_message(progress(json!(12345)), &mut out);
    assert!(out.is_empty());
    // Once the request is answered, its token is forgotten.
    r.on_child_message(
        response(child_id(&Message::Request(to_child_2)), json!({})),
        &mut out,
    );
    out.clear();
    r.on_child_message(progress(t2.unwrap_or_default()), &mut out);
    assert!(out.is_empty());
}

mod bijection {
    use proptest::prelude::*;

    use super::*;

    /// Requests from several sessions in any interleaving, with ids that
    /// collide across sessions, answered by the child in any order.
    fn scenario() -> impl Strategy<Value = (Vec<(u64, i64)>, Vec<usize>)> {
        // up to 6 sessions, ids from a small range so sessions reuse each other's ids
        proptest::collection::vec((0u64..6, 0i64..8), 1..60)
            .prop_map(|pairs| {
                // unique per session: a client never reuses an id in flight
                let mut seen = std::collections::BTreeSet::new();
                pairs
                    .into_iter()
                    .filter(|p| seen.insert(*p))
                    .collect::<Vec<_>>()
            })
            .prop_flat_map(|requests| {
                let order: Vec<usize> = (0..requests.len()).collect();
                (Just(requests), Just(order).prop_shuffle())
            })
    }

    proptest! {
        #[test]
        fn id_rewriting_is_a_bijection_in_any_interleaving((requests, answer_order) in scenario()) {
            let mut router = Router::new(true, None);
            for key in 0..6 {
                router.attach(key);
            }
            let now = Instant::now();
            let mut out = Vec::new();
            for (key, id) in &requests {
                router.on_session_message(
                    *key,
                    Message::Request(Request {
                        id: RequestId::Number(*id),
                        method: "tools/call".into(),
                        params: Some(json!({"name": "echo"})),
                    }),
                    now,
                    &mut out,
                );
            }
            // every request reached the child once, each with its own child-side id
            let child_ids: Vec<RequestId> = out
                .iter()
                .filter_map(|o| match o {
                    Out::Child(Message::Request(r)) => Some(r.id.clone()),
                    _ => None,
                })
                .collect();
            prop_assert_eq!(child_ids.len(), requests.len());
            let distinct: std::collections::BTreeSet<String> =
                child_ids.iter().map(|id| format!("{id:?}")).collect();
            prop_assert_eq!(distinct.len(), child_ids.len(), "child-side ids collide");

            // the child answers in any order; each answer names which request it was
            let mut back = Vec::new();
            for i in answer_order {
                router.on_child_message(
                    Message::Response(Response::result(child_ids[i].clone(), json!({"n": i}))),
                    &mut back,
                );
            }
            let mut delivered: Vec<(u64, i64, usize)> = back
                .into_iter()
                .filter_map(|o| match o {
                    Out::Session(key, Message::Response(r)) => match (r.id, r.outcome) {
                        (Some(RequestId::Number(id)), Ok(v)) => {
                            Some((key, id, v["n"].as_u64().unwrap_or(u64::MAX) as usize))
                        }
                        _ => None,
                    },
                    _ => None,
                })
                .collect();
            delivered.sort_unstable();
            let mut expected: Vec<(u64, i64, usize)> = requests
                .iter()
                .enumerate()
                .map(|(i, (key, id))| (*key, *id, i))
                .collect();
            expected.sort_unstable();
            // exactly one answer per request, to its own session, with its own id
            prop_assert_eq!(delivered, expected);
        }
    }
}
