//! Sans-IO MQTT 3.1, 3.1.1 and 5.0 connection state machines: one
//! connection's protocol state for the [`client`] side and for the
//! [`server`] side.
//!
//! This crate never performs I/O and never reads a clock. You feed it the
//! bytes you read and the current time; it hands back bytes to write,
//! events, and the next instant at which it wants [`handle_timeout`] to be
//! called. That makes it usable on any runtime (tokio, async-std, a
//! blocking loop, an embedded executor) and testable deterministically.
//!
//! [`handle_timeout`]: client::Client::handle_timeout
//!
//! # The call contract (both sides)
//!
//! - **Inputs**: `handle_read(now, bytes)` with bytes read from the
//!   transport, `handle_timeout(now)` when the deadline from
//!   `poll_timeout` has passed (a spurious call does nothing), and
//!   `handle_closed(now)` when the transport closed.
//! - **Commands** (`connect`, `publish`, `subscribe`, `accept`, `ack`,
//!   `disconnect`, ...) only change state and queue output. Misuse returns
//!   [`Error`] and changes nothing.
//! - **Outputs**, to drain after every input or command, in this order:
//!   `poll_transmit()` until `None` (write the bytes), `poll_event()` until
//!   `None`, then `poll_timeout()` (sleep until then or until input).
//!   When `is_closed()` turns true, write what `poll_transmit` still
//!   returns and close the transport.
//! - **Time** only moves forward: `now` must never go back between calls
//!   (an earlier `now` is treated as the latest one seen).
//!
//! A violation of the protocol by the peer closes the connection: the
//! right DISCONNECT (5.0) is queued, and a `Closed`/`Disconnected` event
//! with a [`CloseReason`] says why.
//!
//! # Example: a client and a server in memory
//!
//! ```
//! use std::time::{Duration, Instant};
//! use bytes::Bytes;
//! use mqtt_session::client::{Client, ClientConfig, Event as ClientEvent};
//! use mqtt_session::server::{Accept, Event as ServerEvent, ServerConfig, ServerConnection};
//! use mqtt_wire::{Connect, Delivery, MqttString, PacketId, ProtocolVersion, Publish, QoS, TopicName};
//!
//! let mut now = Instant::now();
//! let connect = Connect::new(ProtocolVersion::V5, MqttString::from_static("sensor-1"));
//! let mut client = Client::new(ClientConfig::new(connect));
//! let mut server = ServerConnection::new(ServerConfig::default(), now);
//!
//! // Moves bytes both ways until neither side has anything to say.
//! fn pump(now: Instant, c: &mut Client, s: &mut ServerConnection) {
//!     loop {
//!         let mut moved = false;
//!         while let Some(b) = c.poll_transmit() { s.handle_read(now, &b); moved = true; }
//!         while let Some(b) = s.poll_transmit() { c.handle_read(now, &b); moved = true; }
//!         if !moved { break; }
//!     }
//! }
//!
//! client.connect(now).unwrap();
//! pump(now, &mut client, &mut server);
//! // The server surfaces the CONNECT; the application decides.
//! match server.poll_event() {
//!     Some(ServerEvent::Connect(c)) => assert_eq!(c.client_id, "sensor-1"),
//!     other => panic!("{other:?}"),
//! }
//! server.accept(now, Accept::new()).unwrap();
//! pump(now, &mut client, &mut server);
//! assert!(matches!(client.poll_event(), Some(ClientEvent::Connected { session_present: false, .. })));
//!
//! // A QoS 1 message: the server acknowledges it, the client hears back.
//! let msg = Publish::new(TopicName::from_static("t/1").unwrap(), Bytes::from_static(b"21.5"))
//!     .with_delivery(Delivery::AtLeastOnce(PacketId::new(1).unwrap()));
//! now += Duration::from_millis(5);
//! let id = client.publish(now, msg).unwrap().expect("QoS 1 has a packet id");
//! pump(now, &mut client, &mut server);
//! match server.poll_event() {
//!     Some(ServerEvent::Publish(p)) => assert_eq!(&p.payload[..], b"21.5"),
//!     other => panic!("{other:?}"),
//! }
//! match client.poll_event() {
//!     Some(ClientEvent::PubAck(ack)) => assert_eq!(ack.packet_id, id),
//!     other => panic!("{other:?}"),
//! }
//! // Keep-alive: the client wants to be woken to send PINGREQ.
//! assert!(client.poll_timeout().is_some());
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

#[cfg(feature = "arbitrary")]
#[doc(hidden)]
pub mod arbitrary;
pub mod client;
mod flow;
pub mod server;
mod state;

use core::fmt;

use mqtt_wire::{
    ConnAck, ConnectReasonCode, DecodeError, Disconnect, DisconnectReasonCode, EncodeError,
    PacketId, QoS,
};

pub use state::{OutboundMessage, SessionState, SessionStateError};

/// How received QoS 1 and QoS 2 messages are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AckMode {
    /// PUBACK / PUBREC are sent as soon as the PUBLISH is handled, before
    /// the application sees it.
    #[default]
    Auto,
    /// The application acknowledges each message with `ack` (and may give a
    /// 5.0 reason code). Acknowledgements still leave in the order the
    /// messages arrived (MQTT-4.6.0-2, MQTT-4.6.0-3): an early `ack` waits
    /// for the ones before it.
    Manual,
}

