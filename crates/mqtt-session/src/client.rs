//! The client side of an MQTT connection.
//!
//! A [`Client`] lives across network connections: its session (in-flight
//! messages, packet identifiers) survives a connection loss, and
//! [`Client::connect`] on the next transport resumes it. See the crate docs
//! for the call contract and a complete example.
//!
//! States: *disconnected* (no transport, or the last one ended) →
//! `connect(now)` → *connecting* (CONNECT sent, awaiting CONNACK, possibly
//! exchanging AUTH) → *connected* → back to *disconnected* on
//! `disconnect`, `handle_closed`, a keep-alive timeout or a protocol
//! violation, each reported by [`Event::Disconnected`].

use std::collections::{BTreeMap, VecDeque};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_wire::{
    Auth, AuthReasonCode, ConnAck, Connect, ConnectReasonCode, DecodeError, Disconnect,
    DisconnectProperties, DisconnectReasonCode, MaximumQoS, MqttString, Packet, PacketId,
    ProtocolVersion, PubAck, PubAckReasonCode, PubComp, PubRec, Publish, QoS, SubAck, Subscribe,
    SubscribeProperties, Subscription, UnsubAck, Unsubscribe, UnsubscribeProperties,
    DEFAULT_MAX_PACKET_SIZE,
};

use crate::flow::{violation_reason, Core, FlowEvent, LinkLimits, OutState, Violation};
use crate::{after, AckMode, CloseReason, Error, SessionState};

/// Enhanced authentication (MQTT 5.0 §4.12) from the client's side: the
/// method's state machine, driven by the session.
pub trait Authenticator: Send {
    /// The Authentication Method, sent in CONNECT and in every AUTH
    /// (MQTT-4.12.0-5, MQTT-4.12.1-1).
    fn method(&self) -> MqttString;

    /// Authentication Data for the CONNECT (or for the AUTH 0x19 that
    /// starts a re-authentication).
    fn start(&mut self) -> Option<Bytes>;

    /// The server continues (AUTH 0x18) with `data`: the data to answer
    /// with (sent in AUTH 0x18, MQTT-4.12.0-3), or `Err` to give up (the
    /// connection is closed).
    fn challenge(&mut self, data: Option<&Bytes>) -> Result<Option<Bytes>, AuthFailed>;

    /// The server finished (CONNACK 0x00 or AUTH 0x00) with `data`: check
    /// it (for example the server's proof). `Err` closes the connection.
    fn finish(&mut self, data: Option<&Bytes>) -> Result<(), AuthFailed>;
}

/// An [`Authenticator`] refused to go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuthFailed;

/// Client settings.
#[non_exhaustive]
pub struct ClientConfig {
    /// The CONNECT sent on every connection: protocol version, client id,
    /// clean start, keep alive, will, credentials and 5.0 properties.
    /// Receive Maximum, Maximum Packet Size and Topic Alias Maximum in its
    /// properties are also the limits this client enforces on the server.
    /// When Maximum Packet Size is unset in 5.0, the client announces
    /// [`DEFAULT_MAX_PACKET_SIZE`], the size it accepts.
    pub connect: Connect,
    /// How received QoS 1/2 messages are acknowledged.
    pub ack_mode: AckMode,
    /// Time allowed for CONNACK (and the AUTH exchange) after CONNECT.
    /// Default 30 s.
    pub connect_timeout: Duration,
    /// Time allowed for PINGRESP after PINGREQ before the connection is
    /// declared lost. Default: the keep alive itself (at least 1 s).
    pub ping_timeout: Option<Duration>,
    /// Assign outbound topic aliases when the server allows them (5.0).
    /// Default true.
    pub topic_aliases: bool,
    /// Enhanced authentication; its method goes into the CONNECT.
    pub authenticator: Option<Box<dyn Authenticator>>,
}

impl core::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("connect", &self.connect)
            .field("ack_mode", &self.ack_mode)
            .field("connect_timeout", &self.connect_timeout)
            .field("ping_timeout", &self.ping_timeout)
            .field("topic_aliases", &self.topic_aliases)
            .field(
                "authenticator",
                &self.authenticator.as_ref().map(|a| a.method()),
            )
            .finish()
    }
}

