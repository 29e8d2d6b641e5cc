//! The borrowed decoder, `decode_ref`: annotated byte vectors, the
//! incomplete-input contract, and the same verdict as `decode` on valid and
//! malformed input (the property tests and the fuzz target check the same
//! on arbitrary bytes, through `mqtt_wire::arbitrary::decode_whole_ref`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use bytes::BytesMut;
use mqtt_wire::arbitrary::check_publish_ref;
use mqtt_wire::{
    decode, decode_ref, DecodeConfig, DecodeError, Delivery, Packet, PacketId, PacketRef,
    PacketType, PayloadFormat, PropertyId, ProtocolVersion, PublishRef, QoS, SubscriptionId,
    TopicError,
};
use std::num::NonZeroU16;

const V311: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

/// `decode_ref` and `decode` of the same bytes: the same outcome, and for
/// a packet the same length consumed.
fn both(bytes: &[u8], v: ProtocolVersion) -> Result<Option<(Packet, usize)>, DecodeError> {
    let cfg = DecodeConfig::new(v);
    let mut buf = BytesMut::from(bytes);
    let owned = decode(&mut buf, &cfg).map(|p| p.map(|p| (p, bytes.len() - buf.len())));
    let borrowed = decode_ref(bytes, &cfg).map(|p| p.map(|(p, n)| (p.into_packet(), n)));
    assert_eq!(borrowed, owned, "decode_ref and decode of {bytes:02x?}");
    borrowed
}

fn publish_ref(bytes: &[u8], v: ProtocolVersion) -> (PublishRef<'_>, usize) {
    match decode_ref(bytes, &DecodeConfig::new(v)) {
        Ok(Some((PacketRef::Publish(p), n))) => (p, n),
        other => panic!("not a PUBLISH: {other:?}"),
    }
}

#[test]
fn publish_v311_borrows_topic_and_payload() {
    let wire = [
        0x3b, 0x09, // PUBLISH, DUP, QoS 1, RETAIN; Remaining Length 9
        0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
        0x00, 0x0a, // packet id 10
        b'h', b'i', // payload
        0xc0, 0x00, // the next packet: PINGREQ
    ];
    let (p, n) = publish_ref(&wire, V311);
    assert_eq!(n, 11);
    assert!(p.dup() && p.retain());
    assert_eq!(p.qos(), QoS::AtLeastOnce);
    assert_eq!(p.packet_id(), PacketId::new(10));
    assert_eq!(
        p.delivery(),
        Delivery::AtLeastOnce(PacketId::new(10).unwrap())
    );
    assert_eq!(p.topic(), Some("a/b"));
    assert_eq!(p.topic_bytes(), b"a/b");
    assert_eq!(p.payload(), b"hi");
    // Slices of the input, not copies.
    assert!(std::ptr::eq(p.payload().as_ptr(), &wire[9]));
    assert!(p.properties().is_empty());
    let (owned, _) = both(&wire, V311).unwrap().unwrap();
    let Packet::Publish(o) = owned else {
        panic!("{owned:?}")
    };
    check_publish_ref(&p, &o);
    // The rest of the buffer is the next packet.
    assert_eq!(
        decode_ref(&wire[n..], &DecodeConfig::new(V311)),
        Ok(Some((PacketRef::Other(Packet::PingReq), 2)))
    );
}

