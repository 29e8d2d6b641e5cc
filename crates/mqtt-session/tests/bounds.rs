//! Memory a peer can make a connection hold is bounded even where the
//! protocol sets no limit: 3.1.1 has no Receive Maximum, but the
//! acknowledgements an application holds in manual mode are bounded by the
//! configured one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::num::NonZeroU16;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use mqtt_session::server::{Accept, Event, ServerConfig, ServerConnection};
use mqtt_session::{AckMode, CloseReason};
use mqtt_wire::{
    Connect, Delivery, DisconnectReasonCode, Encode, MqttString, PacketId, ProtocolVersion,
    Publish, TopicName,
};

#[test]
fn held_acknowledgements_of_a_311_client_are_bounded() {
    let now = Instant::now();
    let mut config = ServerConfig::default();
    config.ack_mode = AckMode::Manual;
    config.receive_maximum = NonZeroU16::new(4).unwrap();
    let mut s = ServerConnection::new(config, now);
    let v = ProtocolVersion::V3_1_1;
    let mut b = BytesMut::new();
    Connect::new(v, MqttString::from_static("c"))
        .encode(v, &mut b)
        .unwrap();
    s.handle_read(now, &b);
    assert!(matches!(s.poll_event(), Some(Event::Connect(_))));
    s.accept(now, Accept::new()).unwrap();
    // The same packet id again and again, never acknowledged by the app.
    let p = Publish::new(
        TopicName::from_static("t").unwrap(),
        Bytes::from_static(b"x"),
    )
    .with_delivery(Delivery::AtLeastOnce(PacketId::new(9).unwrap()));
    let mut b = BytesMut::new();
    for _ in 0..100 {
        p.encode(v, &mut b).unwrap();
    }
    s.handle_read(now, &b);
    let events: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
    let delivered = events
        .iter()
        .filter(|e| matches!(e, Event::Publish(_)))
        .count();
    assert_eq!(delivered, 4, "no more than the configured bound is held");
    assert!(matches!(
        events.last(),
        Some(Event::Closed(CloseReason::ProtocolViolation {
            code: DisconnectReasonCode::ReceiveMaximumExceeded,
            ..
        }))
    ));
    assert!(s.is_closed());
}
