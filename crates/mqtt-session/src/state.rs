//! Session state that outlives a network connection, in a form that can be
//! moved between connections and persisted.

use core::fmt;

use mqtt_wire::{PacketId, Publish, QoS};

use crate::flow::{Flows, InQos2, OutEntry, OutState};

/// One unacknowledged outbound message of a session.
// Not boxed: it is a transfer form, built once per message on export.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundMessage {
    /// A QoS 1 or 2 PUBLISH awaiting PUBACK or PUBREC; resent with DUP set
    /// and its original packet identifier (MQTT-4.4.0-1).
    Publish(Publish),
    /// A QoS 2 message whose PUBREL awaits PUBCOMP; the PUBREL is resent.
    Release(PacketId),
}

impl OutboundMessage {
    /// The packet identifier.
    pub fn packet_id(&self) -> Option<PacketId> {
        match self {
            OutboundMessage::Publish(p) => p.packet_id(),
            OutboundMessage::Release(id) => Some(*id),
        }
    }
}

/// The protocol state of a session: the outbound QoS 1/2 messages not yet
/// acknowledged (in resend order), the inbound QoS 2 messages awaiting
/// PUBREL, and the packet identifier counter.
///
/// A client exports it with [`Client::session_state`] and resumes with
/// [`Client::with_session`]; a server takes it from a closed connection
/// with [`ServerConnection::take_session`] and gives it to the next one in
/// [`Accept::session`]. With the `serde` feature it serializes (messages
/// as their 5.0 wire encoding), so a client can keep it across restarts.
///
/// [`Client::session_state`]: crate::client::Client::session_state
/// [`Client::with_session`]: crate::client::Client::with_session
/// [`ServerConnection::take_session`]: crate::server::ServerConnection::take_session
/// [`Accept::session`]: crate::server::Accept::session
#[derive(Debug, Clone, Default)]
pub struct SessionState {
    pub(crate) flows: Flows,
}

/// Equal when the contents are: the same outbound messages in the same
/// resend order, the same inbound QoS 2 ids and the same packet id counter
/// (internal ordering counters do not count).
impl PartialEq for SessionState {
    fn eq(&self, other: &Self) -> bool {
        self.flows.next_id == other.flows.next_id
            && self.flows.in_qos2.keys().eq(other.flows.in_qos2.keys())
            && self.outbound() == other.outbound()
    }
}

impl Eq for SessionState {}

/// Why parts do not make a valid [`SessionState`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStateError {
    /// Two outbound entries, or two inbound ones, share a packet identifier.
    DuplicatePacketId(u16),
    /// An outbound PUBLISH has QoS 0 (nothing to keep) or no topic name.
    NotResendable,
    /// Stored bytes do not decode as a PUBLISH (serde form only).
    Corrupt,
}

impl fmt::Display for SessionStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionStateError::DuplicatePacketId(id) => write!(f, "packet id {id} used twice"),
            SessionStateError::NotResendable => {
                f.write_str("outbound message is QoS 0 or has no topic name")
            }
            SessionStateError::Corrupt => f.write_str("stored message does not decode"),
        }
    }
}

impl std::error::Error for SessionStateError {}

impl SessionState {
    /// An empty session.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a session from its parts: `outbound` in resend order.
    pub fn from_parts(
        next_packet_id: u16,
        outbound: Vec<OutboundMessage>,
        inbound_qos2: Vec<PacketId>,
    ) -> Result<Self, SessionStateError> {
        let mut flows = Flows {
            next_id: next_packet_id,
            ..Flows::default()
        };
        for m in outbound {
            let (id, state) = match m {
                OutboundMessage::Publish(mut p) => {
                    let Some(id) = p.packet_id() else {
                        return Err(SessionStateError::NotResendable);
                    };
                    if p.topic.is_none() || p.qos() == QoS::AtMostOnce {
                        return Err(SessionStateError::NotResendable);
                    }
                    p.dup = true;
                    p.properties.topic_alias = None;
                    (id, OutState::Publish(p))
                }
                OutboundMessage::Release(id) => (id, OutState::Release),
            };
            flows.seq += 1;
            let entry = OutEntry {
                seq: flows.seq,
                sent: false,
                state,
            };
            if flows.out.insert(id.get(), entry).is_some() {
                return Err(SessionStateError::DuplicatePacketId(id.get()));
            }
        }
        for id in inbound_qos2 {
            if flows.in_qos2.insert(id.get(), InQos2::Received).is_some() {
                return Err(SessionStateError::DuplicatePacketId(id.get()));
            }
        }
        Ok(SessionState { flows })
    }