impl ClientConfig {
    /// Settings with `connect` and the defaults.
    pub fn new(connect: Connect) -> Self {
        ClientConfig {
            connect,
            ack_mode: AckMode::Auto,
            connect_timeout: Duration::from_secs(30),
            ping_timeout: None,
            topic_aliases: true,
            authenticator: None,
        }
    }

    /// Sets the acknowledgement mode.
    pub fn with_ack_mode(mut self, mode: AckMode) -> Self {
        self.ack_mode = mode;
        self
    }

    /// Sets the enhanced authenticator.
    pub fn with_authenticator(mut self, a: Box<dyn Authenticator>) -> Self {
        self.authenticator = Some(a);
        self
    }
}

/// What the server granted, learned from CONNACK (defaults before it).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// Highest QoS the server accepts.
    pub maximum_qos: QoS,
    /// Whether retained messages are supported.
    pub retain_available: bool,
    /// Largest packet the server accepts.
    pub maximum_packet_size: u32,
    /// QoS 1/2 messages the server accepts in flight.
    pub receive_maximum: u16,
    /// Highest topic alias the server accepts.
    pub topic_alias_maximum: u16,
    /// Whether wildcard subscriptions are supported.
    pub wildcard_subscriptions: bool,
    /// Whether subscription identifiers are supported.
    pub subscription_identifiers: bool,
    /// Whether shared subscriptions are supported.
    pub shared_subscriptions: bool,
    /// The keep alive in force (the server's if it sent one).
    pub keep_alive: u16,
    /// The client identifier in force (assigned by the server if ours was
    /// empty).
    pub client_id: MqttString,
}

/// What a client reports.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// CONNACK with reason 0x00: the connection is up. When the session was
    /// resumed, unacknowledged messages have been resent.
    Connected {
        /// Whether the server kept the session.
        session_present: bool,
        /// The CONNACK with all its properties.
        connack: Box<ConnAck>,
    },
    /// A message from the server (topic alias already resolved). In manual
    /// acknowledgement mode, QoS 1/2 messages wait for [`Client::ack`].
    Publish(Publish),
    /// One of our QoS 1 messages was acknowledged.
    PubAck(PubAck),
    /// One of our QoS 2 messages was refused (PUBREC 0x80 or above); it
    /// counts as acknowledged (MQTT-4.4.0-2).
    PubRecFailed(PubRec),
    /// One of our QoS 2 messages completed.
    PubComp(PubComp),
    /// Answer to a [`Client::subscribe`].
    SubAck(SubAck),
    /// Answer to a [`Client::unsubscribe`].
    UnsubAck(UnsubAck),
    /// A SUBSCRIBE or UNSUBSCRIBE whose answer never came before the
    /// connection ended (they are not resent on the next connection).
    RequestLost(PacketId),
    /// The session is gone (the server did not keep it, or `connect` with
    /// Clean Start 1 discarded it): these messages were not acknowledged
    /// and will not be resent; the application decides.
    SessionLost {
        /// QoS 1/2 messages without PUBACK or PUBREC.
        unacknowledged: Vec<Publish>,
        /// QoS 2 messages received by the server (PUBREC) whose PUBCOMP
        /// never came.
        unreleased: Vec<PacketId>,
    },
    /// A stored QoS 1/2 message was not resent on this connection because
    /// the server's new limits forbid it: larger than its Maximum Packet
    /// Size (MQTT-3.2.2-15), above its Maximum QoS (MQTT-3.2.2-11), or
    /// retained without Retain Available (MQTT-3.2.2-14). It is out of the
    /// session; the application decides.
    Dropped(Publish),
    /// A re-authentication succeeded.
    Reauthenticated,
    /// The connection ended. The session stays; `connect` again to resume.
    Disconnected(CloseReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Disconnected,
    Connecting { deadline: Option<Instant> },
    Connected,
}

#[derive(Debug, Clone)]
enum Request {
    Subscribe(usize),
    Unsubscribe(usize),
}

/// One MQTT client: its session and, when connected, its connection.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    core: Core,
    state: State,
    events: VecDeque<Event>,
    requests: BTreeMap<u16, Request>,
    server: ServerLimits,
    /// Keep alive in force (seconds, 0 = off).
    keep_alive: u16,
    last_sent: Option<Instant>,
    ping_sent: Option<Instant>,
    latest: Option<Instant>,
    reauthenticating: bool,
}

