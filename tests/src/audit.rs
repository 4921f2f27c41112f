//! The audit log a binary under test writes (`--audit-log PATH`): its records, read as they land.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde_json::Value;

/// The records in the file now, one JSON object per line (none when the file is not there yet).
pub fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The records once at least `n` have been written, or after 10 s (the writer flushes when its
/// queue is empty).
pub fn wait_for_records(path: &Path, n: usize) -> Vec<Value> {
    wait_until(path, |recs| recs.len() >= n)
}

/// The records once `done` holds of them (say, the record of the last request sent is there:
/// records land in the order requests end, a little after their answers), or after 10 s.
pub fn wait_until(path: &Path, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let recs = records(path);
        if done(&recs) || Instant::now() > deadline {
            return recs;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
