//! What the backend logs: the child's stderr with its pid, never an
//! environment value, and only a short prefix of a rejected stdout line.

use std::{
    collections::BTreeMap,
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::json;
use tracing::{
    Level, Metadata, Subscriber,
    field::{Field, Visit},
    span,
};

use super::{Client, fixture};
use crate::{
    backend::{
        SessionContext,
        stdio::{EnvSource, SessionEnv},
    },
    principal::Principal,
};

#[derive(Debug, Clone)]
struct Captured {
    level: Level,
    target: String,
    fields: BTreeMap<String, String>,
}

/// Records every event on the thread it is the default for.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Captured>>>);

impl Recorder {
    fn events(&self) -> Vec<Captured> {
        self.0.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(BTreeMap::new());
        event.record(&mut fields);
        if let Ok(mut events) = self.0.lock() {
            events.push(Captured {
                level: *event.metadata().level(),
                target: event.metadata().target().to_owned(),
                fields: fields.0,
            });
        }
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

// A current-thread runtime: the child's tasks run on this thread, where the
// recorder is the default subscriber.
#[tokio::test]
async fn stderr_goes_to_tracing_with_the_pid_and_env_values_never_appear() {
    let recorder = Recorder::default();
    let dispatch = tracing::Dispatch::new(recorder.clone());
    // While exactly one dispatcher exists, tracing-core caches a callsite's
    // interest from the default of whichever thread hits it first: another
    // test's thread, without a subscriber, would switch our events off. A
    // second live dispatcher makes it ask every dispatcher instead.
    let _second = tracing::Dispatch::new(Recorder::default());
    let _guard = tracing::dispatcher::set_default(&dispatch);

    let backend = fixture()
        .env("API_KEY", "fixed-s3cret")
        .session_env(
            SessionEnv::new()
                .map(
                    "TENANT_TOKEN",
                    EnvSource::PrincipalEnv("tenant_token".into()),
                )
                .expect("allowed"),
        )
        .build()
        .expect("valid config");
    let mut ctx = SessionContext::default();
    ctx.extensions
        .insert(Principal::new("alice").with_env([("tenant_token", "session-s3cret")]));
    let mut client = Client::connect(&backend, ctx).await;
    let pid = client.pid(1).await;
    // A 1000-byte line of `x`: not JSON, under the line limit.
    let result = client.call(2, "garbage", json!({"bytes": 1000})).await;
    assert_eq!(result, json!({"ok": true}));

    // Stderr is read concurrently with stdout: give it a moment.
    let stderr_line = format!("echo server {pid} starting");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let forwarded = loop {
        let found = recorder.events().into_iter().find(|e| {
            e.fields
                .get("message")
                .is_some_and(|m| m.contains(&stderr_line))
        });
        if let Some(event) = found {
            break event;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stderr was not forwarded"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(forwarded.target, "mcp_bastion::stdio");
    assert_eq!(forwarded.level, Level::INFO);
    assert_eq!(forwarded.fields.get("pid"), Some(&pid.to_string()));

    let events = recorder.events();
    let all_text: String = events
        .iter()
        .flat_map(|e| e.fields.values())
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!all_text.contains("s3cret"), "an env value was logged");
    // The spawn log names the variables (a reserved name cannot be mapped at
    // all: `SessionEnv` refuses it when configured).
    assert!(all_text.contains("TENANT_TOKEN") && all_text.contains("API_KEY"));
    // Rejected stdout lines are logged by a short prefix only.
    assert!(events.iter().any(|e| {
        e.level == Level::WARN
            && e.fields
                .get("message")
                .is_some_and(|m| m.contains("not JSON-RPC"))
    }));
    assert!(
        !all_text.contains(&"x".repeat(33)),
        "more than a prefix was logged"
    );
}
