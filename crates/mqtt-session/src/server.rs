//! The server side of one MQTT connection.
//!
//! A [`ServerConnection`] is created when a transport is accepted. It
//! waits for CONNECT (within [`ServerConfig::connect_timeout`]), surfaces it
//! as [`Event::Connect`], and the application answers with
//! [`ServerConnection::accept`] or [`ServerConnection::reject`] (after an
//! optional AUTH exchange). Then it runs the QoS flows in both directions,
//! surfaces SUBSCRIBE/UNSUBSCRIBE for the application to answer, answers
//! PINGREQ itself and enforces every limit it announced. See the crate docs
//! for the call contract and a complete example.
//!
//! States: *awaiting CONNECT* → *awaiting accept* (CONNECT surfaced, AUTH
//! may be exchanged) → *connected* → *closed*. Once closed, the session
//! tables can be moved to the client's next connection with
//! [`take_session`](ServerConnection::take_session).

use std::collections::{BTreeMap, VecDeque};
use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_wire::{
    AckProperties, Auth, AuthProperties, AuthReasonCode, ConnAck, ConnAckProperties, Connect,
    ConnectReasonCode, DecodeError, Disconnect, DisconnectProperties, DisconnectReasonCode,
    EncodeError, MaximumQoS, MqttString, Packet, PacketId, PacketType, ProtocolVersion, PubAck,
    PubAckReasonCode, PubComp, PubRec, Publish, QoS, SubAck, SubAckReasonCode, Subscribe, UnsubAck,
    UnsubAckReasonCode, Unsubscribe, DEFAULT_MAX_PACKET_SIZE,
};

use crate::flow::{violation_reason, Core, FlowEvent, LinkLimits, Violation};
use crate::{after, AckMode, CloseReason, Error, SessionState};

/// Server settings: the limits and capabilities announced in CONNACK and
/// enforced on the client.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Time from the transport's acceptance to the CONNACK: CONNECT must
    /// arrive and the application must accept within it. Default 10 s (a
    /// client that never speaks must not hold a connection).
    pub connect_timeout: Duration,
    /// Receive Maximum announced: inbound QoS 1/2 messages not yet
    /// acknowledged; more is a violation (0x93, 5.0 only: 3.1.1 has no
    /// Receive Maximum to enforce). Default 1,024 (bounds
    /// what one client can make the server hold).
    pub receive_maximum: NonZeroU16,
    /// Largest packet accepted. Default [`DEFAULT_MAX_PACKET_SIZE`].
    pub max_packet_size: u32,
    /// Topic Alias Maximum announced (aliases the client may define).
    /// Default 16: each holds a topic name copy.
    pub topic_alias_maximum: u16,
    /// Highest QoS accepted from clients (5.0 Maximum QoS). Default 2.
    pub maximum_qos: QoS,
    /// Whether retained messages are supported. Default true.
    pub retain_available: bool,
    /// Whether wildcard subscriptions are supported. Default true.
    pub wildcard_subscriptions: bool,
    /// Whether shared subscriptions are supported. Default true.
    pub shared_subscriptions: bool,
    /// Whether subscription identifiers are supported. Default true.
    pub subscription_identifiers: bool,
    /// Keep alive imposed on 5.0 clients instead of theirs. Default none.
    pub server_keep_alive: Option<u16>,
    /// Use topic aliases on messages to clients that allow them. Default
    /// true.
    pub outbound_topic_aliases: bool,
    /// How inbound QoS 1/2 messages are acknowledged. Default automatic.
    pub ack_mode: AckMode,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            connect_timeout: Duration::from_secs(10),
            receive_maximum: NonZeroU16::new(1024).unwrap_or(NonZeroU16::MIN),
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            topic_alias_maximum: 16,
            maximum_qos: QoS::ExactlyOnce,
            retain_available: true,
            wildcard_subscriptions: true,
            shared_subscriptions: true,
            subscription_identifiers: true,
            server_keep_alive: None,
            outbound_topic_aliases: true,
            ack_mode: AckMode::Auto,
        }
    }
}

/// The application's acceptance of a CONNECT.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accept {
    /// Whether a session is resumed (only with Clean Start 0,
    /// MQTT-3.2.2-2/3).
    pub session_present: bool,
    /// The resumed session's state (from
    /// [`ServerConnection::take_session`]); its messages are resent.
    pub session: Option<SessionState>,
    /// Client identifier assigned to an empty one (required in 5.0,
    /// MQTT-3.2.2-16).
    pub assigned_client_id: Option<MqttString>,
    /// Further CONNACK properties (session expiry, reason string, user
    /// properties, response information, server reference, authentication
    /// data). The limits of [`ServerConfig`] are added by the connection.
    pub properties: ConnAckProperties,
}

impl Accept {
    /// A new session, no extra properties.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resumes `session` (Session Present 1).
    pub fn resume(session: SessionState) -> Self {
        Accept {
            session_present: true,
            session: Some(session),
            ..Self::default()
        }
    }

    /// Sets the assigned client identifier.
    pub fn with_assigned_client_id(mut self, id: MqttString) -> Self {
        self.assigned_client_id = Some(id);
        self
    }
}