/// Misuse of the API: the command was refused and nothing changed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The command needs an established connection.
    NotConnected,
    /// The command is not valid in the connection's current state.
    InvalidState(&'static str),
    /// The send quota is used up: as many QoS 1/2 messages are in flight
    /// as the peer's Receive Maximum allows (MQTT-4.9.0-2). Retry after an
    /// acknowledgement event.
    WindowFull,
    /// Every packet identifier is in use.
    PacketIdsExhausted,
    /// The packet would exceed the peer's Maximum Packet Size
    /// (MQTT-3.2.2-15, MQTT-3.1.2-24).
    PacketTooLarge {
        /// Encoded size.
        size: usize,
        /// The peer's limit.
        max: u32,
    },
    /// The peer accepts at most this QoS (MQTT-3.2.2-11).
    QoSNotSupported {
        /// The highest QoS allowed.
        maximum: QoS,
    },
    /// The peer does not support retained messages (MQTT-3.2.2-14).
    RetainNotSupported,
    /// The server announced it does not support this feature (wildcard,
    /// shared subscriptions, subscription identifiers).
    NotSupportedByPeer(&'static str),
    /// Content a client may not send (for example a Subscription
    /// Identifier in a PUBLISH, MQTT-3.3.4-6, or a Topic Alias: aliases are
    /// assigned by the session).
    NotAllowed(&'static str),
    /// Content the connection's protocol version cannot carry.
    NotInVersion(&'static str),
    /// No pending request has this packet identifier.
    UnknownPacketId(PacketId),
    /// The packet cannot be encoded.
    Encode(EncodeError),
}

impl From<EncodeError> for Error {
    fn from(e: EncodeError) -> Self {
        match e {
            EncodeError::PacketTooLarge { size, max } => Error::PacketTooLarge { size, max },
            e => Error::Encode(e),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotConnected => f.write_str("not connected"),
            Error::InvalidState(s) => write!(f, "invalid in this state: {s}"),
            Error::WindowFull => f.write_str("in-flight window full (peer's Receive Maximum)"),
            Error::PacketIdsExhausted => f.write_str("all packet identifiers in use"),
            Error::PacketTooLarge { size, max } => write!(
                f,
                "packet of {size} bytes exceeds the peer's maximum of {max}"
            ),
            Error::QoSNotSupported { maximum } => {
                write!(f, "peer accepts at most QoS {}", *maximum as u8)
            }
            Error::RetainNotSupported => f.write_str("peer does not support retain"),
            Error::NotSupportedByPeer(s) => write!(f, "peer does not support {s}"),
            Error::NotAllowed(s) => write!(f, "not allowed: {s}"),
            Error::NotInVersion(s) => write!(f, "not expressible in this protocol version: {s}"),
            Error::UnknownPacketId(id) => {
                write!(f, "no pending request with packet id {}", id.get())
            }
            Error::Encode(e) => write!(f, "cannot encode: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// Why a connection ended.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer broke a protocol rule; in 5.0 a DISCONNECT with `code` was
    /// sent (when the state allowed one).
    ProtocolViolation {
        /// The reason code.
        code: DisconnectReasonCode,
        /// What happened.
        reason: &'static str,
    },
    /// The peer sent bytes that are not a valid packet.
    Malformed(DecodeError),
    /// The peer sent DISCONNECT.
    PeerDisconnected(Box<Disconnect>),
    /// Keep alive expired: nothing from the client within 1.5 times the
    /// Keep Alive (server), or no PINGRESP in time (client).
    KeepAliveTimeout,
    /// CONNECT (server) or CONNACK (client) did not arrive, or the
    /// application did not accept the connection, in time.
    ConnectTimeout,
    /// The transport closed ([`handle_closed`](client::Client::handle_closed)).
    TransportClosed,
    /// This side disconnected on purpose (a `disconnect` command); the
    /// DISCONNECT carried `code` in 5.0.
    LocalDisconnect(DisconnectReasonCode),
    /// The connection attempt was refused: the CONNACK (client: received;
    /// server: sent, or implied when no CONNACK could be sent).
    Refused(Box<ConnAck>),
    /// Enhanced authentication failed on this side.
    AuthenticationFailed,
}

impl CloseReason {
    /// For a server: whether the ending should publish the client's Will
    /// (every ending but a DISCONNECT with reason 0x00, MQTT 5.0 §3.1.2.5).
    pub fn publishes_will(&self) -> bool {
        match self {
            CloseReason::PeerDisconnected(d) => {
                d.reason_code != DisconnectReasonCode::NormalDisconnection
            }
            CloseReason::Refused(_) => false,
            _ => true,
        }
    }

    /// The CONNACK code, when the connection was refused.
    pub fn refusal(&self) -> Option<ConnectReasonCode> {
        match self {
            CloseReason::Refused(c) => Some(c.reason_code),
            _ => None,
        }
    }
}

/// Time arithmetic that never panics: `None` when the deadline is beyond
/// what `Instant` can hold.
pub(crate) fn after(now: std::time::Instant, d: std::time::Duration) -> Option<std::time::Instant> {
    now.checked_add(d)
}
