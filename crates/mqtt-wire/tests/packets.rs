//! Annotated byte vectors, one or more per packet and version. Each vector
//! is decoded with a PINGREQ behind it (exactly one packet must be taken)
//! and encoded back to the same bytes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;
use common::*;
use core::num::{NonZeroU16, NonZeroU32};
use mqtt_wire::ProtocolVersion::{V3_1, V3_1_1, V5};
use mqtt_wire::*;

#[rustfmt::skip]
const CONNECT_V311: &[u8] = &[
    0x10, 26,                               // CONNECT, remaining length 26
    0x00, 0x04, b'M', b'Q', b'T', b'T',     // protocol name
    0x04,                                   // level 4
    0xee,                                   // user, password, will retain, will QoS 1, will, clean session
    0x00, 0x0a,                             // keep alive 10
    0x00, 0x02, b'c', b'1',                 // client id
    0x00, 0x01, b'w',                       // will topic
    0x00, 0x01, b'x',                       // will payload
    0x00, 0x01, b'u',                       // user name
    0x00, 0x01, b'p',                       // password
];

fn connect_sample(v: ProtocolVersion) -> Connect {
    let mut will = LastWill::new(name("w"), b(b"x"));
    will.qos = QoS::AtLeastOnce;
    will.retain = true;
    let mut c = Connect::new(v, s("c1"));
    c.keep_alive = 10;
    c.will = Some(will);
    c.username = Some(s("u"));
    c.password = Some(b(b"p"));
    c
}

#[test]
fn mqtt311_3_1_3_1_connect_v311_field_order() {
    // MQTT-3.1.3-1 (3.1.1): ClientId, Will Topic, Will Message, User Name,
    // Password, in that order; MQTT-3.1.2-9/-19/-21: flags say they are there.
    check(V3_1_1, CONNECT_V311, Packet::from(connect_sample(V3_1_1)));
}

#[rustfmt::skip]
const CONNECT_V5: &[u8] = &[
    0x10, 38,
    0x00, 0x04, b'M', b'Q', b'T', b'T',
    0x05,                                   // level 5
    0xee,
    0x00, 0x0a,
    0x05, 0x11, 0x00, 0x00, 0x00, 0x3c,     // properties: session expiry 60
    0x00, 0x02, b'c', b'1',                 // client id
    0x05, 0x18, 0x00, 0x00, 0x00, 0x05,     // will properties: will delay 5
    0x00, 0x01, b'w',
    0x00, 0x01, b'x',
    0x00, 0x01, b'u',
    0x00, 0x01, b'p',
];

#[test]
fn mqtt5_3_1_3_1_connect_v5_field_order() {
    // MQTT-3.1.3-1 (5.0): ClientID, Will Properties, Will Topic, Will
    // Payload, User Name, Password.
    let mut c = connect_sample(V5);
    c.properties.session_expiry_interval = Some(60);
    c.will.as_mut().unwrap().properties.will_delay_interval = Some(5);
    check(V5, CONNECT_V5, Packet::from(c));
}

#[test]
fn connect_v31_mqisdp() {
    #[rustfmt::skip]
    let v = [
        0x10, 15,
        0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', // protocol name of 3.1
        0x03,                                           // level 3
        0x02,                                           // clean session
        0x00, 0x3c,                                     // keep alive 60
        0x00, 0x01, b'c',
    ];
    // CONNECT announces its version: decoded the same whatever the decoder
    // was set to.
    check(V3_1, &v, Packet::from(Connect::new(V3_1, s("c"))));
    assert!(matches!(accept(V5, &v), Packet::Connect(c) if c.protocol == V3_1));
}

#[test]
fn connack_v311() {
    // Session present, accepted.
    let mut ack = ConnAck::new(ConnectReasonCode::Success);
    ack.session_present = true;
    check(V3_1_1, &[0x20, 0x02, 0x01, 0x00], Packet::from(ack));
    // Return code 5: not authorized.
    check(
        V3_1_1,
        &[0x20, 0x02, 0x00, 0x05],
        Packet::from(ConnAck::new(ConnectReasonCode::NotAuthorized)),
    );
}

#[test]
fn connack_v5_with_properties() {
    #[rustfmt::skip]
    let v = [
        0x20, 8,
        0x00,                   // acknowledge flags
        0x00,                   // success
        0x05,                   // property length
        0x21, 0x00, 0x0a,       // receive maximum 10
        0x24, 0x01,             // maximum QoS 1
    ];
    let mut ack = ConnAck::new(ConnectReasonCode::Success);
    ack.properties.receive_maximum = NonZeroU16::new(10);
    ack.properties.maximum_qos = Some(MaximumQoS::AtLeastOnce);
    check(V5, &v, Packet::from(ack));
}