impl Client {
    /// A client with an empty session.
    pub fn new(config: ClientConfig) -> Self {
        Self::with_session(config, SessionState::new())
    }

    /// A client resuming `session` (from [`Client::session_state`], maybe
    /// persisted). Set `clean_start` to false in the CONNECT to resume it
    /// on the server too.
    pub fn with_session(mut config: ClientConfig, session: SessionState) -> Self {
        let version = config.connect.protocol;
        if version.is_v5() && config.connect.properties.maximum_packet_size.is_none() {
            config.connect.properties.maximum_packet_size =
                NonZeroU32::new(DEFAULT_MAX_PACKET_SIZE);
        }
        let limits = Self::limits(&config);
        let server = ServerLimits {
            maximum_qos: QoS::ExactlyOnce,
            retain_available: true,
            maximum_packet_size: mqtt_wire::MAX_PACKET_SIZE,
            receive_maximum: u16::MAX,
            topic_alias_maximum: 0,
            wildcard_subscriptions: true,
            subscription_identifiers: true,
            shared_subscriptions: true,
            keep_alive: config.connect.keep_alive,
            client_id: config.connect.client_id.clone(),
        };
        Client {
            core: Core::new(version, limits, session.flows),
            keep_alive: config.connect.keep_alive,
            config,
            state: State::Disconnected,
            events: VecDeque::new(),
            requests: BTreeMap::new(),
            server,
            last_sent: None,
            ping_sent: None,
            latest: None,
            reauthenticating: false,
        }
    }

    fn limits(config: &ClientConfig) -> LinkLimits {
        let p = &config.connect.properties;
        let v5 = config.connect.protocol.is_v5();
        LinkLimits {
            receive_maximum: p.receive_maximum.map_or(u16::MAX, |n| n.get()),
            topic_alias_maximum: if v5 {
                p.topic_alias_maximum.unwrap_or(0)
            } else {
                0
            },
            max_packet_size: p
                .maximum_packet_size
                .map_or(DEFAULT_MAX_PACKET_SIZE, |n| n.get()),
            ack_mode: config.ack_mode,
        }
    }

    /// The protocol version.
    pub fn version(&self) -> ProtocolVersion {
        self.core.version
    }

    /// Whether the connection is established (CONNACK 0x00 received).
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// Whether no connection is up or being set up: after `disconnect`,
    /// a violation or `handle_closed`. Write out `poll_transmit`, then
    /// close the transport.
    pub fn is_closed(&self) -> bool {
        self.state == State::Disconnected
    }

    /// What the server granted on this connection.
    pub fn server_limits(&self) -> &ServerLimits {
        &self.server
    }

    /// QoS 1/2 messages in flight on this connection.
    pub fn in_flight(&self) -> usize {
        self.core.in_flight()
    }

    /// A copy of the session, to persist or to resume in a new `Client`.
    pub fn session_state(&self) -> SessionState {
        let mut flows = self.core.flows.clone();
        for e in flows.out.values_mut() {
            e.sent = false;
        }
        SessionState { flows }
    }

    fn touch(&mut self, now: Instant) -> Instant {
        let now = match self.latest {
            Some(l) if l > now => l,
            _ => now,
        };
        self.latest = Some(now);
        now
    }

    fn sent(&mut self, now: Instant) {
        self.last_sent = Some(now);
    }

    // ---- commands ----

    /// Starts a connection on a fresh transport: queues CONNECT (MQTT-3.1.0-1).
    pub fn connect(&mut self, now: Instant) -> Result<(), Error> {
        let now = self.touch(now);
        if self.state != State::Disconnected {
            return Err(Error::InvalidState("already connected or connecting"));
        }
        if self.core.version == ProtocolVersion::V3_1_1
            && self.config.connect.client_id.is_empty()
            && !self.config.connect.clean_start
        {
            // MQTT-3.1.3-7: an empty client id needs CleanSession 1.
            return Err(Error::NotAllowed("empty client id without clean session"));
        }
        let mut connect = self.config.connect.clone();
        if let Some(a) = self.config.authenticator.as_mut() {
            if !connect.protocol.is_v5() {
                return Err(Error::NotInVersion("enhanced authentication"));
            }
            connect.properties.authentication_method = Some(a.method());
            connect.properties.authentication_data = a.start();
        }
        self.core.reset_connection();
        self.core.send(&connect)?;
        if connect.clean_start {
            // MQTT-3.1.2-4 (5.0) / MQTT-3.1.2-6 (3.1.1): Clean Start discards
            // the session now, not at CONNACK: the server drops it on this
            // CONNECT even if the CONNACK never arrives.
            self.discard_session();
        }
        self.requests.clear();
        self.keep_alive = connect.keep_alive;
        self.server.keep_alive = connect.keep_alive;
        self.ping_sent = None;
        self.reauthenticating = false;
        self.sent(now);
        self.state = State::Connecting {
            deadline: after(now, self.config.connect_timeout),
        };
        Ok(())
    }

