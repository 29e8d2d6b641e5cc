//! What the client and the server share, written once: packet identifiers,
//! the outbound in-flight table (QoS 1 and 2 sender side), the inbound QoS 2
//! table (receiver side), acknowledgement order, topic aliases in both
//! directions, the read buffer and the output buffer.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::{Bytes, BytesMut};
use mqtt_wire::{
    DecodeConfig, DecodeError, Delivery, DisconnectReasonCode, Encode, EncodeError, MqttString,
    Packet, PacketId, ProtocolVersion, PubAck, PubAckReasonCode, PubComp, PubRec, PubRel,
    PubRelReasonCode, Publish, QoS, TopicName, MAX_PACKET_SIZE,
};

use crate::{AckMode, CloseReason, Error};

/// Where an outbound QoS 1 or 2 message stands.
// Not boxed: the in-flight table holds entries inline in its nodes, and a
// box would cost one allocation per QoS 1/2 message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OutState {
    /// PUBLISH sent (or waiting to be resent): awaiting PUBACK (QoS 1) or
    /// PUBREC (QoS 2). DUP is already set in the stored copy once sent.
    Publish(Publish),
    /// PUBREL sent: awaiting PUBCOMP. The message itself is gone (the
    /// receiver owns it, MQTT-4.3.3-6: never resent).
    Release,
}

/// One outbound in-flight entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutEntry {
    /// Order of sending (PUBLISH) or of PUBREC arrival (PUBREL): resends
    /// follow it (MQTT-4.6.0-1, MQTT-4.6.0-4).
    pub(crate) seq: u64,
    /// Sent on the current connection (counts against the send quota).
    pub(crate) sent: bool,
    pub(crate) state: OutState,
}

/// Inbound QoS 2 message whose PUBREL has not arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InQos2 {
    /// Delivered to the application, PUBREC not yet sent (manual acks).
    Delivered,
    /// PUBREC sent: awaiting PUBREL.
    Received,
}

/// The protocol state that outlives a connection: both sides' QoS tables
/// and the packet identifier counter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Flows {
    pub(crate) next_id: u16,
    pub(crate) seq: u64,
    pub(crate) out: OutTable,
    pub(crate) in_qos2: InTable,
}

/// Inbound QoS 2 messages awaiting PUBREL, by packet id. Boxed on first
/// use and given back, when empty, by the keep-alive check of a quiet
/// connection (not on every removal: a QoS 2 flow would allocate per
/// message): most connections never receive QoS 2, and an empty
/// `BTreeMap` still takes 24 bytes inline (and keeps its root node after
/// its last removal).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(clippy::box_collection)] // 8 bytes inline instead of 24: the point
pub(crate) struct InTable(Option<Box<BTreeMap<u16, InQos2>>>);

impl InTable {
    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |t| t.len())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn get(&self, id: &u16) -> Option<&InQos2> {
        self.0.as_ref()?.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &u16) -> Option<&mut InQos2> {
        self.0.as_mut()?.get_mut(id)
    }

    pub(crate) fn insert(&mut self, id: u16, s: InQos2) -> Option<InQos2> {
        self.0.get_or_insert_with(Box::default).insert(id, s)
    }

    pub(crate) fn remove(&mut self, id: &u16) -> Option<InQos2> {
        self.0.as_mut()?.remove(id)
    }

    /// Gives everything back when empty.
    pub(crate) fn release_if_empty(&mut self) {
        if self.is_empty() {
            self.0 = None;
        }
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &u16> {
        self.0.iter().flat_map(|t| t.keys())
    }

    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut InQos2> {
        self.0.iter_mut().flat_map(|t| t.values_mut())
    }
}

/// The outbound in-flight table: an ordered index from packet id to a
/// slot, and the entries (a whole PUBLISH each) in slots that are reused
/// without allocating. The index moves 8-byte pairs; a
/// `BTreeMap<u16, OutEntry>` moved whole entries on every insert and
/// removal (~480 instructions per acknowledgement, callgrind). Boxed on
/// first use: a connection that never sends QoS 1/2 holds one pointer
/// (the three tables took 72 bytes inline).
#[derive(Debug, Clone, Default)]
pub(crate) struct OutTable(Option<Box<OutTables>>);

#[derive(Debug, Clone, Default)]
struct OutTables {
    index: BTreeMap<u16, u32>,
    slots: Vec<Option<OutEntry>>,
    free: Vec<u32>,
}

