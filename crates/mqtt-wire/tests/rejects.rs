//! One test per rule the codec enforces, named after its spec statement id
//! (`mqtt5_*` for MQTT 5.0, `mqtt311_*` for 3.1.1). Each feeds the smallest
//! packet that breaks the rule and checks the typed error and the reason
//! code it maps to; most also show the nearest valid packet is accepted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;
use bytes::BytesMut;
use common::*;
use mqtt_wire::ProtocolVersion::{V3_1, V3_1_1, V5};
use mqtt_wire::*;

const MALFORMED: DisconnectReasonCode = DisconnectReasonCode::MalformedPacket;
const PROTOCOL: DisconnectReasonCode = DisconnectReasonCode::ProtocolError;

/// A PUBLISH (QoS 0) whose topic is `topic` (raw bytes).
fn publish_with_topic(v: ProtocolVersion, topic: &[u8]) -> Vec<u8> {
    let props = usize::from(v.is_v5());
    let mut out = vec![0x30, (2 + topic.len() + props) as u8, 0, topic.len() as u8];
    out.extend_from_slice(topic);
    if v.is_v5() {
        out.push(0);
    }
    out
}

/// A v5 PUBLISH (QoS 0, topic "t") with the given property bytes.
fn publish_with_props(props: &[u8]) -> Vec<u8> {
    let mut out = vec![
        0x30,
        (3 + 1 + props.len()) as u8,
        0,
        1,
        b't',
        props.len() as u8,
    ];
    out.extend_from_slice(props);
    out
}

/// A CONNECT with the given flags byte and payload after the client id "c".
fn connect(v: ProtocolVersion, flags: u8, client_id: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', v.level(), flags, 0, 60];
    if v.is_v5() {
        body.push(0);
    }
    body.extend_from_slice(&[0, client_id.len() as u8]);
    body.extend_from_slice(client_id);
    body.extend_from_slice(rest);
    let mut out = vec![0x10, body.len() as u8];
    out.extend_from_slice(&body);
    out
}

// ---- 1.5 data representation -------------------------------------------

#[test]
fn mqtt5_1_5_4_1_ill_formed_utf8_is_malformed() {
    // MQTT-1.5.4-1: U+D800 (ED A0 80) and a lone continuation byte.
    for bad in [&b"\xed\xa0\x80"[..], b"a\x80"] {
        for v in [V5, V3_1_1] {
            let e = reject(v, &publish_with_topic(v, bad));
            assert_eq!(
                e,
                DecodeError::InvalidTopicName(TopicError::String(StringError::InvalidUtf8))
            );
        }
        let e = reject(V5, &connect(V5, 0x02, bad, &[]));
        assert_eq!(e, DecodeError::InvalidString(StringError::InvalidUtf8));
        assert_eq!(e.reason_code(), MALFORMED);
    }
}

#[test]
fn mqtt311_1_5_3_1_ill_formed_utf8_closes() {
    // MQTT-1.5.3-1 (3.1.1): the client id with a surrogate.
    let e = reject(V3_1_1, &connect(V3_1_1, 0x02, b"\xed\xbf\xbf", &[]));
    assert_eq!(e, DecodeError::InvalidString(StringError::InvalidUtf8));
}

#[test]
fn mqtt5_1_5_4_2_null_character_is_malformed() {
    // MQTT-1.5.4-2 / MQTT-1.5.3-2 (3.1.1).
    for v in [V5, V3_1_1] {
        let e = reject(v, &connect(v, 0x02, b"a\0", &[]));
        assert_eq!(e, DecodeError::InvalidString(StringError::NullCharacter));
        assert_eq!(e.reason_code(), MALFORMED);
        let e = reject(v, &publish_with_topic(v, b"a\0"));
        assert_eq!(
            e,
            DecodeError::InvalidTopicName(TopicError::String(StringError::NullCharacter))
        );
    }
}

#[test]
fn mqtt311_1_5_3_2_null_character_closes() {
    // MQTT-1.5.3-2 (3.1.1): U+0000 in a user name.
    let e = reject(V3_1_1, &connect(V3_1_1, 0x82, b"c", &[0, 2, b'u', 0]));
    assert_eq!(e, DecodeError::InvalidString(StringError::NullCharacter));
}

#[test]
fn mqtt5_1_5_4_3_byte_order_mark_is_kept() {
    // MQTT-1.5.4-3 / MQTT-1.5.3-3 (3.1.1): EF BB BF stays in the string.
    for v in [V5, V3_1_1] {
        let Packet::Connect(c) = accept(v, &connect(v, 0x02, b"\xef\xbb\xbfid", &[])) else {
            panic!()
        };
        assert_eq!(c.client_id.as_bytes(), b"\xef\xbb\xbfid");
        let Packet::Publish(p) = accept(v, &publish_with_topic(v, b"\xef\xbb\xbf/t")) else {
            panic!()
        };
        assert_eq!(p.topic.unwrap().as_str(), "\u{feff}/t");
    }
}

#[test]
fn mqtt5_1_5_5_1_non_minimal_variable_byte_integer() {
    // MQTT-1.5.5-1: Remaining Length 0 written as 80 00.
    let e = reject(V5, &[0xc0, 0x80, 0x00]);
    assert_eq!(e, DecodeError::NonMinimalVariableByteInteger);
    assert_eq!(e.reason_code(), MALFORMED);
    // A property length written in two bytes.
    let e = reject(V5, &[0x30, 6, 0, 1, b't', 0x80, 0x00, b'x']);
    assert_eq!(e, DecodeError::NonMinimalVariableByteInteger);
    // A subscription identifier written in two bytes.
    let e = reject(V5, &publish_with_props(&[0x0b, 0x81, 0x00]));
    assert_eq!(e, DecodeError::NonMinimalVariableByteInteger);
    // Five bytes is malformed.
    assert_eq!(
        reject(V5, &[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]),
        DecodeError::MalformedVariableByteInteger
    );
}

