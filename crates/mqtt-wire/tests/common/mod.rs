//! Helpers shared by the byte-vector tests.
#![allow(dead_code, unreachable_pub)]

use bytes::{Bytes, BytesMut};
use mqtt_wire::*;

/// PINGREQ, appended after every vector to prove exactly one packet is taken.
pub const NEXT: [u8; 2] = [0xc0, 0x00];

pub fn s(x: &str) -> MqttString {
    MqttString::try_from(x).unwrap()
}

pub fn name(x: &str) -> TopicName {
    TopicName::try_from(x).unwrap()
}

pub fn filter(x: &str) -> TopicFilter {
    TopicFilter::try_from(x).unwrap()
}

pub fn pid(v: u16) -> PacketId {
    PacketId::new(v).unwrap()
}

pub fn b(x: &'static [u8]) -> Bytes {
    Bytes::from_static(x)
}

/// Decodes `bytes` followed by a PINGREQ as `v`; checks the packet, that the
/// PINGREQ is left in the buffer, and that encoding gives `bytes` back.
pub fn check(v: ProtocolVersion, bytes: &[u8], expected: Packet) {
    let mut buf = BytesMut::from(bytes);
    buf.extend_from_slice(&NEXT);
    let p = decode(&mut buf, &DecodeConfig::new(v)).unwrap().unwrap();
    assert_eq!(p, expected);
    assert_eq!(&buf[..], &NEXT, "exactly one packet consumed");
    let mut out = BytesMut::new();
    let n = expected.encode(v, &mut out).unwrap();
    assert_eq!(&out[..], bytes, "encoding gives the vector back");
    assert_eq!(n, bytes.len());
    assert_eq!(expected.encoded_len(v), n);
}

/// Decodes `bytes` as `v` and returns the error it must give.
pub fn reject(v: ProtocolVersion, bytes: &[u8]) -> DecodeError {
    let mut buf = BytesMut::from(bytes);
    match decode(&mut buf, &DecodeConfig::new(v)) {
        Err(e) => e,
        other => panic!("{bytes:02x?} decoded as {other:?}"),
    }
}

/// Decodes `bytes` as `v`, which must be one whole valid packet.
pub fn accept(v: ProtocolVersion, bytes: &[u8]) -> Packet {
    let mut buf = BytesMut::from(bytes);
    let p = decode(&mut buf, &DecodeConfig::new(v)).unwrap().unwrap();
    assert!(buf.is_empty());
    p
}

pub fn encode(v: ProtocolVersion, p: &Packet) -> Result<Vec<u8>, EncodeError> {
    let mut out = BytesMut::new();
    p.encode(v, &mut out)?;
    Ok(out.to_vec())
}