/// What a server connection reports.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A valid CONNECT: answer with `accept` or `reject` (or continue an
    /// enhanced authentication with `auth_continue`).
    Connect(Box<Connect>),
    /// An AUTH from the client: a step of the authentication started by
    /// CONNECT (0x18), or a re-authentication (0x19). Answer with
    /// `auth_continue`, `accept` / `auth_success`, or `reject` /
    /// `disconnect`.
    Auth(Box<Auth>),
    /// A message from the client (topic alias resolved). In manual mode,
    /// QoS 1/2 messages wait for [`ServerConnection::ack`].
    Publish(Publish),
    /// One of our QoS 1 messages was acknowledged.
    PubAck(PubAck),
    /// One of our QoS 2 messages was refused (PUBREC 0x80 or above).
    PubRecFailed(PubRec),
    /// One of our QoS 2 messages completed.
    PubComp(PubComp),
    /// A SUBSCRIBE: answer with [`ServerConnection::suback`], one code
    /// per filter, in order (MQTT-3.8.4-1, MQTT-3.9.3-1).
    Subscribe(Subscribe),
    /// An UNSUBSCRIBE: answer with [`ServerConnection::unsuback`]
    /// (MQTT-3.10.4-4).
    Unsubscribe(Unsubscribe),
    /// A resumed session's message was not resent because it exceeds the
    /// client's Maximum Packet Size: per MQTT-3.1.2-25 it counts as
    /// delivered and is out of the session.
    Dropped(Publish),
    /// The connection ended; [`CloseReason::publishes_will`] says whether
    /// the Will applies.
    Closed(CloseReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitConnect,
    AwaitAccept,
    Connected,
    Closed,
}

/// What we keep of the client's CONNECT.
#[derive(Debug, Clone, Default)]
struct Peer {
    clean_start: bool,
    empty_client_id: bool,
    keep_alive: u16,
    session_expiry_zero: bool,
    request_problem_information: bool,
    request_response_information: bool,
}

/// What a busy connection holds between calls: events not yet polled and
/// unanswered SUBSCRIBE / UNSUBSCRIBE requests. Boxed: created on first
/// use and given back when a quiet connection's keep-alive check finds it
/// empty (inline, the two tables took 56 bytes of every connection).
#[derive(Debug, Default)]
struct Pending {
    events: VecDeque<Event>,
    /// Unanswered SUBSCRIBE / UNSUBSCRIBE, by packet id.
    requests: BTreeMap<u16, Request>,
}

#[derive(Debug, Clone)]
struct PendingSub {
    count: usize,
    /// Filters the connection itself refuses (3.1.1 without wildcard or
    /// shared support): index and code.
    refused: Vec<(usize, SubAckReasonCode)>,
}

/// A SUBSCRIBE or UNSUBSCRIBE the application has not answered yet.
#[derive(Debug, Clone)]
enum Request {
    Subscribe(PendingSub),
    /// Number of filters.
    Unsubscribe(usize),
}

/// One server-side connection.
#[derive(Debug)]
pub struct ServerConnection {
    /// Shared by every connection made from the same `Arc`.
    config: Arc<ServerConfig>,
    core: Core,
    state: State,
    pending: Option<Box<Pending>>,
    peer: Peer,
    keep_alive: u16,
    /// When the last packet arrived once connected; before that, when the
    /// transport was accepted (the CONNECT deadline counts from it).
    last_received: Instant,
    /// The latest `now` given.
    latest: Instant,
    reauthenticating: bool,
    /// The session tables were moved out by `take_session`.
    session_taken: bool,
    /// A CONNACK 0x00 was sent (the session belongs to the client).
    accepted: bool,
    /// The CONNACK 0x00 waits in the write buffer: once `poll_transmit`
    /// hands it out, the CONNECT exchange's buffers go back.
    release_after_connack: bool,
}

macro_rules! send_trimmed {
    ($self:ident, $packet:expr, $problem_info_ok:expr) => {{
        let mut p = $packet;
        if !$problem_info_ok {
            // MQTT-3.1.2-29: no Reason String / User Properties unless the
            // client asked for problem information.
            p.properties.reason_string = None;
            p.properties.user_properties = Default::default();
        }
        match $self.core.send(&p) {
            Err(EncodeError::PacketTooLarge { .. }) => {
                // MQTT-3.2.2-19/20, 3.4.2-2/3, 3.9.2-1/2, 3.11.2-1/2,
                // 3.14.2-3/4, 3.15.2-2/3: drop the optional diagnostics
                // to fit the client's Maximum Packet Size.
                p.properties.reason_string = None;
                p.properties.user_properties = Default::default();
                $self.core.send(&p)
            }
            r => r,
        }
    }};
}

impl ServerConnection {
    /// A connection accepted at `now`, awaiting CONNECT.
    ///
    /// `config` is a [`ServerConfig`] or an `Arc` of one: a server that
    /// makes many connections with the same settings passes clones of one
    /// `Arc`, so that each connection holds a pointer instead of a copy.
    pub fn new(config: impl Into<Arc<ServerConfig>>, now: Instant) -> Self {
        let config = config.into();
        let limits = LinkLimits {
            receive_maximum: config.receive_maximum.get(),
            topic_alias_maximum: config.topic_alias_maximum,
            max_packet_size: config.max_packet_size,
            ack_mode: config.ack_mode,
        };
        ServerConnection {
            core: Core::new(ProtocolVersion::V5, limits, Default::default()),
            config,
            state: State::AwaitConnect,
            pending: None,
            peer: Peer::default(),
            keep_alive: 0,
            last_received: now,
            latest: now,
            reauthenticating: false,
            session_taken: false,
            accepted: false,
            release_after_connack: false,
        }
    }

    /// The protocol version (known once CONNECT arrived).
    pub fn version(&self) -> ProtocolVersion {
        self.core.version
    }

