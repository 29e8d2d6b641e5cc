//! An `arbitrary` server setup and sequence of operations (bytes from the
//! client — CONNECT of every version, valid packets built for the
//! connection's state, split, mutated or raw —, time steps, timeouts,
//! transport closes, every command, `take_session` and a resumed next
//! connection) run against one `ServerConnection` with a fake clock, every
//! invariant checked after every step: no panic, misuse refused without
//! effect, only CONNACK/AUTH before the CONNACK, one CONNACK, DISCONNECT
//! only after a successful one, the client's limits respected, in-flight
//! within its Receive Maximum, bounded memory, silence once closed. See
//! `mqtt_session::arbitrary::check_server`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mqtt_session::arbitrary::check_server(data);
});