#[test]
fn mqtt5_1_5_7_1_string_pair_halves_are_checked() {
    // MQTT-1.5.7-1: a user property whose value holds U+0000, and one whose
    // name is ill-formed.
    let e = reject(V5, &publish_with_props(&[0x26, 0, 1, b'k', 0, 1, 0]));
    assert_eq!(e, DecodeError::InvalidString(StringError::NullCharacter));
    let e = reject(V5, &publish_with_props(&[0x26, 0, 1, 0xff, 0, 1, b'v']));
    assert_eq!(e, DecodeError::InvalidString(StringError::InvalidUtf8));
    assert!(matches!(
        accept(V5, &publish_with_props(&[0x26, 0, 1, b'k', 0, 1, b'v'])),
        Packet::Publish(_)
    ));
}

// ---- 2.1 / 2.2 fixed header ----------------------------------------------

/// Every type but PUBLISH, with its one valid flag value, for `v`.
fn fixed_flag_cases(v: ProtocolVersion) -> Vec<(u8, u8)> {
    let mut t: Vec<(u8, u8)> = vec![
        (1, 0),
        (2, 0),
        (4, 0),
        (5, 0),
        (6, 2),
        (7, 0),
        (8, 2),
        (9, 0),
        (10, 2),
        (11, 0),
        (12, 0),
        (13, 0),
        (14, 0),
    ];
    if v.is_v5() {
        t.push((15, 0));
    }
    t
}

#[test]
fn mqtt5_2_1_3_1_reserved_flags_checked_for_every_type() {
    // MQTT-2.1.3-1 (5.0), MQTT-2.2.2-1 and MQTT-2.2.2-2 (3.1.1): any other
    // flag value is refused from the fixed header alone, before the body.
    for v in [V5, V3_1_1, V3_1] {
        for (ty, ok) in fixed_flag_cases(v) {
            for flags in 0..16u8 {
                if flags == ok {
                    continue;
                }
                let mut buf = BytesMut::from(&[(ty << 4) | flags, 0x00][..]);
                let e = decode(&mut buf, &DecodeConfig::new(v)).unwrap_err();
                assert!(
                    matches!(e, DecodeError::InvalidFlags { flags: f, .. } if f == flags),
                    "{ty} {flags}: {e:?}"
                );
                assert_eq!(e.reason_code(), MALFORMED);
                // Refused from the first byte, even with no length yet.
                let mut one = BytesMut::from(&[(ty << 4) | flags][..]);
                assert!(decode(&mut one, &DecodeConfig::new(v)).is_err());
            }
        }
    }
}

#[test]
fn mqtt311_2_2_2_1_flag_table() {
    // MQTT-2.2.2-1 (3.1.1): the listed values are accepted.
    assert_eq!(
        accept(V3_1_1, &[0x62, 2, 0, 1]),
        Packet::PubRel(PubRel::new(pid(1)))
    );
    assert_eq!(
        accept(V3_1_1, &[0xe0, 0]),
        Packet::Disconnect(Disconnect::default())
    );
}

#[test]
fn mqtt311_2_2_2_2_invalid_flags_close() {
    // MQTT-2.2.2-2 (3.1.1): PUBACK with a flag set is an error (close).
    let e = reject(V3_1_1, &[0x41, 2, 0, 1]);
    assert_eq!(
        e,
        DecodeError::InvalidFlags {
            packet: PacketType::PubAck,
            flags: 1
        }
    );
    assert_eq!(e.spec_id(), Some("MQTT-2.1.3-1"));
}

#[test]
fn reserved_packet_types() {
    assert_eq!(
        reject(V5, &[0x00, 0x00]),
        DecodeError::ReservedPacketType(0)
    );
    // AUTH does not exist before 5.0.
    assert_eq!(
        reject(V3_1_1, &[0xf0, 0x00]),
        DecodeError::ReservedPacketType(15)
    );
    assert_eq!(
        reject(V3_1, &[0xf0, 0x00]),
        DecodeError::ReservedPacketType(15)
    );
}

#[test]
fn mqtt311_2_3_1_1_packet_id_must_not_be_zero() {
    // MQTT-2.3.1-1 (3.1.1): SUBSCRIBE, UNSUBSCRIBE and QoS > 0 PUBLISH.
    for v in [V3_1_1, V5] {
        let e = reject(v, &[0x82, 6, 0, 0, 0, 1, b'a', 0]);
        assert_eq!(e, DecodeError::ZeroPacketId);
        assert_eq!(e.reason_code(), PROTOCOL);
        assert_eq!(
            reject(v, &[0xa2, 5, 0, 0, 0, 1, b'a']),
            DecodeError::ZeroPacketId
        );
        assert_eq!(
            reject(v, &[0x32, 5, 0, 1, b't', 0, 0]),
            DecodeError::ZeroPacketId
        );
        assert_eq!(reject(v, &[0x40, 2, 0, 0]), DecodeError::ZeroPacketId);
    }
    // And PacketId cannot hold 0 on the encoding side.
    assert!(PacketId::new(0).is_none());
}

#[test]
fn mqtt311_2_3_1_5_qos0_publish_has_no_packet_id() {
    // MQTT-2.3.1-5 (3.1.1): at QoS 0 the two bytes after the topic are
    // payload, and encoding writes none.
    let Packet::Publish(p) = accept(V3_1_1, &[0x30, 5, 0, 1, b't', 0, 7]) else {
        panic!()
    };
    assert_eq!(p.packet_id(), None);
    assert_eq!(&p.payload[..], &[0, 7]);
    assert_eq!(
        encode(V3_1_1, &Packet::Publish(p)).unwrap(),
        [0x30, 5, 0, 1, b't', 0, 7]
    );
}

// ---- CONNECT ---------------------------------------------------------------

#[test]
fn mqtt5_3_1_2_3_connect_reserved_flag() {
    // MQTT-3.1.2-3 (both versions).
    for v in [V5, V3_1_1] {
        let e = reject(v, &connect(v, 0x03, b"c", &[]));
        assert_eq!(e, DecodeError::ConnectReservedFlag);
        assert_eq!(e.connect_reason_code(), ConnectReasonCode::MalformedPacket);
    }
}