    /// Whether the connection is established (CONNACK 0x00 sent).
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// Whether the connection is over: write what `poll_transmit` returns,
    /// then close the transport.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// How many more QoS 1/2 messages `publish` would accept now: the
    /// client's Receive Maximum minus what is in flight (0 before the
    /// connection is established). A broker checks it before taking a
    /// message out of its queue.
    pub fn send_quota(&self) -> usize {
        if self.state != State::Connected {
            return 0;
        }
        self.core.send_quota()
    }

    /// QoS 1/2 messages to the client in flight.
    pub fn in_flight(&self) -> usize {
        self.core.in_flight()
    }

    /// Heap bytes this connection holds (buffers and tables; approximate
    /// for maps). With [`std::mem::size_of::<ServerConnection>()`] it gives
    /// the memory of a connection.
    pub fn heap_bytes(&self) -> usize {
        self.core.heap_bytes()
            + self.pending.as_ref().map_or(0, |p| {
                std::mem::size_of::<Pending>()
                    + p.events.capacity() * std::mem::size_of::<Event>()
                    + p.requests.len() * 64
            })
    }

    /// The session tables, once the connection is closed (for the client's
    /// next connection, [`Accept::session`]). `None` before the close,
    /// when already taken, or when the connection was never accepted.
    pub fn take_session(&mut self) -> Option<SessionState> {
        // A connection never accepted holds no session of the client's.
        if self.state != State::Closed || self.session_taken || !self.accepted {
            return None;
        }
        self.session_taken = true;
        let flows = self.core.take_flows();
        Some(SessionState { flows })
    }

    /// `now`, or the latest time given if `now` is earlier (time only
    /// moves forward; see the crate docs).
    fn touch(&mut self, now: Instant) -> Instant {
        if now > self.latest {
            self.latest = now;
        }
        self.latest
    }

    /// A packet arrived (or the connection was accepted) at `now`, the
    /// latest time given.
    fn received_at(&mut self, now: Instant) {
        self.last_received = now;
    }

    // ---- commands ----

    /// Accepts the CONNECT: sends CONNACK 0x00 with the configured limits
    /// and `accept`'s properties (MQTT-3.2.0-1, MQTT-3.1.4-5) and resends
    /// the resumed session's messages (MQTT-4.4.0-1).
    pub fn accept(&mut self, now: Instant, accept: Accept) -> Result<(), Error> {
        let now = self.touch(now);
        if self.state != State::AwaitAccept {
            return Err(Error::InvalidState("no CONNECT awaiting an answer"));
        }
        if accept.session_present && self.peer.clean_start {
            // MQTT-3.2.2-2: Clean Start 1 means Session Present 0.
            return Err(Error::InvalidState("session present with Clean Start 1"));
        }
        if accept.session.is_some() && !accept.session_present {
            return Err(Error::InvalidState(
                "a session given with Session Present 0",
            ));
        }
        let v5 = self.core.version.is_v5();
        if v5 && self.peer.empty_client_id && accept.assigned_client_id.is_none() {
            // MQTT-3.2.2-16
            return Err(Error::NotAllowed(
                "an empty client id needs an assigned one",
            ));
        }
        let mut ack = ConnAck::new(ConnectReasonCode::Success);
        ack.session_present = accept.session_present;
        if v5 {
            let mut p = accept.properties;
            let c = &self.config;
            if c.receive_maximum.get() != u16::MAX {
                p.receive_maximum = Some(c.receive_maximum);
            }
            p.maximum_qos = match c.maximum_qos {
                QoS::AtMostOnce => Some(MaximumQoS::AtMostOnce),
                QoS::AtLeastOnce => Some(MaximumQoS::AtLeastOnce),
                QoS::ExactlyOnce => None,
            };
            p.retain_available = (!c.retain_available).then_some(false);
            p.maximum_packet_size = NonZeroU32::new(c.max_packet_size)
                .filter(|_| c.max_packet_size < mqtt_wire::MAX_PACKET_SIZE);
            p.topic_alias_maximum = (c.topic_alias_maximum > 0).then_some(c.topic_alias_maximum);
            p.wildcard_subscription_available = (!c.wildcard_subscriptions).then_some(false);
            p.shared_subscription_available = (!c.shared_subscriptions).then_some(false);
            p.subscription_identifiers_available = (!c.subscription_identifiers).then_some(false);
            p.server_keep_alive = c.server_keep_alive;
            if self.peer.empty_client_id {
                p.assigned_client_identifier = accept.assigned_client_id;
            }
            if !self.peer.request_response_information {
                // MQTT-3.1.2-28
                p.response_information = None;
            }
            // MQTT-4.12.0-5 / MQTT-4.12.0-6
            p.authentication_method = self.core.auth_method().cloned();
            if p.authentication_method.is_none() {
                p.authentication_data = None;
            }
            ack.properties = p;
        }
        // CONNACK may always carry Reason String and User Properties
        // (MQTT-3.1.2-29 names it), so only the size rule applies.
        send_trimmed!(self, ack, true)?;
        self.state = State::Connected;
        self.accepted = true;
        self.release_after_connack = true;
        self.keep_alive = if v5 {
            self.config
                .server_keep_alive
                .unwrap_or(self.peer.keep_alive)
        } else {
            self.peer.keep_alive
        };
        self.received_at(now);
        if let Some(s) = accept.session {
            let next_id = self.core.flows.next_id;
            self.core.flows = s.flows;
            if self.core.flows.next_id == 0 {
                self.core.flows.next_id = next_id;
            }
        }
        self.core.resend_pending();
        // The CONNECT phase's event queue is usually empty now: do not keep
        // its buffer for a connection that may stay idle.
        if let Some(p) = &mut self.pending {
            p.events.shrink_to_fit();
        }
        // Packets the client sent before the CONNACK (3.1.1 allows it).
        self.process(now);
        Ok(())
    }

