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
        echo_server: PathBuf::from(env!("CARGO_BIN_EXE_bench-echo-server")),
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
                peak.rss_bytes > 0 && usage.rss_bytes > 0,
                "no RSS read from /proc"
            );
        }
    }
}