#[test]
fn mqtt5_3_1_2_9_will_flag_requires_will_fields() {
    // MQTT-3.1.2-9 (both versions): with the Will Flag the payload must hold
    // (Will Properties,) Will Topic and Will Payload.
    for v in [V5, V3_1_1] {
        assert_eq!(
            reject(v, &connect(v, 0x06, b"c", &[])),
            DecodeError::UnexpectedEnd {
                packet: PacketType::Connect
            }
        );
        let will: &[u8] = if v.is_v5() {
            &[0, 0, 1, b'w', 0, 0]
        } else {
            &[0, 1, b'w', 0, 0]
        };
        let Packet::Connect(c) = accept(v, &connect(v, 0x06, b"c", will)) else {
            panic!()
        };
        assert_eq!(c.will.unwrap().topic.as_str(), "w");
    }
    // The will topic is a topic name: no wildcards.
    let e = reject(V3_1_1, &connect(V3_1_1, 0x06, b"c", &[0, 1, b'#', 0, 0]));
    assert_eq!(e, DecodeError::InvalidTopicName(TopicError::WildcardInName));
}

#[test]
fn mqtt5_3_1_2_11_will_qos_zero_without_will() {
    // MQTT-3.1.2-11 (5.0) / MQTT-3.1.2-11 and -13 (3.1.1): Will QoS bits
    // without the Will Flag.
    for v in [V5, V3_1_1] {
        for flags in [0x0a, 0x12] {
            assert_eq!(
                reject(v, &connect(v, flags, b"c", &[])),
                DecodeError::WillFlagsWithoutWill
            );
        }
    }
}

#[test]
fn mqtt311_3_1_2_13_will_qos_zero_without_will() {
    // MQTT-3.1.2-13 (3.1.1).
    assert_eq!(
        reject(V3_1_1, &connect(V3_1_1, 0x08, b"c", &[])),
        DecodeError::WillFlagsWithoutWill
    );
}

#[test]
fn mqtt5_3_1_2_12_will_qos_3_is_malformed() {
    // MQTT-3.1.2-12 (5.0) / MQTT-3.1.2-14 (3.1.1).
    for v in [V5, V3_1_1] {
        let e = reject(v, &connect(v, 0x1e, b"c", &[0, 1, b'w', 0, 0]));
        assert_eq!(e, DecodeError::InvalidWillQoS);
    }
    // 0, 1, 2 are allowed with the Will Flag.
    for q in 0..3u8 {
        let Packet::Connect(c) = accept(
            V3_1_1,
            &connect(V3_1_1, 0x06 | (q << 3), b"c", &[0, 1, b'w', 0, 0]),
        ) else {
            panic!()
        };
        assert_eq!(c.will.unwrap().qos as u8, q);
    }
}

#[test]
fn mqtt311_3_1_2_14_will_qos_3() {
    // MQTT-3.1.2-14 (3.1.1).
    assert_eq!(
        reject(V3_1_1, &connect(V3_1_1, 0x1e, b"c", &[0, 1, b'w', 0, 0])),
        DecodeError::InvalidWillQoS
    );
}

#[test]
fn mqtt5_3_1_2_13_will_retain_without_will() {
    // MQTT-3.1.2-13 (5.0) / MQTT-3.1.2-15 (3.1.1).
    for v in [V5, V3_1_1] {
        assert_eq!(
            reject(v, &connect(v, 0x22, b"c", &[])),
            DecodeError::WillFlagsWithoutWill
        );
    }
}

#[test]
fn mqtt5_3_1_2_16_username_flag_and_field() {
    // MQTT-3.1.2-16..-19 (5.0), MQTT-3.1.2-18..-21 (3.1.1): the flags say
    // whether the fields are there, and the fields follow the flags.
    for v in [V5, V3_1_1] {
        let Packet::Connect(c) = accept(v, &connect(v, 0x02, b"c", &[])) else {
            panic!()
        };
        assert!(c.username.is_none() && c.password.is_none());
        let Packet::Connect(c) = accept(v, &connect(v, 0xc2, b"c", &[0, 1, b'u', 0, 2, 1, 2]))
        else {
            panic!()
        };
        assert_eq!(c.username.unwrap().as_str(), "u");
        assert_eq!(&c.password.unwrap()[..], &[1, 2]);
        // Flag set, field missing.
        assert!(matches!(
            reject(v, &connect(v, 0x82, b"c", &[])),
            DecodeError::UnexpectedEnd { .. }
        ));
        assert!(matches!(
            reject(v, &connect(v, 0xc2, b"c", &[0, 1, b'u'])),
            DecodeError::UnexpectedEnd { .. }
        ));
        // Flag clear, field present: bytes left over.
        assert!(matches!(
            reject(v, &connect(v, 0x02, b"c", &[0, 1, b'u'])),
            DecodeError::TrailingBytes { .. }
        ));
        // Encoding sets the flags from the fields.
        let mut c = Connect::new(v, s("c"));
        c.username = Some(s("u"));
        let bytes = encode(v, &Packet::from(c)).unwrap();
        assert_eq!(bytes[2 + 7] & 0xc0, 0x80);
    }
}

#[test]
fn mqtt311_3_1_2_22_password_requires_username() {
    // MQTT-3.1.2-22 (3.1.1; 5.0 lifted it).
    for v in [V3_1_1, V3_1] {
        let mut bytes = connect(V3_1_1, 0x42, b"c", &[0, 1, b'p']);
        if v == V3_1 {
            bytes = vec![
                0x10, 18, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 0x42, 0, 60, 0, 1, b'c', 0,
                1, b'p',
            ];
        }
        assert_eq!(reject(v, &bytes), DecodeError::PasswordWithoutUsername);
        let mut c = Connect::new(v, s("c"));
        c.password = Some(b(b"p"));
        assert_eq!(
            encode(v, &Packet::from(c)),
            Err(EncodeError::PasswordWithoutUsername)
        );
    }
    let Packet::Connect(c) = accept(V5, &connect(V5, 0x42, b"c", &[0, 1, b'p'])) else {
        panic!()
    };
    assert!(c.username.is_none() && c.password.is_some());
}

