//! # mqtt-wire: the MQTT 3.1, 3.1.1 and 5.0 packet codec
//!
//! Bytes in, packets out, and back. This crate does no I/O and reads no
//! clock: it turns a buffer of received bytes into [`Packet`]s and packets
//! into bytes, for every control packet of MQTT 3.1 (`MQIsdp`, level 3),
//! 3.1.1 (level 4) and 5.0 (level 5), with one packet model for all three.
//! The protocol version is a parameter of [`decode`] and [`Encode`]; a
//! CONNECT announces its own.
//!
//! What it promises:
//!
//! - **Streaming.** [`decode`] returns `Ok(None)` and consumes nothing until
//!   a whole packet is buffered, and then splits off exactly one packet. A
//!   packet whose fixed header declares more than
//!   [`DecodeConfig::max_packet_size`] is refused from the header alone.
//! - **Zero-copy.** Topics, strings, binary data and payloads of a decoded
//!   packet are slices of the received [`Bytes`](bytes::Bytes). Decoding a PUBLISH
//!   allocates nothing.
//! - **Borrowed, when the packet does not outlive the buffer.** [`decode_ref`]
//!   decodes from a `&[u8]` with the same parser and the same checks: a
//!   PUBLISH comes back as a [`PublishRef`] of the input (no reference
//!   count, no allocation); other packets as the owned [`Packet`] (see
//!   [`PacketRef`]).
//! - **Strict.** Every rule of the specifications the codec can check is
//!   checked: fixed-header flags, Variable Byte Integers in shortest form,
//!   UTF-8 strings (no U+0000, no surrogates; U+FEFF kept), topic names and
//!   filters, properties allowed per packet and not repeated, reason codes
//!   allowed per packet, every length consumed exactly. A violation is a
//!   [`DecodeError`] that names the rule (its spec id) and the reason code
//!   to answer with.
//! - **Never panics on input,** never loops without consuming input, and
//!   never allocates more than the packet it was given.
//! - **Refuses what a version cannot carry.** Encoding a packet with 5.0
//!   properties or reason codes for a 3.1.1 peer is an [`EncodeError`], not a
//!   silent drop. Illegal values are unrepresentable where types allow:
//!   [`PacketId`] is non-zero, [`Delivery`] ties the identifier to QoS > 0,
//!   [`TopicName`] has no wildcards, reason codes are per-packet enums.
//!
//! `no_std` with `alloc`; the default `std` feature only adds std's error
//! trait integration.
//!
//! ## A decode loop over a socket buffer
//!
//! ```
//! use bytes::BytesMut;
//! use mqtt_wire::{decode, DecodeConfig, Packet, ProtocolVersion};
//!
//! // Bytes as they might arrive from a socket: a PUBLISH split across two
//! // reads, followed by a PINGREQ.
//! let reads: [&[u8]; 2] = [&[0x30, 0x0a, 0x00, 0x03, b'a', b'/'], &[b'b', b'h', b'e', b'l', b'l', b'o', 0xc0, 0x00]];
//!
//! let cfg = DecodeConfig::new(ProtocolVersion::V3_1_1).with_max_packet_size(64 * 1024);
//! let mut buf = BytesMut::with_capacity(4096);
//! let mut seen = Vec::new();
//! for chunk in reads {
//!     buf.extend_from_slice(chunk); // socket.read(&mut buf) in real code
//!     loop {
//!         match decode(&mut buf, &cfg) {
//!             Ok(Some(packet)) => seen.push(packet),
//!             Ok(None) => break, // need more bytes
//!             Err(e) => panic!("close the connection: {e} (reason {:?})", e.reason_code()),
//!         }
//!     }
//! }
//! match &seen[0] {
//!     Packet::Publish(p) => {
//!         assert_eq!(p.topic.as_ref().unwrap().as_str(), "a/b");
//!         assert_eq!(&p.payload[..], b"hello");
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//! assert_eq!(seen[1], Packet::PingReq);
//! ```
//!
//! ## Encoding a PUBLISH
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use mqtt_wire::{Delivery, Encode, MqttString, PacketId, ProtocolVersion, Publish, TopicName};
//!
//! let mut publish = Publish::new(
//!     TopicName::from_static("home/floor1/room23/temperature").unwrap(),
//!     Bytes::from_static(b"21.5"),
//! )
//! .with_delivery(Delivery::AtLeastOnce(PacketId::new(7).unwrap()));
//! publish
//!     .properties
//!     .set_content_type(Some(MqttString::from_static("text/plain")));
//!
//! let mut out = BytesMut::new();
//! let n = publish.encode(ProtocolVersion::V5, &mut out).unwrap();
//! assert_eq!(n, out.len());
//!
//! // A 3.1.1 peer cannot receive a content type: refused, not dropped.
//! assert!(publish.encode(ProtocolVersion::V3_1_1, &mut out).is_err());
//!
//! // The peer's Maximum Packet Size is honoured by the checked encode.
//! assert!(publish.encode_checked(ProtocolVersion::V5, 16, &mut out).is_err());
//! ```
#![no_std]
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

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "arbitrary")]
#[doc(hidden)]
pub mod arbitrary;
mod codec;
mod error;
mod packet;
mod property;
mod publish_properties;
mod reason;
mod string;
mod topic;
mod types;

pub use codec::MAX_VARIABLE_BYTE_INTEGER;
pub use error::{DecodeError, EncodeError};
pub use packet::{
    decode, decode_bytes, decode_ref, Auth, ConnAck, Connect, DecodeConfig, Disconnect, Encode,
    FixedHeader, LastWill, Packet, PacketRef, PubAck, PubComp, PubRec, PubRel, Publish, PublishRef,
    RetainHandling, SubAck, Subscribe, Subscription, SubscriptionOptions, UnsubAck, Unsubscribe,
    DEFAULT_MAX_PACKET_SIZE, MAX_PACKET_SIZE,
};
pub use property::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    MaximumQoS, PayloadFormat, PropertyId, SubscribeProperties, SubscriptionId, SubscriptionIds,
    UnsubscribeProperties, UserProperties, WillProperties,
};
pub use publish_properties::{PublishProperties, PublishPropertiesRef};
pub use reason::{
    AuthReasonCode, ConnectReasonCode, DisconnectReasonCode, PubAckReasonCode, PubRelReasonCode,
    SubAckReasonCode, UnsubAckReasonCode,
};
pub use string::{MqttString, StringError, MAX_STRING_LEN};
pub use topic::{TopicError, TopicFilter, TopicName};
pub use types::{Delivery, PacketId, PacketType, ProtocolVersion, QoS};