#[test]
fn publish_v311_qos1_and_qos0() {
    #[rustfmt::skip]
    let v = [
        0x32, 9,                    // PUBLISH, QoS 1
        0x00, 0x03, b'a', b'/', b'b', // topic
        0x00, 0x0a,                 // packet id 10
        b'h', b'i',                 // payload
    ];
    let p = Publish::new(name("a/b"), b(b"hi")).with_delivery(Delivery::AtLeastOnce(pid(10)));
    check(V3_1_1, &v, Packet::Publish(p));
}

#[test]
fn mqtt5_2_2_1_2_qos0_publish_has_no_packet_id() {
    // MQTT-2.2.1-2 / MQTT-2.3.1-5 (3.1.1): no identifier at QoS 0; the bytes
    // after the topic are payload.
    #[rustfmt::skip]
    let v = [
        0x31, 7,                    // PUBLISH, QoS 0, retain
        0x00, 0x03, b'a', b'/', b'b',
        b'h', b'i',
    ];
    let p = Publish::new(name("a/b"), b(b"hi")).with_retain(true);
    check(V3_1_1, &v, Packet::Publish(p.clone()));
    #[rustfmt::skip]
    let v5 = [0x31, 8, 0x00, 0x03, b'a', b'/', b'b', 0x00, b'h', b'i'];
    check(V5, &v5, Packet::Publish(p));
}

#[test]
fn mqtt5_2_2_2_1_empty_properties_still_have_a_length() {
    // MQTT-2.2.2-1: a PUBLISH without properties carries Property Length 0.
    let p = Packet::Publish(Publish::new(name("t"), b(b"")));
    assert_eq!(encode(V5, &p).unwrap(), [0x30, 4, 0x00, 0x01, b't', 0x00]);
    assert_eq!(encode(V3_1_1, &p).unwrap(), [0x30, 3, 0x00, 0x01, b't']);
}

#[test]
fn publish_v5_with_properties() {
    #[rustfmt::skip]
    let v = [
        0x3b, 21,                           // PUBLISH, DUP, QoS 1, retain
        0x00, 0x03, b'a', b'/', b'b',
        0x00, 0x0a,
        0x0b,                               // property length 11
        0x03, 0x00, 0x01, b't',             // content type "t"
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property k=v
        b'h', b'i',
    ];
    let mut p = Publish::new(name("a/b"), b(b"hi"))
        .with_delivery(Delivery::AtLeastOnce(pid(10)))
        .with_retain(true);
    p.dup = true;
    p.properties.set_content_type(Some(s("t")));
    p.properties.push_user_property(s("k"), s("v"));
    check(V5, &v, Packet::Publish(p));
}

#[test]
fn publish_v5_topic_alias_without_topic() {
    #[rustfmt::skip]
    let v = [
        0x30, 7,
        0x00, 0x00,             // empty topic name
        0x03, 0x23, 0x00, 0x01, // topic alias 1
        b'x',
    ];
    let mut p = Publish::new(name("unused"), b(b"x"));
    p.topic = None;
    p.properties.topic_alias = NonZeroU16::new(1);
    check(V5, &v, Packet::Publish(p));
}

#[test]
fn publish_v5_every_property_and_repeated_subscription_ids() {
    let mut p =
        Publish::new(name("x/y"), b(b"payload")).with_delivery(Delivery::ExactlyOnce(pid(65535)));
    let pr = &mut p.properties;
    pr.payload_format_indicator = Some(PayloadFormat::Utf8);
    pr.message_expiry_interval = Some(3600);
    pr.topic_alias = NonZeroU16::new(7);
    pr.set_response_topic(Some(name("reply/to")));
    pr.set_correlation_data(Some(b(b"\x00\x01"))).unwrap();
    pr.set_content_type(Some(s("application/json")));
    pr.push_user_property(s("a"), s("1"));
    pr.push_user_property(s("a"), s("2"));
    pr.set_subscription_identifiers(
        [
            SubscriptionId::new(1).unwrap(),
            SubscriptionId::new(268_435_455).unwrap(),
        ]
        .into_iter()
        .collect(),
    );
    let bytes = encode(V5, &Packet::Publish(p.clone())).unwrap();
    check(V5, &bytes, Packet::Publish(p.clone()));
    // Order of user properties is kept.
    let pairs: Vec<_> = p
        .properties
        .user_properties()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(pairs, [("a".into(), "1".into()), ("a".into(), "2".into())]);
    let ids: Vec<u32> = p
        .properties
        .subscription_identifiers()
        .iter()
        .map(SubscriptionId::get)
        .collect();
    assert_eq!(ids, [1, 268_435_455]);
}