#[test]
fn mqtt5_3_1_3_3_client_id_first_and_utf8() {
    // MQTT-3.1.3-3 / MQTT-3.1.3-4 (both versions): the client id is the
    // first payload field and a UTF-8 string; an empty one is a valid string.
    for v in [V5, V3_1_1] {
        let Packet::Connect(c) = accept(v, &connect(v, 0x02, b"", &[])) else {
            panic!()
        };
        assert!(c.client_id.is_empty());
        assert_eq!(
            reject(v, &connect(v, 0x02, b"\xc3", &[])),
            DecodeError::InvalidString(StringError::InvalidUtf8)
        );
    }
}

#[test]
fn mqtt5_3_1_3_11_will_topic_and_username_are_utf8() {
    // MQTT-3.1.3-11, -12 (5.0) / MQTT-3.1.3-10, -11 (3.1.1).
    for v in [V5, V3_1_1] {
        let will: &[u8] = if v.is_v5() {
            &[0, 0, 1, 0xff, 0, 0]
        } else {
            &[0, 1, 0xff, 0, 0]
        };
        let e = reject(v, &connect(v, 0x06, b"c", will));
        assert_eq!(
            e,
            DecodeError::InvalidTopicName(TopicError::String(StringError::InvalidUtf8))
        );
        let e = reject(v, &connect(v, 0x82, b"c", &[0, 1, 0xff]));
        assert_eq!(e, DecodeError::InvalidString(StringError::InvalidUtf8));
    }
}

#[test]
fn unsupported_protocol_name_or_level() {
    let mut bad_level = connect(V5, 0x02, b"c", &[]);
    bad_level[8] = 6;
    let e = reject(V5, &bad_level);
    assert_eq!(e, DecodeError::UnsupportedProtocol { level: 6 });
    assert_eq!(
        e.connect_reason_code(),
        ConnectReasonCode::UnsupportedProtocolVersion
    );
    let mut bad_name = connect(V3_1_1, 0x02, b"c", &[]);
    bad_name[5] = b'X';
    assert_eq!(
        reject(V3_1_1, &bad_name),
        DecodeError::UnsupportedProtocol { level: 0 }
    );
}

// ---- CONNACK ---------------------------------------------------------------

#[test]
fn mqtt5_3_2_2_1_connack_reserved_flags() {
    // MQTT-3.2.2-1 (5.0); the same bits are reserved in 3.1.1.
    for v in [V5, V3_1_1] {
        let bytes: &[u8] = if v.is_v5() {
            &[0x20, 3, 0x02, 0, 0]
        } else {
            &[0x20, 2, 0x02, 0]
        };
        assert_eq!(reject(v, bytes), DecodeError::InvalidConnAckFlags);
    }
}

#[test]
fn mqtt5_3_2_2_8_connack_reason_code_must_be_defined() {
    // MQTT-3.2.2-8: 0x8B exists only for DISCONNECT; 3.1.1 return codes stop at 5.
    let e = reject(V5, &[0x20, 3, 0, 0x8b, 0]);
    assert_eq!(
        e,
        DecodeError::InvalidReasonCode {
            packet: PacketType::ConnAck,
            code: 0x8b
        }
    );
    assert_eq!(e.spec_id(), Some("MQTT-3.2.2-8"));
    assert_eq!(
        reject(V3_1_1, &[0x20, 2, 0, 6]),
        DecodeError::InvalidReasonCode {
            packet: PacketType::ConnAck,
            code: 6
        }
    );
    // A 5.0 code without a 3.1.1 return code is refused on encode.
    let ack = Packet::from(ConnAck::new(ConnectReasonCode::Banned));
    assert!(matches!(
        encode(V3_1_1, &ack),
        Err(EncodeError::NotInVersion { .. })
    ));
    let mapped = Packet::from(ConnAck::new(ConnectReasonCode::Banned.v3_equivalent()));
    assert_eq!(encode(V3_1_1, &mapped).unwrap(), [0x20, 2, 0, 5]);
}

// ---- PUBLISH ---------------------------------------------------------------

#[test]
fn mqtt5_3_3_1_2_dup_must_be_zero_at_qos0() {
    // MQTT-3.3.1-2 (both versions): refused from the first byte.
    for v in [V5, V3_1_1] {
        let e = reject(v, &[0x38]);
        assert_eq!(e, DecodeError::DupWithQoS0);
        assert_eq!(e.reason_code(), MALFORMED);
    }
    let mut p = Publish::new(name("t"), b(b""));
    p.dup = true;
    assert_eq!(
        encode(V5, &Packet::Publish(p)),
        Err(EncodeError::DupWithQoS0)
    );
}

#[test]
fn mqtt5_3_3_1_4_qos_3_is_malformed() {
    // MQTT-3.3.1-4 (both versions).
    for v in [V5, V3_1_1] {
        let e = reject(v, &[0x36, 5, 0, 1, b't', 0, 1]);
        assert_eq!(e, DecodeError::InvalidQoS);
        assert_eq!(e.spec_id(), Some("MQTT-3.3.1-4"));
    }
}

#[test]
fn mqtt5_3_3_2_1_topic_name_first_and_utf8() {
    // MQTT-3.3.2-1 (both versions): the topic comes first, as a UTF-8 string.
    for v in [V5, V3_1_1] {
        let Packet::Publish(p) = accept(v, &publish_with_topic(v, "ü/x".as_bytes())) else {
            panic!()
        };
        assert_eq!(p.topic.unwrap().as_str(), "ü/x");
        let e = reject(v, &publish_with_topic(v, b"\xc3("));
        assert_eq!(
            e,
            DecodeError::InvalidTopicName(TopicError::String(StringError::InvalidUtf8))
        );
        assert_eq!(e.reason_code(), DisconnectReasonCode::TopicNameInvalid);
    }
    // An empty topic: 3.1.1 never allows it; 5.0 only with a topic alias.
    assert_eq!(
        reject(V3_1_1, &[0x30, 2, 0, 0]),
        DecodeError::InvalidTopicName(TopicError::Empty)
    );
    let e = reject(V5, &[0x30, 3, 0, 0, 0]);
    assert_eq!(e, DecodeError::MissingTopic);
    let mut p = Publish::new(name("t"), b(b""));
    p.topic = None;
    assert_eq!(
        encode(V5, &Packet::Publish(p)),
        Err(EncodeError::MissingTopic)
    );
}

