//! Load harness (see issue 8).
fn main() {}
