//! Operation sequences for the fuzz target `broker_ops` and its corpus
//! replay (feature `arbitrary`; hidden, not a stable API).
//!
//! [`check_ops`] reads a setup (broker bounds and capabilities, up to six
//! clients of mixed protocol versions) and then a sequence of [`Op`]s from
//! the input, and runs them on the public harness ([`crate::testing`]):
//! connections (client identifiers from a small set, so sessions are
//! resumed and taken over; Clean Start, Session Expiry, Wills with a delay,
//! credentials whose password tells the hooks to allow, deny or defer),
//! subscriptions and publications on a small topic alphabet (wildcards,
//! `$share`, retained messages, message expiry), manual acknowledgements,
//! DISCONNECT with any reason code, abrupt drops, withheld bytes, bytes
//! slipped into a client's stream (valid packets, mutated ones, raw bytes),
//! raw transports, answers to deferred authentication, administrative
//! closes, application publishes, clock steps and jumps, spurious timeouts.
//!
//! The hooks ([`FuzzHooks`]) hold an ACL: clients whose identifier starts
//! with `r` may not subscribe to a filter that can match a topic whose
//! first level is `secret`, and nobody may publish to a topic whose first
//! level is `locked` (a Will there refuses the CONNECT).
//!
//! After every operation the harness has run until quiet, and these are
//! checked (a broken one panics: that is how the fuzzer learns of it):
//!
//! - no panic, in the broker or the harness (which checks by itself that
//!   every byte the broker writes decodes for the client's version, that
//!   nothing is written to or closed twice on a closed connection, and that
//!   `poll_timeout` after `handle_timeout(now)` is `None` or later);
//! - [`Stats`](crate::Stats): `connections` equals the transports the
//!   harness has open, `bytes_in` / `bytes_out` equal the bytes it moved;
//! - every bound of [`BrokerConfig`] holds ([`Footprint::assert_within`]):
//!   connections, sessions, subscriptions per session, queued messages and
//!   bytes per session, retained messages and bytes; no session leaks from
//!   the client-identifier map or the routing tree;
//! - the ACL is never bypassed: a restricted client never receives a
//!   PUBLISH on a `secret` topic (on the wire or as an event, across
//!   resumed sessions, takeovers, shared subscriptions, retained messages
//!   and Wills), nobody ever receives one on a `locked` topic, and a SUBACK
//!   never grants a restricted client a filter the ACL refuses;
//! - a client never closes its connection because the broker broke the
//!   protocol (a violation or a malformed packet), unless bytes were
//!   slipped into that connection;
//! - `Broker::authenticated` succeeds for a deferred CONNECT still waiting
//!   and fails for a connection with no authentication pending;
//!   `Broker::disconnect` succeeds for every open connection.

use std::collections::{BTreeMap, BTreeSet};
use std::num::{NonZeroU16, NonZeroU32};
use std::time::Duration;

use ::arbitrary::{Arbitrary, Result, Unstructured};
use bytes::{Bytes, BytesMut};
use mqtt_session::client::{ClientConfig, Event as ClientEvent};
use mqtt_session::{AckMode, CloseReason};
use mqtt_topic::SubscriptionFilter;
use mqtt_wire::arbitrary as gen;
use mqtt_wire::{
    Connect, ConnectReasonCode, Delivery, DisconnectProperties, DisconnectReasonCode, Encode,
    LastWill, MqttString, Packet, PacketId, ProtocolVersion, PubAckReasonCode, Publish, QoS,
    SubscribeProperties, Subscription, SubscriptionId, SubscriptionOptions, TopicFilter, TopicName,
    UnsubscribeProperties,
};

use crate::testing::{Footprint, World};
use crate::{AuthDecision, BrokerConfig, ClientInfo, ConnectionId, Event, Hooks, Recipient};

/// Operations run for one input at most.
pub const MAX_OPS: usize = 300;

/// With this environment variable set, every operation and what it did is
/// printed to stderr (to read a crash).
pub const DEBUG_VAR: &str = "MQTT_BROKER_FUZZ_DEBUG";

/// Client identifiers: `r*` are restricted by the ACL, the empty one is
/// assigned by the broker.
const CLIENT_IDS: &[&str] = &["r0", "u0", "r1", "u1", "u2", ""];

const TOPICS: &[&str] = &[
    "a", "a/b", "a/b/c", "b", "secret/x", "secret", "locked", "$SYS/x", "a/hidden",
];

const FILTERS: &[&str] = &[
    "a",
    "a/+",
    "a/#",
    "+/b",
    "#",
    "+",
    "+/+/c",
    "secret/#",
    "secret/+",
    "locked",
    "$SYS/#",
    "$share/g/a/#",
    "$share/g/#",
    "$share/h/+/b",
    "$share/g/secret/x",
    "b",
];

/// Session Expiry Interval choices, seconds.
const EXPIRIES: &[u32] = &[0, 2, 30, 3600, u32::MAX];

/// Keep Alive choices, seconds.
const KEEP_ALIVES: &[u16] = &[0, 3, 60];

/// Will Delay Interval choices, seconds.
const WILL_DELAYS: &[u32] = &[0, 1, 5, 100];

// ---------------------------------------------------------------------------
// The ACL
// ---------------------------------------------------------------------------

/// Whether the ACL restricts this client identifier.
pub fn restricted(client_id: &str) -> bool {
    client_id.starts_with('r')
}

/// Whether a restricted client may not read `topic`.
pub fn secret_topic(topic: &str) -> bool {
    topic.split('/').next() == Some("secret")
}

/// Whether a restricted client may not receive `topic`, although it may
/// subscribe to filters that match it (`a/#`, `#`): enforced per delivery
/// by `Hooks::may_receive`.
pub fn hidden_topic(topic: &str) -> bool {
    topic.rsplit('/').next() == Some("hidden")
}