#[test]
fn wildcards_in_publish_topic_are_refused() {
    for v in [V5, V3_1_1] {
        assert_eq!(
            reject(v, &publish_with_topic(v, b"a/+")),
            DecodeError::InvalidTopicName(TopicError::WildcardInName)
        );
        assert_eq!(
            reject(v, &publish_with_topic(v, b"#")),
            DecodeError::InvalidTopicName(TopicError::WildcardInName)
        );
    }
}

#[test]
fn mqtt5_3_3_2_8_topic_alias_zero() {
    // MQTT-3.3.2-8: Topic Alias 0 is never valid; answered with 0x94.
    let e = reject(V5, &publish_with_props(&[0x23, 0, 0]));
    assert_eq!(e, DecodeError::InvalidPropertyValue(PropertyId::TopicAlias));
    assert_eq!(e.reason_code(), DisconnectReasonCode::TopicAliasInvalid);
    assert_eq!(e.spec_id(), Some("MQTT-3.3.2-8"));
}

#[test]
fn mqtt5_3_3_2_13_response_topic_is_utf8_topic_name() {
    // MQTT-3.3.2-13: Response Topic is a UTF-8 string (and a Topic Name).
    let e = reject(V5, &publish_with_props(&[0x08, 0, 1, 0xff]));
    assert_eq!(
        e,
        DecodeError::InvalidTopicName(TopicError::String(StringError::InvalidUtf8))
    );
    let e = reject(V5, &publish_with_props(&[0x08, 0, 1, b'+']));
    assert_eq!(e, DecodeError::InvalidTopicName(TopicError::WildcardInName));
    let Packet::Publish(p) = accept(V5, &publish_with_props(&[0x08, 0, 1, b'r'])) else {
        panic!()
    };
    assert_eq!(p.properties.response_topic().unwrap().as_str(), "r");
}

#[test]
fn mqtt5_3_3_2_19_content_type_is_utf8() {
    // MQTT-3.3.2-19.
    let e = reject(V5, &publish_with_props(&[0x03, 0, 2, b'a', 0]));
    assert_eq!(e, DecodeError::InvalidString(StringError::NullCharacter));
}

// ---- properties ------------------------------------------------------------

#[test]
fn properties_not_allowed_in_a_packet_are_refused() {
    // Session Expiry Interval is not a PUBLISH property.
    let e = reject(V5, &publish_with_props(&[0x11, 0, 0, 0, 1]));
    assert_eq!(
        e,
        DecodeError::PropertyNotAllowed {
            property: PropertyId::SessionExpiryInterval,
            packet: PacketType::Publish
        }
    );
    // Topic Alias is not a CONNACK property.
    let e = reject(V5, &[0x20, 6, 0, 0, 3, 0x23, 0, 1]);
    assert!(matches!(
        e,
        DecodeError::PropertyNotAllowed {
            property: PropertyId::TopicAlias,
            ..
        }
    ));
    // Unknown identifier.
    assert_eq!(
        reject(V5, &publish_with_props(&[0x7f, 0])),
        DecodeError::UnknownProperty(0x7f)
    );
}

#[test]
fn repeated_properties_are_a_protocol_error_except_user_property() {
    let e = reject(
        V5,
        &publish_with_props(&[0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2]),
    );
    assert_eq!(
        e,
        DecodeError::DuplicateProperty(PropertyId::MessageExpiryInterval)
    );
    assert_eq!(e.reason_code(), PROTOCOL);
    // Subscription Identifier may repeat in PUBLISH, not in SUBSCRIBE.
    assert!(accept(V5, &publish_with_props(&[0x0b, 1, 0x0b, 2])) != Packet::PingReq);
    let e = reject(V5, &[0x82, 10, 0, 1, 4, 0x0b, 1, 0x0b, 2, 0, 1, b'a', 0]);
    assert_eq!(
        e,
        DecodeError::DuplicateProperty(PropertyId::SubscriptionIdentifier)
    );
    // User Property repeats, order kept, even when interleaved with others.
    let Packet::Publish(p) = accept(
        V5,
        &publish_with_props(&[
            0x26, 0, 1, b'a', 0, 1, b'1', 0x01, 1, 0x26, 0, 1, b'b', 0, 1, b'2',
        ]),
    ) else {
        panic!()
    };
    let keys: Vec<String> = p
        .properties
        .user_properties()
        .iter()
        .map(|(k, _)| k.to_string())
        .collect();
    assert_eq!(keys, ["a", "b"]);
}

#[test]
fn property_values_out_of_range() {
    for props in [&[0x01u8, 2][..], &[0x0b, 0], &[0x23, 0, 0]] {
        assert!(matches!(
            reject(V5, &publish_with_props(props)),
            DecodeError::InvalidPropertyValue(_)
        ));
    }
    // Receive Maximum 0, Maximum Packet Size 0, Maximum QoS 2 in CONNACK.
    for props in [&[0x21u8, 0, 0][..], &[0x27, 0, 0, 0, 0], &[0x24, 2]] {
        let mut bytes = vec![0x20, 3 + props.len() as u8, 0, 0, props.len() as u8];
        bytes.extend_from_slice(props);
        assert!(
            matches!(reject(V5, &bytes), DecodeError::InvalidPropertyValue(_)),
            "{props:?}"
        );
    }
    // Authentication Data without a method.
    assert_eq!(
        reject(V5, &[0xf0, 6, 0x18, 4, 0x16, 0, 1, 9]),
        DecodeError::AuthDataWithoutMethod
    );
}

#[test]
fn property_length_past_the_packet() {
    assert!(matches!(
        reject(V5, &[0x30, 5, 0, 1, b't', 9, 0]),
        DecodeError::UnexpectedEnd { .. }
    ));
}

// ---- acknowledgements ------------------------------------------------------

