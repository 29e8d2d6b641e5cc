//! An `arbitrary` client setup and sequence of operations (bytes from the
//! server — valid packets built for the client's state, split, mutated or
//! raw —, time steps, timeouts, transport closes, every command, session
//! export and import) run against one `Client` with a fake clock, every
//! invariant checked after every step: no panic, misuse refused without
//! effect, output that decodes and obeys what the server granted, in-flight
//! within the Receive Maximum, sane deadlines, silence once closed. See
//! `mqtt_session::arbitrary::check_client`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mqtt_session::arbitrary::check_client(data);
});
