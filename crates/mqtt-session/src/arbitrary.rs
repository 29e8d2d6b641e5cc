//! Operation sequences for the fuzz targets `session_client` and
//! `session_server` and their corpus replay (feature `arbitrary`; hidden,
//! not a stable API).
//!
//! [`check_client`] and [`check_server`] read a setup (protocol version,
//! limits, acknowledgement mode, authentication) and then a sequence of
//! [`ClientOp`] / [`ServerOp`] from the input and run them against one
//! session with a fake clock. The operations cover every input (bytes: valid
//! packets built for the session's state, the same split into pieces or with
//! one byte changed, raw bytes; time steps; `handle_timeout`;
//! `handle_closed`) and every command, with right and wrong arguments.
//! Acknowledgements name the packet identifiers the session really has in
//! flight most of the time, so the fuzzer gets deep into the QoS flows.
//!
//! After every input or command the outputs are drained (all of
//! `poll_transmit`, all of `poll_event`) and these invariants are checked:
//!
//! - nothing panics;
//! - a command that returns `Err` queued no bytes, no event, and changed
//!   nothing observable (state, in-flight count, deadline, session tables);
//! - everything transmitted decodes with `mqtt_wire::decode` for the
//!   connection's version, as whole packets;
//! - client: the first packet of a connection is its only CONNECT
//!   (MQTT-3.1.0-1/2); before CONNACK only CONNECT, AUTH and DISCONNECT;
//!   nothing after DISCONNECT (MQTT-3.14.4-1); never a packet only a server
//!   sends; after CONNACK every packet respects what it announced: Maximum
//!   Packet Size (MQTT-3.2.2-15), Maximum QoS (MQTT-3.2.2-11), Retain
//!   Available (MQTT-3.2.2-14), Topic Alias Maximum (MQTT-3.3.2-9), no
//!   Subscription Identifier in PUBLISH (MQTT-3.3.4-6), and no wildcard,
//!   shared or identified subscription the server said it lacks;
//! - server: nothing but CONNACK or AUTH before the CONNACK (MQTT-3.2.0-1),
//!   at most one CONNACK (MQTT-3.2.0-2), Session Present 0 with Clean Start
//!   1 or a refusal (MQTT-3.2.2-2, -4/-6), nothing after a refusing CONNACK
//!   or a DISCONNECT, DISCONNECT only in 5.0 after a successful CONNACK
//!   (MQTT-3.14.0-1), never a packet only a client sends, every packet
//!   within the client's Maximum Packet Size (MQTT-3.1.2-24) and Topic
//!   Alias Maximum (MQTT-3.1.2-26), no Reason String or User Property on
//!   acknowledgements when the client asked for no problem information
//!   (MQTT-3.1.2-29), one SUBACK code per filter (MQTT-3.9.3-1);
//! - a DISCONNECT (5.0) sent as the connection closes carries the code of
//!   the close reason (a violation's code, a malformed packet's code, 0x87
//!   for a failed authentication, 0x8D for keep alive, the command's code),
//!   and none is sent when the peer disconnected or the transport closed;
//! - `in_flight()` never exceeds the peer's Receive Maximum (client:
//!   `server_limits().receive_maximum` and the CONNACK's; server: the
//!   CONNECT's);
//! - after `handle_timeout(now)`, `poll_timeout()` is `None` or later than
//!   `now` (the latest time given);
//! - once closed and drained, no byte comes out until the next `connect`
//!   (client) or ever (server), `poll_timeout()` is `None`, and the close
//!   was reported by exactly one event;
//! - the server's heap stays within a bound set by its limits and the
//!   input given;
//! - `Client::session_state` imported with `Client::with_session` gives
//!   the same state back; `ServerConnection::take_session` gives the
//!   session once, and only after the close.
//!
//! The checks panic when an invariant is broken: that is how a fuzzer or a
//! test learns of it. Only assertion macros are used for that; nothing
//! here indexes or unwraps.

use std::collections::{BTreeMap, BTreeSet};
use std::num::{NonZeroU16, NonZeroU32};
use std::time::{Duration, Instant};

use ::arbitrary::{Arbitrary, Error as ArbError, Result, Unstructured};
use bytes::{Bytes, BytesMut};
use mqtt_wire::arbitrary as gen;
use mqtt_wire::{
    Auth, AuthReasonCode, ConnAck, Connect, ConnectReasonCode, DecodeConfig, Delivery, Disconnect,
    DisconnectProperties, DisconnectReasonCode, Encode, LastWill, MaximumQoS, MqttString, Packet,
    PacketId, PacketType, ProtocolVersion, PubAck, PubAckReasonCode, PubComp, PubRec, PubRel,
    PubRelReasonCode, Publish, QoS, SubAck, SubAckReasonCode, Subscribe, SubscribeProperties,
    Subscription, SubscriptionOptions, TopicFilter, TopicName, UnsubAck, UnsubAckReasonCode,
    Unsubscribe, UnsubscribeProperties, MAX_PACKET_SIZE,
};

use crate::client::{
    AuthFailed, Authenticator, Client, ClientConfig, Event as ClientEvent, ServerLimits,
};
use crate::server::{Accept, Event as ServerEvent, ServerConfig, ServerConnection};
use crate::{AckMode, CloseReason, Error, SessionState};

/// Operations run for one input at most.
const MAX_OPS: usize = 400;

/// With this environment variable set, every operation and what it did is
/// printed to stderr (to read a crash).
pub const DEBUG_VAR: &str = "MQTT_SESSION_FUZZ_DEBUG";

/// The method of the fuzzing authenticator.
pub const AUTH_METHOD: &str = "fuzz-auth";

const TOPICS: &[&str] = &["a", "a/b", "c/d/e", "$SYS/x", "t/1", "/"];
const FILTERS: &[&str] = &[
    "a/#",
    "+/b",
    "a",
    "#",
    "$share/g/a/b",
    "c/+/e",
    "$SYS/#",
    "a/b",
];

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

/// How far the fake clock moves.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// This many milliseconds.
    Millis(u8),
    /// This many seconds.
    Secs(u8),
    /// This many seconds (up to 18 hours).
    Long(u16),
    /// To the session's `poll_timeout`, if any.
    ToDeadline,
    /// To 1 ms before the session's `poll_timeout`.
    JustBeforeDeadline,
}

/// Which packet identifier an acknowledgement or a command names.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// One in use (by index, wrapping), when there is one.
    Known(u8),
    /// Any identifier, mostly a small one.
    Any,
}

/// A message to publish (command) or to receive.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishSpec {
    /// QoS.
    pub qos: QoS,
    /// RETAIN.
    pub retain: bool,
    /// Index in a small pool of topics; past its end, a generated topic.
    pub topic: u8,
    /// Whether to add generated 5.0 properties (possibly a Topic Alias or a
    /// Subscription Identifier, which a command must refuse).
    pub properties: bool,
    /// Payload length.
    pub payload: u8,
}

/// Topic alias use in a received PUBLISH (5.0).
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AliasUse {
    /// No alias.
    None,
    /// Topic and alias `n % 6 + 1` (defines it).
    Define(u8),
    /// Alias `n % 6 + 1` alone (uses it).
    Use(u8),
}

/// An AUTH packet from the peer.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// 0x18 with the right method.
    Continue,
    /// 0x19 with the right method.
    ReAuthenticate,
    /// 0x00 with the right method.
    Success,
    /// A generated AUTH (any method, any code).
    Generated,
}

/// A CONNACK for the client.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnAckKind {
    /// 0x00, plain.
    Success,
    /// 0x00 with small limits (5.0).
    Limits,
    /// A refusal.
    Refused,
    /// A generated CONNACK.
    Generated,
}

/// A CONNECT for the server.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectKind {
    /// MQTT 3.1.
    V3_1,
    /// MQTT 3.1.1.
    V3_1_1,
    /// MQTT 5.0.
    V5,
    /// MQTT 5.0 with enhanced authentication.
    V5Auth,
    /// A generated CONNECT of any version.
    Generated,
}

/// A packet from the server, built for the client's state.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FromServer {
    /// CONNACK.
    ConnAck(ConnAckKind),
    /// PUBLISH.
    Publish(PublishSpec, AliasUse),
    /// PUBACK; `true`: a failure code (5.0).
    PubAck(Pick, bool),
    /// PUBREC; `true`: a failure code (5.0).
    PubRec(Pick, bool),
    /// PUBREL.
    PubRel(Pick),
    /// PUBCOMP.
    PubComp(Pick),
    /// SUBACK; `true`: one code per filter.
    SubAck(Pick, bool),
    /// UNSUBACK; `true`: one code per filter.
    UnsubAck(Pick, bool),
    /// PINGRESP.
    PingResp,
    /// DISCONNECT.
    Disconnect,
    /// AUTH.
    Auth(AuthKind),
    /// Any valid packet of the version.
    Any,
}

/// A packet from the client, built for the server's state.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FromClient {
    /// CONNECT.
    Connect(ConnectKind),
    /// PUBLISH.
    Publish(PublishSpec, AliasUse),
    /// PUBACK; `true`: a failure code (5.0).
    PubAck(Pick, bool),
    /// PUBREC; `true`: a failure code (5.0).
    PubRec(Pick, bool),
    /// PUBREL.
    PubRel(Pick),
    /// PUBCOMP.
    PubComp(Pick),
    /// SUBSCRIBE of `n % 4 + 1` filters.
    Subscribe(u8),
    /// UNSUBSCRIBE of `n % 4 + 1` filters.
    Unsubscribe(u8),
    /// PINGREQ.
    PingReq,
    /// DISCONNECT; `true`: normal, no properties.
    Disconnect(bool),
    /// AUTH.
    Auth(AuthKind),
    /// Any valid packet of the version.
    Any,
}

/// One operation on a [`Client`].
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientOp {
    /// `connect` (a new transport).
    Connect,
    /// `handle_read` of one packet from the server.
    Receive(FromServer),
    /// `handle_read` of `n % 4 + 1` packets in one read.
    ReceiveMany(u8),
    /// One packet fed in up to `n % 4 + 2` reads.
    ReceiveSplit(FromServer, u8),
    /// One packet with the byte at `pos` (modulo its length) xored with
    /// `xor` (0: cut there).
    ReceiveMutated(FromServer, u16, u8),
    /// `handle_read` of up to `n` raw bytes.
    ReceiveRaw(u8),
    /// The clock moves.
    Advance(Step),
    /// `handle_timeout` now.
    Timeout,
    /// The clock moves, then `handle_timeout`.
    Tick(Step),
    /// `handle_closed`.
    Closed,
    /// `true`: calls give a `now` 3 s behind the clock from here on.
    StaleClock(bool),
    /// `publish`.
    Publish(PublishSpec),
    /// `subscribe` to `n % 5` filters (0: none, refused); `true`: with a
    /// Subscription Identifier.
    Subscribe(u8, bool),
    /// `unsubscribe` from `n % 5` filters.
    Unsubscribe(u8),
    /// `ack` (manual mode); `true`: a failure code.
    Ack(Pick, bool),
    /// `disconnect`; `true`: normal, no properties.
    Disconnect(bool),
    /// `reauthenticate`.
    Reauthenticate,
    /// `session_state`, then a new client `with_session` of it.
    ExportImport,
}