#[test]
fn mqtt5_3_4_2_1_puback_reason_codes() {
    // MQTT-3.4.2-1: 0x92 belongs to PUBREL/PUBCOMP, not PUBACK.
    let e = reject(V5, &[0x40, 3, 0, 1, 0x92]);
    assert_eq!(
        e,
        DecodeError::InvalidReasonCode {
            packet: PacketType::PubAck,
            code: 0x92
        }
    );
    assert_eq!(e.spec_id(), Some("MQTT-3.4.2-1"));
    for c in PubAckReasonCode::ALL {
        assert!(
            matches!(accept(V5, &[0x40, 3, 0, 1, c.code()]), Packet::PubAck(a) if a.reason_code == *c)
        );
    }
}

#[test]
fn mqtt5_3_5_2_1_pubrec_reason_codes() {
    // MQTT-3.5.2-1.
    let e = reject(V5, &[0x50, 3, 0, 1, 0x92]);
    assert_eq!(
        e,
        DecodeError::InvalidReasonCode {
            packet: PacketType::PubRec,
            code: 0x92
        }
    );
    assert_eq!(e.spec_id(), Some("MQTT-3.5.2-1"));
}

#[test]
fn mqtt5_3_6_1_1_pubrel_flags() {
    // MQTT-3.6.1-1 (both versions).
    for v in [V5, V3_1_1] {
        let e = reject(v, &[0x60, 2, 0, 1]);
        assert_eq!(
            e,
            DecodeError::InvalidFlags {
                packet: PacketType::PubRel,
                flags: 0
            }
        );
        assert_eq!(e.spec_id(), Some("MQTT-3.6.1-1"));
        assert_eq!(
            encode(v, &Packet::PubRel(PubRel::new(pid(1)))).unwrap()[0],
            0x62
        );
    }
}

#[test]
fn mqtt5_3_6_2_1_pubrel_reason_codes() {
    // MQTT-3.6.2-1.
    let e = reject(V5, &[0x62, 3, 0, 1, 0x10]);
    assert_eq!(
        e,
        DecodeError::InvalidReasonCode {
            packet: PacketType::PubRel,
            code: 0x10
        }
    );
    assert_eq!(e.spec_id(), Some("MQTT-3.6.2-1"));
}

#[test]
fn mqtt5_3_7_2_1_pubcomp_reason_codes() {
    // MQTT-3.7.2-1.
    let e = reject(V5, &[0x70, 3, 0, 1, 0x80]);
    assert_eq!(
        e,
        DecodeError::InvalidReasonCode {
            packet: PacketType::PubComp,
            code: 0x80
        }
    );
    assert_eq!(e.spec_id(), Some("MQTT-3.7.2-1"));
}

#[test]
fn v5_content_is_refused_for_v311_never_dropped() {
    let mut p = Publish::new(name("t"), b(b""));
    p.properties.message_expiry_interval = Some(1);
    assert!(matches!(
        encode(V3_1_1, &Packet::Publish(p)),
        Err(EncodeError::NotInVersion { .. })
    ));
    let ack = Packet::PubAck(PubAck::new(pid(1)).with_reason(PubAckReasonCode::QuotaExceeded));
    assert!(matches!(
        encode(V3_1_1, &ack),
        Err(EncodeError::NotInVersion { .. })
    ));
    let auth = Packet::from(Auth::new(AuthReasonCode::Success));
    assert!(matches!(
        encode(V3_1_1, &auth),
        Err(EncodeError::NotInVersion { .. })
    ));
    let d = Packet::Disconnect(Disconnect::new(DisconnectReasonCode::ServerBusy));
    assert!(matches!(
        encode(V3_1_1, &d),
        Err(EncodeError::NotInVersion { .. })
    ));
    let mut o = SubscriptionOptions::new(QoS::AtLeastOnce);
    o.no_local = true;
    let sub = Packet::Subscribe(Subscribe::new(pid(1), filter("a"), o));
    assert!(matches!(
        encode(V3_1_1, &sub),
        Err(EncodeError::NotInVersion { .. })
    ));
}

// ---- SUBSCRIBE / SUBACK / UNSUBSCRIBE / UNSUBACK -----------------------

#[test]
fn mqtt5_3_8_1_1_subscribe_flags() {
    // MQTT-3.8.1-1 (both versions).
    for v in [V5, V3_1_1] {
        let e = reject(v, &[0x80, 6, 0, 1, 0, 1, b'a', 0]);
        assert_eq!(
            e,
            DecodeError::InvalidFlags {
                packet: PacketType::Subscribe,
                flags: 0
            }
        );
        assert_eq!(e.spec_id(), Some("MQTT-3.8.1-1"));
    }
}

#[test]
fn mqtt5_3_8_3_1_subscribe_filters_are_utf8() {
    // MQTT-3.8.3-1 (both versions), and the filter syntax (MQTT-4.7.1-*).
    for v in [V5, V3_1_1] {
        let props: &[u8] = if v.is_v5() { &[0] } else { &[] };
        let mk = |f: &[u8]| {
            let mut body = vec![0, 1];
            body.extend_from_slice(props);
            body.extend_from_slice(&[0, f.len() as u8]);
            body.extend_from_slice(f);
            body.push(1);
            let mut out = vec![0x82, body.len() as u8];
            out.extend_from_slice(&body);
            out
        };
        assert_eq!(
            reject(v, &mk(b"\xff")),
            DecodeError::InvalidTopicFilter(TopicError::String(StringError::InvalidUtf8))
        );
        let e = reject(v, &mk(b"a#"));
        assert_eq!(
            e,
            DecodeError::InvalidTopicFilter(TopicError::MultiLevelWildcardMisplaced)
        );
        assert_eq!(e.reason_code(), DisconnectReasonCode::TopicFilterInvalid);
        assert!(matches!(
            accept(v, &mk("ü/+/#".as_bytes())),
            Packet::Subscribe(_)
        ));
    }
}

#[test]
fn mqtt5_3_8_3_2_subscribe_needs_a_filter() {
    // MQTT-3.8.3-2 (5.0) / MQTT-3.8.3-3 (3.1.1).
    let e = reject(V5, &[0x82, 3, 0, 1, 0]);
    assert_eq!(
        e,
        DecodeError::EmptyPayload {
            packet: PacketType::Subscribe
        }
    );
    assert_eq!(e.reason_code(), PROTOCOL);
    let mut s = Subscribe::new(pid(1), filter("a"), SubscriptionOptions::default());
    s.subscriptions.clear();
    assert!(matches!(
        encode(V5, &Packet::Subscribe(s)),
        Err(EncodeError::EmptyPayload { .. })
    ));
}

