//! Persistence: what the broker must keep across a restart, and when.
//!
//! The broker calls a [`Store`] for every change to durable state. Only
//! *persistent* sessions (Session Expiry Interval above 0, or 3.1.1
//! CleanSession 0) are reported. The order of calls is the durability
//! contract:
//!
//! - A PUBLISH from a client is routed first: every copy it adds to a
//!   persistent session ([`Store::message_added`]) and the retained change
//!   ([`Store::retained`]) are reported **before** the PUBACK (QoS 1) or
//!   PUBREC (QoS 2) is queued for the publisher. A store that makes each
//!   call durable before returning therefore never acknowledges a message
//!   it could lose. PUBCOMP follows a PUBREL and adds nothing to persist.
//! - A copy is reported done ([`Store::message_done`]) when the subscriber
//!   acknowledged it (PUBACK, PUBCOMP, or a refusing PUBREC), when it
//!   expired, or when it was dropped (too large for the client).
//! - Session creation (and changes of its expiry), subscriptions,
//!   unsubscriptions and the end of a session are reported as they happen.
//!
//! At start-up the wrapper loads what it stored and hands it to
//! [`Broker::restore`](crate::Broker::restore). Restored copies are sent
//! again as new deliveries: a QoS 2 copy whose PUBREC the client had sent
//! just before the crash may reach the client twice (the packet
//! identifiers of in-flight copies are not part of the stored state).

use mqtt_topic::SubscriptionFilter;
use mqtt_wire::{MqttString, Publish, QoS, SubscriptionId, TopicName};

/// A subscription as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredSubscription {
    /// Granted QoS.
    pub qos: QoS,
    /// No Local.
    pub no_local: bool,
    /// Retain As Published.
    pub retain_as_published: bool,
    /// Subscription Identifier.
    pub subscription_id: Option<SubscriptionId>,
}

/// A persistent session as stored, for [`Broker::restore`](crate::Broker::restore).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// Client identifier.
    pub client_id: MqttString,
    /// The user name of the session's owner (`None`: anonymous), as
    /// [`Store::session_saved`] reported it. A client of another user
    /// reusing the client identifier is handled by
    /// [`Hooks::may_replace_session`](crate::Hooks::may_replace_session).
    pub owner: Option<MqttString>,
    /// Session Expiry Interval, seconds (counted from the restore).
    pub expiry: u32,
    /// Subscriptions.
    pub subscriptions: Vec<(SubscriptionFilter, StoredSubscription)>,
    /// Copies not yet acknowledged, in the order they were added, with the
    /// ids [`Store::message_added`] gave them.
    pub messages: Vec<(u64, Publish)>,
}

/// Where the broker reports durable state. Every method defaults to doing
/// nothing ([`MemoryOnly`]: state lives in the broker's memory only).
pub trait Store {
    /// A persistent session was created for the user `owner` (`None`:
    /// anonymous), or its Session Expiry Interval changed.
    fn session_saved(&mut self, client_id: &MqttString, owner: Option<&MqttString>, expiry: u32) {
        let _ = (client_id, owner, expiry);
    }

    /// A persistent session ended (expired, or discarded by Clean Start):
    /// forget it with its subscriptions and messages.
    fn session_ended(&mut self, client_id: &MqttString) {
        let _ = client_id;
    }

    /// A subscription was added or replaced.
    fn subscribed(
        &mut self,
        client_id: &MqttString,
        filter: &SubscriptionFilter,
        subscription: &StoredSubscription,
    ) {
        let _ = (client_id, filter, subscription);
    }

    /// A subscription was removed.
    fn unsubscribed(&mut self, client_id: &MqttString, filter: &SubscriptionFilter) {
        let _ = (client_id, filter);
    }

    /// A copy of a message was added to a persistent session (queued or
    /// sent). `id` is unique for the broker's lifetime and above every id
    /// restored.
    fn message_added(&mut self, client_id: &MqttString, id: u64, message: &Publish) {
        let _ = (client_id, id, message);
    }

    /// A copy is finished (acknowledged, expired or dropped).
    fn message_done(&mut self, client_id: &MqttString, id: u64) {
        let _ = (client_id, id);
    }

    /// The retained message of `topic` was set (`Some`) or cleared (`None`).
    fn retained(&mut self, topic: &TopicName, message: Option<&Publish>) {
        let _ = (topic, message);
    }
}

/// No persistence: the broker's own memory is the only store.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryOnly;

impl Store for MemoryOnly {}
