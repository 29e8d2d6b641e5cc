//! The session-layer workload shared by the `session`, `session_instr` and
//! `session_memory` benches: a client and a server connection in memory,
//! connected once (CONNECT / CONNACK), then publishes of a 16-byte payload
//! to `home/floor1/room23/temperature`, each one carried through its whole
//! QoS flow before the next:
//!
//! ```text
//! client.publish → client bytes → server.handle_read → server events (the
//! application sees the Publish) → server bytes (PUBACK / PUBREC / PUBCOMP)
//! → client.handle_read → client events (PUBACK / PUBCOMP), and for QoS 2
//! the PUBREL the other way
//! ```
//!
//! The same for mqtt-session (`Client` + `ServerConnection`) and for
//! mqtt-protocol-core (`Connection<role::Client>` + `Connection<role::Server>`,
//! automatic publish responses on both sides, packets serialized with
//! `to_continuous_buffer` as its examples do). Both sides drain every output
//! after every input, and [`Pair::check`] proves in setup that a message
//! really completes its flow (delivered once to the server application, one
//! acknowledgement event at the client).
#![allow(dead_code)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;

pub const TOPIC: &str = "home/floor1/room23/temperature";
pub const PAYLOAD: &[u8; 16] = b"21.5 C, 48% r.h.";

/// Protocol version of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ver {
    V311,
    V5,
}

impl Ver {
    pub fn label(self) -> &'static str {
        match self {
            Ver::V311 => "3.1.1",
            Ver::V5 => "5.0",
        }
    }
}

/// A connected client/server pair of one library.
pub trait Pair: Sized {
    const NAME: &'static str;
    /// A connected pair (CONNECT / CONNACK exchanged, outputs drained).
    fn connect(v: Ver) -> Self;
    /// Publishes `n` messages at `qos` (0, 1 or 2), each through its whole
    /// flow.
    fn run(&mut self, qos: u8, n: usize);
    /// (messages the server application saw, acknowledgement events the
    /// client application saw) so far.
    fn counts(&self) -> (usize, usize);
    /// The server half of the pair.
    type Server;
    /// Drops everything but the server connection.
    fn into_server(self) -> Self::Server;

    /// Checks that `n` messages at `qos` are each delivered once and, for
    /// QoS 1 and 2, acknowledged once: the bench measures real work.
    fn check(v: Ver, qos: u8, n: usize) {
        let mut p = Self::connect(v);
        p.run(qos, n);
        let want_acks = if qos == 0 { 0 } else { n };
        assert_eq!(
            p.counts(),
            (n, want_acks),
            "{} {} QoS {qos}: (delivered, acknowledged)",
            Self::NAME,
            v.label()
        );
    }
}

// ---------------------------------------------------------------- ours --

pub mod ours {
    use super::*;
    use mqtt_session::client::{Client, ClientConfig, Event as CEvent};
    use mqtt_session::server::{Accept, Event as SEvent, ServerConfig, ServerConnection};
    use mqtt_wire::{
        Connect, Delivery, MqttString, PacketId, ProtocolVersion, Publish, QoS, TopicName,
    };

    pub struct Ours {
        pub client: Client,
        pub server: ServerConnection,
        now: Instant,
        topic: TopicName,
        payload: Bytes,
        delivered: usize,
        acked: usize,
    }

    pub fn version(v: Ver) -> ProtocolVersion {
        match v {
            Ver::V311 => ProtocolVersion::V3_1_1,
            Ver::V5 => ProtocolVersion::V5,
        }
    }

    /// Moves bytes both ways until neither side has anything to say,
    /// draining events (and asking for the next timeout) after every input,
    /// as the call contract says.
    #[inline(always)]
    fn pump(
        now: Instant,
        c: &mut Client,
        s: &mut ServerConnection,
        delivered: &mut usize,
        acked: &mut usize,
    ) {
        loop {
            let mut moved = false;
            while let Some(b) = c.poll_transmit() {
                s.handle_read(now, &b);
                moved = true;
            }
            while let Some(e) = s.poll_event() {
                match e {
                    SEvent::Publish(p) => {
                        black_box(&p);
                        *delivered += 1;
                    }
                    e => {
                        black_box(&e);
                    }
                }
            }
            black_box(s.poll_timeout());
            while let Some(b) = s.poll_transmit() {
                c.handle_read(now, &b);
                moved = true;
            }
            while let Some(e) = c.poll_event() {
                match e {
                    CEvent::PubAck(_) | CEvent::PubComp(_) => *acked += 1,
                    e => {
                        black_box(&e);
                    }
                }
            }
            black_box(c.poll_timeout());
            if !moved {
                break;
            }
        }
    }