/// Whether nobody may publish to `topic`.
pub fn locked_topic(topic: &str) -> bool {
    topic.split('/').next() == Some("locked")
}

/// Whether `filter` can match a `secret` topic.
pub fn reaches_secret(filter: &TopicFilter) -> bool {
    matches!(
        filter.as_str().split('/').next(),
        Some("#") | Some("+") | Some("secret")
    )
}

/// Hooks driven by the input: the password of a CONNECT decides (`a`:
/// allow, `d` + code: deny, `w`: defer; none: allow), and the ACL above.
#[derive(Debug, Clone, Default)]
pub struct FuzzHooks;

impl Hooks for FuzzHooks {
    fn authenticate(&mut self, connect: &Connect) -> AuthDecision {
        decision(connect.password.as_deref())
    }

    fn may_publish(&mut self, _: &ClientInfo<'_>, topic: &TopicName) -> bool {
        !locked_topic(topic.as_str())
    }

    fn may_subscribe(&mut self, client: &ClientInfo<'_>, filter: &SubscriptionFilter) -> bool {
        !(restricted(client.client_id.as_str()) && reaches_secret(filter.topic_filter()))
    }

    fn may_receive(&mut self, recipient: &Recipient<'_>, topic: &TopicName) -> bool {
        !(restricted(recipient.client_id.as_str()) && hidden_topic(topic.as_str()))
    }
}

fn decision(password: Option<&[u8]>) -> AuthDecision {
    match password {
        Some([b'd', code, ..]) => AuthDecision::Deny(deny_code(*code)),
        Some([b'd']) => AuthDecision::Deny(ConnectReasonCode::NotAuthorized),
        Some([b'w', ..]) => AuthDecision::Defer,
        _ => AuthDecision::Allow,
    }
}

fn deny_code(n: u8) -> ConnectReasonCode {
    let all = ConnectReasonCode::ALL;
    all.get(usize::from(n) % all.len().max(1))
        .copied()
        .unwrap_or(ConnectReasonCode::NotAuthorized)
}

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

/// A client's fixed settings.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerSetup {
    /// Protocol version.
    pub version: ProtocolVersion,
    /// Acknowledge QoS 1/2 messages by hand (`Op::Ack`): a slow consumer.
    pub manual_ack: bool,
    /// Receive Maximum `n % 3 + 1` (5.0).
    pub receive_maximum: Option<u8>,
    /// Maximum Packet Size `16 * (n % 8 + 2)` (5.0): larger messages must
    /// be skipped.
    pub maximum_packet_size: Option<u8>,
    /// Topic Alias Maximum `n % 4` (5.0).
    pub topic_alias_maximum: Option<u8>,
}

/// The broker's settings, read first from the input.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// `n % 6 + 1` clients.
    pub clients: u8,
    /// The clients' settings.
    pub peers: [PeerSetup; 6],
    /// `max_connections` `n % 8 + 1` (default: plenty).
    pub max_connections: Option<u8>,
    /// `max_sessions` `n % 6 + 1`.
    pub max_sessions: Option<u8>,
    /// `max_subscriptions_per_session` `n % 4 + 1`.
    pub max_subscriptions: Option<u8>,
    /// `max_queued_messages` `n % 5`.
    pub max_queued_messages: Option<u8>,
    /// `max_queued_bytes` `8 * n`.
    pub max_queued_bytes: Option<u8>,
    /// `queue_qos0_offline`.
    pub queue_qos0_offline: bool,
    /// `max_retained_messages` `n % 4`.
    pub max_retained_messages: Option<u8>,
    /// `max_retained_bytes` `8 * n`.
    pub max_retained_bytes: Option<u8>,
    /// `max_session_expiry` `n` seconds.
    pub max_session_expiry: Option<u8>,
    /// `sys_interval` `n % 10 + 1` seconds.
    pub sys_interval: Option<u8>,
    /// Server Receive Maximum `n % 3 + 1`.
    pub receive_maximum: Option<u8>,
    /// Server maximum packet size `64 * (n % 8 + 1)`.
    pub max_packet_size: Option<u8>,
    /// Server Topic Alias Maximum `n % 4`.
    pub topic_alias_maximum: Option<u8>,
    /// Maximum QoS.
    pub maximum_qos: QoS,
    /// Retain unavailable.
    pub no_retain: bool,
    /// Wildcard subscriptions unavailable.
    pub no_wildcards: bool,
    /// Shared subscriptions unavailable.
    pub no_shared: bool,
    /// Subscription identifiers unavailable.
    pub no_subscription_ids: bool,
    /// Server Keep Alive `n % 10` seconds.
    pub server_keep_alive: Option<u8>,
    /// No outbound topic aliases.
    pub no_outbound_aliases: bool,
    /// Connect timeout `n % 20 + 1` seconds.
    pub connect_timeout: u8,
}

/// The authentication answer carried by a CONNECT's password.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    /// No user name, no password: allowed.
    None,
    /// User name and password `a`: allowed.
    Allow,
    /// Password `d` + code: denied with that CONNACK code.
    Deny(u8),
    /// Password `w`: deferred to `Op::Answer`.
    Defer,
}

/// A Will.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub struct WillSpec {
    /// Index in the topic alphabet.
    pub topic: u8,
    /// QoS.
    pub qos: QoS,
    /// Retain.
    pub retain: bool,
    /// Will Delay Interval (index in the choices; 5.0).
    pub delay: Option<u8>,
    /// Message Expiry Interval `n % 8` seconds (5.0).
    pub expiry: Option<u8>,
}