/// One operation on a [`ServerConnection`].
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerOp {
    /// `handle_read` of one packet from the client.
    Receive(FromClient),
    /// `handle_read` of `n % 4 + 1` packets in one read.
    ReceiveMany(u8),
    /// One packet fed in up to `n % 4 + 2` reads.
    ReceiveSplit(FromClient, u8),
    /// One packet with the byte at `pos` (modulo its length) xored with
    /// `xor` (0: cut there).
    ReceiveMutated(FromClient, u16, u8),
    /// `handle_read` of up to `n` raw bytes.
    ReceiveRaw(u8),
    /// The clock moves.
    Advance(Step),
    /// `handle_timeout` now.
    Timeout,
    /// The clock moves, then `handle_timeout`.
    Tick(Step),
    /// `handle_closed`.
    Closed,
    /// `true`: calls give a `now` 3 s behind the clock from here on.
    StaleClock(bool),
    /// `accept`.
    Accept {
        /// Session Present.
        session_present: bool,
        /// Resume the session taken from the previous connection.
        resume: bool,
        /// Assign a client identifier.
        assign_id: bool,
        /// Add generated CONNACK properties.
        properties: bool,
    },
    /// `reject`; `true`: with generated properties.
    Reject(bool),
    /// `auth_continue`.
    AuthContinue,
    /// `auth_success`.
    AuthSuccess,
    /// `suback`; `true`: one code per filter.
    SubAck(Pick, bool),
    /// `unsuback`; `true`: one code per filter.
    UnsubAck(Pick, bool),
    /// `publish`.
    Publish(PublishSpec),
    /// `ack` (manual mode); `true`: a failure code.
    Ack(Pick, bool),
    /// `disconnect`; `true`: normal, no properties.
    Disconnect(bool),
    /// `take_session`; when closed, a new connection for the same client.
    TakeSession,
}

/// The client's settings, read first from the input.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct ClientSetup {
    /// Protocol version.
    pub version: ProtocolVersion,
    /// Clean Start.
    pub clean_start: bool,
    /// Keep Alive, seconds.
    pub keep_alive: u8,
    /// An empty client identifier.
    pub empty_client_id: bool,
    /// Receive Maximum `n % 4 + 1` (5.0).
    pub receive_maximum: Option<u8>,
    /// Topic Alias Maximum `n % 4` (5.0).
    pub topic_alias_maximum: Option<u8>,
    /// Maximum Packet Size `64 * (n + 1)` (5.0).
    pub maximum_packet_size: Option<u8>,
    /// Manual acknowledgements.
    pub manual_ack: bool,
    /// Enhanced authentication (5.0): fail the challenge after this many
    /// steps (`None`: never), and whether the final check passes.
    pub auth: Option<(Option<u8>, bool)>,
    /// Connect timeout, seconds.
    pub connect_timeout: u8,
    /// Ping timeout, seconds (at least 1).
    pub ping_timeout: Option<u8>,
    /// Assign outbound topic aliases.
    pub topic_aliases: bool,
    /// A will message.
    pub will: bool,
}

/// The server's settings, read first from the input.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct ServerSetup {
    /// Receive Maximum `n % 4 + 1` (default 1,024).
    pub receive_maximum: Option<u8>,
    /// Maximum Packet Size `16 * (n + 1)` (default 1 MiB).
    pub max_packet_size: Option<u8>,
    /// Topic Alias Maximum `n % 5` (default 16).
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
    /// Server Keep Alive.
    pub server_keep_alive: Option<u8>,
    /// Outbound topic aliases.
    pub outbound_topic_aliases: bool,
    /// Manual acknowledgements.
    pub manual_ack: bool,
    /// Connect timeout, seconds.
    pub connect_timeout: u8,
}

/// What [`run_client`] / [`run_server`] did, for building and checking
/// seeds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// One entry per operation run.
    pub ops: Vec<OpTrace>,
}

/// One operation of a [`Trace`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpTrace {
    /// The operation (`Debug`).
    pub op: String,
    /// Input bytes consumed up to the end of this operation.
    pub end: usize,
    /// What happened: `ok` / `err:..` for commands, `fed:Type` for packets
    /// given, `sent:Type` for packets transmitted, `ev:Kind` for events.
    pub tags: Vec<String>,
}

impl Trace {
    /// Whether any operation has `tag`.
    pub fn has(&self, tag: &str) -> bool {
        self.ops.iter().any(|o| o.tags.iter().any(|t| t == tag))
    }
}

/// Fuzz entry `session_client`: a client setup and operation sequence from
/// `data`, every invariant checked after every step.
pub fn check_client(data: &[u8]) {
    run_client(data, None);
}

/// Fuzz entry `session_server`: a server setup and operation sequence from
/// `data`, every invariant checked after every step.
pub fn check_server(data: &[u8]) {
    run_server(data, None);
}

/// [`check_client`], recording what happened in `trace`.
pub fn run_client(data: &[u8], mut trace: Option<&mut Trace>) {
    let mut u = Unstructured::new(data);
    let Ok(setup) = ClientSetup::arbitrary(&mut u) else {
        return;
    };
    let debug = std::env::var_os(DEBUG_VAR).is_some();
    if debug {
        eprintln!("{setup:?}");
    }
    let mut run = ClientRun::new(setup, trace.is_some() || debug);
    for _ in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        let Ok(op) = ClientOp::arbitrary(&mut u) else {
            break;
        };
        if debug {
            eprintln!("{op:?}");
        }
        let r = run.op(op, &mut u);
        if debug {
            eprintln!("    {:?}", run.tags);
        }
        if let Some(t) = trace.as_deref_mut() {
            t.ops.push(OpTrace {
                op: format!("{op:?}"),
                end: data.len() - u.len(),
                tags: std::mem::take(&mut run.tags),
            });
        }
        run.tags.clear();
        if r.is_err() {
            break;
        }
    }
}

/// [`check_server`], recording what happened in `trace`.
pub fn run_server(data: &[u8], mut trace: Option<&mut Trace>) {
    let mut u = Unstructured::new(data);
    let Ok(setup) = ServerSetup::arbitrary(&mut u) else {
        return;
    };
    let debug = std::env::var_os(DEBUG_VAR).is_some();
    if debug {
        eprintln!("{setup:?}");
    }
    let mut run = ServerRun::new(setup, trace.is_some() || debug);
    for _ in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        let Ok(op) = ServerOp::arbitrary(&mut u) else {
            break;
        };
        if debug {
            eprintln!("{op:?}");
        }
        let r = run.op(op, &mut u);
        if debug {
            eprintln!("    {:?}", run.tags);
        }
        if let Some(t) = trace.as_deref_mut() {
            t.ops.push(OpTrace {
                op: format!("{op:?}"),
                end: data.len() - u.len(),
                tags: std::mem::take(&mut run.tags),
            });
        }
        run.tags.clear();
        if r.is_err() {
            break;
        }
    }
}

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/// True with probability `num / den` (false once `u` is exhausted).
fn chance(u: &mut Unstructured<'_>, num: u16, den: u16) -> Result<bool> {
    Ok(u.int_in_range(1..=den)? > den - num)
}

fn topic(u: &mut Unstructured<'_>, i: u8) -> Result<TopicName> {
    match TOPICS.get(usize::from(i) % (TOPICS.len() + 2)) {
        Some(t) => TopicName::try_from(*t).map_err(|_| ArbError::IncorrectFormat),
        None => gen::topic_name(u),
    }
}

fn filter(u: &mut Unstructured<'_>) -> Result<TopicFilter> {
    let i = usize::from(u8::arbitrary(u)?);
    match FILTERS.get(i % (FILTERS.len() + 2)) {
        Some(f) => TopicFilter::try_from(*f).map_err(|_| ArbError::IncorrectFormat),
        None => gen::topic_filter(u),
    }
}

fn payload(n: u8) -> Bytes {
    Bytes::from((0..n).collect::<Vec<u8>>())
}

/// A packet identifier, mostly 1 to 6 (so they collide), sometimes any.
fn small_id(u: &mut Unstructured<'_>) -> Result<PacketId> {
    if chance(u, 1, 8)? {
        gen::packet_id(u)
    } else {
        let n = u.int_in_range(1..=6)?;
        PacketId::new(n).ok_or(ArbError::IncorrectFormat)
    }
}

fn pick_id(u: &mut Unstructured<'_>, pick: Pick, known: &[u16]) -> Result<PacketId> {
    if let Pick::Known(i) = pick {
        if !known.is_empty() {
            if let Some(id) = known.get(usize::from(i) % known.len()) {
                if let Some(id) = PacketId::new(*id) {
                    return Ok(id);
                }
            }
        }
    }
    small_id(u)
}

fn pub_ack_code(u: &mut Unstructured<'_>, v5: bool, fail: bool) -> Result<PubAckReasonCode> {
    if v5 && fail {
        u.choose(PubAckReasonCode::ALL).copied()
    } else {
        Ok(PubAckReasonCode::Success)
    }
}

/// A PUBLISH as a peer sends it: `alias_max` is what the receiver allows.
fn incoming_publish(
    u: &mut Unstructured<'_>,
    spec: PublishSpec,
    alias: AliasUse,
    version: ProtocolVersion,
) -> Result<Publish> {
    let mut p = Publish::new(topic(u, spec.topic)?, payload(spec.payload)).with_retain(spec.retain);
    if spec.qos != QoS::AtMostOnce {
        p.delivery = Delivery::new(spec.qos, small_id(u)?);
        p.dup = chance(u, 1, 4)?;
    }
    if version.is_v5() {
        if spec.properties {
            p.properties = gen::publish_properties(u)?;
        }
        match alias {
            AliasUse::None => {}
            AliasUse::Define(n) => {
                p.properties.topic_alias = NonZeroU16::new(u16::from(n % 6) + 1);
            }
            AliasUse::Use(n) => {
                p.properties.topic_alias = NonZeroU16::new(u16::from(n % 6) + 1);
                p.topic = None;
            }
        }
    }
    Ok(p)
}

/// A message for a `publish` command.
fn outgoing_publish(
    u: &mut Unstructured<'_>,
    spec: PublishSpec,
    version: ProtocolVersion,
) -> Result<Publish> {
    let mut p = Publish::new(topic(u, spec.topic)?, payload(spec.payload)).with_retain(spec.retain);
    if spec.qos != QoS::AtMostOnce {
        // The session replaces the identifier.
        p.delivery = Delivery::new(spec.qos, small_id(u)?);
    }
    if spec.properties && (version.is_v5() || chance(u, 1, 4)?) {
        p.properties = gen::publish_properties(u)?;
    }
    Ok(p)
}