    /// A server connection that received and accepted `v`'s CONNECT, with
    /// its outputs drained (the CONNACK bytes are returned).
    pub fn connected_server(v: Ver, now: Instant) -> (ServerConnection, Client) {
        let mut config = ClientConfig::new(Connect::new(
            version(v),
            MqttString::from_static("sensor-0001"),
        ));
        // mqtt-protocol-core does not map topic aliases by default: measure
        // the same bytes on the wire.
        config.topic_aliases = false;
        let mut client = Client::new(config);
        let mut server = ServerConnection::new(ServerConfig::default(), now);
        client.connect(now).expect("connect");
        while let Some(b) = client.poll_transmit() {
            server.handle_read(now, &b);
        }
        match server.poll_event() {
            Some(SEvent::Connect(c)) => assert_eq!(c.client_id, "sensor-0001"),
            other => panic!("expected CONNECT, got {other:?}"),
        }
        server.accept(now, Accept::new()).expect("accept");
        while let Some(b) = server.poll_transmit() {
            client.handle_read(now, &b);
        }
        assert!(server.poll_event().is_none());
        black_box(server.poll_timeout());
        assert!(server.is_connected());
        (server, client)
    }

    impl Pair for Ours {
        const NAME: &'static str = "mqtt-session";

        fn connect(v: Ver) -> Self {
            let now = Instant::now();
            let (server, mut client) = connected_server(v, now);
            match client.poll_event() {
                Some(CEvent::Connected { .. }) => {}
                other => panic!("expected Connected, got {other:?}"),
            }
            assert!(client.is_connected());
            Ours {
                client,
                server,
                now,
                topic: TopicName::from_static(TOPIC).expect("topic"),
                payload: Bytes::from_static(PAYLOAD),
                delivered: 0,
                acked: 0,
            }
        }

        #[inline(never)]
        fn run(&mut self, qos: u8, n: usize) {
            let qos = match qos {
                0 => QoS::AtMostOnce,
                1 => QoS::AtLeastOnce,
                _ => QoS::ExactlyOnce,
            };
            // The packet id is replaced by the session's own.
            let delivery = Delivery::new(qos, PacketId::new(1).expect("non-zero"));
            for _ in 0..n {
                self.now += Duration::from_micros(1);
                let msg =
                    Publish::new(self.topic.clone(), self.payload.clone()).with_delivery(delivery);
                let id = self.client.publish(self.now, msg).expect("publish");
                black_box(id);
                pump(
                    self.now,
                    &mut self.client,
                    &mut self.server,
                    &mut self.delivered,
                    &mut self.acked,
                );
            }
        }

        fn counts(&self) -> (usize, usize) {
            (self.delivered, self.acked)
        }

        type Server = ServerConnection;
        fn into_server(self) -> ServerConnection {
            self.server
        }
    }
}

// --------------------------------------------------- mqtt-protocol-core --

pub mod protocol_core {
    use super::*;
    use mqtt_protocol_core::mqtt;
    use mqtt_protocol_core::mqtt::prelude::*;

    type Event = mqtt::connection::Event;
    type Packet = mqtt::packet::Packet;

    pub struct ProtocolCore {
        pub client: mqtt::Connection<mqtt::role::Client>,
        pub server: mqtt::Connection<mqtt::role::Server>,
        v: Ver,
        payload: mqtt::ArcPayload,
        delivered: usize,
        acked: usize,
        /// CONNECT / CONNACK seen by the applications (setup check).
        connect_seen: bool,
        connack_seen: bool,
    }

    pub fn version(v: Ver) -> mqtt::Version {
        match v {
            Ver::V311 => mqtt::Version::V3_1_1,
            Ver::V5 => mqtt::Version::V5_0,
        }
    }

    impl ProtocolCore {
        /// Handles the events of a client call: packets to send go to the
        /// server, whose events are handled in turn.
        fn client_events(&mut self, events: Vec<Event>) {
            for e in events {
                match e {
                    Event::RequestSendPacket { packet, .. } => {
                        let buf = packet.to_continuous_buffer();
                        let mut cur = mqtt::common::Cursor::new(&buf[..]);
                        while (cur.position() as usize) < buf.len() {
                            let evs = self.server.recv(&mut cur);
                            self.server_events(evs);
                        }
                    }
                    Event::NotifyPacketReceived(p) => match p {
                        Packet::V3_1_1Puback(_)
                        | Packet::V5_0Puback(_)
                        | Packet::V3_1_1Pubcomp(_)
                        | Packet::V5_0Pubcomp(_) => self.acked += 1,
                        Packet::V3_1_1Connack(_) | Packet::V5_0Connack(_) => {
                            self.connack_seen = true
                        }
                        p => {
                            black_box(&p);
                        }
                    },
                    Event::NotifyError(e) => panic!("client error: {e:?}"),
                    Event::RequestClose => panic!("client closes"),
                    e => {
                        black_box(&e);
                    }
                }
            }
        }