#[test]
fn publish_v5_every_property() {
    let wire = [
        0x30, 51, // PUBLISH QoS 0, Remaining Length 51
        0x00, 0x00, // empty topic: the alias stands in
        46,   // Property Length
        0x01, 1, // payload format: UTF-8
        0x02, 0, 0, 0, 60, // message expiry 60
        0x23, 0, 7, // topic alias 7
        0x08, 0, 3, b'r', b'/', b'1', // response topic "r/1"
        0x09, 0, 2, 0xde, 0xad, // correlation data
        0x03, 0, 4, b't', b'e', b'x', b't', // content type "text"
        0x26, 0, 1, b'k', 0, 1, b'v', // user property k=v
        0x0b, 0x80, 0x01, // subscription identifier 128
        0x26, 0, 1, b'x', 0, 2, b'y', b'z', // user property x=yz
        b'o', b'k', // payload
    ];
    let (p, n) = publish_ref(&wire, V5);
    assert_eq!(n, wire.len());
    assert_eq!(p.topic(), None);
    assert_eq!(p.topic_bytes(), b"");
    assert_eq!(p.payload(), b"ok");
    let props = p.properties();
    assert_eq!(props.payload_format_indicator, Some(PayloadFormat::Utf8));
    assert_eq!(props.message_expiry_interval, Some(60));
    assert_eq!(props.topic_alias, NonZeroU16::new(7));
    assert_eq!(props.response_topic(), Some("r/1"));
    assert_eq!(props.correlation_data(), Some(&[0xde, 0xad][..]));
    assert_eq!(props.content_type(), Some("text"));
    assert_eq!(
        props.user_properties().collect::<Vec<_>>(),
        [("k", "v"), ("x", "yz")]
    );
    assert_eq!(
        props.subscription_identifiers().collect::<Vec<_>>(),
        [SubscriptionId::new(128).unwrap()]
    );
    let (owned, _) = both(&wire, V5).unwrap().unwrap();
    let Packet::Publish(o) = owned else {
        panic!("{owned:?}")
    };
    check_publish_ref(&p, &o);
    assert_eq!(props.to_properties(), o.properties);
    assert!(format!("{p:?}").contains("\"text\""));
}

#[test]
fn publish_v5_field_properties_between_kept_ones_are_skipped() {
    let wire = [
        0x30, 23, // PUBLISH QoS 0
        0x00, 0x01, b't', // topic "t"
        16,   // Property Length
        0x03, 0, 1, b'c', // content type "c"
        0x23, 0, 7, // topic alias 7 (between kept entries)
        0x26, 0, 1, b'k', 0, 1, b'v', // user property k=v
        0x01, 0, // payload format (after the last kept one)
        b'p', b'q', b'r', // payload
    ];
    let (p, _) = publish_ref(&wire, V5);
    let props = p.properties();
    assert_eq!(props.content_type(), Some("c"));
    assert_eq!(props.topic_alias, NonZeroU16::new(7));
    assert_eq!(props.user_properties().collect::<Vec<_>>(), [("k", "v")]);
    assert_eq!(
        props.payload_format_indicator,
        Some(PayloadFormat::Unspecified)
    );
    let (owned, _) = both(&wire, V5).unwrap().unwrap();
    let Packet::Publish(o) = owned else {
        panic!("{owned:?}")
    };
    check_publish_ref(&p, &o);
}

#[test]
fn other_packets_are_owned_and_equal_to_decode() {
    let cases: &[(&[u8], ProtocolVersion, PacketType)] = &[
        // CONNECT 3.1.1, client id "c", clean session, keep alive 60.
        (
            &[
                0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 1, b'c',
            ],
            V311,
            PacketType::Connect,
        ),
        // SUBSCRIBE id 1, "a/+" QoS 1.
        (
            &[0x82, 8, 0, 1, 0, 3, b'a', b'/', b'+', 1],
            V311,
            PacketType::Subscribe,
        ),
        // PUBACK id 5 (in place, no copy); 5.0 PUBACK with a reason string
        // (copied).
        (&[0x40, 2, 0, 5], V311, PacketType::PubAck),
        (
            &[0x40, 8, 0, 5, 0x10, 4, 0x1f, 0, 1, b'x'],
            V5,
            PacketType::PubAck,
        ),
        (&[0xc0, 0], V311, PacketType::PingReq),
        (&[0xd0, 0], V5, PacketType::PingResp),
        (&[0xe0, 0], V311, PacketType::Disconnect),
        (&[0xf0, 0], V5, PacketType::Auth),
    ];
    for &(wire, v, ty) in cases {
        let r = decode_ref(wire, &DecodeConfig::new(v)).unwrap().unwrap();
        assert!(matches!(r.0, PacketRef::Other(_)), "{ty:?}");
        assert_eq!(r.0.packet_type(), ty);
        assert_eq!(r.1, wire.len());
        let (p, n) = both(wire, v).unwrap().unwrap();
        assert_eq!((p.packet_type(), n), (ty, wire.len()));
    }
}