#[test]
fn mqtt311_3_8_3_3_subscribe_needs_a_filter() {
    // MQTT-3.8.3-3 (3.1.1).
    assert_eq!(
        reject(V3_1_1, &[0x82, 2, 0, 1]),
        DecodeError::EmptyPayload {
            packet: PacketType::Subscribe
        }
    );
}

#[test]
fn mqtt5_3_8_3_5_subscription_options_reserved_bits() {
    // MQTT-3.8.3-5: bits 7-6; QoS 3 is malformed; Retain Handling 3 is a
    // Protocol Error.
    for (opt, e) in [
        (0x40u8, DecodeError::InvalidSubscriptionOptions(0x40)),
        (0x80, DecodeError::InvalidSubscriptionOptions(0x80)),
        (0x03, DecodeError::InvalidSubscriptionOptions(0x03)),
        (0x30, DecodeError::InvalidRetainHandling),
    ] {
        assert_eq!(reject(V5, &[0x82, 7, 0, 1, 0, 0, 1, b'a', opt]), e);
    }
    assert_eq!(DecodeError::InvalidRetainHandling.reason_code(), PROTOCOL);
}

#[test]
fn mqtt311_3_8_3_4_requested_qos_reserved_bits() {
    // MQTT-3.8.3-4 (3.1.1): upper six bits 0 and QoS at most 2; the 5.0
    // option bits are reserved in 3.1.1.
    for opt in [0x03u8, 0x04, 0x08, 0x10, 0x80] {
        assert_eq!(
            reject(V3_1_1, &[0x82, 6, 0, 1, 0, 1, b'a', opt]),
            DecodeError::InvalidSubscriptionOptions(opt)
        );
    }
}

#[test]
fn mqtt5_3_9_3_2_suback_reason_codes() {
    // MQTT-3.9.3-2 (5.0): only Subscribe Reason Codes; MQTT-3.9.3-2
    // (3.1.1): only 0x00, 0x01, 0x02, 0x80.
    let e = reject(V5, &[0x90, 4, 0, 1, 0, 0x03]);
    assert_eq!(
        e,
        DecodeError::InvalidReasonCode {
            packet: PacketType::SubAck,
            code: 0x03
        }
    );
    assert_eq!(e.spec_id(), Some("MQTT-3.9.3-2"));
    assert!(matches!(
        accept(V5, &[0x90, 4, 0, 1, 0, 0x9e]),
        Packet::SubAck(_)
    ));
}

#[test]
fn mqtt311_3_9_3_2_suback_return_codes() {
    // MQTT-3.9.3-2 (3.1.1).
    for ok in [0x00u8, 0x01, 0x02, 0x80] {
        assert!(matches!(
            accept(V3_1_1, &[0x90, 3, 0, 1, ok]),
            Packet::SubAck(_)
        ));
    }
    for bad in [0x03u8, 0x87, 0x9e] {
        assert_eq!(
            reject(V3_1_1, &[0x90, 3, 0, 1, bad]),
            DecodeError::InvalidReasonCode {
                packet: PacketType::SubAck,
                code: bad
            }
        );
    }
    let ack = Packet::SubAck(SubAck::new(pid(1), vec![SubAckReasonCode::NotAuthorized]));
    assert!(matches!(
        encode(V3_1_1, &ack),
        Err(EncodeError::NotInVersion { .. })
    ));
}

#[test]
fn mqtt5_3_10_1_1_unsubscribe_flags() {
    // MQTT-3.10.1-1 (both versions).
    for v in [V5, V3_1_1] {
        let e = reject(v, &[0xa0, 5, 0, 1, 0, 1, b'a']);
        assert_eq!(
            e,
            DecodeError::InvalidFlags {
                packet: PacketType::Unsubscribe,
                flags: 0
            }
        );
        assert_eq!(e.spec_id(), Some("MQTT-3.10.1-1"));
    }
}

#[test]
fn mqtt5_3_10_3_1_unsubscribe_filters_are_utf8() {
    // MQTT-3.10.3-1 (both versions): strings back to back.
    let Packet::Unsubscribe(u) = accept(V3_1_1, &[0xa2, 8, 0, 1, 0, 1, b'a', 0, 1, b'#']) else {
        panic!()
    };
    assert_eq!(u.filters.len(), 2);
    assert_eq!(
        reject(V5, &[0xa2, 6, 0, 1, 0, 0, 1, 0xfe]),
        DecodeError::InvalidTopicFilter(TopicError::String(StringError::InvalidUtf8))
    );
    assert_eq!(
        reject(V3_1_1, &[0xa2, 5, 0, 1, 0, 1, 0]),
        DecodeError::InvalidTopicFilter(TopicError::String(StringError::NullCharacter))
    );
}

#[test]
fn mqtt5_3_10_3_2_unsubscribe_needs_a_filter() {
    // MQTT-3.10.3-2 (both versions).
    assert_eq!(
        reject(V5, &[0xa2, 3, 0, 1, 0]),
        DecodeError::EmptyPayload {
            packet: PacketType::Unsubscribe
        }
    );
    assert_eq!(
        reject(V3_1_1, &[0xa2, 2, 0, 1]),
        DecodeError::EmptyPayload {
            packet: PacketType::Unsubscribe
        }
    );
}

#[test]
fn mqtt5_3_11_3_2_unsuback_reason_codes() {
    // MQTT-3.11.3-2: one valid Unsubscribe Reason Code per filter.
    let e = reject(V5, &[0xb0, 4, 0, 1, 0, 0x10]);
    assert_eq!(
        e,
        DecodeError::InvalidReasonCode {
            packet: PacketType::UnsubAck,
            code: 0x10
        }
    );
    assert_eq!(e.spec_id(), Some("MQTT-3.11.3-2"));
    assert_eq!(
        reject(V5, &[0xb0, 3, 0, 1, 0]),
        DecodeError::EmptyPayload {
            packet: PacketType::UnsubAck
        }
    );
}