        /// The same for the server's events.
        fn server_events(&mut self, events: Vec<Event>) {
            for e in events {
                match e {
                    Event::RequestSendPacket { packet, .. } => {
                        let buf = packet.to_continuous_buffer();
                        let mut cur = mqtt::common::Cursor::new(&buf[..]);
                        while (cur.position() as usize) < buf.len() {
                            let evs = self.client.recv(&mut cur);
                            self.client_events(evs);
                        }
                    }
                    Event::NotifyPacketReceived(p) => match p {
                        Packet::V3_1_1Publish(p) => {
                            black_box(&p);
                            self.delivered += 1;
                        }
                        Packet::V5_0Publish(p) => {
                            black_box(&p);
                            self.delivered += 1;
                        }
                        Packet::V3_1_1Connect(_) | Packet::V5_0Connect(_) => {
                            self.connect_seen = true
                        }
                        p => {
                            black_box(&p);
                        }
                    },
                    Event::NotifyError(e) => panic!("server error: {e:?}"),
                    Event::RequestClose => panic!("server closes"),
                    e => {
                        black_box(&e);
                    }
                }
            }
        }

        /// The server side alone, after receiving `v`'s CONNECT and sending
        /// CONNACK (the memory bench); the CONNECT bytes come from `client`.
        pub fn connected_server(v: Ver) -> Self {
            let mut client = mqtt::Connection::<mqtt::role::Client>::new(version(v));
            client.set_auto_pub_response(true);
            let mut server = mqtt::Connection::<mqtt::role::Server>::new(version(v));
            server.set_auto_pub_response(true);
            let mut p = ProtocolCore {
                client,
                server,
                v,
                payload: mqtt::IntoPayload::into_payload(&PAYLOAD[..]),
                delivered: 0,
                acked: 0,
                connect_seen: false,
                connack_seen: false,
            };
            let evs = match v {
                Ver::V311 => p.client.checked_send(
                    mqtt::packet::v3_1_1::Connect::builder()
                        .client_id("sensor-0001")
                        .expect("client id")
                        .keep_alive(60)
                        .clean_session(true)
                        .build()
                        .expect("connect"),
                ),
                Ver::V5 => p.client.checked_send(
                    mqtt::packet::v5_0::Connect::builder()
                        .client_id("sensor-0001")
                        .expect("client id")
                        .keep_alive(60)
                        .clean_start(true)
                        .build()
                        .expect("connect"),
                ),
            };
            p.client_events(evs);
            assert!(p.connect_seen, "server application saw CONNECT");
            let evs = match v {
                Ver::V311 => p.server.checked_send(
                    mqtt::packet::v3_1_1::Connack::builder()
                        .session_present(false)
                        .return_code(mqtt::result_code::ConnectReturnCode::Accepted)
                        .build()
                        .expect("connack"),
                ),
                Ver::V5 => p.server.checked_send(
                    mqtt::packet::v5_0::Connack::builder()
                        .session_present(false)
                        .reason_code(mqtt::result_code::ConnectReasonCode::Success)
                        .build()
                        .expect("connack"),
                ),
            };
            p.server_events(evs);
            assert!(p.connack_seen, "client application saw CONNACK");
            p
        }

        #[inline(always)]
        fn publish_one(&mut self, qos: mqtt::packet::Qos) {
            let pid = if qos == mqtt::packet::Qos::AtMostOnce {
                None
            } else {
                Some(self.client.acquire_packet_id().expect("packet id"))
            };
            let evs = match self.v {
                Ver::V311 => {
                    let mut b = mqtt::packet::v3_1_1::Publish::builder()
                        .topic_name(TOPIC)
                        .expect("topic")
                        .qos(qos)
                        .payload(self.payload.clone());
                    if let Some(id) = pid {
                        b = b.packet_id(id);
                    }
                    self.client.checked_send(b.build().expect("publish"))
                }
                Ver::V5 => {
                    let mut b = mqtt::packet::v5_0::Publish::builder()
                        .topic_name(TOPIC)
                        .expect("topic")
                        .qos(qos)
                        .payload(self.payload.clone());
                    if let Some(id) = pid {
                        b = b.packet_id(id);
                    }
                    self.client.checked_send(b.build().expect("publish"))
                }
            };
            self.client_events(evs);
        }
    }

    impl Pair for ProtocolCore {
        const NAME: &'static str = "mqtt-protocol-core";

        fn connect(v: Ver) -> Self {
            Self::connected_server(v)
        }

        #[inline(never)]
        fn run(&mut self, qos: u8, n: usize) {
            let qos = match qos {
                0 => mqtt::packet::Qos::AtMostOnce,
                1 => mqtt::packet::Qos::AtLeastOnce,
                _ => mqtt::packet::Qos::ExactlyOnce,
            };
            for _ in 0..n {
                self.publish_one(qos);
            }
        }

        fn counts(&self) -> (usize, usize) {
            (self.delivered, self.acked)
        }

        type Server = mqtt::Connection<mqtt::role::Server>;
        fn into_server(self) -> Self::Server {
            self.server
        }
    }
}