    /// Whether nothing is pending in either direction.
    pub fn is_empty(&self) -> bool {
        self.flows.out.is_empty() && self.flows.in_qos2.is_empty()
    }

    /// The outbound messages not yet acknowledged, in resend order.
    pub fn outbound(&self) -> Vec<OutboundMessage> {
        self.flows
            .resend_order()
            .into_iter()
            .filter_map(|id| {
                let e = self.flows.out.get(&id)?;
                Some(match &e.state {
                    OutState::Publish(p) => OutboundMessage::Publish(p.clone()),
                    OutState::Release => OutboundMessage::Release(PacketId::new(id)?),
                })
            })
            .collect()
    }

    /// Inbound QoS 2 messages received (PUBREC sent) whose PUBREL has not
    /// arrived: a repeat of one of them is not delivered again.
    pub fn inbound_qos2(&self) -> Vec<PacketId> {
        self.flows
            .in_qos2
            .keys()
            .filter_map(|id| PacketId::new(*id))
            .collect()
    }

    /// The last packet identifier handed out.
    pub fn next_packet_id(&self) -> u16 {
        self.flows.next_id
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    use super::{OutboundMessage, SessionState, SessionStateError};
    use bytes::{Bytes, BytesMut};
    use mqtt_wire::{DecodeConfig, Encode, Packet, PacketId, ProtocolVersion, MAX_PACKET_SIZE};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Stored {
        next_packet_id: u16,
        /// In resend order: a PUBLISH's 5.0 encoding, or a packet id to
        /// release.
        outbound: Vec<StoredOut>,
        inbound_qos2: Vec<u16>,
    }

    #[derive(Serialize, Deserialize)]
    enum StoredOut {
        Publish(Vec<u8>),
        Release(u16),
    }

    impl Serialize for SessionState {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut outbound = Vec::new();
            for m in self.outbound() {
                outbound.push(match m {
                    OutboundMessage::Publish(p) => {
                        let mut b = BytesMut::new();
                        p.encode(ProtocolVersion::V5, &mut b)
                            .map_err(serde::ser::Error::custom)?;
                        StoredOut::Publish(b.to_vec())
                    }
                    OutboundMessage::Release(id) => StoredOut::Release(id.get()),
                });
            }
            Stored {
                next_packet_id: self.flows.next_id,
                outbound,
                inbound_qos2: self.flows.in_qos2.keys().copied().collect(),
            }
            .serialize(s)
        }
    }

    impl<'de> Deserialize<'de> for SessionState {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            use serde::de::Error as _;
            let stored = Stored::deserialize(d)?;
            let cfg = DecodeConfig::new(ProtocolVersion::V5).with_max_packet_size(MAX_PACKET_SIZE);
            let mut outbound = Vec::with_capacity(stored.outbound.len());
            for o in stored.outbound {
                outbound.push(match o {
                    StoredOut::Publish(bytes) => {
                        let mut b = Bytes::from(bytes);
                        match mqtt_wire::decode_bytes(&mut b, &cfg) {
                            Ok(Some(Packet::Publish(p))) if b.is_empty() => {
                                OutboundMessage::Publish(p)
                            }
                            _ => return Err(D::Error::custom(SessionStateError::Corrupt)),
                        }
                    }
                    StoredOut::Release(id) => OutboundMessage::Release(
                        PacketId::new(id)
                            .ok_or_else(|| D::Error::custom(SessionStateError::Corrupt))?,
                    ),
                });
            }
            let inbound = stored
                .inbound_qos2
                .into_iter()
                .map(|id| PacketId::new(id).ok_or(SessionStateError::Corrupt))
                .collect::<Result<Vec<_>, _>>()
                .map_err(D::Error::custom)?;
            SessionState::from_parts(stored.next_packet_id, outbound, inbound)
                .map_err(D::Error::custom)
        }
    }
}