    /// Refuses the CONNECT: CONNACK with `code` (mapped to the 3.1.1 return
    /// code table for older clients), Session Present 0 (MQTT-3.2.2-4,
    /// MQTT-3.2.2-6), then the connection closes (MQTT-3.2.2-5,
    /// MQTT-3.2.2-7) and later input is ignored (MQTT-3.1.4-5).
    /// `properties` (5.0) may carry a Reason String or a Server Reference
    /// (with 0x9C / 0x9D).
    pub fn reject(
        &mut self,
        now: Instant,
        code: ConnectReasonCode,
        properties: ConnAckProperties,
    ) -> Result<(), Error> {
        let _ = self.touch(now);
        if self.state != State::AwaitAccept {
            return Err(Error::InvalidState("no CONNECT awaiting an answer"));
        }
        if !code.is_error() {
            return Err(Error::InvalidState("reject needs a failure code"));
        }
        self.refuse(code, properties);
        Ok(())
    }

    fn refuse(&mut self, code: ConnectReasonCode, properties: ConnAckProperties) {
        let v5 = self.core.version.is_v5();
        let mut ack = ConnAck::new(if v5 { code } else { code.v3_equivalent() });
        if v5 {
            ack.properties = properties;
        }
        // When not even this fits the client's limit, the connection closes
        // without CONNACK.
        let _ = send_trimmed!(self, ack.clone(), true);
        self.close(CloseReason::Refused(Box::new(ack)));
    }

    /// Continues an enhanced authentication: AUTH 0x18 with `data`
    /// (MQTT-4.12.0-2), during connect or re-authentication.
    pub fn auth_continue(
        &mut self,
        now: Instant,
        data: Option<Bytes>,
        properties: AuthProperties,
    ) -> Result<(), Error> {
        let _ = self.touch(now);
        self.send_auth(AuthReasonCode::ContinueAuthentication, data, properties)
    }

    /// Ends a re-authentication successfully: AUTH 0x00.
    pub fn auth_success(
        &mut self,
        now: Instant,
        data: Option<Bytes>,
        properties: AuthProperties,
    ) -> Result<(), Error> {
        let _ = self.touch(now);
        if !(self.state == State::Connected && self.reauthenticating) {
            return Err(Error::InvalidState("no re-authentication in progress"));
        }
        self.send_auth(AuthReasonCode::Success, data, properties)?;
        self.reauthenticating = false;
        Ok(())
    }

    fn send_auth(
        &mut self,
        code: AuthReasonCode,
        data: Option<Bytes>,
        mut properties: AuthProperties,
    ) -> Result<(), Error> {
        let in_exchange = self.state == State::AwaitAccept
            || (self.state == State::Connected && self.reauthenticating);
        if !in_exchange {
            return Err(Error::InvalidState("no authentication in progress"));
        }
        let Some(method) = self.core.auth_method().cloned() else {
            // MQTT-4.12.0-6: no method in CONNECT, no AUTH from the server.
            return Err(Error::NotAllowed("AUTH without an authentication method"));
        };
        properties.authentication_method = Some(method);
        properties.authentication_data = data;
        let problem = self.peer.request_problem_information;
        send_trimmed!(
            self,
            Auth {
                reason_code: code,
                properties
            },
            problem
        )?;
        Ok(())
    }

    /// Sends a message to the client at the QoS of `msg.delivery` (its
    /// packet id is replaced). Returns the packet id for QoS 1/2.
    ///
    /// For a 3.1.1 / 3.1 client the 5.0 properties are dropped (they have
    /// no form there). [`Error::PacketTooLarge`]: the message exceeds the
    /// client's Maximum Packet Size; per MQTT-3.1.2-25 the caller treats it
    /// as delivered. [`Error::WindowFull`]: as many messages in flight as
    /// the client's Receive Maximum (MQTT-3.3.4-9); keep it queued.
    pub fn publish(&mut self, now: Instant, mut msg: Publish) -> Result<Option<PacketId>, Error> {
        let _ = self.touch(now);
        if self.state != State::Connected {
            return Err(Error::NotConnected);
        }
        if msg.properties.topic_alias.is_some() {
            return Err(Error::NotAllowed("Topic Alias (assigned by the session)"));
        }
        if msg.topic.is_none() {
            return Err(Error::NotAllowed("PUBLISH without a topic name"));
        }
        if !self.core.version.is_v5() {
            msg.properties = Default::default();
        }
        let qos = msg.qos();
        if qos == QoS::AtMostOnce {
            self.core.publish_qos0(msg).map(|()| None)
        } else {
            self.core.publish_qos12(msg, qos, |_| false).map(Some)
        }
    }

