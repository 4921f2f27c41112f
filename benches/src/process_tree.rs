//! Memory and CPU time of a process and all its descendants, from Linux
//! `/proc` (elsewhere every figure is zero).
//!
//! - PSS, the figure the harness compares: the sum of `Pss` from
//!   `/proc/<pid>/smaps_rollup` over the tree, sampled every 100 ms by
//!   [`PeakSampler`]; the peak of those sums is reported. A page shared by
//!   several processes counts once in total, split between them, so a tree of
//!   32 identical per-session children is not charged 32 times for the code
//!   and libraries they share.
//! - RSS: the same sum of `VmRSS` from `/proc/<pid>/status`, shown beside it.
//!   Summed over a tree it counts every shared page once per process, so it
//!   overstates a tree with children and is not used to compare trees.
//! - CPU: `utime + stime + cutime + cstime` from `/proc/<pid>/stat`, summed
//!   over the live tree (a reaped child's time is in its parent's `c*time`,
//!   so nothing is counted twice), in `USER_HZ` ticks (100 per second).

use std::{
    collections::HashMap,
    fs,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

/// Clock ticks per second of the `/proc/<pid>/stat` times (Linux `USER_HZ`).
const USER_HZ: f64 = 100.0;

/// How often [`PeakSampler`] reads the tree.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// One reading of a process tree.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TreeUsage {
    /// Processes in the tree, the root included.
    pub processes: usize,
    /// Sum of their proportional set sizes, in bytes.
    pub pss_bytes: u64,
    /// Sum of their resident set sizes, in bytes.
    pub rss_bytes: u64,
    /// User + system CPU seconds of the tree, reaped children included.
    pub cpu_seconds: f64,
}

/// `(pid, ppid)` of every process, from `/proc/<pid>/stat`.
fn parents() -> HashMap<u32, u32> {
    let mut map = HashMap::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return map;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(fields) = stat_fields(pid) {
            // fields[0] is the state, fields[1] the parent pid
            if let Some(ppid) = fields.get(1).and_then(|f| f.parse().ok()) {
                map.insert(pid, ppid);
            }
        }
    }
    map
}

/// The fields of `/proc/<pid>/stat` after the `(comm)`, which may hold spaces.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    Some(after.split_whitespace().map(str::to_owned).collect())
}

/// `root` and all its descendants that are alive now.
pub fn tree(root: u32) -> Vec<u32> {
    let parents = parents();
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (&pid, &ppid) in &parents {
        children.entry(ppid).or_default().push(pid);
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(kids) = children.get(&out[i]) {
            out.extend(kids.iter().copied());
        }
        i += 1;
    }
    out
}

fn rss_bytes(pid: u32) -> u64 {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn pss_bytes(pid: u32) -> u64 {
    let Ok(rollup) = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
        return 0;
    };
    rollup
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn cpu_ticks(pid: u32) -> u64 {
    // after `(comm)`: state=0 … utime=11 stime=12 cutime=13 cstime=14
    stat_fields(pid).map_or(0, |f| {
        f.iter()
            .skip(11)
            .take(4)
            .filter_map(|v| v.parse::<u64>().ok())
            .sum()
    })
}

/// Reads the tree under `root` now.
pub fn usage(root: u32) -> TreeUsage {
    let pids = tree(root);
    TreeUsage {
        processes: pids.len(),
        pss_bytes: pids.iter().map(|&p| pss_bytes(p)).sum(),
        rss_bytes: pids.iter().map(|&p| rss_bytes(p)).sum(),
        cpu_seconds: pids.iter().map(|&p| cpu_ticks(p)).sum::<u64>() as f64 / USER_HZ,
    }
}

/// Peak memory of a tree over a sampling period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeakMemory {
    /// Highest sum of `Pss`, bytes: the figure trees are compared by.
    pub pss_bytes: u64,
    /// Highest sum of `VmRSS`, bytes.
    pub rss_bytes: u64,
}

/// Samples a tree's PSS and RSS on a thread until stopped, keeping the peaks.
#[derive(Debug)]
pub struct PeakSampler {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<PeakMemory>,
}

impl PeakSampler {
    /// Starts sampling the tree under `root`.
    pub fn start(root: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = thread::spawn(move || {
            let mut peak = PeakMemory::default();
            while !flag.load(Ordering::Relaxed) {
                let pids = tree(root);
                let rss: u64 = pids.iter().map(|&p| rss_bytes(p)).sum();
                let pss: u64 = pids.iter().map(|&p| pss_bytes(p)).sum();
                peak.rss_bytes = peak.rss_bytes.max(rss);
                peak.pss_bytes = peak.pss_bytes.max(pss);
                thread::sleep(SAMPLE_EVERY);
            }
            peak
        });
        Self { stop, handle }
    }

    /// Stops sampling; returns the peaks.
    pub fn stop(self) -> PeakMemory {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_and_is_its_own_tree_root() {
        let me = std::process::id();
        let u = usage(me);
        assert!(u.processes >= 1);
        if cfg!(target_os = "linux") {
            assert!(u.rss_bytes > 0);
            assert!(u.pss_bytes > 0 && u.pss_bytes <= u.rss_bytes, "{u:?}");
            assert_eq!(tree(me)[0], me);
        }
    }
}