impl OutTable {
    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |t| t.index.len())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn contains_key(&self, id: &u16) -> bool {
        self.0.as_ref().is_some_and(|t| t.index.contains_key(id))
    }

    pub(crate) fn get(&self, id: &u16) -> Option<&OutEntry> {
        let t = self.0.as_ref()?;
        let slot = *t.index.get(id)?;
        t.slots.get(slot as usize)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, id: &u16) -> Option<&mut OutEntry> {
        let t = self.0.as_mut()?;
        let slot = *t.index.get(id)?;
        t.slots.get_mut(slot as usize)?.as_mut()
    }

    /// Stores `entry` under `id`; returns the entry it replaced.
    pub(crate) fn insert(&mut self, id: u16, entry: OutEntry) -> Option<OutEntry> {
        if let Some(e) = self.get_mut(&id) {
            return Some(std::mem::replace(e, entry));
        }
        let t = self.0.get_or_insert_with(Box::default);
        let slot = match t.free.pop() {
            Some(slot) => {
                if let Some(s) = t.slots.get_mut(slot as usize) {
                    *s = Some(entry);
                }
                slot
            }
            None => {
                // At most 65,535 entries: the index fits a u32.
                let slot = u32::try_from(t.slots.len()).unwrap_or(u32::MAX);
                t.slots.push(Some(entry));
                slot
            }
        };
        t.index.insert(id, slot);
        None
    }

    pub(crate) fn remove(&mut self, id: &u16) -> Option<OutEntry> {
        let t = self.0.as_mut()?;
        let slot = t.index.remove(id)?;
        let e = t.slots.get_mut(slot as usize)?.take();
        t.free.push(slot);
        self.shrink_when_empty();
        e
    }

    /// Removes `id` in place; returns whether it was sent on this
    /// connection.
    pub(crate) fn discard(&mut self, id: &u16) -> Option<bool> {
        let t = self.0.as_mut()?;
        let slot = t.index.remove(id)?;
        let cell = t.slots.get_mut(slot as usize)?;
        let sent = cell.as_ref().map(|e| e.sent);
        *cell = None;
        t.free.push(slot);
        self.shrink_when_empty();
        sent
    }

    /// After a burst, an empty table gives its slots back.
    fn shrink_when_empty(&mut self) {
        if self
            .0
            .as_ref()
            .is_some_and(|t| t.index.is_empty() && t.slots.len() > 8)
        {
            self.0 = None;
        }
    }

    /// An empty table gives everything back (for a quiet connection: a
    /// steady flow keeps its tables).
    pub(crate) fn release_if_empty(&mut self) {
        if self.is_empty() {
            self.0 = None;
        }
    }

    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut OutEntry> {
        self.0.iter_mut().flat_map(|t| t.slots.iter_mut().flatten())
    }

    /// Entries in packet id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&u16, &OutEntry)> {
        self.0.iter().flat_map(|t| {
            t.index
                .iter()
                .filter_map(|(id, slot)| Some((id, t.slots.get(*slot as usize)?.as_ref()?)))
        })
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |t| {
            std::mem::size_of::<OutTables>()
                + t.index.len() * 16
                + t.slots.capacity() * std::mem::size_of::<Option<OutEntry>>()
                + t.free.capacity() * 4
        })
    }
}

impl PartialEq for OutTable {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for OutTable {}

impl Flows {
    /// The identifier [`alloc_id`](Self::alloc_id) would hand out: not
    /// used by the in-flight table nor by `busy` (MQTT-2.2.1-3,
    /// MQTT-2.3.1-2). Changes nothing.
    pub(crate) fn peek_id(&self, busy: impl Fn(u16) -> bool) -> Result<PacketId, Error> {
        let mut id = self.next_id;
        for _ in 0..u16::MAX {
            id = if id == u16::MAX { 1 } else { id + 1 };
            if !self.out.contains_key(&id) && !busy(id) {
                if let Some(pid) = PacketId::new(id) {
                    return Ok(pid);
                }
            }
        }
        Err(Error::PacketIdsExhausted)
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Entries in resend order.
    pub(crate) fn resend_order(&self) -> Vec<u16> {
        let mut ids: Vec<(u64, u16)> = self.out.iter().map(|(id, e)| (e.seq, *id)).collect();
        ids.sort_unstable();
        ids.into_iter().map(|(_, id)| id).collect()
    }
}

/// Settings of the flow core for one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinkLimits {
    /// Receive Maximum we announced (inbound QoS 1/2 not yet acknowledged).
    pub(crate) receive_maximum: u16,
    /// Topic Alias Maximum we announced (inbound aliases accepted).
    pub(crate) topic_alias_maximum: u16,
    /// Largest packet we accept.
    pub(crate) max_packet_size: u32,
    /// How inbound QoS 1/2 messages are acknowledged.
    pub(crate) ack_mode: AckMode,
}

/// A pending inbound acknowledgement (kept in arrival order so PUBACKs and
/// PUBRECs leave in the order the PUBLISHes came, MQTT-4.6.0-2/3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PendingAck {
    id: u16,
    qos: QoS,
    /// `Some` once the application acknowledged it.
    reason: Option<PubAckReasonCode>,
}