/// A CONNECT.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectSpec {
    /// Index in the client identifiers.
    pub client_id: u8,
    /// Clean Start.
    pub clean_start: bool,
    /// Session Expiry Interval (index in the choices; 5.0).
    pub expiry: Option<u8>,
    /// Keep Alive (index in the choices).
    pub keep_alive: u8,
    /// Will.
    pub will: Option<WillSpec>,
    /// Credentials (none: allowed).
    pub credentials: Option<Credentials>,
}

/// A message.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishSpec {
    /// Index in the topic alphabet (past its end: a generated topic).
    pub topic: u8,
    /// QoS.
    pub qos: QoS,
    /// Retain.
    pub retain: bool,
    /// Payload length (`n % 64`; 0 clears a retained message).
    pub payload: u8,
    /// Message Expiry Interval `n % 8` seconds.
    pub expiry: Option<u8>,
    /// Add generated 5.0 properties.
    pub properties: bool,
}

/// Bytes slipped into a stream.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// A valid generated packet of the version.
    Packet(ProtocolVersion),
    /// A valid generated packet with the byte at `pos` xored with `xor`
    /// (0: cut there).
    Mutated(ProtocolVersion, u16, u8),
    /// Up to `n` raw bytes.
    Raw(u8),
}

/// An answer to a deferred authentication.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Allow.
    Allow,
    /// Deny with a code.
    Deny(u8),
    /// Still undecided.
    Defer,
}

/// How far the clock moves.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// This many milliseconds, every timer firing on the way.
    Millis(u8),
    /// `n % 64` seconds, every timer firing on the way.
    Secs(u8),
    /// To the broker's next deadline (if within a day).
    ToDeadline,
    /// A jump of this many seconds (up to 18 hours), overdue timers firing
    /// once at the end.
    Jump(u16),
}

/// One operation. Clients are named by `n`: `Connect` takes the `n`-th
/// client without a transport, the client commands the `n`-th connected
/// one (the `n`-th client when none is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Client `n` connects (when it has no transport open).
    Connect(u8, ConnectSpec),
    /// Client `n` subscribes to up to three filters (indices; past the
    /// alphabet: generated), with options and maybe an identifier.
    Subscribe(u8, [u8; 3], u8, SubscriptionOptions, bool),
    /// Client `n` unsubscribes from a filter.
    Unsubscribe(u8, u8),
    /// Client `n` publishes.
    Publish(u8, PublishSpec),
    /// Client `n` acknowledges the `k`-th message it has not acknowledged
    /// yet; `true`: with a failure code (5.0).
    Ack(u8, u8, bool),
    /// Client `n` sends DISCONNECT with a code (index) and maybe a new
    /// Session Expiry Interval (index).
    Disconnect(u8, u8, Option<u8>),
    /// Client `n`'s transport drops.
    Drop(u8),
    /// Withhold (`true`) or release client `n`'s bytes out (`true`) or in.
    Hold(u8, bool, bool),
    /// Bytes slipped into client `n`'s stream to the broker.
    Inject(u8, Chunk),
    /// A raw transport opens.
    OpenRaw,
    /// Bytes on raw transport `k`.
    Raw(u8, Chunk),
    /// Raw transport `k` closes.
    CloseRaw(u8),
    /// The `k`-th deferred authentication is answered (past the end: a
    /// client's connection, which has none pending).
    Answer(u8, Answer),
    /// `Broker::disconnect` of client `n`'s connection with a code.
    AdminClose(u8, u8),
    /// The application publishes through the broker.
    AppPublish(PublishSpec),
    /// The clock moves.
    Time(Step),
    /// A spurious `handle_timeout` now.
    Timeout,
}

impl<'a> Arbitrary<'a> for Op {
    /// Weighted: mostly connections, subscriptions, publishes and time.
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u8::arbitrary(u)? {
            0..=29 => Op::Connect(u.arbitrary()?, u.arbitrary()?),
            30..=59 => Op::Subscribe(
                u.arbitrary()?,
                u.arbitrary()?,
                u.arbitrary()?,
                u.arbitrary()?,
                u.arbitrary()?,
            ),
            60..=67 => Op::Unsubscribe(u.arbitrary()?, u.arbitrary()?),
            68..=119 => Op::Publish(u.arbitrary()?, u.arbitrary()?),
            120..=129 => Op::Ack(u.arbitrary()?, u.arbitrary()?, u.arbitrary()?),
            130..=139 => Op::Disconnect(u.arbitrary()?, u.arbitrary()?, u.arbitrary()?),
            140..=149 => Op::Drop(u.arbitrary()?),
            150..=159 => Op::Hold(u.arbitrary()?, u.arbitrary()?, u.arbitrary()?),
            160..=167 => Op::Inject(u.arbitrary()?, u.arbitrary()?),
            168..=171 => Op::OpenRaw,
            172..=177 => Op::Raw(u.arbitrary()?, u.arbitrary()?),
            178..=181 => Op::CloseRaw(u.arbitrary()?),
            182..=193 => Op::Answer(u.arbitrary()?, u.arbitrary()?),
            194..=199 => Op::AdminClose(u.arbitrary()?, u.arbitrary()?),
            200..=211 => Op::AppPublish(u.arbitrary()?),
            212..=249 => Op::Time(u.arbitrary()?),
            _ => Op::Timeout,
        })
    }
}

/// What [`run_ops`] did, for picking seeds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// One entry per operation run: its `Debug` and what it did.
    pub ops: Vec<(String, Vec<String>)>,
}

impl Trace {
    /// Every tag seen.
    pub fn tags(&self) -> BTreeSet<String> {
        self.ops
            .iter()
            .flat_map(|(_, t)| t.iter().cloned())
            .collect()
    }
}