    /// Publishes a message at the QoS of `msg.delivery` (its packet id is
    /// replaced by a fresh one). Returns the packet id for QoS 1 and 2; the
    /// matching [`Event::PubAck`] / [`Event::PubComp`] carries it back.
    ///
    /// Refused without any change when not connected, when the send quota
    /// is used up ([`Error::WindowFull`]), or when the message breaks a
    /// limit the server announced (QoS, retain, size).
    pub fn publish(&mut self, now: Instant, msg: Publish) -> Result<Option<PacketId>, Error> {
        let now = self.touch(now);
        if self.state != State::Connected {
            return Err(Error::NotConnected);
        }
        let qos = msg.qos();
        if qos > self.server.maximum_qos {
            return Err(Error::QoSNotSupported {
                maximum: self.server.maximum_qos,
            });
        }
        if msg.retain && !self.server.retain_available {
            return Err(Error::RetainNotSupported);
        }
        if msg.properties.has_subscription_identifiers() {
            return Err(Error::NotAllowed(
                "Subscription Identifier in a client PUBLISH",
            ));
        }
        if msg.properties.topic_alias.is_some() {
            return Err(Error::NotAllowed("Topic Alias (assigned by the session)"));
        }
        if msg.topic.is_none() {
            return Err(Error::NotAllowed("PUBLISH without a topic name"));
        }
        let r = if qos == QoS::AtMostOnce {
            self.core.publish_qos0(msg).map(|()| None)
        } else {
            let requests = &self.requests;
            self.core
                .publish_qos12(msg, qos, |id| requests.contains_key(&id))
                .map(Some)
        };
        if r.is_ok() {
            self.sent(now);
        }
        r
    }

    /// Subscribes. Returns the packet id that [`Event::SubAck`] carries back.
    pub fn subscribe(
        &mut self,
        now: Instant,
        subscriptions: Vec<Subscription>,
        properties: SubscribeProperties,
    ) -> Result<PacketId, Error> {
        let now = self.touch(now);
        if self.state != State::Connected {
            return Err(Error::NotConnected);
        }
        if subscriptions.is_empty() {
            return Err(Error::NotAllowed("SUBSCRIBE without a filter"));
        }
        for s in &subscriptions {
            let f = s.filter.as_str();
            if f.starts_with("$share/") {
                if !self.server.shared_subscriptions {
                    return Err(Error::NotSupportedByPeer("shared subscriptions"));
                }
                if s.options.no_local {
                    // MQTT-3.8.3-4
                    return Err(Error::NotAllowed("No Local on a shared subscription"));
                }
            }
            if s.filter.has_wildcards() && !self.server.wildcard_subscriptions {
                return Err(Error::NotSupportedByPeer("wildcard subscriptions"));
            }
        }
        if properties.subscription_identifier.is_some() && !self.server.subscription_identifiers {
            return Err(Error::NotSupportedByPeer("subscription identifiers"));
        }
        let n = subscriptions.len();
        let requests = &self.requests;
        let id = self.core.flows.peek_id(|id| requests.contains_key(&id))?;
        let packet = Subscribe {
            packet_id: id,
            subscriptions,
            properties,
        };
        self.core.send(&packet)?;
        self.core.flows.next_id = id.get();
        self.requests.insert(id.get(), Request::Subscribe(n));
        self.sent(now);
        Ok(id)
    }