/// What an inbound packet handled by the flow core means for the side
/// that owns it.
#[derive(Debug)]
pub(crate) enum FlowEvent {
    /// Nothing to report.
    None,
    /// A message to hand to the application.
    Publish(Publish),
    /// A QoS 1 message of ours was acknowledged.
    PubAck(PubAck),
    /// A QoS 2 message of ours was refused by a PUBREC of 0x80 or more.
    PubRecFailed(PubRec),
    /// A QoS 2 message of ours completed.
    PubComp(PubComp),
}

/// A violation found by the flow core: the connection must close with
/// `code` (sent in a DISCONNECT in 5.0).
pub(crate) type Violation = (DisconnectReasonCode, &'static str);

/// One connection's shared mechanics plus the session's QoS tables.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) version: ProtocolVersion,
    pub(crate) flows: Flows,
    pub(crate) limits: LinkLimits,
    /// The read and write buffers, boxed: a quiet connection gives them
    /// back whole at its keep-alive check (two empty `BytesMut` still take
    /// 64 bytes inline).
    bufs: Option<Box<Buffers>>,
    /// Largest packet the peer accepts.
    pub(crate) peer_max_packet: u32,
    /// The peer's Receive Maximum (our send quota's ceiling).
    pub(crate) peer_receive_maximum: u16,
    /// The peer's Maximum QoS (a 5.0 server's CONNACK; QoS 2 otherwise).
    pub(crate) peer_maximum_qos: QoS,
    /// Whether the peer accepts RETAIN (a 5.0 server's Retain Available).
    pub(crate) peer_retain: bool,
    /// Entries of `flows.out` sent on this connection.
    sent_in_flight: u32,
    /// The peer's Topic Alias Maximum (aliases we may use).
    out_alias_max: u16,
    /// Whether we assign outbound aliases at all.
    out_alias_enabled: bool,
    /// Inbound QoS 1 not yet acknowledged (manual mode).
    pending_qos1: u32,
    /// Tables many connections never use, boxed on first use (an idle
    /// connection carries one pointer for them).
    extras: Option<Box<Extras>>,
}

/// The read and write buffers of a [`Core`].
#[derive(Debug, Default)]
struct Buffers {
    /// Bytes received and not yet decoded.
    read: BytesMut,
    /// Bytes encoded and not yet taken by `poll_transmit`.
    out: BytesMut,
}

/// The parts of [`Core`] that many connections never use.
#[derive(Debug, Default)]
struct Extras {
    out_aliases: HashMap<TopicName, u16>,
    /// Aliases the peer defined (index alias - 1).
    in_aliases: Vec<Option<TopicName>>,
    /// Acknowledgements the application holds (manual mode), in arrival
    /// order.
    pending_acks: VecDeque<PendingAck>,
    /// Stored messages that no longer fit the peer's limits on resend:
    /// dropped, to report.
    dropped: Vec<Publish>,
    /// The client's Authentication Method (server side; most clients
    /// send none).
    auth_method: Option<MqttString>,
}

impl Extras {
    fn is_empty(&self) -> bool {
        self.out_aliases.is_empty()
            && self.in_aliases.is_empty()
            && self.pending_acks.is_empty()
            && self.dropped.is_empty()
            && self.auth_method.is_none()
    }
}

impl Core {
    pub(crate) fn new(version: ProtocolVersion, limits: LinkLimits, flows: Flows) -> Self {
        Core {
            version,
            flows,
            limits,
            bufs: None,
            peer_max_packet: MAX_PACKET_SIZE,
            peer_receive_maximum: u16::MAX,
            peer_maximum_qos: QoS::ExactlyOnce,
            peer_retain: true,
            sent_in_flight: 0,
            out_alias_max: 0,
            out_alias_enabled: false,
            pending_qos1: 0,
            extras: None,
        }
    }

    fn bufs(&mut self) -> &mut Buffers {
        self.bufs.get_or_insert_with(Box::default)
    }