#[test]
fn every_prefix_is_incomplete() {
    let wire = [
        0x32, 0x0a, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x01, 0x00, b'h', b'i',
    ];
    // 5.0 QoS 1, empty property block.
    for cut in 0..wire.len() {
        assert_eq!(decode_ref(&wire[..cut], &DecodeConfig::new(V5)), Ok(None));
    }
    assert!(both(&wire, V5).unwrap().is_some());
}

#[test]
fn rejects_what_decode_rejects() {
    let cases: &[(&[u8], ProtocolVersion, DecodeError)] = &[
        // MQTT-3.3.2-2: a wildcard in a Topic Name.
        (
            &[0x30, 5, 0, 3, b'a', b'/', b'#'],
            V311,
            DecodeError::InvalidTopicName(TopicError::WildcardInName),
        ),
        // 3.1.1: an empty topic.
        (
            &[0x30, 2, 0, 0],
            V311,
            DecodeError::InvalidTopicName(TopicError::Empty),
        ),
        // 5.0: an empty topic without a Topic Alias.
        (&[0x30, 3, 0, 0, 0], V5, DecodeError::MissingTopic),
        // MQTT-2.3.1-1: packet id 0.
        (
            &[0x32, 5, 0, 1, b'a', 0, 0],
            V311,
            DecodeError::ZeroPacketId,
        ),
        // QoS 3 and DUP at QoS 0, from the fixed header.
        (&[0x36, 3, 0, 1, b'a'], V311, DecodeError::InvalidQoS),
        (&[0x38, 3, 0, 1, b'a'], V311, DecodeError::DupWithQoS0),
        // A repeated Content Type.
        (
            &[0x30, 10, 0, 1, b'a', 6, 3, 0, 0, 3, 0, 0],
            V5,
            DecodeError::DuplicateProperty(PropertyId::ContentType),
        ),
        // A property PUBLISH may not carry (Session Expiry Interval).
        (
            &[0x30, 9, 0, 1, b'a', 5, 0x11, 0, 0, 0, 1],
            V5,
            DecodeError::PropertyNotAllowed {
                property: PropertyId::SessionExpiryInterval,
                packet: PacketType::Publish,
            },
        ),
        // Topic Alias 0.
        (
            &[0x30, 7, 0, 1, b'a', 3, 0x23, 0, 0],
            V5,
            DecodeError::InvalidPropertyValue(PropertyId::TopicAlias),
        ),
        // The property block runs past the packet.
        (
            &[0x30, 6, 0, 1, b'a', 9, 0x01, 0],
            V5,
            DecodeError::UnexpectedEnd {
                packet: PacketType::Publish,
            },
        ),
        // Too large for the default limit, from the fixed header alone.
        (
            &[0x30, 0xff, 0xff, 0xff, 0x7f],
            V311,
            DecodeError::PacketTooLarge {
                size: 268_435_460,
                max: mqtt_wire::DEFAULT_MAX_PACKET_SIZE,
            },
        ),
        // Trailing bytes in a PINGREQ, and in a 3.1.1 PUBACK.
        (
            &[0xc0, 1, 0],
            V311,
            DecodeError::TrailingBytes {
                packet: PacketType::PingReq,
            },
        ),
        (
            &[0x40, 3, 0, 1, 0],
            V311,
            DecodeError::TrailingBytes {
                packet: PacketType::PubAck,
            },
        ),
        // AUTH in 3.1.1.
        (&[0xf0, 0], V311, DecodeError::ReservedPacketType(15)),
    ];
    for (wire, v, err) in cases {
        assert_eq!(both(wire, *v), Err(*err), "{wire:02x?}");
    }
    // An ill-formed UTF-8 Content Type: the same error either way.
    let bad_utf8 = [0x30, 8, 0, 1, b'a', 4, 3, 0, 1, 0xff];
    assert!(matches!(
        both(&bad_utf8, V5),
        Err(DecodeError::InvalidString(_))
    ));
}
