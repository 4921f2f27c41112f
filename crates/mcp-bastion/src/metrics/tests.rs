#![allow(clippy::unwrap_used, reason = "tests")]

use super::labels;

#[test]
fn client_chosen_names_are_bounded_before_they_become_labels() {
    assert_eq!(labels::method("tools/call"), "tools/call");
    assert_eq!(labels::method("made/up/method"), "other");
    assert_eq!(labels::tool("echo"), "echo");
    assert_eq!(labels::tool(&"x".repeat(65)), "other");
    assert_eq!(labels::tool("drop table;"), "other");
    assert_eq!(labels::tool(""), "other");
    // after MAX_TOOL_LABELS distinct names, new ones share one label
    for i in 0..super::MAX_TOOL_LABELS {
        let _ = labels::tool(&format!("flood_{i}"));
    }
    assert_eq!(labels::tool("one_more_new_tool"), "other");
    assert_eq!(
        labels::tool("echo"),
        "echo",
        "names seen before keep theirs"
    );
}
