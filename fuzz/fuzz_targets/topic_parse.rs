//! Bytes into the Topic Name, Topic Filter and `$share` parsers, checked
//! against a direct reading of the rules (see `mqtt_topic::fuzzing`). A `\n`
//! in the input splits it into a filter and a name that are also matched
//! through `matches`, the subscription tree and the retained index.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mqtt_topic::fuzzing::check_parse(data);
});
