//! Broker settings: every bound with its default and the reason for it.

use std::time::Duration;

use mqtt_session::server::ServerConfig;

/// Broker settings.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// Per-connection limits and capabilities announced in CONNACK
    /// (receive maximum, maximum packet size, topic alias maximum, maximum
    /// QoS, retain / wildcard / shared / subscription-identifier
    /// availability, server keep alive, connect timeout). The broker
    /// acknowledges messages itself, so `ack_mode` is ignored.
    pub server: ServerConfig,
    /// Connections open at once; `Broker::accept` refuses more with
    /// `Error::TooManyConnections` (close the transport: no CONNECT has
    /// been read, so no CONNACK can be sent).
    /// Default 100,000: each costs about a kilobyte idle.
    pub max_connections: usize,
    /// Sessions kept (connected or not); a new client beyond it is refused
    /// with 0x97 Quota exceeded. Default 100,000.
    pub max_sessions: usize,
    /// Subscriptions one session may hold; more are refused per filter
    /// with SUBACK 0x97. Default 1,000.
    pub max_subscriptions_per_session: usize,
    /// Messages waiting for one session (offline, or its Receive Maximum
    /// reached). Beyond it new messages for that session are dropped and
    /// counted. Default 1,000.
    pub max_queued_messages: usize,
    /// Payload and topic bytes waiting for one session. Default 16 MiB.
    pub max_queued_bytes: usize,
    /// Queue QoS 0 messages for offline persistent sessions. Default
    /// false (QoS 0 promises nothing across a disconnect).
    pub queue_qos0_offline: bool,
    /// Retained messages kept; a retained message for a new topic beyond
    /// it is forwarded but not stored. Default 100,000.
    pub max_retained_messages: usize,
    /// Payload and topic bytes of retained messages. Default 256 MiB.
    pub max_retained_bytes: usize,
    /// Ceiling on any Session Expiry Interval, in seconds; also the expiry
    /// of 3.1.1 sessions with CleanSession 0 (which the protocol keeps
    /// forever). Default 7 days: a client that never returns must not hold
    /// memory forever.
    pub max_session_expiry: u32,
    /// Publish `$SYS/broker/...` statistics this often. Default none.
    pub sys_interval: Option<Duration>,
    /// Every this often, each connection gives back the buffers and tables
    /// it holds with nothing in them (allocated again on its next
    /// traffic). A connection with a keep alive does this at each
    /// keep-alive check; one without (keep alive 0) gets no such call, and
    /// would otherwise keep its last buffers while idle. Default 60 s;
    /// `None`: never.
    pub idle_release_interval: Option<Duration>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            server: ServerConfig::default(),
            max_connections: 100_000,
            max_sessions: 100_000,
            max_subscriptions_per_session: 1_000,
            max_queued_messages: 1_000,
            max_queued_bytes: 16 * 1024 * 1024,
            queue_qos0_offline: false,
            max_retained_messages: 100_000,
            max_retained_bytes: 256 * 1024 * 1024,
            max_session_expiry: 7 * 24 * 3600,
            sys_interval: None,
            idle_release_interval: Some(Duration::from_secs(60)),
        }
    }
}