/// Fuzz entry `broker_ops`: a setup and operation sequence from `data`,
/// every invariant checked after every operation.
pub fn check_ops(data: &[u8]) {
    run_ops(data, None);
}

/// [`check_ops`], recording what happened in `trace`.
pub fn run_ops(data: &[u8], mut trace: Option<&mut Trace>) {
    let mut u = Unstructured::new(data);
    let Ok(setup) = Setup::arbitrary(&mut u) else {
        return;
    };
    let debug = std::env::var_os(DEBUG_VAR).is_some();
    if debug {
        eprintln!("{setup:?}");
    }
    let mut run = Run::new(&setup);
    for _ in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        let Ok(op) = Op::arbitrary(&mut u) else {
            break;
        };
        if debug {
            eprintln!("{op:?}");
        }
        let r = run.op(op, &mut u);
        run.check();
        if debug {
            eprintln!("    {:?}", run.tags);
        }
        let tags = std::mem::take(&mut run.tags);
        if let Some(t) = trace.as_deref_mut() {
            t.ops.push((format!("{op:?}"), tags));
        }
        if r.is_err() {
            break;
        }
    }
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

struct Run {
    w: World<FuzzHooks>,
    config: BrokerConfig,
    setups: Vec<PeerSetup>,
    /// Per client: whether each transport (by number) is restricted by the
    /// ACL, and whether bytes were slipped into it.
    restricted: BTreeMap<(usize, u32), bool>,
    tainted: BTreeSet<(usize, u32)>,
    /// Per client: wire_in, received and events already checked.
    seen: Vec<(usize, usize, usize)>,
    /// Broker events already looked at.
    events_seen: usize,
    /// Deferred CONNECTs waiting for an answer.
    pending: Vec<ConnectionId>,
    /// SUBSCRIBE filters by (client, transport, packet id).
    subscribed: BTreeMap<(usize, u32, u16), Vec<TopicFilter>>,
    /// Received QoS 1/2 messages not acknowledged, per client (manual).
    unacked: Vec<Vec<PacketId>>,
    tags: Vec<String>,
    last: crate::Stats,
    /// Per client: the identifier of its latest CONNECT.
    last_id: Vec<Option<String>>,
    /// Per identifier: the client that last connected with it.
    owner: BTreeMap<String, usize>,
}

fn pick<T: Copy>(items: &[T], n: u8) -> Option<T> {
    items.get(usize::from(n) % items.len().max(1)).copied()
}

fn payload(n: u8) -> Bytes {
    Bytes::from((0..n % 64).collect::<Vec<u8>>())
}

fn topic_of(u: &mut Unstructured<'_>, n: u8) -> Result<TopicName> {
    match TOPICS.get(usize::from(n) % (TOPICS.len() + 1)) {
        Some(t) => TopicName::try_from(*t).map_err(|_| ::arbitrary::Error::IncorrectFormat),
        None => gen::topic_name(u),
    }
}

fn filter_of(u: &mut Unstructured<'_>, n: u8) -> Result<TopicFilter> {
    match FILTERS.get(usize::from(n) % (FILTERS.len() + 1)) {
        Some(f) => TopicFilter::try_from(*f).map_err(|_| ::arbitrary::Error::IncorrectFormat),
        None => gen::topic_filter(u),
    }
}

fn bytes_of(u: &mut Unstructured<'_>, kind: Chunk) -> Result<Vec<u8>> {
    let encode = |p: &Packet, v: ProtocolVersion| {
        let mut b = BytesMut::new();
        p.encode(v, &mut b).map(|_| b.to_vec()).unwrap_or_default()
    };
    Ok(match kind {
        Chunk::Packet(v) => encode(&gen::packet(u, v)?, v),
        Chunk::Mutated(v, pos, xor) => {
            let mut b = encode(&gen::packet(u, v)?, v);
            if !b.is_empty() {
                let i = usize::from(pos) % b.len();
                if xor == 0 {
                    b.truncate(i);
                } else if let Some(x) = b.get_mut(i) {
                    *x ^= xor;
                }
            }
            b
        }
        Chunk::Raw(n) => {
            let n = usize::from(n).min(u.len());
            u.bytes(n)?.to_vec()
        }
    })
}

fn config_of(s: &Setup) -> BrokerConfig {
    let mut c = BrokerConfig::default();
    if let Some(n) = s.max_connections {
        c.max_connections = usize::from(n % 8) + 1;
    }
    if let Some(n) = s.max_sessions {
        c.max_sessions = usize::from(n % 6) + 1;
    }
    if let Some(n) = s.max_subscriptions {
        c.max_subscriptions_per_session = usize::from(n % 4) + 1;
    }
    if let Some(n) = s.max_queued_messages {
        c.max_queued_messages = usize::from(n % 5);
    }
    if let Some(n) = s.max_queued_bytes {
        c.max_queued_bytes = 8 * usize::from(n);
    }
    c.queue_qos0_offline = s.queue_qos0_offline;
    if let Some(n) = s.max_retained_messages {
        c.max_retained_messages = usize::from(n % 4);
    }
    if let Some(n) = s.max_retained_bytes {
        c.max_retained_bytes = 8 * usize::from(n);
    }
    if let Some(n) = s.max_session_expiry {
        c.max_session_expiry = u32::from(n);
    }
    c.sys_interval = s
        .sys_interval
        .map(|n| Duration::from_secs(u64::from(n % 10) + 1));
    let sc = &mut c.server;
    if let Some(n) = s.receive_maximum {
        sc.receive_maximum = NonZeroU16::new(u16::from(n % 3) + 1).unwrap_or(NonZeroU16::MIN);
    }
    if let Some(n) = s.max_packet_size {
        sc.max_packet_size = 64 * (u32::from(n % 8) + 1);
    }
    if let Some(n) = s.topic_alias_maximum {
        sc.topic_alias_maximum = u16::from(n % 4);
    }
    sc.maximum_qos = s.maximum_qos;
    sc.retain_available = !s.no_retain;
    sc.wildcard_subscriptions = !s.no_wildcards;
    sc.shared_subscriptions = !s.no_shared;
    sc.subscription_identifiers = !s.no_subscription_ids;
    sc.server_keep_alive = s.server_keep_alive.map(|n| u16::from(n % 10));
    sc.outbound_topic_aliases = !s.no_outbound_aliases;
    sc.connect_timeout = Duration::from_secs(u64::from(s.connect_timeout % 20) + 1);
    c
}