#[test]
fn acks_v311() {
    check(
        V3_1_1,
        &[0x40, 2, 0x00, 0x0a],
        Packet::PubAck(PubAck::new(pid(10))),
    );
    check(
        V3_1_1,
        &[0x50, 2, 0x00, 0x0a],
        Packet::PubRec(PubRec::new(pid(10))),
    );
    check(
        V3_1_1,
        &[0x62, 2, 0x00, 0x0a],
        Packet::PubRel(PubRel::new(pid(10))),
    );
    check(
        V3_1_1,
        &[0x70, 2, 0x00, 0x0a],
        Packet::PubComp(PubComp::new(pid(10))),
    );
}

#[test]
fn acks_v5_short_and_long_forms() {
    // Reason code and properties left out when Success and empty.
    check(
        V5,
        &[0x40, 2, 0x00, 0x0a],
        Packet::PubAck(PubAck::new(pid(10))),
    );
    // Reason code without properties.
    check(
        V5,
        &[0x40, 3, 0x00, 0x0a, 0x10],
        Packet::PubAck(PubAck::new(pid(10)).with_reason(PubAckReasonCode::NoMatchingSubscribers)),
    );
    check(
        V5,
        &[0x62, 3, 0x00, 0x0a, 0x92],
        Packet::PubRel(
            PubRel::new(pid(10)).with_reason(PubRelReasonCode::PacketIdentifierNotFound),
        ),
    );
    #[rustfmt::skip]
    let v = [
        0x50, 8,
        0x00, 0x0a,
        0x80,                   // unspecified error
        0x04,                   // property length
        0x1f, 0x00, 0x01, b'e', // reason string "e"
    ];
    let mut rec = PubRec::new(pid(10)).with_reason(PubAckReasonCode::UnspecifiedError);
    rec.properties.reason_string = Some(s("e"));
    check(V5, &v, Packet::PubRec(rec));
    // A long form with Success and an empty property block is accepted.
    assert_eq!(
        accept(V5, &[0x70, 4, 0x00, 0x0a, 0x00, 0x00]),
        Packet::PubComp(PubComp::new(pid(10)))
    );
}

#[test]
fn subscribe_v311() {
    #[rustfmt::skip]
    let v = [
        0x82, 12,                       // SUBSCRIBE, flags 0010
        0x00, 0x0a,
        0x00, 0x03, b'a', b'/', b'+', 0x01, // "a/+" QoS 1
        0x00, 0x01, b'#', 0x02,             // "#" QoS 2
    ];
    let mut sub = Subscribe::new(
        pid(10),
        filter("a/+"),
        SubscriptionOptions::new(QoS::AtLeastOnce),
    );
    sub.subscriptions.push(Subscription {
        filter: filter("#"),
        options: SubscriptionOptions::new(QoS::ExactlyOnce),
    });
    check(V3_1_1, &v, Packet::Subscribe(sub));
}

#[test]
fn subscribe_v5_options_and_identifier() {
    #[rustfmt::skip]
    let v = [
        0x82, 11,
        0x00, 0x0a,
        0x02, 0x0b, 0x05,               // subscription identifier 5
        0x00, 0x03, b'a', b'/', b'#',
        0x1e,                           // QoS 2, no local, retain as published, retain handling 1
    ];
    let options = SubscriptionOptions {
        qos: QoS::ExactlyOnce,
        no_local: true,
        retain_as_published: true,
        retain_handling: RetainHandling::SendIfNew,
    };
    let mut sub = Subscribe::new(pid(10), filter("a/#"), options);
    sub.properties.subscription_identifier = SubscriptionId::new(5);
    check(V5, &v, Packet::Subscribe(sub));
}

#[test]
fn suback_both_versions() {
    check(
        V3_1_1,
        &[0x90, 4, 0x00, 0x0a, 0x01, 0x80],
        Packet::SubAck(SubAck::new(
            pid(10),
            vec![
                SubAckReasonCode::GrantedQoS1,
                SubAckReasonCode::UnspecifiedError,
            ],
        )),
    );
    check(
        V5,
        &[0x90, 5, 0x00, 0x0a, 0x00, 0x01, 0xa2],
        Packet::SubAck(SubAck::new(
            pid(10),
            vec![
                SubAckReasonCode::GrantedQoS1,
                SubAckReasonCode::WildcardSubscriptionsNotSupported,
            ],
        )),
    );
}

