//! A sans-IO MQTT broker core for MQTT 3.1, 3.1.1 and 5.0 clients on the
//! same broker.
//!
//! [`Broker`] owns every server connection (an
//! [`mqtt_session::server::ServerConnection`] each) and every session,
//! routes messages through an [`mqtt_topic::SubscriptionTree`], keeps
//! retained messages in an [`mqtt_topic::RetainedIndex`], publishes wills
//! (with their delay), balances shared subscriptions, queues messages for
//! offline persistent sessions and expires messages and sessions. It does
//! no I/O and reads no clock: a runtime wraps it in a few dozen lines.
//!
//! # The call contract
//!
//! - **Inputs**: [`accept`](Broker::accept) for a new transport (returns a
//!   [`ConnectionId`]), [`handle_read`](Broker::handle_read) with its bytes,
//!   [`handle_closed`](Broker::handle_closed) when it closes,
//!   [`handle_timeout`](Broker::handle_timeout) when the deadline from
//!   [`poll_timeout`](Broker::poll_timeout) has passed.
//! - **Outputs**, drained after every input in this order:
//!   [`poll_transmit`](Broker::poll_transmit) until `None` (write each
//!   chunk to its connection), [`poll_event`](Broker::poll_event) until
//!   `None` ([`Event::Close`] means: close that transport now), then
//!   [`poll_timeout`](Broker::poll_timeout).
//! - **Policy**: [`Hooks`] for authentication and authorization; a
//!   deferred authentication is an [`Event::Authenticate`] answered with
//!   [`Broker::authenticated`].
//! - Fan-out clones the payload [`bytes::Bytes`]: a reference count, not a
//!   copy. Every table and queue is bounded by [`BrokerConfig`].
//! - **Persistence**: a [`Store`] hears every durable change, in the order
//!   that makes acknowledged messages durable; [`Broker::restore`] loads it.
//! - **Testing**: with the cargo feature `testing`, the module
//!   `mqtt_broker::testing` is the deterministic in-memory harness (a broker
//!   and many mqtt-session clients, a fake clock, dropped and held
//!   connections) to test your own hooks and wrappers with.
//!
//! A session belongs to its client identifier *and* the user name that
//! created it: a CONNECT with the same client identifier but another user
//! name is refused (0x87) unless [`Hooks::may_replace_session`] allows it,
//! and then gets a new session (the old one's subscriptions and queued
//! messages were authorized for its owner). Read rights are checked per
//! filter at SUBSCRIBE ([`Hooks::may_subscribe`]) and again per delivery
//! ([`Hooks::may_receive`]).
//!
//! # Example: two clients through the broker, in memory
//!
//! ```
//! use std::time::Instant;
//! use bytes::Bytes;
//! use mqtt_broker::{Broker, BrokerConfig, Event};
//! use mqtt_session::client::{Client, ClientConfig, Event as ClientEvent};
//! use mqtt_wire::{Connect, MqttString, ProtocolVersion, Publish, QoS, Subscription,
//!     SubscriptionOptions, SubscribeProperties, TopicFilter, TopicName};
//!
//! let now = Instant::now();
//! let mut broker = Broker::new(BrokerConfig::default());
//! let mut clients = Vec::new();
//! for name in ["sub", "pub"] {
//!     let connect = Connect::new(ProtocolVersion::V5, MqttString::try_from(name).unwrap());
//!     let mut c = Client::new(ClientConfig::new(connect));
//!     c.connect(now).unwrap();
//!     clients.push((broker.accept(now).unwrap(), c));
//! }
//! // The wrapper's loop: move bytes both ways until all is quiet.
//! fn pump(now: Instant, b: &mut Broker, cs: &mut [(mqtt_broker::ConnectionId, Client)]) {
//!     loop {
//!         let mut moved = false;
//!         for (id, c) in cs.iter_mut() {
//!             while let Some(bytes) = c.poll_transmit() { b.handle_read(*id, now, &bytes); moved = true; }
//!         }
//!         while let Some((id, bytes)) = b.poll_transmit() {
//!             if let Some((_, c)) = cs.iter_mut().find(|(i, _)| *i == id) { c.handle_read(now, &bytes); }
//!             moved = true;
//!         }
//!         if !moved { break; }
//!     }
//! }
//! pump(now, &mut broker, &mut clients);
//! assert!(matches!(broker.poll_event(), Some(Event::Connected { .. })));
//!
//! let filter = TopicFilter::try_from("sensors/+").unwrap();
//! let sub = Subscription { filter, options: SubscriptionOptions::new(QoS::AtLeastOnce) };
//! clients[0].1.subscribe(now, vec![sub], SubscribeProperties::default()).unwrap();
//! pump(now, &mut broker, &mut clients);
//! let msg = Publish::new(TopicName::try_from("sensors/t1").unwrap(), Bytes::from_static(b"21.5"));
//! clients[1].1.publish(now, msg).unwrap();
//! pump(now, &mut broker, &mut clients);
//!
//! let got: Vec<_> = std::iter::from_fn(|| clients[0].1.poll_event())
//!     .filter_map(|e| match e { ClientEvent::Publish(p) => Some(p), _ => None })
//!     .collect();
//! assert_eq!(got.len(), 1);
//! assert_eq!(&got[0].payload[..], b"21.5");
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
mod broker;
mod config;
mod hooks;
mod index;
mod slab;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod tick;

use core::fmt;

pub use broker::{Broker, ConnectionId, Event};
pub use config::BrokerConfig;
pub use hooks::{AllowAll, AuthDecision, ClientInfo, Hooks, Recipient};
pub use store::{MemoryOnly, Store, StoredSession, StoredSubscription};

/// Misuse of the broker API: refused, nothing changed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// `max_connections` reached: close the new transport.
    TooManyConnections,
    /// `max_sessions` reached while restoring.
    TooManySessions,
    /// No open connection has this id.
    UnknownConnection,
    /// The connection has no CONNECT awaiting a decision.
    NoPendingAuthentication,
    /// A message without a topic name.
    MissingTopic,
    /// The connection refused the command.
    Session(mqtt_session::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::TooManyConnections => f.write_str("too many connections"),
            Error::TooManySessions => f.write_str("too many sessions"),
            Error::UnknownConnection => f.write_str("unknown connection"),
            Error::NoPendingAuthentication => f.write_str("no authentication pending"),
            Error::MissingTopic => f.write_str("message without a topic name"),
            Error::Session(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

/// Broker counters (for `$SYS` topics and monitoring).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Open connections.
    pub connections: usize,
    /// Sessions kept (connected or not).
    pub sessions: usize,
    /// Subscriptions in the tree.
    pub subscriptions: usize,
    /// Retained messages stored.
    pub retained_messages: usize,
    /// PUBLISH packets received from clients.
    pub messages_in: u64,
    /// PUBLISH packets handed to connections.
    pub messages_out: u64,
    /// Messages dropped: queue bounds, unauthorized, too large for a
    /// client, sessions ended with messages queued.
    pub messages_dropped: u64,
    /// Messages whose expiry passed while they waited.
    pub messages_expired: u64,
    /// Retained messages not stored because of the retained bounds.
    pub retained_refused: u64,
    /// Wills published.
    pub wills_published: u64,
    /// Bytes read from clients.
    pub bytes_in: u64,
    /// Bytes handed out to write.
    pub bytes_out: u64,
}
