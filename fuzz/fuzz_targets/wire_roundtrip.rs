//! A valid packet of a version, built from the input by
//! `mqtt_wire::arbitrary::packet`, encoded and decoded: the same packet
//! comes back, `encoded_len` is exact, size limits and short buffers are
//! refused, and other versions refuse what they cannot carry. See
//! `mqtt_wire::arbitrary::check_roundtrip`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mqtt_wire::arbitrary::check_roundtrip(data);
});