#[test]
fn unsubscribe_and_unsuback_both_versions() {
    let u = Unsubscribe::new(pid(10), filter("a/b"));
    check(
        V3_1_1,
        &[0xa2, 7, 0x00, 0x0a, 0x00, 0x03, b'a', b'/', b'b'],
        Packet::Unsubscribe(u.clone()),
    );
    check(
        V5,
        &[0xa2, 8, 0x00, 0x0a, 0x00, 0x00, 0x03, b'a', b'/', b'b'],
        Packet::Unsubscribe(u),
    );
    check(
        V3_1_1,
        &[0xb0, 2, 0x00, 0x0a],
        Packet::UnsubAck(UnsubAck::new(pid(10), vec![])),
    );
    check(
        V5,
        &[0xb0, 4, 0x00, 0x0a, 0x00, 0x11],
        Packet::UnsubAck(UnsubAck::new(
            pid(10),
            vec![UnsubAckReasonCode::NoSubscriptionExisted],
        )),
    );
    // 3.1.1 UNSUBACK means success for every filter: all-Success codes
    // encode to it, anything else is refused.
    let ok = Packet::UnsubAck(UnsubAck::new(pid(10), vec![UnsubAckReasonCode::Success]));
    assert_eq!(encode(V3_1_1, &ok).unwrap(), [0xb0, 2, 0x00, 0x0a]);
    let refused = Packet::UnsubAck(UnsubAck::new(
        pid(10),
        vec![UnsubAckReasonCode::NotAuthorized],
    ));
    assert!(matches!(
        encode(V3_1_1, &refused),
        Err(EncodeError::NotInVersion { .. })
    ));
}

#[test]
fn ping_both_versions() {
    for v in [V3_1, V3_1_1, V5] {
        check(v, &[0xc0, 0], Packet::PingReq);
        check(v, &[0xd0, 0], Packet::PingResp);
    }
}

#[test]
fn disconnect_both_versions() {
    check(
        V3_1_1,
        &[0xe0, 0],
        Packet::Disconnect(Disconnect::default()),
    );
    check(V5, &[0xe0, 0], Packet::Disconnect(Disconnect::default()));
    check(
        V5,
        &[0xe0, 1, 0x04],
        Packet::Disconnect(Disconnect::new(
            DisconnectReasonCode::DisconnectWithWillMessage,
        )),
    );
    #[rustfmt::skip]
    let v = [
        0xe0, 7,
        0x8e,                               // session taken over
        0x05, 0x11, 0x00, 0x00, 0x00, 0x00, // session expiry 0
    ];
    let mut d = Disconnect::new(DisconnectReasonCode::SessionTakenOver);
    d.properties.session_expiry_interval = Some(0);
    check(V5, &v, Packet::Disconnect(d));
}

#[test]
fn auth_v5() {
    check(
        V5,
        &[0xf0, 0],
        Packet::from(Auth::new(AuthReasonCode::Success)),
    );
    #[rustfmt::skip]
    let v = [
        0xf0, 14,
        0x18,                                   // continue authentication
        0x0c,                                   // property length 12
        0x15, 0x00, 0x04, b'S', b'C', b'R', b'A', // authentication method
        0x16, 0x00, 0x02, 0x01, 0x02,           // authentication data
    ];
    let mut a = Auth::new(AuthReasonCode::ContinueAuthentication);
    a.properties.authentication_method = Some(s("SCRA"));
    a.properties.authentication_data = Some(b(b"\x01\x02"));
    check(V5, &v, Packet::from(a));
}

#[test]
fn connect_v5_every_property() {
    let mut c = connect_sample(V5);
    let p = &mut c.properties;
    p.session_expiry_interval = Some(u32::MAX);
    p.receive_maximum = NonZeroU16::new(20);
    p.maximum_packet_size = NonZeroU32::new(1 << 20);
    p.topic_alias_maximum = Some(10);
    p.request_response_information = Some(true);
    p.request_problem_information = Some(false);
    p.authentication_method = Some(s("SCRAM-SHA-1"));
    p.authentication_data = Some(b(b"data"));
    p.user_properties.push(s("k"), s("v"));
    let w = &mut c.will.as_mut().unwrap().properties;
    w.will_delay_interval = Some(1);
    w.payload_format_indicator = Some(PayloadFormat::Unspecified);
    w.message_expiry_interval = Some(2);
    w.content_type = Some(s("c"));
    w.response_topic = Some(name("r"));
    w.correlation_data = Some(b(b"d"));
    w.user_properties.push(s("wk"), s("wv"));
    let bytes = encode(V5, &Packet::from(c.clone())).unwrap();
    check(V5, &bytes, Packet::from(c));
}