    fn extras(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Box::default)
    }

    /// The peer's Authentication Method (server side).
    pub(crate) fn auth_method(&self) -> Option<&MqttString> {
        self.extras.as_ref()?.auth_method.as_ref()
    }

    pub(crate) fn set_auth_method(&mut self, method: Option<MqttString>) {
        match method {
            Some(m) => self.extras().auth_method = Some(m),
            None => {
                if let Some(x) = &mut self.extras {
                    x.auth_method = None;
                    if x.is_empty() {
                        self.extras = None;
                    }
                }
            }
        }
    }

    fn pending_acks(&self) -> usize {
        self.extras.as_ref().map_or(0, |x| x.pending_acks.len())
    }

    /// Messages dropped on resend since the last call, to report.
    pub(crate) fn take_dropped(&mut self) -> Vec<Publish> {
        self.extras
            .as_mut()
            .map(|x| std::mem::take(&mut x.dropped))
            .unwrap_or_default()
    }

    /// Forgets everything that belongs to the network connection (aliases,
    /// buffers, quotas) and keeps the session tables (MQTT-3.3.2-7).
    pub(crate) fn reset_connection(&mut self) {
        self.bufs = None;
        self.peer_max_packet = MAX_PACKET_SIZE;
        self.peer_receive_maximum = u16::MAX;
        self.peer_maximum_qos = QoS::ExactlyOnce;
        self.peer_retain = true;
        self.sent_in_flight = 0;
        for e in self.flows.out.values_mut() {
            e.sent = false;
        }
        self.out_alias_max = 0;
        if let Some(x) = &mut self.extras {
            x.out_aliases = HashMap::new();
            x.in_aliases = Vec::new();
            // Inbound QoS 1 not yet acknowledged is redelivered by the
            // peer; QoS 2 awaiting PUBREL stays in `flows.in_qos2`.
            x.pending_acks = VecDeque::new();
            if x.is_empty() {
                self.extras = None;
            }
        }
        self.pending_qos1 = 0;
        for s in self.flows.in_qos2.values_mut() {
            // A PUBREC the application had not yet allowed is due again
            // when the peer resends the PUBLISH.
            if *s == InQos2::Delivered {
                *s = InQos2::Received;
            }
        }
    }

    /// Sets the outbound alias limit learned from the peer.
    pub(crate) fn set_out_aliases(&mut self, peer_max: u16, enabled: bool) {
        self.out_alias_max = peer_max;
        self.out_alias_enabled = enabled && peer_max > 0;
    }

    pub(crate) fn decode_config(&self) -> DecodeConfig {
        DecodeConfig::new(self.version).with_max_packet_size(self.limits.max_packet_size)
    }

    /// Appends received bytes to the read buffer.
    pub(crate) fn push_read(&mut self, bytes: &[u8]) {
        self.bufs().read.extend_from_slice(bytes);
    }

    /// Decodes the next whole packet from the read buffer.
    pub(crate) fn next_packet(&mut self) -> Result<Option<Packet>, DecodeError> {
        let cfg = self.decode_config();
        let Some(b) = self.bufs.as_mut() else {
            return Ok(None);
        };
        let r = mqtt_wire::decode(&mut b.read, &cfg);
        if b.read.is_empty() && b.read.capacity() > 64 * 1024 {
            // Do not keep a large packet's buffer for the idle connection.
            b.read = BytesMut::new();
        }
        r
    }

    /// The type of the next packet in the read buffer, from its fixed
    /// header (`None`: not enough bytes yet).
    pub(crate) fn peek_type(&self) -> Result<Option<mqtt_wire::PacketType>, DecodeError> {
        let read = self.bufs.as_ref().map_or(&[][..], |b| &b.read[..]);
        let h = mqtt_wire::FixedHeader::parse(read, &self.decode_config())?;
        Ok(h.map(|h| h.packet_type))
    }

    /// Bytes received and not yet decoded.
    pub(crate) fn buffered(&self) -> usize {
        self.bufs.as_ref().map_or(0, |b| b.read.len())
    }

    /// Drops unread input (after a close nothing more is processed,
    /// MQTT-3.1.4-5 / MQTT-3.1.4-6).
    pub(crate) fn discard_input(&mut self) {
        if let Some(b) = &mut self.bufs {
            b.read = BytesMut::new();
        }
    }

    /// Drops the read and write buffers when they hold nothing (an empty
    /// `BytesMut` still pins its last allocation), and empty QoS tables.
    pub(crate) fn release_idle_buffers(&mut self) {
        if let Some(b) = &mut self.bufs {
            if b.read.is_empty() && b.out.is_empty() {
                self.bufs = None;
            } else {
                // One holds bytes (a partial packet, unsent output): the
                // other still gives back the allocation it pins.
                if b.read.is_empty() {
                    b.read = BytesMut::new();
                }
                if b.out.is_empty() {
                    b.out = BytesMut::new();
                }
            }
        }
        self.flows.out.release_if_empty();
        self.flows.in_qos2.release_if_empty();
    }

    /// Bytes waiting to be written.
    pub(crate) fn take_transmit(&mut self) -> Option<Bytes> {
        let b = self.bufs.as_mut()?;
        if b.out.is_empty() {
            None
        } else {
            Some(b.out.split().freeze())
        }
    }

    pub(crate) fn has_transmit(&self) -> bool {
        self.bufs.as_ref().is_some_and(|b| !b.out.is_empty())
    }

    /// Bytes of heap this connection holds in its buffers and tables
    /// (capacity, approximate for maps).
    pub(crate) fn heap_bytes(&self) -> usize {
        let extras = self.extras.as_ref().map_or(0, |x| {
            std::mem::size_of::<Extras>()
                + x.in_aliases.capacity() * std::mem::size_of::<Option<TopicName>>()
                + x.out_aliases.capacity() * (std::mem::size_of::<(TopicName, u16)>() + 1)
                + x.pending_acks.capacity() * std::mem::size_of::<PendingAck>()
                + x.dropped.capacity() * std::mem::size_of::<Publish>()
        });
        let bufs = self.bufs.as_ref().map_or(0, |b| {
            std::mem::size_of::<Buffers>() + b.read.capacity() + b.out.capacity()
        });
        bufs + extras
            + self.flows.out.heap_bytes()
            + self.flows.in_qos2.len() * (std::mem::size_of::<(u16, InQos2)>() + 16)
    }

    /// Encodes a packet for the peer, refusing it when larger than the
    /// peer's Maximum Packet Size.
    pub(crate) fn send<P: Encode>(&mut self, p: &P) -> Result<usize, EncodeError> {
        let (version, max) = (self.version, self.peer_max_packet);
        p.encode_checked(version, max, &mut self.bufs().out)
    }

    /// Encodes a packet built by this crate (acknowledgements, PINGs,
    /// DISCONNECT) whose only failure is the peer's size limit; such a
    /// packet that does not fit is dropped.
    pub(crate) fn send_control<P: Encode>(&mut self, p: &P) {
        // Failure means the peer's Maximum Packet Size is below a packet
        // without properties (a few bytes): nothing better can be sent.
        let _ = self.send(p);
    }

    // ---- outbound PUBLISH (sender side) ----

    /// Number of QoS 1/2 messages in flight on this connection.
    pub(crate) fn in_flight(&self) -> usize {
        self.sent_in_flight as usize
    }

    /// QoS 1/2 PUBLISH packets that may be sent now (MQTT-4.9.0-2).
    pub(crate) fn send_quota(&self) -> usize {
        if self.sent_in_flight as usize != self.flows.out.len() {
            return 0;
        }
        usize::from(self.peer_receive_maximum).saturating_sub(self.sent_in_flight as usize)
    }

    /// Whether a new QoS 1/2 PUBLISH may be sent now (MQTT-4.9.0-2).
    pub(crate) fn window_open(&self) -> bool {
        (self.sent_in_flight as usize) < usize::from(self.peer_receive_maximum)
            && self.sent_in_flight as usize == self.flows.out.len()
    }

    /// Sends a QoS 0 message now.
    pub(crate) fn publish_qos0(&mut self, mut p: Publish) -> Result<(), Error> {
        p.dup = false;
        p.delivery = Delivery::AtMostOnce;
        self.transmit_publish(&p).map_err(Error::from)?;
        Ok(())
    }

    /// Stores and sends a QoS 1/2 message under a fresh identifier.
    pub(crate) fn publish_qos12(
        &mut self,
        mut p: Publish,
        qos: QoS,
        busy: impl Fn(u16) -> bool,
    ) -> Result<PacketId, Error> {
        if !self.window_open() {
            return Err(Error::WindowFull);
        }
        let id = self.flows.peek_id(busy)?;
        p.delivery = Delivery::new(qos, id);
        p.dup = false; // MQTT-4.3.2-2, MQTT-4.3.3-2
        self.transmit_publish(&p).map_err(Error::from)?;
        self.flows.next_id = id.get();
        p.dup = true; // any later send is a re-delivery (MQTT-3.3.1-1)
        let seq = self.flows.next_seq();
        self.flows.out.insert(
            id.get(),
            OutEntry {
                seq,
                sent: true,
                state: OutState::Publish(p),
            },
        );
        self.sent_in_flight += 1;
        Ok(id)
    }

    /// Encodes a PUBLISH, using an outbound topic alias when allowed.
    fn transmit_publish(&mut self, p: &Publish) -> Result<usize, EncodeError> {
        if self.out_alias_enabled && p.properties.topic_alias.is_none() {
            if let Some(topic) = &p.topic {
                let known = self.extras.as_ref().map(|x| &x.out_aliases);
                if let Some(alias) = known.and_then(|a| a.get(topic)).copied() {
                    let mut q = p.clone();
                    q.topic = None;
                    q.properties.topic_alias = core::num::NonZeroU16::new(alias);
                    return self.send(&q);
                }
                let next = known.map_or(0, HashMap::len) + 1;
                if next <= usize::from(self.out_alias_max) {
                    // Cannot fail: next <= out_alias_max <= u16::MAX.
                    let alias = u16::try_from(next).unwrap_or(u16::MAX);
                    let mut q = p.clone();
                    q.properties.topic_alias = core::num::NonZeroU16::new(alias);
                    let n = self.send(&q)?;
                    self.extras().out_aliases.insert(topic.clone(), alias);
                    return Ok(n);
                }
            }
        }
        self.send(p)
    }

    /// Resends, in their original order, the in-flight entries not yet
    /// sent on this connection while the send quota allows
    /// (MQTT-4.4.0-1, MQTT-4.6.0-1).
    pub(crate) fn resend_pending(&mut self) {
        if self.sent_in_flight as usize == self.flows.out.len() {
            return;
        }
        for id in self.flows.resend_order() {
            if self.sent_in_flight as usize >= usize::from(self.peer_receive_maximum) {
                break;
            }
            let Some(entry) = self.flows.out.get(&id) else {
                continue;
            };
            if entry.sent {
                continue;
            }
            let state = entry.state.clone();
            match state {
                OutState::Publish(p) => {
                    // A message stored under an earlier connection's limits
                    // that this connection's peer no longer accepts (lower
                    // Maximum QoS, Retain Available withdrawn, smaller
                    // Maximum Packet Size) cannot be resent as it was
                    // (MQTT-3.2.2-11, MQTT-3.2.2-14, MQTT-3.2.2-15):
                    // dropped and reported, never sent nor silently lost.
                    let allowed =
                        p.qos() <= self.peer_maximum_qos && (self.peer_retain || !p.retain);
                    if !allowed || self.transmit_publish(&p).is_err() {
                        // It no longer fits the peer's limits (smaller
                        // Maximum Packet Size on this connection): treated
                        // as delivered, as a server does (MQTT-3.1.2-25),
                        // and reported to the application.
                        self.flows.out.remove(&id);
                        let mut p = p;
                        p.dup = false;
                        self.extras().dropped.push(p);
                        continue;
                    }
                }
                OutState::Release => {
                    let rel = PacketId::new(id).map(PubRel::new);
                    if let Some(rel) = rel {
                        self.send_control(&rel);
                    }
                }
            }
            if let Some(e) = self.flows.out.get_mut(&id) {
                e.sent = true;
                self.sent_in_flight += 1;
            }
        }
    }

    fn complete_out(&mut self, id: u16) {
        if self.flows.out.discard(&id) == Some(true) {
            self.sent_in_flight = self.sent_in_flight.saturating_sub(1);
        }
    }

    pub(crate) fn on_puback(&mut self, ack: PubAck) -> FlowEvent {
        let id = ack.packet_id.get();
        match self.flows.out.get(&id) {
            Some(OutEntry {
                state: OutState::Publish(p),
                sent: true,
                ..
            }) if p.qos() == QoS::AtLeastOnce => {
                self.complete_out(id);
                self.resend_pending();
                FlowEvent::PubAck(ack)
            }
            // An acknowledgement for nothing we have in flight (a late
            // duplicate after a resend): ignored.
            _ => FlowEvent::None,
        }
    }

    pub(crate) fn on_pubrec(&mut self, rec: PubRec) -> FlowEvent {
        let id = rec.packet_id.get();
        let state = match self.flows.out.get(&id) {
            Some(e) if e.sent => &e.state,
            _ => {
                // Unknown identifier: tell a 5.0 peer (PUBREL 0x92) so its
                // flow ends; 3.1.1 has no code, so release it plainly.
                let rel = PubRel::new(rec.packet_id);
                let rel = if self.version.is_v5() {
                    rel.with_reason(PubRelReasonCode::PacketIdentifierNotFound)
                } else {
                    rel
                };
                self.send_control(&rel);
                return FlowEvent::None;
            }
        };
        match state {
            OutState::Publish(p) if p.qos() == QoS::ExactlyOnce => {
                if rec.reason_code.is_error() {
                    // Acknowledged by refusal: never retransmitted
                    // (MQTT-4.4.0-2); the quota comes back (§4.9).
                    self.complete_out(id);
                    self.resend_pending();
                    return FlowEvent::PubRecFailed(rec);
                }
                let seq = self.flows.next_seq();
                if let Some(e) = self.flows.out.get_mut(&id) {
                    e.state = OutState::Release; // MQTT-4.3.3-6
                    e.seq = seq; // PUBRELs in PUBREC order (MQTT-4.6.0-4)
                }
                self.send_control(&PubRel::new(rec.packet_id)); // MQTT-4.3.3-4
                FlowEvent::None
            }
            OutState::Release => {
                // A repeated PUBREC: repeat the PUBREL.
                self.send_control(&PubRel::new(rec.packet_id));
                FlowEvent::None
            }
            OutState::Publish(_) => FlowEvent::None,
        }
    }

    pub(crate) fn on_pubcomp(&mut self, comp: PubComp) -> FlowEvent {
        let id = comp.packet_id.get();
        match self.flows.out.get(&id) {
            Some(OutEntry {
                state: OutState::Release,
                sent: true,
                ..
            }) => {
                self.complete_out(id);
                self.resend_pending();
                FlowEvent::PubComp(comp)
            }
            _ => FlowEvent::None,
        }
    }

    // ---- inbound PUBLISH (receiver side) ----

    /// Number of inbound QoS 1/2 messages not fully acknowledged.
    fn inbound_unacked(&self) -> usize {
        self.pending_qos1 as usize + self.flows.in_qos2.len()
    }

    /// Handles a received PUBLISH: resolves its topic alias, applies the
    /// QoS flow, and returns what to deliver.
    pub(crate) fn on_publish(&mut self, mut p: Publish) -> Result<FlowEvent, Violation> {
        self.resolve_alias(&mut p)?;
        match p.delivery {
            Delivery::AtMostOnce => Ok(FlowEvent::Publish(p)),
            Delivery::AtLeastOnce(id) => {
                // A QoS 1 PUBLISH is always a new message, whatever DUP says
                // (MQTT-4.3.2-5): deliver it again.
                self.check_receive_maximum()?;
                match self.limits.ack_mode {
                    AckMode::Auto => {
                        self.send_control(&PubAck::new(id)); // MQTT-4.3.2-4
                    }
                    AckMode::Manual => {
                        self.pending_qos1 += 1;
                        self.extras().pending_acks.push_back(PendingAck {
                            id: id.get(),
                            qos: QoS::AtLeastOnce,
                            reason: None,
                        });
                    }
                }
                Ok(FlowEvent::Publish(p))
            }
            Delivery::ExactlyOnce(id) => {
                match self.flows.in_qos2.get(&id.get()) {
                    Some(InQos2::Received) => {
                        // Already owned: acknowledge again, do not deliver
                        // twice (MQTT-4.3.3-10).
                        self.send_control(&PubRec::new(id));
                        return Ok(FlowEvent::None);
                    }
                    Some(InQos2::Delivered) => {
                        // The application has it and has not acknowledged
                        // yet; its PUBREC will go out when it does.
                        return Ok(FlowEvent::None);
                    }
                    None => {}
                }
                self.check_receive_maximum()?;
                match self.limits.ack_mode {
                    AckMode::Auto => {
                        self.flows.in_qos2.insert(id.get(), InQos2::Received);
                        self.send_control(&PubRec::new(id)); // MQTT-4.3.3-8
                    }
                    AckMode::Manual => {
                        self.flows.in_qos2.insert(id.get(), InQos2::Delivered);
                        self.extras().pending_acks.push_back(PendingAck {
                            id: id.get(),
                            qos: QoS::ExactlyOnce,
                            reason: None,
                        });
                    }
                }
                Ok(FlowEvent::Publish(p))
            }
        }
    }

    /// More unacknowledged QoS 1/2 messages than our Receive Maximum:
    /// 0x93 (MQTT 5.0 §3.3.4).
    fn check_receive_maximum(&self) -> Result<(), Violation> {
        // 3.1.1 has no Receive Maximum: a limit never announced cannot be
        // broken (closing would also loop: the resends break it again).
        // Only the acknowledgements the application holds in manual mode
        // are bounded there, by the same number, since they are memory a
        // peer could otherwise grow without end (one per QoS 1 PUBLISH,
        // even with a repeated packet id).
        if !self.version.is_v5() {
            if self.pending_acks() >= usize::from(self.limits.receive_maximum) {
                return Err((
                    DisconnectReasonCode::ReceiveMaximumExceeded,
                    "more messages awaiting the application's acknowledgement than allowed",
                ));
            }
            return Ok(());
        }
        if self.inbound_unacked() >= usize::from(self.limits.receive_maximum) {
            return Err((
                DisconnectReasonCode::ReceiveMaximumExceeded,
                "more unacknowledged QoS 1/2 PUBLISH packets than Receive Maximum",
            ));
        }
        Ok(())
    }

    fn resolve_alias(&mut self, p: &mut Publish) -> Result<(), Violation> {
        let Some(alias) = p.properties.topic_alias else {
            return Ok(());
        };
        let alias = alias.get();
        if alias > self.limits.topic_alias_maximum {
            // MQTT-3.2.2-17 / MQTT-3.1.2-26 broken by the peer.
            return Err((
                DisconnectReasonCode::TopicAliasInvalid,
                "Topic Alias above the Topic Alias Maximum we announced",
            ));
        }
        let idx = usize::from(alias) - 1;
        match p.topic.take() {
            Some(topic) => {
                let in_aliases = &mut self.extras().in_aliases;
                if in_aliases.len() <= idx {
                    in_aliases.resize(idx + 1, None);
                }
                if let Some(slot) = in_aliases.get_mut(idx) {
                    // A copy: the received topic is a slice of its whole
                    // frame, and the table must not pin payloads.
                    let own = TopicName::try_from(Bytes::copy_from_slice(topic.as_bytes()));
                    *slot = Some(own.unwrap_or_else(|_| topic.clone()));
                }
                p.topic = Some(topic);
            }
            None => match self
                .extras
                .as_ref()
                .and_then(|x| x.in_aliases.get(idx))
                .and_then(Option::as_ref)
            {
                Some(topic) => p.topic = Some(topic.clone()),
                None => {
                    return Err((
                        DisconnectReasonCode::ProtocolError,
                        "Topic Alias not defined on this connection",
                    ))
                }
            },
        }
        // The application sees the topic, not the alias.
        p.properties.topic_alias = None;
        Ok(())
    }

    /// Handles a PUBREL: completes the inbound QoS 2 flow.
    pub(crate) fn on_pubrel(&mut self, rel: PubRel) -> Result<(), Violation> {
        let id = rel.packet_id;
        match self.flows.in_qos2.get(&id.get()) {
            Some(InQos2::Received) => {
                self.flows.in_qos2.remove(&id.get());
                self.send_control(&PubComp::new(id)); // MQTT-4.3.3-11
                Ok(())
            }
            Some(InQos2::Delivered) => Err((
                DisconnectReasonCode::ProtocolError,
                "PUBREL before the PUBREC was sent",
            )),
            None => {
                // Unknown identifier (a repeated PUBREL after PUBCOMP was
                // lost): answer so the peer's flow ends.
                let comp = PubComp::new(id);
                let comp = if self.version.is_v5() {
                    comp.with_reason(PubRelReasonCode::PacketIdentifierNotFound)
                } else {
                    comp
                };
                self.send_control(&comp);
                Ok(())
            }
        }
    }

    /// The application acknowledges an inbound QoS 1/2 message (manual
    /// mode). Acknowledgements leave in arrival order.
    pub(crate) fn ack(&mut self, id: PacketId, reason: PubAckReasonCode) -> Result<(), Error> {
        if !self.version.is_v5() && reason != PubAckReasonCode::Success {
            return Err(Error::NotInVersion("PUBACK/PUBREC reason code"));
        }
        let entry = self
            .extras
            .as_mut()
            .and_then(|x| {
                x.pending_acks
                    .iter_mut()
                    .find(|a| a.id == id.get() && a.reason.is_none())
            })
            .ok_or(Error::UnknownPacketId(id))?;
        entry.reason = Some(reason);
        while let Some(x) = self.extras.as_mut() {
            let Some(front) = x.pending_acks.front().copied() else {
                break;
            };
            let Some(reason) = front.reason else { break };
            x.pending_acks.pop_front();
            let Some(pid) = PacketId::new(front.id) else {
                continue;
            };
            match front.qos {
                QoS::ExactlyOnce => {
                    if reason.is_error() {
                        // The identifier is free again (MQTT-4.3.3-9).
                        self.flows.in_qos2.remove(&front.id);
                    } else if let Some(s) = self.flows.in_qos2.get_mut(&front.id) {
                        *s = InQos2::Received;
                    }
                    self.send_control(&PubRec::new(pid).with_reason(reason));
                }
                _ => {
                    self.pending_qos1 = self.pending_qos1.saturating_sub(1);
                    self.send_control(&PubAck::new(pid).with_reason(reason));
                }
            }
        }
        Ok(())
    }

    /// Takes the session tables out (the connection is over).
    pub(crate) fn take_flows(&mut self) -> Flows {
        let mut f = std::mem::take(&mut self.flows);
        for e in f.out.values_mut() {
            e.sent = false;
        }
        for s in f.in_qos2.values_mut() {
            if *s == InQos2::Delivered {
                *s = InQos2::Received;
            }
        }
        self.sent_in_flight = 0;
        f
    }
}

/// Closes with `reason` unless already closed; shared by both sides.
pub(crate) fn violation_reason(v: Violation) -> CloseReason {
    CloseReason::ProtocolViolation {
        code: v.0,
        reason: v.1,
    }
}