    /// Unsubscribes. Returns the packet id that [`Event::UnsubAck`]
    /// carries back.
    pub fn unsubscribe(
        &mut self,
        now: Instant,
        filters: Vec<mqtt_wire::TopicFilter>,
        properties: UnsubscribeProperties,
    ) -> Result<PacketId, Error> {
        let now = self.touch(now);
        if self.state != State::Connected {
            return Err(Error::NotConnected);
        }
        if filters.is_empty() {
            return Err(Error::NotAllowed("UNSUBSCRIBE without a filter"));
        }
        let n = filters.len();
        let requests = &self.requests;
        let id = self.core.flows.peek_id(|id| requests.contains_key(&id))?;
        let packet = Unsubscribe {
            packet_id: id,
            filters,
            properties,
        };
        self.core.send(&packet)?;
        self.core.flows.next_id = id.get();
        self.requests.insert(id.get(), Request::Unsubscribe(n));
        self.sent(now);
        Ok(id)
    }

    /// Acknowledges a received QoS 1/2 message (manual mode); `reason`
    /// other than success needs 5.0.
    pub fn ack(
        &mut self,
        now: Instant,
        id: PacketId,
        reason: PubAckReasonCode,
    ) -> Result<(), Error> {
        let now = self.touch(now);
        if self.state != State::Connected {
            return Err(Error::NotConnected);
        }
        self.core.ack(id, reason)?;
        self.sent(now);
        Ok(())
    }

    /// Starts a re-authentication (5.0, AUTH 0x19 with the authenticator's
    /// method, MQTT-4.12.1-1).
    pub fn reauthenticate(&mut self, now: Instant) -> Result<(), Error> {
        let now = self.touch(now);
        if self.state != State::Connected {
            return Err(Error::NotConnected);
        }
        if self.reauthenticating {
            return Err(Error::InvalidState("re-authentication in progress"));
        }
        let Some(a) = self.config.authenticator.as_mut() else {
            // MQTT-4.12.0-7: no method in CONNECT, no AUTH ever.
            return Err(Error::NotAllowed("AUTH without an authentication method"));
        };
        let mut auth = Auth::new(AuthReasonCode::ReAuthenticate);
        auth.properties.authentication_method = Some(a.method());
        auth.properties.authentication_data = a.start();
        self.core.send(&auth)?;
        self.reauthenticating = true;
        self.sent(now);
        Ok(())
    }

    /// Ends the connection with DISCONNECT (reason 0x00, or `reason` in
    /// 5.0, with optional properties such as a new Session Expiry
    /// Interval). Nothing more is sent afterwards (MQTT-3.14.4-1,
    /// MQTT-3.14.4-2); close the transport after writing `poll_transmit`.
    pub fn disconnect(
        &mut self,
        now: Instant,
        reason: DisconnectReasonCode,
        properties: DisconnectProperties,
    ) -> Result<(), Error> {
        let _ = self.touch(now);
        if self.state == State::Disconnected {
            return Err(Error::NotConnected);
        }
        let mut d = Disconnect::new(reason);
        d.properties = properties;
        match self.core.send(&d) {
            Ok(_) => {}
            Err(mqtt_wire::EncodeError::PacketTooLarge { .. }) => {
                // MQTT-3.14.2-3/4: drop the diagnostics to fit the server's
                // Maximum Packet Size; the connection ends whether or not
                // the DISCONNECT could be sent (MQTT-4.13.2-1).
                d.properties.reason_string = None;
                d.properties.user_properties = Default::default();
                self.core.send_control(&d);
            }
            Err(e) => return Err(e.into()),
        }
        self.end(CloseReason::LocalDisconnect(reason));
        Ok(())
    }

    // ---- inputs ----

    /// Bytes read from the transport.
    pub fn handle_read(&mut self, now: Instant, bytes: &[u8]) {
        let now = self.touch(now);
        if self.state == State::Disconnected {
            return;
        }
        self.core.push_read(bytes);
        while self.state != State::Disconnected {
            match self.core.next_packet() {
                Ok(Some(p)) => self.handle_packet(now, p),
                Ok(None) => break,
                Err(e) => self.malformed(e),
            }
        }
    }