// ---- DISCONNECT / AUTH -----------------------------------------------------

#[test]
fn mqtt5_3_14_1_1_disconnect_flags() {
    // MQTT-3.14.1-1 (both versions).
    for v in [V5, V3_1_1] {
        let e = reject(v, &[0xe1, 0]);
        assert_eq!(
            e,
            DecodeError::InvalidFlags {
                packet: PacketType::Disconnect,
                flags: 1
            }
        );
        assert_eq!(e.reason_code(), MALFORMED);
        assert_eq!(e.spec_id(), Some("MQTT-3.14.1-1"));
    }
}

#[test]
fn mqtt5_3_14_2_1_disconnect_reason_codes() {
    // MQTT-3.14.2-1: 0x84 is a CONNACK code only.
    let e = reject(V5, &[0xe0, 1, 0x84]);
    assert_eq!(
        e,
        DecodeError::InvalidReasonCode {
            packet: PacketType::Disconnect,
            code: 0x84
        }
    );
    assert_eq!(e.spec_id(), Some("MQTT-3.14.2-1"));
    // 3.1.1 DISCONNECT has no body at all.
    assert_eq!(
        reject(V3_1_1, &[0xe0, 1, 0x00]),
        DecodeError::TrailingBytes {
            packet: PacketType::Disconnect
        }
    );
}

#[test]
fn mqtt5_3_15_1_1_auth_flags() {
    // MQTT-3.15.1-1.
    let e = reject(V5, &[0xf2, 0]);
    assert_eq!(
        e,
        DecodeError::InvalidFlags {
            packet: PacketType::Auth,
            flags: 2
        }
    );
    assert_eq!(e.spec_id(), Some("MQTT-3.15.1-1"));
}

#[test]
fn mqtt5_3_15_2_1_auth_reason_codes() {
    // MQTT-3.15.2-1.
    let e = reject(V5, &[0xf0, 1, 0x80]);
    assert_eq!(
        e,
        DecodeError::InvalidReasonCode {
            packet: PacketType::Auth,
            code: 0x80
        }
    );
    assert_eq!(e.spec_id(), Some("MQTT-3.15.2-1"));
}

// ---- framing -----------------------------------------------------------------

#[test]
fn packet_too_large_is_refused_from_the_fixed_header() {
    // Only the first 4 bytes of a 1 MiB PUBLISH have arrived.
    let cfg = DecodeConfig::new(V5).with_max_packet_size(1024);
    let mut buf = BytesMut::from(&[0x30, 0x80, 0x80, 0x40][..]);
    let e = decode(&mut buf, &cfg).unwrap_err();
    assert_eq!(
        e,
        DecodeError::PacketTooLarge {
            size: 4 + 1_048_576,
            max: 1024
        }
    );
    assert_eq!(e.reason_code(), DisconnectReasonCode::PacketTooLarge);
    // Exactly at the limit is fine.
    let cfg = DecodeConfig::new(V3_1_1).with_max_packet_size(7);
    assert!(
        decode(&mut BytesMut::from(&[0x30, 5, 0, 1, b't', 1, 2][..]), &cfg)
            .unwrap()
            .is_some()
    );
    assert!(decode(
        &mut BytesMut::from(&[0x30, 6, 0, 1, b't', 1, 2, 3][..]),
        &cfg
    )
    .is_err());
}

#[test]
fn checked_encode_honours_the_peers_maximum() {
    let p = Packet::Publish(Publish::new(name("t"), b(b"12345")));
    let n = p.encoded_len(V5);
    let mut out = BytesMut::new();
    assert_eq!(
        p.encode_checked(V5, n as u32 - 1, &mut out),
        Err(EncodeError::PacketTooLarge {
            size: n,
            max: n as u32 - 1
        })
    );
    assert!(out.is_empty(), "nothing written on error");
    assert_eq!(p.encode_checked(V5, n as u32, &mut out), Ok(n));
    // A fixed-size buffer that is too small is an error, not a panic.
    let mut small = [0u8; 4];
    assert!(matches!(
        p.encode(V5, &mut &mut small[..]),
        Err(EncodeError::BufferTooSmall { .. })
    ));
}

#[test]
fn trailing_and_missing_bytes() {
    assert_eq!(
        reject(V3_1_1, &[0xc0, 1, 0]),
        DecodeError::TrailingBytes {
            packet: PacketType::PingReq
        }
    );
    assert_eq!(
        reject(V3_1_1, &[0x40, 3, 0, 1, 0]),
        DecodeError::TrailingBytes {
            packet: PacketType::PubAck
        }
    );
    assert_eq!(
        reject(V3_1_1, &[0x40, 1, 0]),
        DecodeError::UnexpectedEnd {
            packet: PacketType::PubAck
        }
    );
    assert_eq!(
        reject(V3_1_1, &[0x30, 1, 0]),
        DecodeError::UnexpectedEnd {
            packet: PacketType::Publish
        }
    );
}

#[test]
fn binary_fields_longer_than_65535_are_refused_on_encode() {
    let mut c = Connect::new(V5, s("c"));
    c.username = Some(s("u"));
    c.password = Some(bytes::Bytes::from(vec![0u8; 70_000]));
    assert!(matches!(
        encode(V5, &Packet::from(c)),
        Err(EncodeError::BinaryTooLong { .. })
    ));
    let mut p = Publish::new(name("t"), b(b""));
    // PUBLISH keeps Correlation Data in wire form: the setter refuses it.
    assert!(matches!(
        p.properties
            .set_correlation_data(Some(bytes::Bytes::from(vec![0u8; 65_536]))),
        Err(EncodeError::BinaryTooLong { .. })
    ));
    assert!(p.properties.correlation_data().is_none());
}

#[test]
fn errors_display_their_spec_id() {
    let text = DecodeError::DupWithQoS0.to_string();
    assert!(text.contains("MQTT-3.3.1-2"), "{text}");
    let text = DecodeError::InvalidTopicName(TopicError::WildcardInName).to_string();
    assert!(text.contains("MQTT-4.7.0-1"), "{text}");
}
