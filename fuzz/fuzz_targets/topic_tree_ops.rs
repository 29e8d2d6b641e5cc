//! An `arbitrary` sequence of insert / remove / match operations on the
//! subscription tree and the retained index, each lookup checked against a
//! linear scan; at the end the tree must equal a fresh one built from what
//! remains (see `mqtt_topic::fuzzing::run_ops`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mqtt_topic::fuzzing::check_tree_ops(data);
});
