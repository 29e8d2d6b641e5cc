//! Any bytes into the streaming decoder, for every protocol version, whole
//! and in chunks (byte 0 of the input chooses the chunk sizes and a small
//! packet size limit): no panic, the same packets and the same first error
//! whatever the chunking, `Ok(None)` never consumes, and every packet
//! decoded re-encodes to bytes that decode to it again; and the borrowed
//! decoder (`decode_ref` over the whole input) gives the same packets, the
//! same lengths and the same first error as the owned one, each borrowed
//! PUBLISH checked accessor by accessor against the owned one. See
//! `mqtt_wire::arbitrary::check_decode_any_chunking`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mqtt_wire::arbitrary::check_decode_any_chunking(data);
});