    /// Time has reached the deadline from `poll_timeout` (a spurious call
    /// does nothing).
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.touch(now);
        match self.state {
            State::Disconnected => {}
            State::Connecting { deadline } => {
                if deadline.is_some_and(|d| now >= d) {
                    self.end(CloseReason::ConnectTimeout);
                }
            }
            State::Connected => {
                if let Some(d) = self.pingresp_deadline() {
                    if now >= d {
                        self.end(CloseReason::KeepAliveTimeout);
                        return;
                    }
                }
                if let Some(d) = self.ping_due() {
                    if now >= d {
                        self.core.send_control(&Packet::PingReq);
                        self.ping_sent = Some(now);
                        self.sent(now);
                    }
                }
            }
        }
    }

    /// The transport closed (or failed). The session stays for the next
    /// `connect`.
    pub fn handle_closed(&mut self, now: Instant) {
        let _ = self.touch(now);
        if self.state != State::Disconnected {
            self.end(CloseReason::TransportClosed);
        }
    }

    // ---- outputs ----

    /// Bytes to write to the transport.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.core.take_transmit()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        let dropped = self.core.take_dropped();
        if !dropped.is_empty() {
            self.events.extend(dropped.into_iter().map(Event::Dropped));
        }
        self.events.pop_front()
    }

    /// When to call `handle_timeout` next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Disconnected => None,
            State::Connecting { deadline } => deadline,
            State::Connected => match (self.pingresp_deadline(), self.ping_due()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }

    fn ping_due(&self) -> Option<Instant> {
        if self.keep_alive == 0 || self.ping_sent.is_some() {
            return None;
        }
        // MQTT-3.1.2-23 / MQTT-3.1.2-20: at most Keep Alive between packets.
        after(
            self.last_sent?,
            Duration::from_secs(u64::from(self.keep_alive)),
        )
    }

    fn pingresp_deadline(&self) -> Option<Instant> {
        let sent = self.ping_sent?;
        let t = self.config.ping_timeout.unwrap_or_else(|| {
            Duration::from_secs(u64::from(self.keep_alive)).max(Duration::from_secs(1))
        });
        after(sent, t)
    }

    // ---- internals ----

    fn end(&mut self, reason: CloseReason) {
        if self.state == State::Disconnected {
            return;
        }
        self.state = State::Disconnected;
        self.core.discard_input();
        self.ping_sent = None;
        self.reauthenticating = false;
        for (id, _) in std::mem::take(&mut self.requests) {
            if let Some(id) = PacketId::new(id) {
                self.events.push_back(Event::RequestLost(id));
            }
        }
        self.events.push_back(Event::Disconnected(reason));
    }

    fn violation(&mut self, v: Violation) {
        if self.core.version.is_v5() && self.state == State::Connected {
            self.core.send_control(&Disconnect::new(v.0));
        }
        self.end(violation_reason(v));
    }

    fn malformed(&mut self, e: DecodeError) {
        if self.core.version.is_v5() && self.state == State::Connected {
            self.core.send_control(&Disconnect::new(e.reason_code()));
        }
        self.end(CloseReason::Malformed(e));
    }

    fn auth_failed(&mut self) {
        if self.core.version.is_v5() && self.state == State::Connected {
            self.core
                .send_control(&Disconnect::new(DisconnectReasonCode::NotAuthorized));
        }
        self.end(CloseReason::AuthenticationFailed);
    }

    fn handle_packet(&mut self, now: Instant, packet: Packet) {
        // Any packet from the server answers the keep-alive question.
        if matches!(packet, Packet::PingResp) {
            self.ping_sent = None;
            return;
        }
        match self.state {
            State::Connecting { .. } => match packet {
                Packet::ConnAck(c) => self.on_connack(now, c),
                Packet::Auth(a) => self.on_auth(now, &a),
                Packet::Disconnect(d) => self.end(CloseReason::PeerDisconnected(Box::new(d))),
                _ => self.violation((
                    DisconnectReasonCode::ProtocolError,
                    "packet before CONNACK (MQTT-3.2.0-1)",
                )),
            },
            State::Connected => self.on_connected_packet(now, packet),
            State::Disconnected => {}
        }
    }

    fn on_connected_packet(&mut self, now: Instant, packet: Packet) {
        let ev = match packet {
            Packet::Publish(p) => match self.core.on_publish(p) {
                Ok(ev) => ev,
                Err(v) => return self.violation(v),
            },
            Packet::PubAck(a) => self.core.on_puback(a),
            Packet::PubRec(r) => self.core.on_pubrec(r),
            Packet::PubRel(r) => match self.core.on_pubrel(r) {
                Ok(()) => FlowEvent::None,
                Err(v) => return self.violation(v),
            },
            Packet::PubComp(c) => self.core.on_pubcomp(c),
            Packet::SubAck(s) => return self.on_suback(s),
            Packet::UnsubAck(u) => return self.on_unsuback(u),
            Packet::Auth(a) => return self.on_auth(now, &a),
            Packet::Disconnect(d) => {
                return self.end(CloseReason::PeerDisconnected(Box::new(d)));
            }
            Packet::ConnAck(_) => {
                return self.violation((
                    DisconnectReasonCode::ProtocolError,
                    "second CONNACK (MQTT-3.2.0-2)",
                ))
            }
            Packet::Connect(_)
            | Packet::Subscribe(_)
            | Packet::Unsubscribe(_)
            | Packet::PingReq
            | Packet::PingResp => {
                return self.violation((
                    DisconnectReasonCode::ProtocolError,
                    "packet a server never sends",
                ))
            }
        };
        if self.core.has_transmit() {
            self.sent(now);
        }
        match ev {
            FlowEvent::None => {}
            FlowEvent::Publish(p) => self.events.push_back(Event::Publish(p)),
            FlowEvent::PubAck(a) => self.events.push_back(Event::PubAck(a)),
            FlowEvent::PubRecFailed(r) => self.events.push_back(Event::PubRecFailed(r)),
            FlowEvent::PubComp(c) => self.events.push_back(Event::PubComp(c)),
        }
    }

    fn on_suback(&mut self, s: SubAck) {
        match self.requests.get(&s.packet_id.get()) {
            Some(Request::Subscribe(n)) if *n == s.reason_codes.len() => {
                self.requests.remove(&s.packet_id.get());
                self.events.push_back(Event::SubAck(s));
            }
            Some(Request::Subscribe(_)) => self.violation((
                DisconnectReasonCode::ProtocolError,
                "SUBACK with a different number of codes than filters (MQTT-3.9.3-1)",
            )),
            _ => self.violation((
                DisconnectReasonCode::ProtocolError,
                "SUBACK for no pending SUBSCRIBE (MQTT-2.2.1-6)",
            )),
        }
    }

    fn on_unsuback(&mut self, u: UnsubAck) {
        match self.requests.get(&u.packet_id.get()) {
            Some(Request::Unsubscribe(n))
                if !self.core.version.is_v5() || *n == u.reason_codes.len() =>
            {
                self.requests.remove(&u.packet_id.get());
                self.events.push_back(Event::UnsubAck(u));
            }
            Some(Request::Unsubscribe(_)) => self.violation((
                DisconnectReasonCode::ProtocolError,
                "UNSUBACK with a different number of codes than filters (MQTT-3.11.3-1)",
            )),
            _ => self.violation((
                DisconnectReasonCode::ProtocolError,
                "UNSUBACK for no pending UNSUBSCRIBE (MQTT-2.2.1-6)",
            )),
        }
    }

    fn on_connack(&mut self, now: Instant, c: Box<ConnAck>) {
        if c.reason_code != ConnectReasonCode::Success {
            self.end(CloseReason::Refused(c));
            return;
        }
        let method = self.config.authenticator.as_ref().map(|a| a.method());
        if c.properties.authentication_method != method {
            // MQTT-4.12.0-5 / MQTT-4.12.0-6
            self.end(violation_reason((
                DisconnectReasonCode::ProtocolError,
                "CONNACK authentication method differs from CONNECT's",
            )));
            return;
        }
        if let Some(a) = self.config.authenticator.as_mut() {
            if a.finish(c.properties.authentication_data.as_ref()).is_err() {
                self.state = State::Connected;
                self.auth_failed();
                return;
            }
        }
        if c.session_present && self.config.connect.clean_start {
            // MQTT-3.2.2-4: we hold no session, the server claims one.
            self.state = State::Connected;
            self.violation((
                DisconnectReasonCode::ProtocolError,
                "Session Present with Clean Start (MQTT-3.2.2-4)",
            ));
            return;
        }
        self.apply_connack(&c);
        self.state = State::Connected;
        if !c.session_present {
            // MQTT-3.2.2-5: the session is gone; report what it held.
            self.discard_session();
        }
        self.events.push_back(Event::Connected {
            session_present: c.session_present,
            connack: c,
        });
        // MQTT-4.4.0-1: resend unacknowledged PUBLISH (DUP) and PUBREL.
        self.core.resend_pending();
        if self.core.has_transmit() {
            self.sent(now);
        }
    }

    fn apply_connack(&mut self, c: &ConnAck) {
        let p = &c.properties;
        let s = &mut self.server;
        s.maximum_qos = match p.maximum_qos {
            Some(MaximumQoS::AtMostOnce) => QoS::AtMostOnce,
            Some(MaximumQoS::AtLeastOnce) => QoS::AtLeastOnce,
            None => QoS::ExactlyOnce,
        };
        s.retain_available = p.retain_available.unwrap_or(true);
        s.maximum_packet_size = p
            .maximum_packet_size
            .map_or(mqtt_wire::MAX_PACKET_SIZE, |n| n.get());
        s.receive_maximum = p.receive_maximum.map_or(u16::MAX, |n| n.get());
        s.topic_alias_maximum = p.topic_alias_maximum.unwrap_or(0);
        s.wildcard_subscriptions = p.wildcard_subscription_available.unwrap_or(true);
        s.subscription_identifiers = p.subscription_identifiers_available.unwrap_or(true);
        s.shared_subscriptions = p.shared_subscription_available.unwrap_or(true);
        if let Some(ka) = p.server_keep_alive {
            // MQTT-3.1.2-21 / MQTT-3.2.2-21
            self.keep_alive = ka;
        }
        s.keep_alive = self.keep_alive;
        if let Some(id) = &p.assigned_client_identifier {
            s.client_id = id.clone();
        }
        self.core.peer_max_packet = s.maximum_packet_size;
        self.core.peer_receive_maximum = s.receive_maximum;
        self.core.peer_maximum_qos = s.maximum_qos;
        self.core.peer_retain = s.retain_available;
        self.core
            .set_out_aliases(s.topic_alias_maximum, self.config.topic_aliases);
    }

    fn discard_session(&mut self) {
        let flows = self.core.take_flows();
        let next_id = flows.next_id;
        let mut unacknowledged = Vec::new();
        let mut unreleased = Vec::new();
        for id in flows.resend_order() {
            match flows.out.get(&id).map(|e| &e.state) {
                Some(OutState::Publish(p)) => {
                    let mut p = p.clone();
                    p.dup = false;
                    unacknowledged.push(p);
                }
                Some(OutState::Release) => unreleased.extend(PacketId::new(id)),
                None => {}
            }
        }
        self.core.flows.next_id = next_id;
        if !unacknowledged.is_empty() || !unreleased.is_empty() {
            self.events.push_back(Event::SessionLost {
                unacknowledged,
                unreleased,
            });
        }
    }

    fn on_auth(&mut self, now: Instant, a: &Auth) {
        let connecting = matches!(self.state, State::Connecting { .. });
        let Some(auth) = self.config.authenticator.as_mut() else {
            // MQTT-4.12.0-6: no method in CONNECT, so no AUTH may come.
            return self.violation((
                DisconnectReasonCode::ProtocolError,
                "AUTH without an authentication method (MQTT-4.12.0-6)",
            ));
        };
        if a.properties.authentication_method.as_ref() != Some(&auth.method()) {
            return self.violation((
                DisconnectReasonCode::ProtocolError,
                "AUTH with a different authentication method (MQTT-4.12.0-5)",
            ));
        }
        match a.reason_code {
            AuthReasonCode::ContinueAuthentication if connecting || self.reauthenticating => {
                match auth.challenge(a.properties.authentication_data.as_ref()) {
                    Ok(data) => {
                        let mut reply = Auth::new(AuthReasonCode::ContinueAuthentication);
                        reply.properties.authentication_method = Some(auth.method());
                        reply.properties.authentication_data = data;
                        if self.core.send(&reply).is_err() {
                            return self.auth_failed();
                        }
                        self.sent(now);
                    }
                    Err(AuthFailed) => self.auth_failed(),
                }
            }
            AuthReasonCode::Success if self.reauthenticating && !connecting => {
                match auth.finish(a.properties.authentication_data.as_ref()) {
                    Ok(()) => {
                        self.reauthenticating = false;
                        self.events.push_back(Event::Reauthenticated);
                    }
                    Err(AuthFailed) => self.auth_failed(),
                }
            }
            _ => self.violation((
                DisconnectReasonCode::ProtocolError,
                "AUTH reason code out of sequence",
            )),
        }
    }
}
