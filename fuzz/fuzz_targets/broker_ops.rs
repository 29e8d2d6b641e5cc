//! An `arbitrary` broker setup (bounds, capabilities, up to six clients of
//! mixed protocol versions) and sequence of operations (connections with
//! takeovers, Clean Start, session expiry, Wills and credentials the hooks
//! allow, deny or defer; subscriptions, publishes, acknowledgements,
//! DISCONNECTs, drops, withheld bytes, injected and raw bytes, answers to
//! deferred authentication, administrative closes, clock steps and jumps)
//! run on the public harness `mqtt_broker::testing`, every invariant
//! checked after every operation: no panic, counters consistent, every
//! bound held, the ACL never bypassed, output that decodes, nothing after a
//! close, sane deadlines. See `mqtt_broker::arbitrary::check_ops`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mqtt_broker::arbitrary::check_ops(data);
});