impl Run {
    fn new(s: &Setup) -> Self {
        let config = config_of(s);
        let n = usize::from(s.clients % 6) + 1;
        let setups: Vec<PeerSetup> = s.peers.iter().take(n).copied().collect();
        let mut w = World::with_hooks(config.clone(), FuzzHooks);
        for (i, p) in setups.iter().enumerate() {
            let id = pick(CLIENT_IDS, i as u8).unwrap_or("u0");
            let connect = Connect::new(p.version, mqtt_string(id));
            w.add_config(client_config(p, connect));
        }
        Run {
            w,
            config,
            seen: vec![(0, 0, 0); setups.len()],
            unacked: vec![Vec::new(); setups.len()],
            last_id: vec![None; setups.len()],
            owner: BTreeMap::new(),
            setups,
            restricted: BTreeMap::new(),
            tainted: BTreeSet::new(),
            events_seen: 0,
            pending: Vec::new(),
            subscribed: BTreeMap::new(),
            tags: Vec::new(),
            last: crate::Stats::default(),
        }
    }

    fn tag(&mut self, t: impl Into<String>) {
        self.tags.push(t.into());
    }

    /// The `n`-th connected client (the `n`-th client when none is).
    fn peer(&self, n: u8) -> usize {
        let live: Vec<usize> = (0..self.w.peers.len())
            .filter(|i| {
                self.w
                    .peers
                    .get(*i)
                    .is_some_and(|p| p.client.is_connected())
            })
            .collect();
        pick(&live, n).unwrap_or(usize::from(n) % self.setups.len().max(1))
    }

    /// The `n`-th client with a transport open (the `n`-th client when
    /// none has one).
    fn open_peer(&self, n: u8) -> usize {
        let open: Vec<usize> = (0..self.w.peers.len())
            .filter(|i| self.w.is_open(*i))
            .collect();
        pick(&open, n).unwrap_or(usize::from(n) % self.setups.len().max(1))
    }

    /// The `n`-th client without a transport (the `n`-th client when all
    /// have one).
    fn idle_peer(&self, n: u8) -> usize {
        let idle: Vec<usize> = (0..self.w.peers.len())
            .filter(|i| !self.w.is_open(*i))
            .collect();
        pick(&idle, n).unwrap_or(usize::from(n) % self.setups.len().max(1))
    }

    fn conn_key(&self, i: usize) -> (usize, u32) {
        (i, self.w.peers.get(i).map_or(0, |p| p.connections))
    }

