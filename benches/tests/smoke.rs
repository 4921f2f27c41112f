//! Smoke test of the load harness (not a benchmark: no performance
//! assertions): target 2 (mcp-bastion's transports over the in-process rmcp
//! echo) for 1 s with 2 clients over each transport, through the same start,
//! load, sampling and stop code the harness runs.
#![allow(clippy::unwrap_used)]

use std::{path::PathBuf, time::Duration};

use benches::{
    client::Transport,
    load::{self, LoadSpec},
    peers::PeerInstalls,
    process_tree::{self, PeakSampler},
    targets::{Running, Target, Tools},
};

fn tools() -> Tools {
    let bench_server = PathBuf::from(env!("CARGO_BIN_EXE_bench-server"));
    Tools {
        echo_server: PathBuf::from("bench-echo-server-not-used-here"),
        bastion: PathBuf::from("mcp-bastion-not-used-here"),
        peers: PeerInstalls::default(),
        log_dir: std::env::temp_dir().join(format!("bench-smoke-{}", std::process::id())),
        bench_server,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_loads_the_in_process_transport_without_errors() {
    let tools = tools();
    for transport in [Transport::Streamable, Transport::Sse] {
        let target = Target::Bastion;
        let mut running = tokio::task::block_in_place(|| Running::start(target, transport, &tools))
            .unwrap_or_else(|e| panic!("start: {e}"));
        let sampler = PeakSampler::start(running.pid());
        let spec = LoadSpec {
            endpoint: running.endpoint(target, transport),
            clients: 2,
            warmup: Duration::from_millis(300),
            duration: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            rate: None,
        };
        let result = load::run(&spec).await;
        let usage = process_tree::usage(running.pid());
        let peak = sampler.stop();
        tokio::task::block_in_place(|| running.stop());
        assert!(
            result.requests > 0,
            "{transport:?}: no request succeeded; first failure: {:?}\n{}",
            result.first_error,
            benches::targets::log_tail(&running.log, 20)
        );
        assert_eq!(
            result.errors, 0,
            "{transport:?}: first failure: {:?}",
            result.first_error
        );
        assert_eq!(result.latency_us.len(), result.requests);
        if cfg!(target_os = "linux") {
            assert!(
                peak.pss_bytes > 0 && usage.pss_bytes > 0,
                "no PSS read from /proc"
            );
            assert!(peak.pss_bytes <= peak.rss_bytes, "{peak:?}");
        }
    }
}

/// A paced run offers its rate and no more: every client sends on its
/// schedule, so the window holds at most one call per scheduled slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_run_sends_no_more_than_its_rate() {
    let tools = tools();
    let (target, transport) = (Target::Bastion, Transport::Streamable);
    let mut running = tokio::task::block_in_place(|| Running::start(target, transport, &tools))
        .unwrap_or_else(|e| panic!("start: {e}"));
    let (rate, clients, window) = (200.0, 4, Duration::from_secs(1));
    let spec = LoadSpec {
        endpoint: running.endpoint(target, transport),
        clients,
        warmup: Duration::from_millis(300),
        duration: window,
        timeout: Duration::from_secs(10),
        rate: Some(rate),
    };
    let result = load::run(&spec).await;
    // Unpaced, the same clients send far more than 200 calls in a second.
    let saturating = load::run(&LoadSpec { rate: None, ..spec }).await;
    tokio::task::block_in_place(|| running.stop());
    assert_eq!(result.errors, 0, "first failure: {:?}", result.first_error);
    let slots = rate * window.as_secs_f64();
    assert!(
        result.requests > 0 && result.requests as f64 <= slots + clients as f64,
        "{} calls in a window of {slots} slots",
        result.requests
    );
    assert!(saturating.requests as f64 > slots + clients as f64);
}

/// The observed full stack (issue 21) serves the harness's clients over
/// both transports with the audit log and OTLP export on, and both really
/// happen: the harness's OTLP sink receives exports and the audit log holds
/// an `answered` record of a `tools/call` of `echo`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_observed_full_stack_audits_and_exports_what_it_serves() {
    let tools = tools();
    for transport in [Transport::Streamable, Transport::Sse] {
        let target = Target::FullStackObserved;
        let mut running = tokio::task::block_in_place(|| Running::start(target, transport, &tools))
            .unwrap_or_else(|e| panic!("start: {e}"));
        let spec = LoadSpec {
            endpoint: running.endpoint(target, transport),
            clients: 2,
            warmup: Duration::from_millis(300),
            duration: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            rate: None,
        };
        let result = load::run(&spec).await;
        // stopped with SIGTERM: the server exports the spans it still holds
        tokio::task::block_in_place(|| running.stop());
        let log = benches::targets::log_tail(&running.log, 20);
        assert!(
            result.requests > 0 && result.errors == 0,
            "{transport:?}: {} calls, {} errors; first failure: {:?}\n{log}",
            result.requests,
            result.errors,
            result.first_error
        );
        let observed = running.observed().unwrap();
        assert!(
            observed.exported.exports > 0 && observed.exported.bytes > 0,
            "{transport:?}: nothing exported: {observed:?}\n{log}"
        );
        assert!(observed.audit_records > 0, "{transport:?}: no audit record");
        let audit_log = tools.log_dir.join(format!(
            "full-stack-observed-{}-audit.jsonl",
            transport.as_str()
        ));
        let text = std::fs::read_to_string(&audit_log).unwrap();
        let answered_call = text.lines().any(|line| {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            record["method"] == "tools/call"
                && record["tool"] == "echo"
                && record["outcome"] == "answered"
                && record["subject"] == "bench-client"
        });
        assert!(
            answered_call,
            "{transport:?}: no answered echo call in\n{text}"
        );
    }
}
