//! Policy hooks: what deployments differ in.
//!
//! Fast, pure decisions (may this client publish here?) are synchronous
//! methods called on the hot path. A decision that may need I/O (checking a
//! password against a database) answers [`AuthDecision::Defer`]: the broker
//! reports [`Event::Authenticate`](crate::Event::Authenticate) and the
//! connection waits, under its connect deadline, for
//! [`Broker::authenticated`](crate::Broker::authenticated).

use mqtt_topic::SubscriptionFilter;
use mqtt_wire::{Connect, ConnectReasonCode, MqttString, ProtocolVersion, TopicName};

use crate::ConnectionId;

/// Who is asking, for authorization decisions.
#[derive(Debug, Clone, Copy)]
pub struct ClientInfo<'a> {
    /// The connection.
    pub connection: ConnectionId,
    /// The client identifier in force (assigned if the client sent none).
    pub client_id: &'a MqttString,
    /// The user name from CONNECT.
    pub username: Option<&'a MqttString>,
    /// The protocol version.
    pub version: ProtocolVersion,
}

/// Who a message would be delivered to, for read authorization: a
/// session, connected or not.
#[derive(Debug, Clone, Copy)]
pub struct Recipient<'a> {
    /// The session's client identifier.
    pub client_id: &'a MqttString,
    /// The user name that owns the session (`None`: anonymous, or not known
    /// for a session restored from a store without one).
    pub username: Option<&'a MqttString>,
    /// The connection, if the session is connected.
    pub connection: Option<ConnectionId>,
}

/// The answer to a CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthDecision {
    /// Accept the connection.
    Allow,
    /// Refuse it with this CONNACK code (mapped to the 3.1.1 table for
    /// older clients), e.g. 0x86 Bad User Name or Password, 0x87 Not
    /// authorized, 0x9C Use another server.
    Deny(ConnectReasonCode),
    /// Decide later: the broker reports `Event::Authenticate` and waits for
    /// `Broker::authenticated`.
    Defer,
}

/// The broker's policy hooks. Every method has a permissive default, so a
/// deployment implements only what it restricts.
pub trait Hooks {
    /// A CONNECT without an Authentication Method: user name and password
    /// are in `connect`. Default: allow.
    fn authenticate(&mut self, connect: &Connect) -> AuthDecision {
        let _ = connect;
        AuthDecision::Allow
    }

    /// A CONNECT with an Authentication Method (5.0 enhanced
    /// authentication). Default: refuse with 0x8C Bad authentication
    /// method (MQTT-4.12.0-1). Return `Defer` to run the AUTH exchange
    /// through `Event::Authenticate` / `Event::AuthStep`.
    fn authenticate_enhanced(&mut self, connect: &Connect) -> AuthDecision {
        let _ = connect;
        AuthDecision::Deny(ConnectReasonCode::BadAuthenticationMethod)
    }

    /// May this client publish to `topic`? Checked per message; a refusal
    /// answers 0x87 Not authorized in 5.0 (3.1.1: acknowledged and
    /// dropped, MQTT-3.3.5-2). Default: yes.
    fn may_publish(&mut self, client: &ClientInfo<'_>, topic: &TopicName) -> bool {
        let _ = (client, topic);
        true
    }

    /// May this client subscribe to `filter`? Checked per filter; a refusal
    /// answers SUBACK 0x87 (3.1.1: 0x80). Default: yes.
    fn may_subscribe(&mut self, client: &ClientInfo<'_>, filter: &SubscriptionFilter) -> bool {
        let _ = (client, filter);
        true
    }

    /// May this session receive a message published to `topic`? Checked per
    /// delivery (routing, retained messages sent on subscribe, a shared
    /// subscription's message handed to another member), after
    /// [`may_subscribe`](Self::may_subscribe) granted the filter: read
    /// rights narrower than a wildcard filter, or rights revoked since the
    /// subscription, are enforced here. A refused message is skipped for
    /// that session only (a share group picks another member). Default: yes.
    fn may_receive(&mut self, recipient: &Recipient<'_>, topic: &TopicName) -> bool {
        let _ = (recipient, topic);
        true
    }

    /// A client connects with a client identifier whose session belongs to
    /// another user (`owner`; `None`: anonymous). Allowed: an existing
    /// connection of that session is closed (DISCONNECT 0x8E, MQTT-3.1.4-3)
    /// and the session is discarded, so the newcomer starts a fresh one
    /// (the old one's subscriptions and messages were authorized for its
    /// owner). Refused: the CONNECT is refused with 0x87 Not authorized
    /// (3.1.1: 0x05) and the owner keeps its connection and session.
    /// Default: refused, so that one user cannot disconnect another or
    /// discard its session by reusing its client identifier.
    fn may_replace_session(&mut self, client: &ClientInfo<'_>, owner: Option<&MqttString>) -> bool {
        let _ = (client, owner);
        false
    }
}

/// Hooks that allow everything (anonymous access, no ACL).
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Hooks for AllowAll {}