    fn op(&mut self, op: Op, u: &mut Unstructured<'_>) -> Result<()> {
        let now = self.w.now;
        match op {
            Op::Connect(n, spec) => self.connect(self.idle_peer(n), spec)?,
            Op::Subscribe(n, filters, count, options, with_id) => {
                let i = self.peer(n);
                let mut subs = Vec::new();
                for f in filters.iter().take(usize::from(count % 3) + 1) {
                    subs.push(Subscription {
                        filter: filter_of(u, *f)?,
                        options,
                    });
                }
                let mut props = SubscribeProperties::default();
                if with_id {
                    props.subscription_identifier = SubscriptionId::new(u32::from(n) + 1);
                }
                let filters: Vec<TopicFilter> = subs.iter().map(|s| s.filter.clone()).collect();
                let key = self.conn_key(i);
                if let Some(p) = self.w.peers.get_mut(i) {
                    match p.client.subscribe(now, subs, props) {
                        Ok(pid) => {
                            self.subscribed.insert((key.0, key.1, pid.get()), filters);
                            self.tag("subscribe");
                        }
                        Err(e) => self.tag(err_tag(&e)),
                    }
                }
                self.w.run();
            }
            Op::Unsubscribe(n, f) => {
                let i = self.peer(n);
                let filter = filter_of(u, f)?;
                if let Some(p) = self.w.peers.get_mut(i) {
                    let r =
                        p.client
                            .unsubscribe(now, vec![filter], UnsubscribeProperties::default());
                    self.tag(if r.is_ok() { "unsubscribe" } else { "err" });
                }
                self.w.run();
            }
            Op::Publish(n, spec) => {
                let i = self.peer(n);
                let m = self.message(u, spec)?;
                match self.w.try_publish(i, m) {
                    Ok(_) => self.tag("publish"),
                    Err(e) => self.tag(err_tag(&e)),
                }
                self.w.run();
            }
            Op::Ack(n, k, fail) => {
                let i = self.peer(n);
                let list = self.unacked.get_mut(i);
                let pid = list.and_then(|l| {
                    let k = usize::from(k) % l.len().max(1);
                    (k < l.len()).then(|| l.remove(k))
                });
                if let (Some(pid), Some(p)) = (pid, self.w.peers.get_mut(i)) {
                    let code = if fail && p.version().is_v5() {
                        PubAckReasonCode::ImplementationSpecificError
                    } else {
                        PubAckReasonCode::Success
                    };
                    let r = p.client.ack(now, pid, code);
                    self.tag(if r.is_ok() { "ack" } else { "err" });
                }
                self.w.run();
            }
            Op::Disconnect(n, code, expiry) => {
                let i = self.peer(n);
                let code = pick(DisconnectReasonCode::ALL, code)
                    .unwrap_or(DisconnectReasonCode::NormalDisconnection);
                let mut props = DisconnectProperties::default();
                props.session_expiry_interval = expiry.and_then(|e| pick(EXPIRIES, e));
                if let Some(p) = self.w.peers.get_mut(i) {
                    match p.client.disconnect(now, code, props) {
                        Ok(()) => self.tag("disconnect"),
                        Err(e) => self.tag(err_tag(&e)),
                    }
                }
                self.w.run();
            }
            Op::Drop(n) => {
                let i = self.open_peer(n);
                if self.w.is_open(i) {
                    self.tag("drop");
                }
                self.w.drop_conn(i);
            }
            Op::Hold(n, out, on) => {
                let i = usize::from(n) % self.setups.len().max(1);
                if let Some(p) = self.w.peers.get_mut(i) {
                    if out {
                        p.hold_out = on;
                    } else {
                        p.hold_in = on;
                    }
                }
                self.w.run();
            }
            Op::Inject(n, kind) => {
                let i = self.open_peer(n);
                let bytes = bytes_of(u, kind)?;
                if self.w.is_open(i) {
                    self.tainted.insert(self.conn_key(i));
                    self.tag("inject");
                }
                self.w.inject(i, &bytes);
            }
            Op::OpenRaw => match self.w.open_raw() {
                Ok(_) => self.tag("raw:open"),
                Err(e) => self.tag(format!("raw:{e:?}")),
            },
            Op::Raw(k, kind) => {
                let bytes = bytes_of(u, kind)?;
                if let Some(id) = pick(&self.w.raw, k) {
                    self.tag("raw:bytes");
                    self.w.send_raw(id, &bytes);
                }
            }
            Op::CloseRaw(k) => {
                if let Some(id) = pick(&self.w.raw, k) {
                    self.tag("raw:close");
                    self.w.close_raw(id);
                }
            }
            Op::Answer(k, answer) => self.answer(k, answer),
            Op::AdminClose(n, code) => {
                let i = self.open_peer(n);
                let code = pick(DisconnectReasonCode::ALL, code)
                    .unwrap_or(DisconnectReasonCode::AdministrativeAction);
                if let Some(id) = self.w.peers.get(i).and_then(|p| p.conn) {
                    let r = self.w.broker.disconnect(id, now, code);
                    assert!(r.is_ok(), "Broker::disconnect of open {id}: {r:?}");
                    self.tag("admin-close");
                }
                self.w.run();
            }
            Op::AppPublish(spec) => {
                let m = self.message(u, spec)?;
                // The application is trusted (no ACL), but the invariant
                // says nobody publishes to `locked`.
                let locked = m.topic.as_ref().is_some_and(|t| locked_topic(t.as_str()));
                if !locked && self.w.broker.publish(now, m).is_ok() {
                    self.tag("app-publish");
                }
                self.w.run();
            }
            Op::Time(step) => match step {
                Step::Millis(n) => self.w.advance(Duration::from_millis(u64::from(n))),
                Step::Secs(n) => self.w.advance(Duration::from_secs(u64::from(n % 64))),
                Step::ToDeadline => {
                    if let Some(t) = self.w.broker.poll_timeout() {
                        let d = t.saturating_duration_since(now);
                        if d <= Duration::from_secs(86_400) {
                            self.w.advance(d);
                            self.tag("deadline");
                        }
                    }
                }
                Step::Jump(n) => {
                    self.w.jump(Duration::from_secs(u64::from(n)));
                    self.tag("jump");
                }
            },
            Op::Timeout => {
                self.w.broker.handle_timeout(now);
                if let Some(t) = self.w.broker.poll_timeout() {
                    assert!(t > now, "poll_timeout not past now after handle_timeout");
                }
                self.w.run();
            }
        }
        Ok(())
    }

    fn message(&self, u: &mut Unstructured<'_>, spec: PublishSpec) -> Result<Publish> {
        let mut m =
            Publish::new(topic_of(u, spec.topic)?, payload(spec.payload)).with_retain(spec.retain);
        if let Some(pid) = PacketId::new(1) {
            m = m.with_delivery(Delivery::new(spec.qos, pid));
        }
        if spec.properties {
            m.properties = gen::publish_properties(u)?;
            m.properties.topic_alias = None;
            m.properties
                .set_subscription_identifiers(Default::default());
        }
        m.properties.message_expiry_interval = spec.expiry.map(|e| u32::from(e % 8));
        Ok(m)
    }