    /// Answers the SUBSCRIBE `id` with one code per filter, in order.
    /// Filters the connection refused itself (3.1.1 without wildcard or
    /// shared support) keep their failure code. For 3.1.1 clients, 5.0-only
    /// failure codes become 0x80.
    pub fn suback(
        &mut self,
        now: Instant,
        id: PacketId,
        mut codes: Vec<SubAckReasonCode>,
        properties: AckProperties,
    ) -> Result<(), Error> {
        let _ = self.touch(now);
        if self.state != State::Connected {
            return Err(Error::NotConnected);
        }
        let Some(Request::Subscribe(pending)) = self.request(id.get()) else {
            return Err(Error::UnknownPacketId(id));
        };
        if pending.count != codes.len() {
            return Err(Error::InvalidState("one SUBACK code per filter"));
        }
        for (i, code) in &pending.refused {
            if let Some(c) = codes.get_mut(*i) {
                *c = *code;
            }
        }
        let v5 = self.core.version.is_v5();
        if !v5 {
            for c in &mut codes {
                if !c.in_v3() {
                    *c = SubAckReasonCode::UnspecifiedError;
                }
            }
        }
        let mut ack = SubAck::new(id, codes);
        if v5 {
            ack.properties = properties;
        }
        let problem = self.peer.request_problem_information;
        send_trimmed!(self, ack, problem)?;
        self.request_answered(id);
        Ok(())
    }

    /// Answers the UNSUBSCRIBE `id` (MQTT-3.10.4-4/5): one code per filter
    /// in 5.0; ignored for 3.1.1, whose UNSUBACK has none.
    pub fn unsuback(
        &mut self,
        now: Instant,
        id: PacketId,
        codes: Vec<UnsubAckReasonCode>,
        properties: AckProperties,
    ) -> Result<(), Error> {
        let _ = self.touch(now);
        if self.state != State::Connected {
            return Err(Error::NotConnected);
        }
        let Some(&Request::Unsubscribe(count)) = self.request(id.get()) else {
            return Err(Error::UnknownPacketId(id));
        };
        let v5 = self.core.version.is_v5();
        if v5 && count != codes.len() {
            return Err(Error::InvalidState("one UNSUBACK code per filter"));
        }
        let mut ack = UnsubAck::new(id, if v5 { codes } else { Vec::new() });
        if v5 {
            ack.properties = properties;
        }
        let problem = self.peer.request_problem_information;
        send_trimmed!(self, ack, problem)?;
        self.request_answered(id);
        Ok(())
    }

    /// Acknowledges an inbound QoS 1/2 message (manual mode), for example
    /// with 0x87 Not authorized in 5.0.
    pub fn ack(
        &mut self,
        now: Instant,
        id: PacketId,
        reason: PubAckReasonCode,
    ) -> Result<(), Error> {
        let _ = self.touch(now);
        if self.state != State::Connected {
            return Err(Error::NotConnected);
        }
        self.core.ack(id, reason)
    }

    /// Closes the connection: in 5.0, after a successful CONNACK, with a
    /// DISCONNECT carrying `reason` (MQTT-3.14.0-1; Session Expiry Interval
    /// removed, MQTT-3.14.2-2); 3.1.1 has no server DISCONNECT, the
    /// transport is just closed.
    pub fn disconnect(
        &mut self,
        now: Instant,
        reason: DisconnectReasonCode,
        mut properties: DisconnectProperties,
    ) -> Result<(), Error> {
        let _ = self.touch(now);
        if self.state == State::Closed {
            return Err(Error::InvalidState("already closed"));
        }
        if self.state == State::Connected && self.core.version.is_v5() {
            properties.session_expiry_interval = None;
            let mut d = Disconnect::new(reason);
            d.properties = properties;
            // DISCONNECT may carry diagnostics whatever was requested.
            let _ = send_trimmed!(self, d, true);
        }
        self.close(CloseReason::LocalDisconnect(reason));
        Ok(())
    }

    // ---- inputs ----

    /// Bytes read from the transport.
    pub fn handle_read(&mut self, now: Instant, bytes: &[u8]) {
        let now = self.touch(now);
        if self.state == State::Closed {
            return;
        }
        self.core.push_read(bytes);
        self.process(now);
    }

    fn process(&mut self, now: Instant) {
        loop {
            match self.state {
                State::Closed => return,
                State::AwaitAccept => {
                    // Only AUTH is handled before the CONNACK; anything else
                    // waits in the buffer (bounded) until the answer.
                    match self.core.peek_type() {
                        Ok(Some(PacketType::Auth)) => {}
                        Ok(Some(_)) | Ok(None) => {
                            if self.core.buffered() > self.pending_input_limit() {
                                self.close(violation_reason((
                                    DisconnectReasonCode::QuotaExceeded,
                                    "too much input before CONNACK",
                                )));
                            }
                            return;
                        }
                        Err(e) => return self.malformed(e),
                    }
                }
                State::AwaitConnect | State::Connected => {}
            }
            match self.core.next_packet() {
                Ok(Some(p)) => {
                    if self.state == State::Connected {
                        self.received_at(now);
                    }
                    self.handle_packet(now, p);
                }
                Ok(None) => return,
                Err(e) => return self.malformed(e),
            }
        }
    }

    fn pending_input_limit(&self) -> usize {
        (self.config.max_packet_size as usize).max(64 * 1024)
    }