#[test]
fn connack_v5_every_property() {
    let mut a = ConnAck::new(ConnectReasonCode::Success);
    let p = &mut a.properties;
    p.session_expiry_interval = Some(10);
    p.receive_maximum = NonZeroU16::new(1);
    p.maximum_qos = Some(MaximumQoS::AtMostOnce);
    p.retain_available = Some(false);
    p.maximum_packet_size = NonZeroU32::new(100);
    p.assigned_client_identifier = Some(s("auto-1"));
    p.topic_alias_maximum = Some(0);
    p.reason_string = Some(s("ok"));
    p.wildcard_subscription_available = Some(true);
    p.subscription_identifiers_available = Some(false);
    p.shared_subscription_available = Some(true);
    p.server_keep_alive = Some(30);
    p.response_information = Some(s("resp/"));
    p.server_reference = Some(s("other:1883"));
    p.authentication_method = Some(s("m"));
    p.authentication_data = Some(b(b"d"));
    p.user_properties.push(s("k"), s("v"));
    let bytes = encode(V5, &Packet::from(a.clone())).unwrap();
    check(V5, &bytes, Packet::from(a));
}

#[test]
fn decode_bytes_matches_decode() {
    let mut all = bytes::BytesMut::new();
    all.extend_from_slice(CONNECT_V311);
    all.extend_from_slice(&[
        0x32, 9, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x0a, b'h', b'i',
    ]);
    let mut frozen = all.clone().freeze();
    let cfg = DecodeConfig::new(V3_1_1);
    let mut n = 0;
    while let Some(p) = decode_bytes(&mut frozen, &cfg).unwrap() {
        assert_eq!(Some(p), decode(&mut all, &cfg).unwrap());
        n += 1;
    }
    assert_eq!(n, 2);
    assert!(frozen.is_empty() && all.is_empty());
}

#[test]
fn decoded_strings_are_slices_of_the_input() {
    let mut buf = bytes::BytesMut::from(&[0x30, 7, 0x00, 0x03, b'a', b'/', b'b', b'h', b'i'][..]);
    let base = buf.as_ptr() as usize;
    let Packet::Publish(p) = decode(&mut buf, &DecodeConfig::new(V3_1_1))
        .unwrap()
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(p.topic.unwrap().as_bytes().as_ptr() as usize, base + 4);
    assert_eq!(p.payload.as_ptr() as usize, base + 7);
}

/// `decode` takes a shortcut for acknowledgements and PINGs (decoded in
/// place, no frame split off): it must agree with the general decoder on
/// every short body, valid or not.
#[test]
fn small_packets_decode_in_place_exactly_as_the_general_decoder() {
    use mqtt_wire::FixedHeader;
    let mut bodies: Vec<Vec<u8>> = vec![vec![], vec![0], vec![0, 1], vec![0, 0], vec![0xff, 0xff]];
    for code in 0..=255u8 {
        bodies.push(vec![0, 7, code]);
        bodies.push(vec![0, 7, code, 0]);
        bodies.push(vec![0, 7, code, 1]);
        bodies.push(vec![0, 0, code]);
    }
    bodies.push(vec![0, 7, 0, 3, 0x1f, 0, 0]);
    for v in [
        ProtocolVersion::V3_1,
        ProtocolVersion::V3_1_1,
        ProtocolVersion::V5,
    ] {
        let cfg = DecodeConfig::new(v);
        for first in [0x40u8, 0x50, 0x62, 0x70, 0xc0, 0xd0, 0x60, 0x41] {
            for body in &bodies {
                let mut wire = vec![first, body.len() as u8];
                wire.extend_from_slice(body);
                let mut buf = bytes::BytesMut::from(&wire[..]);
                let fast = decode(&mut buf, &cfg);
                let general = match FixedHeader::parse(&wire, &cfg) {
                    Ok(Some(h)) => {
                        Packet::decode_body(&h, bytes::Bytes::copy_from_slice(body), v).map(Some)
                    }
                    Ok(None) => Ok(None),
                    Err(e) => Err(e),
                };
                assert_eq!(fast, general, "{v:?} {wire:02x?}");
                if matches!(fast, Ok(Some(_))) {
                    assert!(buf.is_empty(), "{v:?} {wire:02x?}: consumed exactly");
                }
            }
        }
    }
}
