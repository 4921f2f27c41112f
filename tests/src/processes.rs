//! Linux `/proc` inspection: the children of a process, and whether a process is gone.

/// Direct children of `parent` from `/proc/*/stat`: `(pid, state, comm)`.
pub fn child_processes(parent: u32) -> Vec<(u32, char, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid …"; comm may contain spaces and parentheses
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_owned();
        let mut rest = stat[close + 1..].split_whitespace();
        let state = rest.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = rest.next().and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(parent) {
            found.push((pid, state, comm));
        }
    }
    found.sort();
    found
}

/// Whether process `pid` is gone (no `/proc/<pid>`): a child that must not outlive the proxy.
pub fn process_gone(pid: u32) -> bool {
    std::fs::metadata(format!("/proc/{pid}")).is_err()
}

#[cfg(test)]
mod unit {
    use std::process::Command;

    use super::*;

    #[test]
    fn lists_child_processes_from_proc() {
        let mut child = Command::new("sleep").arg("5").spawn().expect("spawn sleep");
        let children = child_processes(std::process::id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            children
                .iter()
                .any(|(pid, _, comm)| *pid == child.id() && comm == "sleep"),
            "{children:?}"
        );
    }
}