    /// Time has reached the deadline from `poll_timeout` (a spurious call
    /// does nothing).
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.touch(now);
        match self.state {
            State::Closed => {}
            State::AwaitConnect | State::AwaitAccept => {
                if self.connect_deadline().is_some_and(|d| now >= d) {
                    self.close(CloseReason::ConnectTimeout);
                }
            }
            State::Connected => {
                if self.keepalive_deadline().is_some_and(|d| now >= d) {
                    // MQTT-3.1.2-24 / MQTT-3.1.2-22
                    if self.core.version.is_v5() {
                        self.core
                            .send_control(&Disconnect::new(DisconnectReasonCode::KeepAliveTimeout));
                    }
                    self.close(CloseReason::KeepAliveTimeout);
                } else {
                    self.release_idle_memory();
                }
            }
        }
    }

    /// Gives back the memory a quiet connection keeps for traffic: the
    /// read and write buffers, the event queue and the QoS tables, each
    /// when it holds nothing (an empty buffer still pins its last
    /// allocation). They are allocated again on the next traffic.
    ///
    /// `poll_transmit` does this once by itself, when it hands out the
    /// CONNACK that accepted the client (the CONNECT exchange's buffers are
    /// not kept for traffic that may never come). `handle_timeout` does
    /// it by itself when it finds the connection
    /// within its keep alive, which a connection with a keep alive gets
    /// about once per keep-alive period even when idle, so the hot path
    /// keeps its buffers. A connection with keep alive 0 gets no such
    /// call: a server with many of them calls this now and then (the
    /// mqtt-broker crate does, every `idle_release_interval`).
    pub fn release_idle_memory(&mut self) {
        self.core.release_idle_buffers();
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.events.is_empty() && p.requests.is_empty())
        {
            self.pending = None;
        }
    }

    /// The transport closed.
    pub fn handle_closed(&mut self, now: Instant) {
        let _ = self.touch(now);
        if self.state != State::Closed {
            self.close(CloseReason::TransportClosed);
        }
    }

    // ---- outputs ----

    /// Bytes to write to the transport.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if self.release_after_connack {
            return self.transmit_connack();
        }
        self.core.take_transmit()
    }

    /// [`ServerConnection::poll_transmit`] while the accepting CONNACK
    /// waits: once it is handed out, the CONNECT exchange is over, and its
    /// buffers (a CONNECT is large and comes once) are not kept for
    /// traffic that may never come; the next packet allocates what it
    /// needs. Only what is empty goes (a pipelined packet stays). Out of
    /// line, and the flag tested first: the common path is one test and
    /// the plain take (keeping the taken bytes around for the release cost
    /// 40-180 instructions per message in `benches/session_instr.sh`).
    #[cold]
    #[inline(never)]
    fn transmit_connack(&mut self) -> Option<Bytes> {
        let out = self.core.take_transmit();
        if out.is_some() {
            self.release_after_connack = false;
            self.release_idle_memory();
        }
        out
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        let dropped = self.core.take_dropped();
        if !dropped.is_empty() {
            self.pending()
                .events
                .extend(dropped.into_iter().map(Event::Dropped));
        }
        let events = &mut self.pending.as_mut()?.events;
        let e = events.pop_front();
        if e.is_none() && events.capacity() > 1 {
            // Drained after a burst: a busy connection keeps room for one
            // event (an `Event` is 128 B; the default growth keeps 4+).
            events.shrink_to(1);
        }
        e
    }

    /// When to call `handle_timeout` next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Closed => None,
            State::AwaitConnect | State::AwaitAccept => self.connect_deadline(),
            State::Connected => self.keepalive_deadline(),
        }
    }

    /// CONNECT and the application's answer are due
    /// [`ServerConfig::connect_timeout`] after the transport was accepted.
    fn connect_deadline(&self) -> Option<Instant> {
        after(self.last_received, self.config.connect_timeout)
    }

    fn keepalive_deadline(&self) -> Option<Instant> {
        if self.keep_alive == 0 {
            return None;
        }
        // 1.5 times the Keep Alive, in milliseconds.
        let ms = u64::from(self.keep_alive) * 1500;
        after(self.last_received, Duration::from_millis(ms))
    }

    // ---- internals ----

    fn pending(&mut self) -> &mut Pending {
        self.pending.get_or_insert_with(Box::default)
    }

    fn push_event(&mut self, e: Event) {
        self.pending().events.push_back(e);
    }

    /// The unanswered request `id`.
    fn request(&self, id: u16) -> Option<&Request> {
        self.pending.as_ref()?.requests.get(&id)
    }

    /// The request `id` was answered.
    fn request_answered(&mut self, id: PacketId) {
        if let Some(p) = &mut self.pending {
            p.requests.remove(&id.get());
            if p.requests.is_empty() {
                // An empty B-tree keeps its root node (~400 B).
                p.requests = BTreeMap::new();
            }
        }
    }

    fn close(&mut self, reason: CloseReason) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        self.core.discard_input();
        if let Some(p) = &mut self.pending {
            p.requests = BTreeMap::new();
        }
        self.push_event(Event::Closed(reason));
    }

    fn violation(&mut self, v: Violation) {
        if self.state == State::Connected && self.core.version.is_v5() {
            self.core.send_control(&Disconnect::new(v.0));
        }
        self.close(violation_reason(v));
    }

    fn malformed(&mut self, e: DecodeError) {
        match self.state {
            State::AwaitConnect => {
                if let DecodeError::UnsupportedProtocol { level } = e {
                    if level != 0 {
                        // MQTT-3.1.2-2 (3.1.1) / MQTT-3.1.2-2 (5.0): refuse
                        // with the return code every version understands.
                        let ack = ConnAck::new(ConnectReasonCode::UnsupportedProtocolVersion);
                        let v = self.core.version;
                        self.core.version = ProtocolVersion::V3_1_1;
                        self.core.send_control(&ack);
                        self.core.version = v;
                        self.close(CloseReason::Refused(Box::new(ack)));
                        return;
                    }
                }
                // MQTT-3.1.4-1: a CONNECT that does not conform closes the
                // connection without CONNACK (MQTT-3.1.2-1 for an unknown
                // protocol name).
                self.close(CloseReason::Malformed(e));
            }
            State::Connected if self.core.version.is_v5() => {
                self.core.send_control(&Disconnect::new(e.reason_code()));
                self.close(CloseReason::Malformed(e));
            }
            _ => self.close(CloseReason::Malformed(e)),
        }
    }

    fn handle_packet(&mut self, now: Instant, packet: Packet) {
        match self.state {
            State::AwaitConnect => match packet {
                Packet::Connect(c) => self.on_connect(c),
                // MQTT-3.1.0-1: the first packet must be CONNECT.
                _ => self.close(violation_reason((
                    DisconnectReasonCode::ProtocolError,
                    "first packet is not CONNECT (MQTT-3.1.0-1)",
                ))),
            },
            State::AwaitAccept => match packet {
                Packet::Auth(a) => self.on_auth(a),
                _ => self.close(violation_reason((
                    DisconnectReasonCode::ProtocolError,
                    "packet before CONNACK",
                ))),
            },
            State::Connected => self.on_connected_packet(now, packet),
            State::Closed => {}
        }
    }

    fn on_connect(&mut self, c: Box<Connect>) {
        self.core.version = c.protocol;
        let v5 = c.protocol.is_v5();
        self.peer = Peer {
            clean_start: c.clean_start,
            empty_client_id: c.client_id.is_empty(),
            keep_alive: c.keep_alive,
            session_expiry_zero: c.properties.session_expiry_interval.unwrap_or(0) == 0,
            request_problem_information: c.properties.request_problem_information.unwrap_or(true),
            request_response_information: c
                .properties
                .request_response_information
                .unwrap_or(false),
        };
        // Kept in the core's rarely used tables: most clients send none.
        self.core
            .set_auth_method(c.properties.authentication_method.clone());
        if v5 {
            let p = &c.properties;
            self.core.peer_receive_maximum = p.receive_maximum.map_or(u16::MAX, |n| n.get());
            self.core.peer_max_packet = p
                .maximum_packet_size
                .map_or(mqtt_wire::MAX_PACKET_SIZE, |n| n.get());
            // MQTT-3.1.2-26 / MQTT-3.1.2-27
            self.core.set_out_aliases(
                p.topic_alias_maximum.unwrap_or(0),
                self.config.outbound_topic_aliases,
            );
        }
        let id = &c.client_id;
        let id_refused = match c.protocol {
            // MQTT 3.1: 1 to 23 characters.
            ProtocolVersion::V3_1 => id.is_empty() || id.len() > 23,
            // MQTT-3.1.3-8: empty needs CleanSession 1.
            ProtocolVersion::V3_1_1 => id.is_empty() && !c.clean_start,
            ProtocolVersion::V5 => false,
        };
        if id_refused {
            self.state = State::AwaitAccept;
            return self.refuse(
                ConnectReasonCode::ClientIdentifierNotValid,
                ConnAckProperties::default(),
            );
        }
        if v5 {
            if let Some(w) = &c.will {
                if w.qos > self.config.maximum_qos {
                    // MQTT-3.2.2-12
                    self.state = State::AwaitAccept;
                    return self.refuse(ConnectReasonCode::QoSNotSupported, Default::default());
                }
                if w.retain && !self.config.retain_available {
                    // MQTT-3.2.2-13
                    self.state = State::AwaitAccept;
                    return self.refuse(ConnectReasonCode::RetainNotSupported, Default::default());
                }
            }
        }
        self.state = State::AwaitAccept;
        self.push_event(Event::Connect(c));
    }

    fn on_auth(&mut self, a: Box<Auth>) {
        let Some(method) = self.core.auth_method().cloned() else {
            // MQTT-4.12.0-7: a client without a method never sends AUTH.
            return self.violation((
                DisconnectReasonCode::ProtocolError,
                "AUTH without an authentication method in CONNECT (MQTT-4.12.0-7)",
            ));
        };
        if a.properties.authentication_method.as_ref() != Some(&method) {
            return self.violation((
                DisconnectReasonCode::ProtocolError,
                "AUTH with a different authentication method (MQTT-4.12.0-5)",
            ));
        }
        let ok = match (self.state, a.reason_code) {
            (State::AwaitAccept, AuthReasonCode::ContinueAuthentication) => true,
            (State::Connected, AuthReasonCode::ContinueAuthentication) => self.reauthenticating,
            (State::Connected, AuthReasonCode::ReAuthenticate) => {
                let fresh = !self.reauthenticating;
                self.reauthenticating = true;
                fresh
            }
            _ => false,
        };
        if !ok {
            return self.violation((
                DisconnectReasonCode::ProtocolError,
                "AUTH reason code out of sequence",
            ));
        }
        self.push_event(Event::Auth(a));
    }

    fn on_connected_packet(&mut self, _now: Instant, packet: Packet) {
        let v5 = self.core.version.is_v5();
        let ev = match packet {
            Packet::Publish(p) => {
                if v5 {
                    if p.qos() > self.config.maximum_qos {
                        return self.violation((
                            DisconnectReasonCode::QoSNotSupported,
                            "PUBLISH above the Maximum QoS (MQTT-3.2.2-11)",
                        ));
                    }
                    if p.retain && !self.config.retain_available {
                        return self.violation((
                            DisconnectReasonCode::RetainNotSupported,
                            "RETAIN without Retain Available (MQTT-3.2.2-14)",
                        ));
                    }
                    if p.properties.has_subscription_identifiers() {
                        return self.violation((
                            DisconnectReasonCode::ProtocolError,
                            "Subscription Identifier in a client PUBLISH (MQTT-3.3.4-6)",
                        ));
                    }
                }
                match self.core.on_publish(p) {
                    Ok(ev) => ev,
                    Err(v) => return self.violation(v),
                }
            }
            Packet::PubAck(a) => self.core.on_puback(a),
            Packet::PubRec(r) => self.core.on_pubrec(r),
            Packet::PubRel(r) => match self.core.on_pubrel(r) {
                Ok(()) => FlowEvent::None,
                Err(v) => return self.violation(v),
            },
            Packet::PubComp(c) => self.core.on_pubcomp(c),
            Packet::Subscribe(s) => return self.on_subscribe(s),
            Packet::Unsubscribe(u) => return self.on_unsubscribe(u),
            Packet::PingReq => {
                self.core.send_control(&Packet::PingResp); // MQTT-3.12.4-1
                FlowEvent::None
            }
            Packet::Disconnect(d) => {
                if v5
                    && self.peer.session_expiry_zero
                    && d.properties.session_expiry_interval.is_some_and(|s| s != 0)
                {
                    // MQTT 5.0 §3.14.2.2.2: from 0 to non-zero is a
                    // Protocol Error.
                    return self.violation((
                        DisconnectReasonCode::ProtocolError,
                        "Session Expiry Interval raised from 0 in DISCONNECT",
                    ));
                }
                return self.close(CloseReason::PeerDisconnected(Box::new(d)));
            }
            Packet::Auth(a) => return self.on_auth(a),
            Packet::Connect(_) => {
                return self.violation((
                    DisconnectReasonCode::ProtocolError,
                    "second CONNECT (MQTT-3.1.0-2)",
                ))
            }
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                return self.violation((
                    DisconnectReasonCode::ProtocolError,
                    "packet a client never sends",
                ))
            }
        };
        match ev {
            FlowEvent::None => {}
            FlowEvent::Publish(p) => self.push_event(Event::Publish(p)),
            FlowEvent::PubAck(a) => self.push_event(Event::PubAck(a)),
            FlowEvent::PubRecFailed(r) => self.push_event(Event::PubRecFailed(r)),
            FlowEvent::PubComp(c) => self.push_event(Event::PubComp(c)),
        }
    }

    fn on_subscribe(&mut self, s: Subscribe) {
        let v5 = self.core.version.is_v5();
        let id = s.packet_id.get();
        if self.request(id).is_some() {
            if v5 {
                // The identifier is still in use by a request we have not
                // answered: answer this one with 0x91 for every filter.
                let codes = vec![SubAckReasonCode::PacketIdentifierInUse; s.subscriptions.len()];
                let problem = self.peer.request_problem_information;
                let _ = send_trimmed!(self, SubAck::new(s.packet_id, codes), problem);
                return;
            }
            return self.violation((
                DisconnectReasonCode::ProtocolError,
                "SUBSCRIBE reuses a pending packet identifier",
            ));
        }
        if v5
            && s.properties.subscription_identifier.is_some()
            && !self.config.subscription_identifiers
        {
            return self.violation((
                DisconnectReasonCode::SubscriptionIdentifiersNotSupported,
                "Subscription Identifier not supported",
            ));
        }
        let mut refused = Vec::new();
        for (i, sub) in s.subscriptions.iter().enumerate() {
            let shared = sub.filter.as_str().starts_with("$share/");
            if v5 && shared && sub.options.no_local {
                return self.violation((
                    DisconnectReasonCode::ProtocolError,
                    "No Local on a shared subscription (MQTT-3.8.3-4)",
                ));
            }
            if shared && !self.config.shared_subscriptions {
                if v5 {
                    return self.violation((
                        DisconnectReasonCode::SharedSubscriptionsNotSupported,
                        "shared subscriptions not supported",
                    ));
                }
                refused.push((i, SubAckReasonCode::UnspecifiedError));
            } else if sub.filter.has_wildcards() && !self.config.wildcard_subscriptions {
                if v5 {
                    return self.violation((
                        DisconnectReasonCode::WildcardSubscriptionsNotSupported,
                        "wildcard subscriptions not supported",
                    ));
                }
                // MQTT-3.8.3-2 (3.1.1): refuse that filter.
                refused.push((i, SubAckReasonCode::UnspecifiedError));
            }
        }
        self.pending().requests.insert(
            id,
            Request::Subscribe(PendingSub {
                count: s.subscriptions.len(),
                refused,
            }),
        );
        self.push_event(Event::Subscribe(s));
    }

    fn on_unsubscribe(&mut self, u: Unsubscribe) {
        let id = u.packet_id.get();
        if self.request(id).is_some() {
            if self.core.version.is_v5() {
                let codes = vec![UnsubAckReasonCode::PacketIdentifierInUse; u.filters.len()];
                let problem = self.peer.request_problem_information;
                let _ = send_trimmed!(self, UnsubAck::new(u.packet_id, codes), problem);
                return;
            }
            return self.violation((
                DisconnectReasonCode::ProtocolError,
                "UNSUBSCRIBE reuses a pending packet identifier",
            ));
        }
        self.pending()
            .requests
            .insert(id, Request::Unsubscribe(u.filters.len()));
        self.push_event(Event::Unsubscribe(u));
    }
}