    fn connect(&mut self, i: usize, spec: ConnectSpec) -> Result<()> {
        let Some(setup) = self.setups.get(i).copied() else {
            return Ok(());
        };
        if self.w.is_open(i) {
            self.tag("connect:open");
            return Ok(());
        }
        let v = setup.version;
        let id = pick(CLIENT_IDS, spec.client_id).unwrap_or("u0");
        let mut c = Connect::new(v, mqtt_string(id));
        c.clean_start = spec.clean_start;
        c.keep_alive = pick(KEEP_ALIVES, spec.keep_alive).unwrap_or(0);
        if v.is_v5() {
            c.properties.session_expiry_interval = spec.expiry.and_then(|e| pick(EXPIRIES, e));
        }
        if let Some(ws) = spec.will {
            let topic = TOPICS
                .get(usize::from(ws.topic) % TOPICS.len())
                .and_then(|t| TopicName::try_from(*t).ok());
            if let Some(topic) = topic {
                let mut will = LastWill::new(topic, Bytes::from_static(b"will"));
                will.qos = ws.qos;
                will.retain = ws.retain;
                if v.is_v5() {
                    will.properties.will_delay_interval =
                        ws.delay.and_then(|d| pick(WILL_DELAYS, d));
                    will.properties.message_expiry_interval = ws.expiry.map(|e| u32::from(e % 8));
                }
                c.will = Some(will);
            }
        }
        let password: Option<&'static [u8]> = match spec.credentials.unwrap_or(Credentials::None) {
            Credentials::None => None,
            Credentials::Allow => Some(b"a"),
            Credentials::Deny(n) => Some(match n % 4 {
                0 => b"d\x00",
                1 => b"d\x05",
                2 => b"d\x0a",
                _ => b"d",
            }),
            Credentials::Defer => Some(b"w"),
        };
        if let Some(pw) = password {
            c.username = Some(mqtt_string("user"));
            c.password = Some(Bytes::from_static(pw));
        }
        // The client keeps its session state only when it resumes its own
        // session: state kept under another identifier, or a session last
        // held by another client, would make the two ends disagree about
        // what is in flight (a harness artifact, not a broker fault).
        let own = self
            .last_id
            .get(i)
            .is_some_and(|l| l.as_deref() == Some(id))
            && self.owner.get(id) == Some(&i);
        let config = client_config(&setup, c);
        if own {
            if self.w.reconfigure(i, config).is_err() {
                return Ok(());
            }
        } else if let Some(p) = self.w.peers.get_mut(i) {
            p.client = mqtt_session::client::Client::new(config);
        }
        if let Some(l) = self.last_id.get_mut(i) {
            *l = Some(id.to_owned());
        }
        if !id.is_empty() {
            self.owner.insert(id.to_owned(), i);
        }
        let key = (i, self.w.peers.get(i).map_or(0, |p| p.connections) + 1);
        match self.w.try_connect(i) {
            Ok(ack) => {
                self.restricted.insert(key, restricted(id));
                self.tag(match ack {
                    Some(a) if a.reason_code == ConnectReasonCode::Success => {
                        if a.session_present {
                            "connect:resumed"
                        } else {
                            "connect:ok"
                        }
                    }
                    Some(_) => "connect:refused",
                    None => "connect:waiting",
                });
            }
            Err(e) => self.tag(format!("connect:{e:?}")),
        }
        Ok(())
    }

    fn answer(&mut self, k: u8, answer: Answer) {
        let now = self.w.now;
        let decision = match answer {
            Answer::Allow => AuthDecision::Allow,
            Answer::Deny(n) => AuthDecision::Deny(deny_code(n)),
            Answer::Defer => AuthDecision::Defer,
        };
        let k = usize::from(k);
        let waiting = (k < 224).then(|| pick(&self.pending, k as u8)).flatten();
        if let Some(id) = waiting {
            let r = self.w.broker.authenticated(id, now, decision);
            assert!(
                r.is_ok(),
                "Broker::authenticated for {id}, deferred and open: {r:?}"
            );
            if decision != AuthDecision::Defer {
                self.pending.retain(|p| *p != id);
            }
            self.tag("auth:answered");
        } else {
            // A connected client's connection: nothing pending.
            let connected = self
                .w
                .peers
                .iter()
                .filter(|p| p.client.is_connected())
                .filter_map(|p| p.conn)
                .nth(k % 8);
            if let Some(id) = connected {
                let r = self.w.broker.authenticated(id, now, decision);
                assert_eq!(
                    r,
                    Err(crate::Error::NoPendingAuthentication),
                    "Broker::authenticated for connected {id}"
                );
                self.tag("auth:refused");
            }
        }
        self.w.run();
    }

    /// Checks every invariant; records what happened in `tags`.
    fn check(&mut self) {
        let w = &self.w;
        let stats = w.stats();
        assert_eq!(
            stats.connections,
            w.open_transports(),
            "Stats::connections against the transports open"
        );
        assert_eq!(stats.bytes_in, w.fed, "Stats::bytes_in against bytes fed");
        assert_eq!(
            stats.bytes_out, w.taken,
            "Stats::bytes_out against bytes taken"
        );
        let f: Footprint = w.broker.footprint();
        f.assert_within(&self.config);
        assert_eq!(
            f.subscriptions, stats.subscriptions,
            "subscriptions held by sessions against the routing tree"
        );

        // Broker events: deferred authentications, closes.
        let mut tags = Vec::new();
        for ev in w.events.iter().skip(self.events_seen) {
            match ev {
                Event::Authenticate { id, .. } => {
                    if !self.pending.contains(id) {
                        self.pending.push(*id);
                    }
                    tags.push("auth:deferred".to_owned());
                }
                Event::Close(id) => {
                    self.pending.retain(|p| p != id);
                    tags.push("close".to_owned());
                }
                Event::Disconnected { id, reason, .. } => {
                    self.pending.retain(|p| p != id);
                    tags.push(format!("disconnected:{}", reason_tag(reason)));
                }
                Event::Connected {
                    session_present, ..
                } => tags.push(format!("connected:{session_present}")),
                _ => {}
            }
        }
        self.events_seen = w.events.len();
        // Deferred authentications of transports the harness closed.
        let open: BTreeSet<ConnectionId> = w
            .peers
            .iter()
            .filter_map(|p| p.conn)
            .chain(w.raw.iter().copied())
            .collect();
        self.pending.retain(|p| open.contains(p));

        for (i, p) in w.peers.iter().enumerate() {
            let Some(seen) = self.seen.get_mut(i) else {
                continue;
            };
            for (n, pk) in p.wire_in.iter().skip(seen.0) {
                let limited = self.restricted.get(&(i, *n)).copied().unwrap_or(false);
                match pk {
                    Packet::Publish(m) => {
                        if let Some(t) = &m.topic {
                            acl_check(i, limited, t.as_str());
                        }
                    }
                    Packet::SubAck(a) => {
                        if let Some(filters) = self.subscribed.get(&(i, *n, a.packet_id.get())) {
                            for (f, code) in filters.iter().zip(&a.reason_codes) {
                                if limited && reaches_secret(f) {
                                    assert!(
                                        code.is_error(),
                                        "client {i} (restricted) granted {f:?}: {code:?}"
                                    );
                                    tags.push("acl:suback-refused".to_owned());
                                }
                            }
                        }
                    }
                    Packet::Disconnect(d) => {
                        tags.push(format!("broker-disconnect:{:?}", d.reason_code));
                    }
                    Packet::PubAck(a) if a.reason_code == PubAckReasonCode::NotAuthorized => {
                        tags.push("acl:publish-refused".to_owned());
                    }
                    _ => {}
                }
            }
            seen.0 = p.wire_in.len();
            let key = (i, p.connections);
            let limited = self.restricted.get(&key).copied().unwrap_or(false);
            for m in p.received.iter().skip(seen.1) {
                if let Some(t) = &m.topic {
                    acl_check(i, limited, t.as_str());
                }
                tags.push("delivered".to_owned());
                if m.retain {
                    tags.push("delivered:retained".to_owned());
                }
            }
            seen.1 = p.received.len();
            let manual = self.setups.get(i).is_some_and(|s| s.manual_ack);
            for ev in p.events.iter().skip(seen.2) {
                match ev {
                    ClientEvent::Publish(m) if manual => {
                        if let (Some(pid), Some(l)) = (m.packet_id(), self.unacked.get_mut(i)) {
                            l.push(pid);
                        }
                    }
                    ClientEvent::Disconnected(reason) => {
                        let tainted = self.tainted.contains(&key);
                        match reason {
                            CloseReason::ProtocolViolation { reason: why, .. } => assert!(
                                tainted,
                                "client {i} closed: the broker broke the protocol: {why}"
                            ),
                            CloseReason::Malformed(e) => assert!(
                                tainted,
                                "client {i} closed: the broker sent a malformed packet: {e:?}"
                            ),
                            _ => {}
                        }
                        if let Some(l) = self.unacked.get_mut(i) {
                            l.clear();
                        }
                        tags.push(format!("client-closed:{}", reason_tag(reason)));
                    }
                    ClientEvent::SessionLost { .. } => tags.push("session-lost".to_owned()),
                    _ => {}
                }
            }
            seen.2 = p.events.len();
        }
        let last = self.last;
        for (name, before, after) in [
            ("dropped", last.messages_dropped, stats.messages_dropped),
            ("expired", last.messages_expired, stats.messages_expired),
            ("will", last.wills_published, stats.wills_published),
            (
                "retained-refused",
                last.retained_refused,
                stats.retained_refused,
            ),
            ("out", last.messages_out, stats.messages_out),
        ] {
            if after > before {
                tags.push(format!("stats:{name}"));
            }
        }
        if stats.retained_messages > 0 {
            tags.push("retained".to_owned());
        }
        if stats.sessions > stats.connections {
            tags.push("offline-session".to_owned());
        }
        self.last = stats;
        self.tags.extend(tags);
    }
}