fn auth_packet(u: &mut Unstructured<'_>, kind: AuthKind, method: &MqttString) -> Result<Auth> {
    let code = match kind {
        AuthKind::Continue => AuthReasonCode::ContinueAuthentication,
        AuthKind::ReAuthenticate => AuthReasonCode::ReAuthenticate,
        AuthKind::Success => AuthReasonCode::Success,
        AuthKind::Generated => return gen::auth(u),
    };
    let mut a = Auth::new(code);
    a.properties.authentication_method = Some(method.clone());
    if chance(u, 1, 2)? {
        a.properties.authentication_data = Some(Bytes::from_static(b"challenge"));
    }
    Ok(a)
}

fn encode_packet(p: &Packet, version: ProtocolVersion) -> Option<Vec<u8>> {
    let mut b = BytesMut::new();
    p.encode(version, &mut b).ok()?;
    Some(b.to_vec())
}

/// Bytes split at up to `pieces - 1` points drawn from `u`.
fn split_points(u: &mut Unstructured<'_>, len: usize, pieces: u8) -> Result<Vec<usize>> {
    let mut cuts = Vec::new();
    for _ in 1..(pieces % 4 + 2) {
        if len > 1 {
            cuts.push(u.int_in_range(1..=len - 1)?);
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    Ok(cuts)
}

fn chunks(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut start = 0;
    for &c in cuts {
        out.push(bytes.get(start..c).unwrap_or_default().to_vec());
        start = c;
    }
    out.push(bytes.get(start..).unwrap_or_default().to_vec());
    out
}

fn mutate(mut bytes: Vec<u8>, pos: u16, xor: u8) -> Vec<u8> {
    if bytes.is_empty() {
        return bytes;
    }
    let i = usize::from(pos) % bytes.len();
    if xor == 0 {
        bytes.truncate(i);
    } else if let Some(b) = bytes.get_mut(i) {
        *b ^= xor;
    }
    bytes
}

fn raw(u: &mut Unstructured<'_>, n: u8) -> Vec<u8> {
    let n = usize::from(n).min(u.len());
    u.bytes(n).map(<[u8]>::to_vec).unwrap_or_default()
}

/// The fake clock: `now` only moves forward; calls may be given an older
/// time on purpose (the session must treat it as the latest one seen).
#[derive(Debug)]
struct Clock {
    now: Instant,
    stale: bool,
}

impl Clock {
    fn new() -> Self {
        Clock {
            now: Instant::now(),
            stale: false,
        }
    }

    fn call(&self) -> Instant {
        if self.stale {
            self.now
                .checked_sub(Duration::from_secs(3))
                .unwrap_or(self.now)
        } else {
            self.now
        }
    }

    fn advance(&mut self, step: Step, deadline: Option<Instant>) {
        let target = match step {
            Step::Millis(n) => self.now.checked_add(Duration::from_millis(n.into())),
            Step::Secs(n) => self.now.checked_add(Duration::from_secs(n.into())),
            Step::Long(n) => self.now.checked_add(Duration::from_secs(n.into())),
            Step::ToDeadline => deadline,
            Step::JustBeforeDeadline => {
                deadline.and_then(|d| d.checked_sub(Duration::from_millis(1)))
            }
        };
        if let Some(t) = target {
            if t > self.now {
                self.now = t;
            }
        }
    }
}

/// What the code of a DISCONNECT sent as the connection closes must be, or
/// `None` when none may be sent (5.0).
fn expected_disconnect(reason: &CloseReason, server: bool) -> Option<DisconnectReasonCode> {
    match reason {
        CloseReason::ProtocolViolation { code, .. } => Some(*code),
        CloseReason::Malformed(e) => Some(e.reason_code()),
        CloseReason::LocalDisconnect(code) => Some(*code),
        CloseReason::AuthenticationFailed => Some(DisconnectReasonCode::NotAuthorized),
        CloseReason::KeepAliveTimeout if server => Some(DisconnectReasonCode::KeepAliveTimeout),
        _ => None,
    }
}

fn check_close_code(
    reason: Option<&CloseReason>,
    sent: &[DisconnectReasonCode],
    v5: bool,
    server: bool,
) {
    let Some(reason) = reason else { return };
    let Some(last) = sent.last() else { return };
    if !v5 {
        return;
    }
    let expected = expected_disconnect(reason, server);
    assert!(
        expected == Some(*last),
        "closed with {reason:?} but sent DISCONNECT {last:?} (expected {expected:?})"
    );
}

fn decode_all(stream: &mut BytesMut, version: ProtocolVersion, who: &str) -> Vec<(Packet, usize)> {
    let cfg = DecodeConfig::new(version).with_max_packet_size(MAX_PACKET_SIZE);
    let mut out = Vec::new();
    loop {
        let before = stream.len();
        let r = mqtt_wire::decode(stream, &cfg);
        assert!(
            r.is_ok(),
            "the {who} sent bytes that do not decode ({version:?}): {r:?}"
        );
        match r {
            Ok(Some(p)) => out.push((p, before - stream.len())),
            _ => break,
        }
    }
    assert!(
        stream.is_empty(),
        "the {who} left a partial packet in its output: {:?}",
        &stream[..]
    );
    out
}

fn close_name(r: &CloseReason) -> &'static str {
    match r {
        CloseReason::ProtocolViolation { .. } => "ProtocolViolation",
        CloseReason::Malformed(_) => "Malformed",
        CloseReason::PeerDisconnected(_) => "PeerDisconnected",
        CloseReason::KeepAliveTimeout => "KeepAliveTimeout",
        CloseReason::ConnectTimeout => "ConnectTimeout",
        CloseReason::TransportClosed => "TransportClosed",
        CloseReason::LocalDisconnect(_) => "LocalDisconnect",
        CloseReason::Refused(_) => "Refused",
        CloseReason::AuthenticationFailed => "AuthenticationFailed",
    }
}

fn packet_name(p: &Packet) -> String {
    match p {
        Packet::Publish(p) => format!("Publish{}", p.qos() as u8),
        p => format!("{:?}", p.packet_type()),
    }
}

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

/// An authenticator driven by the setup.
#[derive(Debug)]
struct FuzzAuth {
    fail_after: Option<u8>,
    finish_ok: bool,
    steps: u8,
}

impl Authenticator for FuzzAuth {
    fn method(&self) -> MqttString {
        MqttString::from_static(AUTH_METHOD)
    }

    fn start(&mut self) -> Option<Bytes> {
        self.steps = 0;
        Some(Bytes::from_static(b"hello"))
    }

    fn challenge(
        &mut self,
        _data: Option<&Bytes>,
    ) -> core::result::Result<Option<Bytes>, AuthFailed> {
        self.steps = self.steps.saturating_add(1);
        if self.fail_after.is_some_and(|n| self.steps > n % 4) {
            return Err(AuthFailed);
        }
        Ok(Some(Bytes::from_static(b"response")))
    }

    fn finish(&mut self, _data: Option<&Bytes>) -> core::result::Result<(), AuthFailed> {
        if self.finish_ok {
            Ok(())
        } else {
            Err(AuthFailed)
        }
    }
}

impl ClientSetup {
    fn config(&self) -> ClientConfig {
        let v5 = self.version.is_v5();
        let id = if self.empty_client_id {
            MqttString::new()
        } else {
            MqttString::from_static("fuzz-client")
        };
        let mut c = Connect::new(self.version, id);
        c.clean_start = self.clean_start;
        c.keep_alive = self.keep_alive.into();
        if let (true, Ok(t)) = (self.will, TopicName::try_from("will/t")) {
            let mut w = LastWill::new(t, Bytes::from_static(b"bye"));
            w.qos = QoS::AtLeastOnce;
            c.will = Some(w);
        }
        if v5 {
            let p = &mut c.properties;
            p.receive_maximum = self
                .receive_maximum
                .and_then(|n| NonZeroU16::new(u16::from(n % 4) + 1));
            p.topic_alias_maximum = self.topic_alias_maximum.map(|n| u16::from(n % 4));
            p.maximum_packet_size = self
                .maximum_packet_size
                .and_then(|n| NonZeroU32::new(64 * (u32::from(n) + 1)));
        }
        let mut config = ClientConfig::new(c).with_ack_mode(if self.manual_ack {
            AckMode::Manual
        } else {
            AckMode::Auto
        });
        config.connect_timeout = Duration::from_secs(self.connect_timeout.into());
        config.ping_timeout = self
            .ping_timeout
            .map(|n| Duration::from_secs(u64::from(n).max(1)));
        config.topic_aliases = self.topic_aliases;
        if let Some((fail_after, finish_ok)) = self.auth {
            if v5 {
                config = config.with_authenticator(Box::new(FuzzAuth {
                    fail_after,
                    finish_ok,
                    steps: 0,
                }));
            }
        }
        config
    }
}

/// What the server granted, from the CONNACK the client accepted.
#[derive(Debug, Clone, Copy)]
struct Granted {
    receive_maximum: u16,
    max_packet: u32,
    topic_alias_max: u16,
    maximum_qos: QoS,
    retain: bool,
    wildcards: bool,
    shared: bool,
    subscription_ids: bool,
}

impl Granted {
    fn from_connack(c: &ConnAck) -> Self {
        let p = &c.properties;
        Granted {
            receive_maximum: p.receive_maximum.map_or(u16::MAX, NonZeroU16::get),
            max_packet: p
                .maximum_packet_size
                .map_or(MAX_PACKET_SIZE, NonZeroU32::get),
            topic_alias_max: p.topic_alias_maximum.unwrap_or(0),
            maximum_qos: match p.maximum_qos {
                Some(MaximumQoS::AtMostOnce) => QoS::AtMostOnce,
                Some(MaximumQoS::AtLeastOnce) => QoS::AtLeastOnce,
                None => QoS::ExactlyOnce,
            },
            retain: p.retain_available.unwrap_or(true),
            wildcards: p.wildcard_subscription_available.unwrap_or(true),
            shared: p.shared_subscription_available.unwrap_or(true),
            subscription_ids: p.subscription_identifiers_available.unwrap_or(true),
        }
    }
}

/// One transport of the client, as the server would see it.
#[derive(Debug, Default)]
struct ClientConn {
    stream: BytesMut,
    connect_sent: bool,
    granted: Option<Granted>,
    disconnect_sent: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct ClientSnap {
    session: SessionState,
    connected: bool,
    closed: bool,
    in_flight: usize,
    timeout: Option<Instant>,
    limits: ServerLimits,
}

#[derive(Debug, Clone, Copy)]
struct Ctx {
    /// Closed and drained before the step.
    quiet: bool,
    /// The step may produce output even so (a successful `connect`).
    may_speak: bool,
    /// The step was `handle_timeout`.
    timeout: bool,
    /// Connected before the step.
    connected: bool,
}

struct ClientRun {
    setup: ClientSetup,
    client: Client,
    clock: Clock,
    /// The latest `now` given to this client.
    latest: Option<Instant>,
    conn: ClientConn,
    quiet: bool,
    manual: Vec<PacketId>,
    rec_sent: BTreeSet<u16>,
    requests: BTreeMap<u16, (bool, usize)>,
    /// Packet ids `publish` returned whose outcome was not yet reported.
    issued: BTreeSet<u16>,
    tracing: bool,
    tags: Vec<String>,
}

impl ClientRun {
    fn new(setup: ClientSetup, tracing: bool) -> Self {
        let client = Client::new(setup.config());
        ClientRun {
            setup,
            client,
            clock: Clock::new(),
            latest: None,
            conn: ClientConn::default(),
            quiet: true,
            manual: Vec::new(),
            rec_sent: BTreeSet::new(),
            requests: BTreeMap::new(),
            issued: BTreeSet::new(),
            tracing,
            tags: Vec::new(),
        }
    }

    fn tag(&mut self, f: impl FnOnce() -> String) {
        if self.tracing {
            self.tags.push(f());
        }
    }

    fn version(&self) -> ProtocolVersion {
        self.setup.version
    }

    fn now(&mut self) -> Instant {
        let t = self.clock.call();
        if self.latest.is_none_or(|l| t > l) {
            self.latest = Some(t);
        }
        t
    }

    fn ctx(&self) -> Ctx {
        Ctx {
            quiet: self.quiet,
            may_speak: false,
            timeout: false,
            connected: self.client.is_connected(),
        }
    }

    fn snapshot(&self) -> ClientSnap {
        ClientSnap {
            session: self.client.session_state(),
            connected: self.client.is_connected(),
            closed: self.client.is_closed(),
            in_flight: self.client.in_flight(),
            timeout: self.client.poll_timeout(),
            limits: self.client.server_limits().clone(),
        }
    }

    fn op(&mut self, op: ClientOp, u: &mut Unstructured<'_>) -> Result<()> {
        let v = self.version();
        match op {
            ClientOp::Connect => {
                let ok = self.command("connect", true, |c, now| c.connect(now));
                let _ = ok;
            }
            ClientOp::Receive(kind) => {
                if let Some(b) = self.server_packet(u, kind)? {
                    self.read(&b);
                }
            }
            ClientOp::ReceiveMany(n) => {
                let mut all = Vec::new();
                for _ in 0..(n % 4 + 1) {
                    let kind = FromServer::arbitrary(u)?;
                    if let Some(b) = self.server_packet(u, kind)? {
                        all.extend_from_slice(&b);
                    }
                }
                self.read(&all);
            }
            ClientOp::ReceiveSplit(kind, pieces) => {
                if let Some(b) = self.server_packet(u, kind)? {
                    let cuts = split_points(u, b.len(), pieces)?;
                    for c in chunks(&b, &cuts) {
                        self.read(&c);
                    }
                }
            }
            ClientOp::ReceiveMutated(kind, pos, xor) => {
                if let Some(b) = self.server_packet(u, kind)? {
                    self.read(&mutate(b, pos, xor));
                }
            }
            ClientOp::ReceiveRaw(n) => {
                let b = raw(u, n);
                self.read(&b);
            }
            ClientOp::Advance(step) => {
                self.clock.advance(step, self.client.poll_timeout());
            }
            ClientOp::Timeout => self.timeout(),
            ClientOp::Tick(step) => {
                self.clock.advance(step, self.client.poll_timeout());
                self.timeout();
            }
            ClientOp::Closed => {
                let ctx = self.ctx();
                let now = self.now();
                self.client.handle_closed(now);
                self.settle(ctx);
            }
            ClientOp::StaleClock(on) => self.clock.stale = on,
            ClientOp::Publish(spec) => {
                let msg = outgoing_publish(u, spec, v)?;
                let qos = msg.qos();
                let r = self.command("publish", false, |c, now| c.publish(now, msg));
                if let Some(id) = r {
                    self.issued.extend(id.map(PacketId::get));
                    assert_eq!(
                        id.is_some(),
                        qos != QoS::AtMostOnce,
                        "publish returns a packet id exactly for QoS 1 and 2"
                    );
                }
            }
            ClientOp::Subscribe(n, with_id) => {
                let mut subs = Vec::new();
                for _ in 0..(n % 5) {
                    let f = filter(u)?;
                    let mut o = SubscriptionOptions::new(QoS::arbitrary(u)?);
                    if v.is_v5() {
                        o.no_local = chance(u, 1, 4)?;
                        o.retain_as_published = bool::arbitrary(u)?;
                        o.retain_handling = Arbitrary::arbitrary(u)?;
                    }
                    subs.push(Subscription {
                        filter: f,
                        options: o,
                    });
                }
                let mut props = SubscribeProperties::default();
                if with_id {
                    props.subscription_identifier = Some(gen::subscription_id(u)?);
                }
                self.command("subscribe", false, |c, now| c.subscribe(now, subs, props));
            }
            ClientOp::Unsubscribe(n) => {
                let mut filters = Vec::new();
                for _ in 0..(n % 5) {
                    filters.push(filter(u)?);
                }
                self.command("unsubscribe", false, |c, now| {
                    c.unsubscribe(now, filters, UnsubscribeProperties::default())
                });
            }
            ClientOp::Ack(pick, fail) => {
                let known: Vec<u16> = self.manual.iter().map(|id| id.get()).collect();
                let id = pick_id(u, pick, &known)?;
                let code = if fail {
                    u.choose(PubAckReasonCode::ALL).copied()?
                } else {
                    PubAckReasonCode::Success
                };
                if self
                    .command("ack", false, |c, now| c.ack(now, id, code))
                    .is_some()
                {
                    if let Some(i) = self.manual.iter().position(|m| *m == id) {
                        self.manual.remove(i);
                    }
                }
            }
            ClientOp::Disconnect(normal) => {
                let (code, props) = if normal {
                    (
                        DisconnectReasonCode::NormalDisconnection,
                        DisconnectProperties::default(),
                    )
                } else {
                    (
                        DisconnectReasonCode::arbitrary(u)?,
                        gen::disconnect_properties(u)?,
                    )
                };
                self.command("disconnect", false, |c, now| c.disconnect(now, code, props));
            }
            ClientOp::Reauthenticate => {
                self.command("reauthenticate", false, |c, now| c.reauthenticate(now));
            }
            ClientOp::ExportImport => {
                let state = self.client.session_state();
                let client = Client::with_session(self.setup.config(), state.clone());
                assert_eq!(
                    client.session_state(),
                    state,
                    "with_session(session_state()) gives another session"
                );
                assert!(client.is_closed() && !client.is_connected());
                assert_eq!(client.in_flight(), 0);
                self.client = client;
                self.latest = None;
                self.conn = ClientConn::default();
                self.requests.clear();
                self.manual.clear();
                let ctx = Ctx {
                    quiet: true,
                    ..self.ctx()
                };
                self.settle(ctx);
            }
        }
        Ok(())
    }

    fn read(&mut self, bytes: &[u8]) {
        let ctx = self.ctx();
        let now = self.now();
        self.client.handle_read(now, bytes);
        self.settle(ctx);
    }

    fn timeout(&mut self) {
        let ctx = Ctx {
            timeout: true,
            ..self.ctx()
        };
        let now = self.now();
        self.client.handle_timeout(now);
        self.settle(ctx);
    }

    fn command<T>(
        &mut self,
        name: &str,
        may_speak: bool,
        f: impl FnOnce(&mut Client, Instant) -> core::result::Result<T, Error>,
    ) -> Option<T> {
        let before = self.snapshot();
        let ctx = Ctx {
            may_speak,
            ..self.ctx()
        };
        let now = self.now();
        match f(&mut self.client, now) {
            Ok(v) => {
                self.tag(|| "ok".into());
                if name == "connect" {
                    // A new transport.
                    self.conn = ClientConn::default();
                    self.requests.clear();
                }
                self.settle(ctx);
                Some(v)
            }
            Err(e) => {
                self.tag(|| format!("err:{e:?}"));
                let out = self.client.poll_transmit();
                assert!(out.is_none(), "{name} failed with {e:?} but queued {out:?}");
                let ev = self.client.poll_event();
                assert!(ev.is_none(), "{name} failed with {e:?} but queued {ev:?}");
                assert_eq!(
                    self.snapshot(),
                    before,
                    "{name} failed with {e:?} but changed the client"
                );
                self.settle(ctx);
                None
            }
        }
    }

    /// A packet from the server, encoded; `None` when it cannot be built.
    fn server_packet(
        &mut self,
        u: &mut Unstructured<'_>,
        kind: FromServer,
    ) -> Result<Option<Vec<u8>>> {
        let v = self.version();
        let v5 = v.is_v5();
        // Before CONNACK, mostly give one: the interesting flows are after.
        let kind = if !self.client.is_connected()
            && !matches!(
                kind,
                FromServer::ConnAck(_)
                    | FromServer::Auth(_)
                    | FromServer::Any
                    | FromServer::Disconnect
            ) {
            FromServer::ConnAck(ConnAckKind::Success)
        } else {
            kind
        };
        let method = MqttString::from_static(AUTH_METHOD);
        let p = match kind {
            FromServer::ConnAck(k) => Packet::from(self.connack(u, k)?),
            FromServer::Publish(spec, alias) => {
                let mut p = incoming_publish(u, spec, alias, v)?;
                if v5 && chance(u, 1, 4)? {
                    p.properties
                        .set_subscription_identifiers(gen::subscription_ids(u)?);
                }
                Packet::Publish(p)
            }
            FromServer::PubAck(pick, fail) => {
                let known = self.outbound(|q| q == Some(QoS::AtLeastOnce));
                let id = pick_id(u, pick, &known)?;
                Packet::PubAck(PubAck::new(id).with_reason(pub_ack_code(u, v5, fail)?))
            }
            FromServer::PubRec(pick, fail) => {
                let known = self.outbound(|q| q == Some(QoS::ExactlyOnce));
                let id = pick_id(u, pick, &known)?;
                Packet::PubRec(PubRec::new(id).with_reason(pub_ack_code(u, v5, fail)?))
            }
            FromServer::PubRel(pick) => {
                let mut known: Vec<u16> = self.rec_sent.iter().copied().collect();
                known.extend(
                    self.client
                        .session_state()
                        .inbound_qos2()
                        .iter()
                        .map(|i| i.get()),
                );
                Packet::PubRel(PubRel::new(pick_id(u, pick, &known)?))
            }
            FromServer::PubComp(pick) => {
                let known = self.outbound(|q| q.is_none());
                let id = pick_id(u, pick, &known)?;
                let mut c = PubComp::new(id);
                if v5 && chance(u, 1, 8)? {
                    c = c.with_reason(PubRelReasonCode::PacketIdentifierNotFound);
                }
                Packet::PubComp(c)
            }
            FromServer::SubAck(pick, right) => {
                let known: Vec<u16> = self
                    .requests
                    .iter()
                    .filter(|(_, (sub, _))| *sub)
                    .map(|(id, _)| *id)
                    .collect();
                let id = pick_id(u, pick, &known)?;
                let n = self.requests.get(&id.get()).map_or(1, |r| r.1);
                let n = if right { n } else { u.int_in_range(1..=5)? };
                let mut codes = Vec::new();
                for _ in 0..n {
                    codes.push(if v5 {
                        *u.choose(SubAckReasonCode::ALL)?
                    } else {
                        *u.choose(&[
                            SubAckReasonCode::GrantedQoS0,
                            SubAckReasonCode::GrantedQoS1,
                            SubAckReasonCode::GrantedQoS2,
                            SubAckReasonCode::UnspecifiedError,
                        ])?
                    });
                }
                Packet::SubAck(SubAck::new(id, codes))
            }
            FromServer::UnsubAck(pick, right) => {
                let known: Vec<u16> = self
                    .requests
                    .iter()
                    .filter(|(_, (sub, _))| !*sub)
                    .map(|(id, _)| *id)
                    .collect();
                let id = pick_id(u, pick, &known)?;
                let n = self.requests.get(&id.get()).map_or(1, |r| r.1);
                let n = if right { n } else { u.int_in_range(1..=5)? };
                let mut codes = Vec::new();
                if v5 {
                    for _ in 0..n {
                        codes.push(*u.choose(UnsubAckReasonCode::ALL)?);
                    }
                }
                Packet::UnsubAck(UnsubAck::new(id, codes))
            }
            FromServer::PingResp => Packet::PingResp,
            FromServer::Disconnect => Packet::Disconnect(gen::disconnect(u, v)?),
            FromServer::Auth(k) => {
                if !v5 {
                    return Ok(None);
                }
                Packet::from(auth_packet(u, k, &method)?)
            }
            FromServer::Any => gen::packet(u, v)?,
        };
        self.tag(|| format!("fed:{}", packet_name(&p)));
        Ok(encode_packet(&p, v))
    }

    fn connack(&mut self, u: &mut Unstructured<'_>, kind: ConnAckKind) -> Result<ConnAck> {
        let v = self.version();
        let v5 = v.is_v5();
        let mut c = match kind {
            ConnAckKind::Success | ConnAckKind::Limits => ConnAck::new(ConnectReasonCode::Success),
            ConnAckKind::Refused => {
                let code = if v5 {
                    *u.choose(ConnectReasonCode::ALL)?
                } else {
                    ConnectReasonCode::from_v3(u.int_in_range(1..=5)?)
                        .unwrap_or(ConnectReasonCode::ServerUnavailable)
                };
                ConnAck::new(if code.is_error() || !v5 {
                    code
                } else {
                    ConnectReasonCode::UnspecifiedError
                })
            }
            ConnAckKind::Generated => gen::connack(u, v)?,
        };
        if kind == ConnAckKind::Generated {
            return Ok(c);
        }
        if c.reason_code == ConnectReasonCode::Success {
            // Mostly right about the session; sometimes wrong
            // (MQTT-3.2.2-4 from the client's side).
            c.session_present = if self.setup.clean_start {
                chance(u, 1, 16)?
            } else {
                bool::arbitrary(u)?
            };
        }
        if v5 {
            let p = &mut c.properties;
            if self.setup.auth.is_some() && !chance(u, 1, 8)? {
                p.authentication_method = Some(MqttString::from_static(AUTH_METHOD));
            }
            if self.setup.empty_client_id {
                p.assigned_client_identifier = Some(MqttString::from_static("assigned"));
            }
            if kind == ConnAckKind::Limits {
                p.receive_maximum = NonZeroU16::new(u.int_in_range(1..=3)?);
                p.topic_alias_maximum = Some(u.int_in_range(0..=3)?);
                if chance(u, 1, 2)? {
                    p.maximum_qos = Some(if bool::arbitrary(u)? {
                        MaximumQoS::AtMostOnce
                    } else {
                        MaximumQoS::AtLeastOnce
                    });
                }
                if chance(u, 1, 3)? {
                    p.retain_available = Some(false);
                }
                if chance(u, 1, 2)? {
                    p.maximum_packet_size = NonZeroU32::new(*u.choose(&[16, 40, 128, 1024])?);
                }
                if chance(u, 1, 3)? {
                    p.server_keep_alive = Some(*u.choose(&[0, 1, 10])?);
                }
                if chance(u, 1, 4)? {
                    p.wildcard_subscription_available = Some(false);
                }
                if chance(u, 1, 4)? {
                    p.shared_subscription_available = Some(false);
                }
                if chance(u, 1, 4)? {
                    p.subscription_identifiers_available = Some(false);
                }
            }
        }
        Ok(c)
    }

    /// Packet ids of the client's outbound entries: `Some(qos)` for a
    /// PUBLISH awaiting its acknowledgement, `None` for a PUBREL.
    fn outbound(&self, want: impl Fn(Option<QoS>) -> bool) -> Vec<u16> {
        self.client
            .session_state()
            .outbound()
            .iter()
            .filter_map(|m| {
                let q = match m {
                    crate::OutboundMessage::Publish(p) => Some(p.qos()),
                    crate::OutboundMessage::Release(_) => None,
                };
                if want(q) {
                    m.packet_id().map(PacketId::get)
                } else {
                    None
                }
            })
            .collect()
    }

    /// Drains the outputs and checks every invariant.
    fn settle(&mut self, ctx: Ctx) {
        let mut bytes = Vec::new();
        while let Some(b) = self.client.poll_transmit() {
            assert!(!b.is_empty(), "poll_transmit returned an empty buffer");
            bytes.push(b);
        }
        let mut events = Vec::new();
        while let Some(e) = self.client.poll_event() {
            events.push(e);
        }
        if ctx.quiet && !ctx.may_speak {
            assert!(
                bytes.is_empty(),
                "the client is closed but sent {bytes:?} (before any connect)"
            );
            assert!(
                events.is_empty(),
                "the client is closed but reported {events:?} (before any connect)"
            );
        }

        let mut close = None;
        for e in &events {
            self.tag(|| format!("ev:{}", client_event_name(e)));
            match e {
                ClientEvent::Connected { connack, .. } => {
                    self.conn.granted = Some(Granted::from_connack(connack));
                }
                ClientEvent::Publish(p) if self.setup.manual_ack && self.manual.len() < 64 => {
                    self.manual.extend(p.packet_id());
                }
                ClientEvent::SubAck(s) => {
                    self.requests.remove(&s.packet_id.get());
                }
                ClientEvent::UnsubAck(s) => {
                    self.requests.remove(&s.packet_id.get());
                }
                ClientEvent::RequestLost(id) => {
                    self.requests.remove(&id.get());
                }
                ClientEvent::Disconnected(r) => {
                    self.tag(|| format!("close:{}", close_name(r)));
                    assert!(close.is_none(), "two Disconnected events in one step");
                    close = Some(r.clone());
                }
                _ => {}
            }
        }

        self.check_conservation(&events);
        let v = self.version();
        let mut sent_disconnects = Vec::new();
        for b in &bytes {
            self.conn.stream.extend_from_slice(b);
        }
        for (p, len) in decode_all(&mut self.conn.stream, v, "client") {
            self.tag(|| format!("sent:{}", packet_name(&p)));
            self.check_sent(&p, len, ctx, &mut sent_disconnects);
        }
        check_close_code(close.as_ref(), &sent_disconnects, v.is_v5(), false);
        if let Some(r) = &close {
            if expected_disconnect(r, false).is_none() {
                assert!(
                    sent_disconnects.is_empty(),
                    "closed with {r:?} yet sent DISCONNECT"
                );
            }
            assert!(
                self.client.is_closed(),
                "Disconnected event, client not closed"
            );
        }

        // The send quota (MQTT-4.9.0-2).
        let in_flight = self.client.in_flight();
        let rm = self.client.server_limits().receive_maximum;
        assert!(
            in_flight <= usize::from(rm),
            "{in_flight} in flight, server's Receive Maximum {rm}"
        );
        if let (Some(g), true) = (self.conn.granted, self.client.is_connected()) {
            assert!(
                in_flight <= usize::from(g.receive_maximum),
                "{in_flight} in flight, CONNACK's Receive Maximum {}",
                g.receive_maximum
            );
        }
        let deadline = self.client.poll_timeout();
        if ctx.timeout {
            if let (Some(d), Some(latest)) = (deadline, self.latest) {
                assert!(
                    d > latest,
                    "after handle_timeout, poll_timeout is not later"
                );
            }
        }
        if self.client.is_closed() {
            assert!(deadline.is_none(), "closed, yet a deadline: {deadline:?}");
            assert!(!self.client.is_connected());
        }
        if self.client.is_connected() {
            assert!(
                self.conn.granted.is_some(),
                "connected without a Connected event on this transport"
            );
        }
        self.quiet = self.client.is_closed();
    }

    /// Every QoS 1/2 message `publish` accepted stays in the session until
    /// an event reports its outcome (acknowledged, refused, completed, or
    /// handed back with a lost session): none vanishes silently.
    fn check_conservation(&mut self, events: &[ClientEvent]) {
        if self.issued.is_empty() {
            return;
        }
        let mut reported = BTreeSet::new();
        for e in events {
            match e {
                ClientEvent::PubAck(a) => {
                    reported.insert(a.packet_id.get());
                }
                ClientEvent::PubRecFailed(r) => {
                    reported.insert(r.packet_id.get());
                }
                ClientEvent::PubComp(c) => {
                    reported.insert(c.packet_id.get());
                }
                ClientEvent::Dropped(p) => {
                    reported.extend(p.packet_id().map(PacketId::get));
                }
                ClientEvent::SessionLost {
                    unacknowledged,
                    unreleased,
                } => {
                    reported.extend(
                        unacknowledged
                            .iter()
                            .filter_map(|p| p.packet_id())
                            .map(PacketId::get),
                    );
                    reported.extend(unreleased.iter().map(|id| id.get()));
                }
                _ => {}
            }
        }
        let live: BTreeSet<u16> = self
            .client
            .session_state()
            .outbound()
            .iter()
            .filter_map(|m| m.packet_id())
            .map(PacketId::get)
            .collect();
        let issued = std::mem::take(&mut self.issued);
        for id in issued {
            if reported.contains(&id) {
                continue;
            }
            assert!(
                live.contains(&id),
                "message {id} left the session without an event"
            );
            self.issued.insert(id);
        }
    }

    fn check_sent(
        &mut self,
        p: &Packet,
        len: usize,
        ctx: Ctx,
        disconnects: &mut Vec<DisconnectReasonCode>,
    ) {
        let conn = &mut self.conn;
        let t = p.packet_type();
        if t == PacketType::Connect {
            assert!(!conn.connect_sent, "second CONNECT (MQTT-3.1.0-2)");
            conn.connect_sent = true;
        }
        assert!(conn.connect_sent, "{t:?} before CONNECT (MQTT-3.1.0-1)");
        assert!(
            !conn.disconnect_sent,
            "{t:?} after DISCONNECT (MQTT-3.14.4-1)"
        );
        assert!(
            !matches!(
                t,
                PacketType::ConnAck
                    | PacketType::SubAck
                    | PacketType::UnsubAck
                    | PacketType::PingResp
            ),
            "a client never sends {t:?}"
        );
        match conn.granted {
            None => assert!(
                matches!(
                    t,
                    PacketType::Connect | PacketType::Auth | PacketType::Disconnect
                ),
                "{t:?} before CONNACK"
            ),
            Some(g) => {
                if t != PacketType::Connect && (ctx.connected || t != PacketType::Auth) {
                    // MQTT-3.2.2-15
                    assert!(
                        len <= g.max_packet as usize,
                        "{t:?} of {len} bytes, server's Maximum Packet Size {}",
                        g.max_packet
                    );
                }
            }
        }
        match p {
            Packet::Connect(c) => {
                assert_eq!(c.protocol, self.setup.version);
                assert_eq!(c.clean_start, self.setup.clean_start);
            }
            Packet::Publish(m) => {
                if let Some(g) = conn.granted {
                    assert!(
                        m.qos() <= g.maximum_qos,
                        "QoS above Maximum QoS (MQTT-3.2.2-11)"
                    );
                    assert!(
                        !m.retain || g.retain,
                        "RETAIN without Retain Available (MQTT-3.2.2-14)"
                    );
                    if let Some(a) = m.properties.topic_alias {
                        assert!(
                            a.get() <= g.topic_alias_max,
                            "Topic Alias {a} above the server's maximum {} (MQTT-3.3.2-9)",
                            g.topic_alias_max
                        );
                    }
                }
                assert!(
                    !m.properties.has_subscription_identifiers(),
                    "Subscription Identifier in a client PUBLISH (MQTT-3.3.4-6)"
                );
            }
            Packet::Subscribe(s) => {
                if let Some(g) = conn.granted {
                    for f in &s.subscriptions {
                        let shared = f.filter.as_str().starts_with("$share/");
                        assert!(g.shared || !shared, "shared subscription the server lacks");
                        assert!(
                            g.wildcards || !f.filter.has_wildcards(),
                            "wildcard subscription the server lacks"
                        );
                        assert!(
                            !(shared && f.options.no_local),
                            "No Local on a shared subscription (MQTT-3.8.3-4)"
                        );
                    }
                    assert!(
                        g.subscription_ids || s.properties.subscription_identifier.is_none(),
                        "Subscription Identifier the server lacks"
                    );
                }
                self.requests
                    .insert(s.packet_id.get(), (true, s.subscriptions.len()));
            }
            Packet::Unsubscribe(s) => {
                self.requests
                    .insert(s.packet_id.get(), (false, s.filters.len()));
            }
            Packet::PubRec(r) if !r.reason_code.is_error() && self.rec_sent.len() < 64 => {
                self.rec_sent.insert(r.packet_id.get());
            }
            Packet::Disconnect(d) => {
                conn.disconnect_sent = true;
                disconnects.push(d.reason_code);
            }
            _ => {}
        }
    }
}

fn client_event_name(e: &ClientEvent) -> &'static str {
    match e {
        ClientEvent::Connected { .. } => "Connected",
        ClientEvent::Publish(_) => "Publish",
        ClientEvent::PubAck(_) => "PubAck",
        ClientEvent::PubRecFailed(_) => "PubRecFailed",
        ClientEvent::PubComp(_) => "PubComp",
        ClientEvent::SubAck(_) => "SubAck",
        ClientEvent::UnsubAck(_) => "UnsubAck",
        ClientEvent::RequestLost(_) => "RequestLost",
        ClientEvent::SessionLost { .. } => "SessionLost",
        ClientEvent::Dropped(_) => "Dropped",
        ClientEvent::Reauthenticated => "Reauthenticated",
        ClientEvent::Disconnected(_) => "Disconnected",
    }
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

impl ServerSetup {
    fn config(&self) -> ServerConfig {
        let mut c = ServerConfig::default();
        if let Some(n) = self.receive_maximum {
            c.receive_maximum = NonZeroU16::new(u16::from(n % 4) + 1).unwrap_or(NonZeroU16::MIN);
        }
        if let Some(n) = self.max_packet_size {
            c.max_packet_size = 16 * (u32::from(n) + 1);
        }
        if let Some(n) = self.topic_alias_maximum {
            c.topic_alias_maximum = u16::from(n % 5);
        }
        c.maximum_qos = self.maximum_qos;
        c.retain_available = !self.no_retain;
        c.wildcard_subscriptions = !self.no_wildcards;
        c.shared_subscriptions = !self.no_shared;
        c.subscription_identifiers = !self.no_subscription_ids;
        c.server_keep_alive = self.server_keep_alive.map(u16::from);
        c.outbound_topic_aliases = self.outbound_topic_aliases;
        c.ack_mode = if self.manual_ack {
            AckMode::Manual
        } else {
            AckMode::Auto
        };
        c.connect_timeout = Duration::from_secs(self.connect_timeout.into());
        c
    }
}

/// What the client announced in its CONNECT.
#[derive(Debug, Clone)]
struct Announced {
    version: ProtocolVersion,
    receive_maximum: u16,
    max_packet: u32,
    topic_alias_max: u16,
    problem_info: bool,
    auth_method: Option<MqttString>,
    clean_start: bool,
    empty_id: bool,
}

impl Announced {
    fn from_connect(c: &Connect) -> Self {
        let p = &c.properties;
        let v5 = c.protocol.is_v5();
        Announced {
            version: c.protocol,
            receive_maximum: p.receive_maximum.map_or(u16::MAX, NonZeroU16::get),
            max_packet: p
                .maximum_packet_size
                .map_or(MAX_PACKET_SIZE, NonZeroU32::get),
            topic_alias_max: if v5 {
                p.topic_alias_maximum.unwrap_or(0)
            } else {
                0
            },
            problem_info: p.request_problem_information.unwrap_or(true),
            auth_method: p.authentication_method.clone(),
            clean_start: c.clean_start,
            empty_id: c.client_id.is_empty(),
        }
    }
}

/// One server connection, as its client sees it.
#[derive(Debug, Default)]
struct ServerConn {
    stream: BytesMut,
    peer: Option<Announced>,
    connack: Option<bool>,
    ended: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct ServerSnap {
    connected: bool,
    closed: bool,
    in_flight: usize,
    timeout: Option<Instant>,
    version: ProtocolVersion,
}

/// The server's outbound entries as seen on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutSeen {
    Qos1,
    Qos2,
    Release,
}

struct ServerRun {
    config: ServerConfig,
    server: ServerConnection,
    clock: Clock,
    latest: Instant,
    conn: ServerConn,
    quiet: bool,
    held: Option<SessionState>,
    out_seen: BTreeMap<u16, OutSeen>,
    rec_sent: BTreeSet<u16>,
    subs: BTreeMap<u16, usize>,
    unsubs: BTreeMap<u16, usize>,
    manual: Vec<PacketId>,
    /// Version of the last CONNECT fed (to encode what follows).
    fed_version: ProtocolVersion,
    input: usize,
    tracing: bool,
    tags: Vec<String>,
}

impl ServerRun {
    fn new(setup: ServerSetup, tracing: bool) -> Self {
        let config = setup.config();
        let clock = Clock::new();
        let now = clock.call();
        ServerRun {
            server: ServerConnection::new(config.clone(), now),
            config,
            clock,
            latest: now,
            conn: ServerConn::default(),
            quiet: false,
            held: None,
            out_seen: BTreeMap::new(),
            rec_sent: BTreeSet::new(),
            subs: BTreeMap::new(),
            unsubs: BTreeMap::new(),
            manual: Vec::new(),
            fed_version: ProtocolVersion::V5,
            input: 0,
            tracing,
            tags: Vec::new(),
        }
    }

    fn tag(&mut self, f: impl FnOnce() -> String) {
        if self.tracing {
            self.tags.push(f());
        }
    }

    fn now(&mut self) -> Instant {
        let t = self.clock.call();
        if t > self.latest {
            self.latest = t;
        }
        t
    }

    fn ctx(&self) -> Ctx {
        Ctx {
            quiet: self.quiet,
            may_speak: false,
            timeout: false,
            connected: self.server.is_connected(),
        }
    }

    fn snapshot(&self) -> ServerSnap {
        ServerSnap {
            connected: self.server.is_connected(),
            closed: self.server.is_closed(),
            in_flight: self.server.in_flight(),
            timeout: self.server.poll_timeout(),
            version: self.server.version(),
        }
    }

    /// The version packets to the server are encoded in.
    fn version(&self) -> ProtocolVersion {
        match &self.conn.peer {
            Some(p) => p.version,
            None => self.fed_version,
        }
    }

    fn op(&mut self, op: ServerOp, u: &mut Unstructured<'_>) -> Result<()> {
        let v = self.version();
        let v5 = v.is_v5();
        match op {
            ServerOp::Receive(kind) => {
                if let Some(b) = self.client_packet(u, kind)? {
                    self.read(&b);
                }
            }
            ServerOp::ReceiveMany(n) => {
                let mut all = Vec::new();
                for _ in 0..(n % 4 + 1) {
                    let kind = FromClient::arbitrary(u)?;
                    if let Some(b) = self.client_packet(u, kind)? {
                        all.extend_from_slice(&b);
                    }
                }
                self.read(&all);
            }
            ServerOp::ReceiveSplit(kind, pieces) => {
                if let Some(b) = self.client_packet(u, kind)? {
                    let cuts = split_points(u, b.len(), pieces)?;
                    for c in chunks(&b, &cuts) {
                        self.read(&c);
                    }
                }
            }
            ServerOp::ReceiveMutated(kind, pos, xor) => {
                if let Some(b) = self.client_packet(u, kind)? {
                    self.read(&mutate(b, pos, xor));
                }
            }
            ServerOp::ReceiveRaw(n) => {
                let b = raw(u, n);
                self.read(&b);
            }
            ServerOp::Advance(step) => {
                self.clock.advance(step, self.server.poll_timeout());
            }
            ServerOp::Timeout => self.timeout(),
            ServerOp::Tick(step) => {
                self.clock.advance(step, self.server.poll_timeout());
                self.timeout();
            }
            ServerOp::Closed => {
                let ctx = self.ctx();
                let now = self.now();
                self.server.handle_closed(now);
                self.settle(ctx);
            }
            ServerOp::StaleClock(on) => self.clock.stale = on,
            ServerOp::Accept {
                session_present,
                resume,
                assign_id,
                properties,
            } => {
                let mut a = match (&self.held, resume) {
                    (Some(s), true) => Accept::resume(s.clone()),
                    _ => Accept::new(),
                };
                if !resume {
                    a.session_present = session_present;
                }
                if assign_id {
                    a = a.with_assigned_client_id(MqttString::from_static("assigned-id"));
                }
                if properties {
                    a.properties = gen::connack_properties(u)?;
                }
                self.command("accept", |s, now| s.accept(now, a));
            }
            ServerOp::Reject(props) => {
                let code = *u.choose(ConnectReasonCode::ALL)?;
                let p = if props {
                    gen::connack_properties(u)?
                } else {
                    Default::default()
                };
                self.command("reject", |s, now| s.reject(now, code, p));
            }
            ServerOp::AuthContinue => {
                let p = if chance(u, 1, 4)? {
                    gen::auth_properties(u)?
                } else {
                    Default::default()
                };
                self.command("auth_continue", |s, now| {
                    s.auth_continue(now, Some(Bytes::from_static(b"challenge")), p)
                });
            }
            ServerOp::AuthSuccess => {
                self.command("auth_success", |s, now| {
                    s.auth_success(now, None, Default::default())
                });
            }
            ServerOp::SubAck(pick, right) => {
                let known: Vec<u16> = self.subs.keys().copied().collect();
                let id = pick_id(u, pick, &known)?;
                let n = self.subs.get(&id.get()).copied().unwrap_or(1);
                let n = if right { n } else { u.int_in_range(0..=5)? };
                let mut codes = Vec::new();
                for _ in 0..n {
                    codes.push(*u.choose(SubAckReasonCode::ALL)?);
                }
                let props = if v5 && chance(u, 1, 3)? {
                    gen::ack_properties(u)?
                } else {
                    Default::default()
                };
                if self
                    .command("suback", |s, now| s.suback(now, id, codes, props))
                    .is_some()
                {
                    self.subs.remove(&id.get());
                }
            }
            ServerOp::UnsubAck(pick, right) => {
                let known: Vec<u16> = self.unsubs.keys().copied().collect();
                let id = pick_id(u, pick, &known)?;
                let n = self.unsubs.get(&id.get()).copied().unwrap_or(1);
                let n = if right { n } else { u.int_in_range(0..=5)? };
                let mut codes = Vec::new();
                for _ in 0..n {
                    codes.push(*u.choose(UnsubAckReasonCode::ALL)?);
                }
                let props = if v5 && chance(u, 1, 3)? {
                    gen::ack_properties(u)?
                } else {
                    Default::default()
                };
                if self
                    .command("unsuback", |s, now| s.unsuback(now, id, codes, props))
                    .is_some()
                {
                    self.unsubs.remove(&id.get());
                }
            }
            ServerOp::Publish(spec) => {
                let msg = outgoing_publish(u, spec, ProtocolVersion::V5)?;
                let qos = msg.qos();
                if let Some(id) = self.command("publish", |s, now| s.publish(now, msg)) {
                    assert_eq!(
                        id.is_some(),
                        qos != QoS::AtMostOnce,
                        "publish returns a packet id exactly for QoS 1 and 2"
                    );
                }
            }
            ServerOp::Ack(pick, fail) => {
                let known: Vec<u16> = self.manual.iter().map(|id| id.get()).collect();
                let id = pick_id(u, pick, &known)?;
                let code = if fail {
                    *u.choose(PubAckReasonCode::ALL)?
                } else {
                    PubAckReasonCode::Success
                };
                if self.command("ack", |s, now| s.ack(now, id, code)).is_some() {
                    if let Some(i) = self.manual.iter().position(|m| *m == id) {
                        self.manual.remove(i);
                    }
                }
            }
            ServerOp::Disconnect(normal) => {
                let (code, props) = if normal {
                    (
                        DisconnectReasonCode::NormalDisconnection,
                        DisconnectProperties::default(),
                    )
                } else {
                    (
                        DisconnectReasonCode::arbitrary(u)?,
                        gen::disconnect_properties(u)?,
                    )
                };
                self.command("disconnect", |s, now| s.disconnect(now, code, props));
            }
            ServerOp::TakeSession => self.take_session(),
        }
        Ok(())
    }

    fn take_session(&mut self) {
        let before = self.snapshot();
        let closed = self.server.is_closed();
        let s = self.server.take_session();
        self.tag(|| format!("take:{}", s.is_some()));
        if !closed {
            assert!(s.is_none(), "take_session before the close");
            assert_eq!(
                self.snapshot(),
                before,
                "take_session changed an open connection"
            );
            let ctx = self.ctx();
            self.settle(ctx);
            return;
        }
        // Only an accepted connection holds a session of the client's.
        assert_eq!(
            s.is_some(),
            self.conn.connack == Some(true),
            "take_session after the close"
        );
        let again = self.server.take_session();
        assert!(again.is_none(), "take_session gave the session twice");
        if let Some(s) = s {
            self.held = Some(s);
        }
        // The same client's next connection.
        let now = self.now();
        self.server = ServerConnection::new(self.config.clone(), now);
        self.latest = now;
        self.conn = ServerConn::default();
        self.quiet = false;
        self.out_seen.clear();
        self.subs.clear();
        self.unsubs.clear();
        self.manual.clear();
        self.rec_sent.clear();
        let ctx = self.ctx();
        self.settle(ctx);
    }

    fn read(&mut self, bytes: &[u8]) {
        self.input += bytes.len();
        let ctx = self.ctx();
        let now = self.now();
        self.server.handle_read(now, bytes);
        self.settle(ctx);
    }

    fn timeout(&mut self) {
        let ctx = Ctx {
            timeout: true,
            ..self.ctx()
        };
        let now = self.now();
        self.server.handle_timeout(now);
        self.settle(ctx);
    }

    fn command<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut ServerConnection, Instant) -> core::result::Result<T, Error>,
    ) -> Option<T> {
        let before = self.snapshot();
        let ctx = self.ctx();
        let now = self.now();
        match f(&mut self.server, now) {
            Ok(v) => {
                self.tag(|| "ok".into());
                self.settle(ctx);
                Some(v)
            }
            Err(e) => {
                self.tag(|| format!("err:{e:?}"));
                let out = self.server.poll_transmit();
                assert!(out.is_none(), "{name} failed with {e:?} but queued {out:?}");
                let ev = self.server.poll_event();
                assert!(ev.is_none(), "{name} failed with {e:?} but queued {ev:?}");
                assert_eq!(
                    self.snapshot(),
                    before,
                    "{name} failed with {e:?} but changed the connection"
                );
                self.settle(ctx);
                None
            }
        }
    }

    fn client_packet(
        &mut self,
        u: &mut Unstructured<'_>,
        kind: FromClient,
    ) -> Result<Option<Vec<u8>>> {
        // Before CONNECT, mostly give one.
        let kind = if self.conn.peer.is_none()
            && !self.server.is_closed()
            && !matches!(kind, FromClient::Connect(_) | FromClient::Any)
        {
            FromClient::Connect(ConnectKind::V5)
        } else {
            kind
        };
        let mut v = self.version();
        let v5 = v.is_v5();
        let method = self
            .conn
            .peer
            .as_ref()
            .and_then(|p| p.auth_method.clone())
            .unwrap_or_else(|| MqttString::from_static(AUTH_METHOD));
        let p = match kind {
            FromClient::Connect(k) => {
                let c = client_connect(u, k)?;
                v = c.protocol;
                if self.conn.peer.is_none() {
                    self.fed_version = v;
                }
                Packet::from(c)
            }
            FromClient::Publish(spec, alias) => {
                Packet::Publish(incoming_publish(u, spec, alias, v)?)
            }
            FromClient::PubAck(pick, fail) => {
                let known = self.seen(OutSeen::Qos1);
                let id = pick_id(u, pick, &known)?;
                self.out_seen.remove(&id.get());
                Packet::PubAck(PubAck::new(id).with_reason(pub_ack_code(u, v5, fail)?))
            }
            FromClient::PubRec(pick, fail) => {
                let known = self.seen(OutSeen::Qos2);
                let id = pick_id(u, pick, &known)?;
                let code = pub_ack_code(u, v5, fail)?;
                if code.is_error() {
                    self.out_seen.remove(&id.get());
                }
                Packet::PubRec(PubRec::new(id).with_reason(code))
            }
            FromClient::PubRel(pick) => {
                let known: Vec<u16> = self.rec_sent.iter().copied().collect();
                let id = pick_id(u, pick, &known)?;
                self.rec_sent.remove(&id.get());
                Packet::PubRel(PubRel::new(id))
            }
            FromClient::PubComp(pick) => {
                let known = self.seen(OutSeen::Release);
                let id = pick_id(u, pick, &known)?;
                self.out_seen.remove(&id.get());
                Packet::PubComp(PubComp::new(id))
            }
            FromClient::Subscribe(n) => {
                let mut subs = Vec::new();
                for _ in 0..(n % 4 + 1) {
                    let f = filter(u)?;
                    let mut o = SubscriptionOptions::new(QoS::arbitrary(u)?);
                    if v5 {
                        o.no_local = chance(u, 1, 4)?;
                        o.retain_as_published = bool::arbitrary(u)?;
                        o.retain_handling = Arbitrary::arbitrary(u)?;
                    }
                    subs.push(Subscription {
                        filter: f,
                        options: o,
                    });
                }
                let mut properties = SubscribeProperties::default();
                if v5 && chance(u, 1, 3)? {
                    properties.subscription_identifier = Some(gen::subscription_id(u)?);
                }
                Packet::Subscribe(Subscribe {
                    packet_id: small_id(u)?,
                    subscriptions: subs,
                    properties,
                })
            }
            FromClient::Unsubscribe(n) => {
                let mut filters = Vec::new();
                for _ in 0..(n % 4 + 1) {
                    filters.push(filter(u)?);
                }
                Packet::Unsubscribe(Unsubscribe {
                    packet_id: small_id(u)?,
                    filters,
                    properties: UnsubscribeProperties::default(),
                })
            }
            FromClient::PingReq => Packet::PingReq,
            FromClient::Disconnect(normal) => Packet::Disconnect(if normal {
                Disconnect::new(DisconnectReasonCode::NormalDisconnection)
            } else {
                gen::disconnect(u, v)?
            }),
            FromClient::Auth(k) => {
                if !v5 {
                    return Ok(None);
                }
                Packet::from(auth_packet(u, k, &method)?)
            }
            FromClient::Any => gen::packet(u, v)?,
        };
        self.tag(|| format!("fed:{}", packet_name(&p)));
        Ok(encode_packet(&p, v))
    }

    fn seen(&self, want: OutSeen) -> Vec<u16> {
        self.out_seen
            .iter()
            .filter(|(_, s)| **s == want)
            .map(|(id, _)| *id)
            .collect()
    }

    fn settle(&mut self, ctx: Ctx) {
        let mut bytes = Vec::new();
        while let Some(b) = self.server.poll_transmit() {
            assert!(!b.is_empty(), "poll_transmit returned an empty buffer");
            bytes.push(b);
        }
        let mut events = Vec::new();
        while let Some(e) = self.server.poll_event() {
            events.push(e);
        }
        if ctx.quiet {
            assert!(
                bytes.is_empty(),
                "the connection is closed but sent {bytes:?}"
            );
            assert!(
                events.is_empty(),
                "the connection is closed but reported {events:?}"
            );
        }

        let mut close = None;
        for e in &events {
            self.tag(|| format!("ev:{}", server_event_name(e)));
            match e {
                ServerEvent::Connect(c) => {
                    self.tag(|| format!("clean_start:{}", c.clean_start));
                    self.tag(|| format!("keep_alive:{}", c.keep_alive != 0));
                    assert!(self.conn.peer.is_none(), "a second Connect event");
                    self.conn.peer = Some(Announced::from_connect(c));
                }
                ServerEvent::Publish(p)
                    if self.config.ack_mode == AckMode::Manual && self.manual.len() < 64 =>
                {
                    self.manual.extend(p.packet_id());
                }
                ServerEvent::PubAck(a) => {
                    self.out_seen.remove(&a.packet_id.get());
                }
                ServerEvent::PubRecFailed(a) => {
                    self.out_seen.remove(&a.packet_id.get());
                }
                ServerEvent::PubComp(a) => {
                    self.out_seen.remove(&a.packet_id.get());
                }
                ServerEvent::Subscribe(s) => {
                    self.subs.insert(s.packet_id.get(), s.subscriptions.len());
                }
                ServerEvent::Unsubscribe(s) => {
                    self.unsubs.insert(s.packet_id.get(), s.filters.len());
                }
                ServerEvent::Closed(r) => {
                    self.tag(|| format!("close:{}", close_name(r)));
                    assert!(close.is_none(), "two Closed events");
                    close = Some(r.clone());
                }
                _ => {}
            }
        }

        // Before a CONNECT was surfaced, the only thing a server can say is
        // the 3.1.1-coded refusal of an unsupported protocol version.
        let version = match (&self.conn.peer, &close) {
            (None, Some(CloseReason::Refused(c)))
                if c.reason_code == ConnectReasonCode::UnsupportedProtocolVersion =>
            {
                ProtocolVersion::V3_1_1
            }
            _ => self.server.version(),
        };
        for b in &bytes {
            self.conn.stream.extend_from_slice(b);
        }
        let mut disconnects = Vec::new();
        for (p, len) in decode_all(&mut self.conn.stream, version, "server") {
            self.tag(|| format!("sent:{}", packet_name(&p)));
            self.check_sent(&p, len, version, &mut disconnects);
        }
        check_close_code(close.as_ref(), &disconnects, version.is_v5(), true);
        if let Some(r) = &close {
            if expected_disconnect(r, true).is_none() {
                assert!(
                    disconnects.is_empty(),
                    "closed with {r:?} yet sent DISCONNECT"
                );
            }
            assert!(
                self.server.is_closed(),
                "Closed event, connection not closed"
            );
        }

        let in_flight = self.server.in_flight();
        let rm = self.conn.peer.as_ref().map_or(0, |p| p.receive_maximum);
        assert!(
            in_flight <= usize::from(rm),
            "{in_flight} in flight, client's Receive Maximum {rm}"
        );
        let deadline = self.server.poll_timeout();
        if ctx.timeout {
            if let Some(d) = deadline {
                assert!(
                    d > self.latest,
                    "after handle_timeout, poll_timeout is not later"
                );
            }
        }
        if self.server.is_closed() {
            assert!(deadline.is_none(), "closed, yet a deadline: {deadline:?}");
            assert!(!self.server.is_connected());
        }
        if self.server.is_connected() {
            assert!(
                self.conn.connack == Some(true),
                "connected without a successful CONNACK sent"
            );
        }
        let limit = (self.config.max_packet_size as usize).max(64 * 1024);
        let bound = 4 * limit + 64 * self.input + (1 << 20);
        let heap = self.server.heap_bytes();
        assert!(
            heap <= bound,
            "the connection holds {heap} bytes (bound {bound})"
        );
        self.quiet = self.server.is_closed();
    }

    fn check_sent(
        &mut self,
        p: &Packet,
        len: usize,
        version: ProtocolVersion,
        disconnects: &mut Vec<DisconnectReasonCode>,
    ) {
        let conn = &mut self.conn;
        let t = p.packet_type();
        assert!(
            !conn.ended,
            "{t:?} after a refusing CONNACK or a DISCONNECT"
        );
        assert!(
            !matches!(
                t,
                PacketType::Connect
                    | PacketType::Subscribe
                    | PacketType::Unsubscribe
                    | PacketType::PingReq
            ),
            "a server never sends {t:?}"
        );
        match conn.connack {
            None => assert!(
                matches!(t, PacketType::ConnAck | PacketType::Auth),
                "{t:?} before CONNACK (MQTT-3.2.0-1)"
            ),
            Some(_) => assert!(t != PacketType::ConnAck, "second CONNACK (MQTT-3.2.0-2)"),
        }
        if let Some(peer) = &conn.peer {
            assert!(
                len <= peer.max_packet as usize,
                "{t:?} of {len} bytes, client's Maximum Packet Size {} (MQTT-3.1.2-24)",
                peer.max_packet
            );
            if !peer.problem_info {
                let props = match p {
                    Packet::PubAck(a) => {
                        Some((&a.properties.reason_string, &a.properties.user_properties))
                    }
                    Packet::PubRec(a) => {
                        Some((&a.properties.reason_string, &a.properties.user_properties))
                    }
                    Packet::PubRel(a) => {
                        Some((&a.properties.reason_string, &a.properties.user_properties))
                    }
                    Packet::PubComp(a) => {
                        Some((&a.properties.reason_string, &a.properties.user_properties))
                    }
                    Packet::SubAck(a) => {
                        Some((&a.properties.reason_string, &a.properties.user_properties))
                    }
                    Packet::UnsubAck(a) => {
                        Some((&a.properties.reason_string, &a.properties.user_properties))
                    }
                    Packet::Auth(a) => {
                        Some((&a.properties.reason_string, &a.properties.user_properties))
                    }
                    _ => None,
                };
                if let Some((rs, up)) = props {
                    assert!(
                        rs.is_none() && up.is_empty(),
                        "{t:?} with Reason String or User Properties, client asked for no problem information (MQTT-3.1.2-29)"
                    );
                }
            }
        }
        match p {
            Packet::ConnAck(c) => {
                let ok = c.reason_code == ConnectReasonCode::Success;
                conn.connack = Some(ok);
                if !ok {
                    conn.ended = true;
                    assert!(
                        !c.session_present,
                        "Session Present on a refusal (MQTT-3.2.2-6)"
                    );
                }
                if let Some(peer) = &conn.peer {
                    assert!(
                        !(peer.clean_start && c.session_present),
                        "Session Present with Clean Start 1 (MQTT-3.2.2-2)"
                    );
                    if ok && version.is_v5() {
                        assert_eq!(
                            c.properties.authentication_method, peer.auth_method,
                            "CONNACK's authentication method differs from CONNECT's"
                        );
                        if peer.empty_id {
                            assert!(
                                c.properties.assigned_client_identifier.is_some(),
                                "empty client id without an Assigned Client Identifier (MQTT-3.2.2-16)"
                            );
                        }
                    }
                }
            }
            Packet::Disconnect(d) => {
                assert!(
                    conn.connack == Some(true),
                    "DISCONNECT without a successful CONNACK (MQTT-3.14.0-1)"
                );
                assert!(version.is_v5(), "a 3.1.1 server sends no DISCONNECT");
                conn.ended = true;
                disconnects.push(d.reason_code);
            }
            Packet::Publish(m) => {
                if let Some(peer) = &conn.peer {
                    if let Some(a) = m.properties.topic_alias {
                        assert!(
                            a.get() <= peer.topic_alias_max,
                            "Topic Alias {a} above the client's maximum {} (MQTT-3.1.2-26)",
                            peer.topic_alias_max
                        );
                    }
                }
                if let Some(id) = m.packet_id() {
                    let s = if m.qos() == QoS::AtLeastOnce {
                        OutSeen::Qos1
                    } else {
                        OutSeen::Qos2
                    };
                    self.out_seen.insert(id.get(), s);
                }
            }
            Packet::PubRel(r) => {
                self.out_seen.insert(r.packet_id.get(), OutSeen::Release);
            }
            Packet::PubRec(r) if !r.reason_code.is_error() && self.rec_sent.len() < 64 => {
                self.rec_sent.insert(r.packet_id.get());
            }
            Packet::SubAck(s) => {
                let in_use = s
                    .reason_codes
                    .iter()
                    .all(|c| *c == SubAckReasonCode::PacketIdentifierInUse);
                if !in_use {
                    if let Some(n) = self.subs.get(&s.packet_id.get()) {
                        assert_eq!(
                            s.reason_codes.len(),
                            *n,
                            "one SUBACK code per filter (MQTT-3.9.3-1)"
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

fn client_connect(u: &mut Unstructured<'_>, kind: ConnectKind) -> Result<Connect> {
    let (version, auth) = match kind {
        ConnectKind::V3_1 => (ProtocolVersion::V3_1, false),
        ConnectKind::V3_1_1 => (ProtocolVersion::V3_1_1, false),
        ConnectKind::V5 => (ProtocolVersion::V5, false),
        ConnectKind::V5Auth => (ProtocolVersion::V5, true),
        ConnectKind::Generated => {
            let v = ProtocolVersion::arbitrary(u)?;
            return gen::connect(u, v);
        }
    };
    let mut c = Connect::new(version, MqttString::from_static("fuzz-client"));
    c.clean_start = bool::arbitrary(u)?;
    c.keep_alive = *u.choose(&[0, 1, 5, 60, u16::MAX])?;
    match u.int_in_range(0u8..=7)? {
        0 => c.client_id = MqttString::new(),
        1 => c.client_id = MqttString::from_static("a-client-identifier-of-30-chars"),
        _ => {}
    }
    if chance(u, 1, 4)? {
        let mut w = LastWill::new(topic(u, 0)?, Bytes::from_static(b"gone"));
        w.qos = QoS::arbitrary(u)?;
        w.retain = bool::arbitrary(u)?;
        c.will = Some(w);
    }
    if version.is_v5() {
        let p = &mut c.properties;
        if chance(u, 1, 2)? {
            p.receive_maximum = NonZeroU16::new(u.int_in_range(1..=4)?);
        }
        if chance(u, 1, 2)? {
            p.topic_alias_maximum = Some(u.int_in_range(0..=4)?);
        }
        if chance(u, 1, 4)? {
            p.maximum_packet_size = NonZeroU32::new(*u.choose(&[20, 64, 256, 2048])?);
        }
        if chance(u, 1, 3)? {
            p.session_expiry_interval = Some(*u.choose(&[0, 60, u32::MAX])?);
        }
        if chance(u, 1, 3)? {
            p.request_problem_information = Some(bool::arbitrary(u)?);
        }
        if chance(u, 1, 4)? {
            p.request_response_information = Some(bool::arbitrary(u)?);
        }
        if auth {
            p.authentication_method = Some(MqttString::from_static(AUTH_METHOD));
            p.authentication_data = Some(Bytes::from_static(b"hello"));
        }
    }
    Ok(c)
}

fn server_event_name(e: &ServerEvent) -> &'static str {
    match e {
        ServerEvent::Connect(_) => "Connect",
        ServerEvent::Auth(_) => "Auth",
        ServerEvent::Publish(_) => "Publish",
        ServerEvent::PubAck(_) => "PubAck",
        ServerEvent::PubRecFailed(_) => "PubRecFailed",
        ServerEvent::PubComp(_) => "PubComp",
        ServerEvent::Subscribe(_) => "Subscribe",
        ServerEvent::Unsubscribe(_) => "Unsubscribe",
        ServerEvent::Dropped(_) => "Dropped",
        ServerEvent::Closed(_) => "Closed",
    }
}
