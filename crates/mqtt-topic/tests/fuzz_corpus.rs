//! Replays every committed fuzz corpus file through the same checks the fuzz
//! targets run (`mqtt_topic::fuzzing`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_file() {
            let data = std::fs::read(&path).unwrap();
            let r = std::panic::catch_unwind(|| check(&data));
            assert!(r.is_ok(), "{} fails", path.display());
            n += 1;
        }
    }
    assert!(n >= 20, "only {n} seeds in {}", dir.display());
}

#[test]
fn topic_parse_corpus() {
    replay("topic_parse", mqtt_topic::fuzzing::check_parse);
}

#[test]
fn topic_tree_ops_corpus() {
    replay("topic_tree_ops", mqtt_topic::fuzzing::check_tree_ops);
}