fn err_tag(e: &mqtt_session::Error) -> String {
    let s = format!("{e:?}");
    let name = s.split(['(', ' ', '{']).next().unwrap_or_default();
    format!("err:{name}")
}

fn acl_check(i: usize, limited: bool, topic: &str) {
    assert!(
        !locked_topic(topic),
        "client {i} received a PUBLISH on {topic:?}, which nobody may publish to"
    );
    assert!(
        !(limited && (secret_topic(topic) || hidden_topic(topic))),
        "client {i} (restricted) received a PUBLISH on {topic:?}"
    );
}

fn reason_tag(r: &CloseReason) -> String {
    match r {
        CloseReason::ProtocolViolation { code, .. } => format!("violation:{code:?}"),
        CloseReason::Malformed(_) => "malformed".to_owned(),
        CloseReason::PeerDisconnected(d) => format!("peer:{:?}", d.reason_code),
        CloseReason::KeepAliveTimeout => "keepalive".to_owned(),
        CloseReason::ConnectTimeout => "connect-timeout".to_owned(),
        CloseReason::TransportClosed => "transport".to_owned(),
        CloseReason::LocalDisconnect(c) => format!("local:{c:?}"),
        CloseReason::Refused(c) => format!("refused:{:?}", c.reason_code),
        CloseReason::AuthenticationFailed => "auth-failed".to_owned(),
        _ => "other".to_owned(),
    }
}

fn mqtt_string(s: &str) -> MqttString {
    MqttString::try_from(s).unwrap_or_default()
}

fn client_config(p: &PeerSetup, mut connect: Connect) -> ClientConfig {
    if p.version.is_v5() {
        let props = &mut connect.properties;
        props.receive_maximum = p
            .receive_maximum
            .and_then(|n| NonZeroU16::new(u16::from(n % 3) + 1));
        props.maximum_packet_size = p
            .maximum_packet_size
            .and_then(|n| NonZeroU32::new(16 * (u32::from(n % 8) + 2)));
        props.topic_alias_maximum = p.topic_alias_maximum.map(|n| u16::from(n % 4));
    }
    let mode = if p.manual_ack {
        AckMode::Manual
    } else {
        AckMode::Auto
    };
    ClientConfig::new(connect).with_ack_mode(mode)
}
