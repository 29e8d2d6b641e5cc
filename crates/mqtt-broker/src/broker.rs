//! The broker: many server connections, sessions, routing.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_session::server::{Accept, Event as ConnEvent, ServerConfig, ServerConnection};
use mqtt_session::{AckMode, CloseReason, SessionState};
use mqtt_topic::{Match, RetainedIndex, SubscriptionFilter, SubscriptionTree};
use mqtt_wire::{
    AckProperties, Auth, AuthProperties, ConnAckProperties, Connect, ConnectReasonCode,
    DisconnectProperties, DisconnectReasonCode, LastWill, MqttString, PacketId, ProtocolVersion,
    PubAckReasonCode, Publish, QoS, RetainHandling, SubAckReasonCode, Subscribe, SubscriptionId,
    SubscriptionIds, TopicName, UnsubAckReasonCode, Unsubscribe,
};

use crate::hooks::{AllowAll, AuthDecision, ClientInfo, Hooks, Recipient};
use crate::index::ClientIndex;
use crate::slab::{Key, Slab};
use crate::store::{MemoryOnly, Store, StoredSession, StoredSubscription};
use crate::tick::{Tick, Timer, TimerEntry};
use crate::{BrokerConfig, Error, Stats};

/// Identifies one connection: a slot and the generation of its use, so an
/// id of a closed connection never reaches a later one in the same slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(Key);

impl ConnectionId {
    /// A number for logs (slot and generation).
    pub fn as_u64(self) -> u64 {
        (u64::from(self.0.generation) << 32) | u64::from(self.0.index)
    }

    /// The connection's slot in the broker's table: no two connections
    /// open at the same time share one, a slot is reused once its
    /// connection is gone (from [`Broker::handle_closed`], or once
    /// [`Broker::poll_transmit`] reported its [`Event::Close`]), and slots stay
    /// below the largest number of connections ever open at once. A
    /// wrapper can index its own per-connection table with it (a `Vec`
    /// rather than a hash map of ids); compare the whole id to tell the
    /// uses of a slot apart.
    pub fn slot(self) -> usize {
        self.0.index as usize
    }
}

impl core::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "#{}.{}", self.0.index, self.0.generation)
    }
}

/// What the broker reports to its wrapper.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A client is connected.
    Connected {
        /// The connection.
        id: ConnectionId,
        /// Its client identifier (assigned if it sent none).
        client_id: MqttString,
        /// The user name it authenticated with, if any.
        username: Option<MqttString>,
        /// The protocol version it speaks.
        version: ProtocolVersion,
        /// Whether its session was resumed.
        session_present: bool,
    },
    /// `Hooks::authenticate*` answered `Defer`: decide, then call
    /// [`Broker::authenticated`] (or, for enhanced authentication,
    /// [`Broker::auth_continue`] first). The connection waits under its
    /// connect deadline.
    Authenticate {
        /// The connection.
        id: ConnectionId,
        /// The CONNECT (credentials, authentication method and data).
        connect: Box<Connect>,
    },
    /// An AUTH from a client in an enhanced authentication: answer with
    /// [`Broker::auth_continue`] or [`Broker::authenticated`].
    AuthStep {
        /// The connection.
        id: ConnectionId,
        /// The AUTH packet.
        auth: Box<Auth>,
    },
    /// A connection ended (for logs); its transport is closed by
    /// [`Event::Close`].
    Disconnected {
        /// The connection.
        id: ConnectionId,
        /// Its client identifier, if CONNECT got that far.
        client_id: Option<MqttString>,
        /// Why.
        reason: CloseReason,
    },
    /// Close the transport of this connection now (everything
    /// `poll_transmit` had for it was handed out before this event).
    Close(ConnectionId),
}

/// A session's subscriptions: their filters' texts as received (with
/// the `$share/{name}/` prefix of a Shared Subscription), sorted. The
/// options live in the subscription tree. A boxed string per filter
/// (16 bytes and the text) rather than a parsed `SubscriptionFilter` and
/// its options (72 bytes and the text): the list is read only when the
/// session subscribes, unsubscribes or ends. Bounded by
/// `max_subscriptions_per_session`. (A boxed slice would save 8 bytes but
/// copy the whole list on every new filter: quadratic for a session that
/// subscribes to many.)
#[derive(Debug, Default)]
struct SubList(Vec<Box<str>>);

impl SubList {
    fn find(&self, f: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|g| (**g).cmp(f))
    }

    fn contains(&self, f: &str) -> bool {
        self.find(f).is_ok()
    }

    /// Adds `f`; `false` when it was there already.
    fn insert(&mut self, f: &str) -> bool {
        match self.find(f) {
            Ok(_) => false,
            Err(i) => {
                // Grow one entry at a time while small: most sessions hold
                // one or two subscriptions, and `Vec`'s first growth
                // reserves four. Beyond four, the usual doubling.
                if self.0.len() < 4 {
                    self.0.reserve_exact(1);
                }
                self.0.insert(i, f.into());
                true
            }
        }
    }

    /// Removes `f`; `false` when it was not there.
    fn remove(&mut self, f: &str) -> bool {
        let Ok(i) = self.find(f) else {
            return false;
        };
        self.0.remove(i);
        if self.0.is_empty() {
            self.0 = Vec::new();
        }
        true
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    /// The filters, parsed again (each was valid when it was added, so
    /// none is skipped).
    fn filters(&self) -> impl Iterator<Item = SubscriptionFilter> + '_ {
        self.0
            .iter()
            .filter_map(|f| SubscriptionFilter::try_from(&**f).ok())
    }
}

/// An owned copy of a string: of one received in a packet (a slice of the
/// whole packet's buffer, which a handle would keep alive), or of a
/// session's (whose first handle clone would allocate a shared header
/// that the session then keeps for its whole life).
fn owned(s: &MqttString) -> MqttString {
    MqttString::try_from(s.as_str().to_owned()).unwrap_or_else(|_| s.clone())
}

/// Per-subscription data kept in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SubOpts {
    qos: QoS,
    no_local: bool,
    retain_as_published: bool,
    id: Option<SubscriptionId>,
}

/// A retained message.
#[derive(Debug, Clone)]
struct Retained {
    msg: Publish,
    expires_at: Option<Instant>,
}

/// A message waiting for a session.
#[derive(Debug, Clone)]
struct Queued {
    msg: Publish,
    expires_at: Option<Instant>,
    bytes: usize,
    /// Store id of the copy (0: not stored).
    msg_id: u64,
}

type SessionKey = Key;

/// Messages waiting for a session, and the store ids of its copies in
/// flight. Boxed on first use and given back when empty: most sessions
/// never queue (their messages go straight out), and the three tables take
/// 64 bytes inline.
#[derive(Debug, Default)]
struct Backlog {
    queue: VecDeque<Queued>,
    /// Bytes of the messages in `queue`.
    bytes: usize,
    /// Store ids of the copies in flight, by packet id (persistent
    /// sessions with a [`Store`] only).
    inflight: BTreeMap<u16, u64>,
}

impl Backlog {
    fn push(&mut self, q: Queued) {
        self.bytes += q.bytes;
        self.queue.push_back(q);
    }

    fn pop(&mut self) -> Option<Queued> {
        let q = self.queue.pop_front()?;
        self.bytes -= q.bytes;
        Some(q)
    }

    fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.inflight.is_empty()
    }
}

/// What only a session without a connection holds: one box for both (a
/// connected session holds one pointer).
#[derive(Debug, Default)]
struct Offline {
    /// QoS tables while no connection holds them.
    flows: Option<SessionState>,
    /// A Will waiting for its delay, and when it is due (boxed: 240
    /// bytes, rarely present).
    will: Option<Box<(LastWill, Instant)>>,
}

#[derive(Debug)]
struct Session {
    client_id: MqttString,
    /// The user name that owns the session (`None`: anonymous); boxed, as
    /// a string takes 32 bytes inline.
    owner: Option<Box<MqttString>>,
    conn: Option<ConnectionId>,
    subs: SubList,
    backlog: Option<Box<Backlog>>,
    /// What only a disconnected session holds; `None` when empty.
    offline: Option<Box<Offline>>,
    /// Session Expiry Interval in force, seconds.
    expiry: u32,
    expires_at: Option<Tick>,
    /// Deadline currently in the timer heap.
    armed: Option<Tick>,
}

impl Session {
    /// A new session of `client_id`, not yet connected.
    fn new(client_id: MqttString, expiry: u32) -> Self {
        Session {
            client_id,
            owner: None,
            conn: None,
            subs: SubList::default(),
            backlog: None,
            offline: None,
            expiry,
            expires_at: None,
            armed: None,
        }
    }

    /// Kept beyond its connection, so reported to the store.
    fn persistent(&self) -> bool {
        self.expiry > 0
    }

    fn backlog(&mut self) -> &mut Backlog {
        self.backlog.get_or_insert_with(Box::default)
    }

    /// Messages queued.
    fn queued(&self) -> usize {
        self.backlog.as_ref().map_or(0, |b| b.queue.len())
    }

    /// Bytes of the messages queued.
    fn queued_bytes(&self) -> usize {
        self.backlog.as_ref().map_or(0, |b| b.bytes)
    }

    /// The queued messages, oldest first.
    fn queue(&self) -> impl Iterator<Item = &Queued> {
        self.backlog.iter().flat_map(|b| b.queue.iter())
    }

    /// The user name that owns the session.
    fn owner(&self) -> Option<&MqttString> {
        self.owner.as_deref()
    }

    /// When the Will waiting for its delay is due.
    fn will_at(&self) -> Option<Instant> {
        self.offline.as_ref()?.will.as_ref().map(|w| w.1)
    }

    /// The Will waiting for its delay, taken out.
    fn take_will(&mut self) -> Option<LastWill> {
        let w = self.offline.as_mut()?.will.take();
        self.release_empty_offline();
        w.map(|w| w.0)
    }

    fn set_will(&mut self, will: LastWill, at: Instant) {
        self.offline.get_or_insert_with(Box::default).will = Some(Box::new((will, at)));
    }

    /// The QoS tables kept while disconnected.
    fn flows(&self) -> Option<&SessionState> {
        self.offline.as_ref()?.flows.as_ref()
    }

    fn take_flows(&mut self) -> Option<SessionState> {
        let f = self.offline.as_mut()?.flows.take();
        self.release_empty_offline();
        f
    }

    fn set_flows(&mut self, flows: Option<SessionState>) {
        match flows {
            Some(f) => self.offline.get_or_insert_with(Box::default).flows = Some(f),
            None => {
                let _ = self.take_flows();
            }
        }
    }

    fn release_empty_offline(&mut self) {
        if self
            .offline
            .as_ref()
            .is_some_and(|o| o.flows.is_none() && o.will.is_none())
        {
            self.offline = None;
        }
    }

    /// Gives the backlog back when it holds nothing.
    fn release_empty_backlog(&mut self) {
        if self.backlog.as_ref().is_some_and(|b| b.is_empty()) {
            self.backlog = None;
        }
    }
}

#[derive(Debug)]
struct Conn {
    server: ServerConnection,
    /// The session, once connected: its client id and owner (the user
    /// name) are this connection's.
    session: Option<SessionKey>,
    /// The CONNECT awaiting the wrapper's decision, then the Will.
    held: Option<Box<Held>>,
    /// Queued in `ready`.
    in_ready: bool,
    /// Deadline currently in the timer heap.
    armed: Option<Tick>,
}

/// What a connection holds beside its session, boxed (one pointer in
/// every connection): the two never coexist.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // always boxed: one allocation either way
enum Held {
    /// The CONNECT awaiting the wrapper's authentication decision.
    Connect(Box<Connect>),
    /// The Will, once connected (MQTT-3.1.2-7).
    Will(LastWill),
}

impl Conn {
    fn pending(&self) -> bool {
        matches!(self.held.as_deref(), Some(Held::Connect(_)))
    }

    fn take_pending(&mut self) -> Option<Box<Connect>> {
        match self.held.take().map(|b| *b) {
            Some(Held::Connect(c)) => Some(c),
            other => {
                self.held = other.map(Box::new);
                None
            }
        }
    }

    fn take_will(&mut self) -> Option<LastWill> {
        match self.held.take().map(|b| *b) {
            Some(Held::Will(w)) => Some(w),
            other => {
                self.held = other.map(Box::new);
                None
            }
        }
    }
}

/// A sans-IO MQTT broker: owns every server connection and session, routes
/// messages, keeps retained messages and wills. See the crate docs for the
/// call contract.
#[derive(Debug)]
pub struct Broker<H: Hooks = AllowAll, S: Store = MemoryOnly> {
    config: BrokerConfig,
    hooks: H,
    store: S,
    next_msg_id: u64,
    conns: Slab<Conn>,
    sessions: Slab<Session>,
    by_client: ClientIndex,
    /// `config.server`, shared by every connection.
    server_config: Arc<ServerConfig>,
    tree: SubscriptionTree<SessionKey, SubOpts>,
    retained: RetainedIndex<Retained>,
    retained_bytes: usize,
    timers: BinaryHeap<Reverse<TimerEntry>>,
    ready: VecDeque<ConnectionId>,
    events: VecDeque<Event>,
    scratch: Vec<(SessionKey, SubOpts)>,
    share_rr: usize,
    next_assigned: u64,
    stats: Stats,
    latest: Option<Instant>,
    /// The first `now`: what [`Tick`]s count from.
    epoch: Option<Instant>,
    sys_armed: bool,
    release_armed: bool,
}

impl Broker<AllowAll, MemoryOnly> {
    /// A broker with `config` and permissive hooks.
    pub fn new(config: BrokerConfig) -> Self {
        Broker::with_hooks(config, AllowAll)
    }
}

impl<H: Hooks> Broker<H, MemoryOnly> {
    /// A broker with `config` and `hooks`, state in memory only.
    pub fn with_hooks(config: BrokerConfig, hooks: H) -> Self {
        Broker::with_store(config, hooks, MemoryOnly)
    }
}

impl<H: Hooks, S: Store> Broker<H, S> {
    /// A broker with `config`, `hooks` and a persistent `store` (see
    /// [`Store`] for when it is called).
    pub fn with_store(mut config: BrokerConfig, hooks: H, store: S) -> Self {
        // The broker decides each acknowledgement's reason code.
        config.server.ack_mode = AckMode::Manual;
        Broker {
            server_config: Arc::new(config.server.clone()),
            config,
            hooks,
            store,
            next_msg_id: 1,
            conns: Slab::new(),
            sessions: Slab::new(),
            by_client: ClientIndex::new(),
            // Topics come from the network: wide tree nodes hash their
            // levels with a seed nobody can predict (std's per-process
            // random keys), so colliding levels cannot be computed.
            tree: SubscriptionTree::with_seed(random_seed()),
            retained: RetainedIndex::new(),
            retained_bytes: 0,
            timers: BinaryHeap::new(),
            ready: VecDeque::new(),
            events: VecDeque::new(),
            scratch: Vec::new(),
            share_rr: 0,
            next_assigned: 0,
            stats: Stats::default(),
            latest: None,
            epoch: None,
            sys_armed: false,
            release_armed: false,
        }
    }

    /// The hooks.
    pub fn hooks(&self) -> &H {
        &self.hooks
    }

    /// The hooks, to change their state (e.g. reload an ACL).
    pub fn hooks_mut(&mut self) -> &mut H {
        &mut self.hooks
    }

    /// The store.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Loads what a [`Store`] kept: persistent sessions (offline, expiring
    /// `expiry` seconds from `now`, their copies queued for delivery) and
    /// retained messages. Call before accepting connections.
    pub fn restore(
        &mut self,
        now: Instant,
        sessions: Vec<StoredSession>,
        retained: Vec<Publish>,
    ) -> Result<(), Error> {
        let now = self.touch(now);
        for msg in retained {
            if let Some(topic) = msg.topic.clone() {
                let expires_at = expiry_deadline(now, &msg);
                self.store_retained_quiet(&topic, &msg, expires_at);
            }
        }
        for stored in sessions {
            if self.session_of(&stored.client_id).is_some() {
                continue;
            }
            if self.sessions.len() >= self.config.max_sessions {
                return Err(Error::TooManySessions);
            }
            let expiry = stored.expiry.min(self.config.max_session_expiry).max(1);
            let mut session = Session::new(stored.client_id, expiry);
            session.owner = stored.owner.map(Box::new);
            session.expires_at = self.tick(now.checked_add(Duration::from_secs(u64::from(expiry))));
            for (id, msg) in stored.messages {
                self.next_msg_id = self.next_msg_id.max(id.saturating_add(1));
                let bytes = msg_bytes(&msg);
                // The expiry counts again from the restore (the time spent
                // before the restart is not known).
                let expires_at = expiry_deadline(now, &msg);
                session.backlog().push(Queued {
                    msg,
                    expires_at,
                    bytes,
                    msg_id: id,
                });
            }
            let Some(key) = self.sessions.insert(session) else {
                return Err(Error::TooManySessions);
            };
            for (filter, s) in stored.subscriptions {
                let opts = SubOpts {
                    qos: s.qos,
                    no_local: s.no_local,
                    retain_as_published: s.retain_as_published,
                    id: s.subscription_id,
                };
                self.tree.subscribe(&filter, key, opts);
                if let Some(sess) = self.sessions.get_mut(key) {
                    sess.subs.insert(&filter.to_string());
                }
            }
            self.index_session(key);
            self.arm_session(key);
        }
        Ok(())
    }

    /// The settings.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        s.connections = self.conns.len();
        s.sessions = self.sessions.len();
        s.retained_messages = self.retained.len();
        s.subscriptions = self.tree.len();
        s
    }

    /// What the broker holds now, to check the bounds of [`BrokerConfig`]
    /// from tests (feature `testing`).
    #[cfg(feature = "testing")]
    pub fn footprint(&self) -> crate::testing::Footprint {
        let mut f = crate::testing::Footprint {
            connections: self.conns.len(),
            sessions: self.sessions.len(),
            client_ids: self.by_client.len(),
            retained_messages: self.retained.len(),
            retained_bytes: self.retained_bytes,
            ..Default::default()
        };
        for s in self.sessions.values() {
            f.subscriptions += s.subs.len();
            f.most_subscriptions = f.most_subscriptions.max(s.subs.len());
            f.largest_queue = f.largest_queue.max(s.queued());
            let bytes = s.queue().map(|q| msg_bytes(&q.msg)).sum();
            f.largest_queue_bytes = f.largest_queue_bytes.max(bytes);
        }
        f
    }

    /// The session holding `client_id`.
    fn session_of(&self, client_id: &MqttString) -> Option<SessionKey> {
        let sessions = &self.sessions;
        self.by_client.get(client_id.as_str().as_bytes(), |k| {
            sessions.get(k).map(|s| s.client_id.as_str().as_bytes())
        })
    }

    /// Records that session `key` (in the slab) holds its client id.
    fn index_session(&mut self, key: SessionKey) {
        let sessions = &self.sessions;
        let id_of = |k| sessions.get(k).map(|s| s.client_id.as_str().as_bytes());
        if let Some(id) = id_of(key) {
            self.by_client.insert(id, key, id_of);
        }
    }

    fn touch(&mut self, now: Instant) -> Instant {
        let now = match self.latest {
            Some(l) if l > now => l,
            _ => now,
        };
        self.latest = Some(now);
        let epoch = *self.epoch.get_or_insert(now);
        // The periodic timers, re-armed after each firing.
        let periodic = [
            (
                &mut self.release_armed,
                self.config.idle_release_interval,
                Timer::Release,
            ),
            (&mut self.sys_armed, self.config.sys_interval, Timer::Sys),
        ];
        for (armed, interval, timer) in periodic {
            if let (false, Some(iv)) = (*armed, interval) {
                *armed = true;
                if let Some(t) = now.checked_add(iv) {
                    self.timers
                        .push(Reverse(TimerEntry::new(Tick::at(epoch, t), timer)));
                }
            }
        }
        now
    }

    /// `t` as a deadline tick (`None` stays `None`: never). The epoch is
    /// set by the first `touch`, which every entry point calls first.
    fn tick(&self, t: Option<Instant>) -> Option<Tick> {
        Some(Tick::at(self.epoch?, t?))
    }

    // ---- connections ----

    /// A transport was accepted: returns its id. Refused with
    /// [`Error::TooManyConnections`] at `max_connections` (close the
    /// transport).
    pub fn accept(&mut self, now: Instant) -> Result<ConnectionId, Error> {
        let now = self.touch(now);
        if self.conns.len() >= self.config.max_connections {
            return Err(Error::TooManyConnections);
        }
        let conn = Conn {
            server: ServerConnection::new(Arc::clone(&self.server_config), now),
            session: None,
            held: None,
            in_ready: false,
            armed: None,
        };
        let key = self.conns.insert(conn).ok_or(Error::TooManyConnections)?;
        let id = ConnectionId(key);
        self.arm_conn(id);
        Ok(id)
    }

    /// Bytes read from connection `id`'s transport.
    pub fn handle_read(&mut self, id: ConnectionId, now: Instant, bytes: &[u8]) {
        let now = self.touch(now);
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        self.stats.bytes_in += bytes.len() as u64;
        c.server.handle_read(now, bytes);
        self.drive(now, id);
    }

    /// Connection `id`'s transport closed.
    pub fn handle_closed(&mut self, id: ConnectionId, now: Instant) {
        let now = self.touch(now);
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        c.server.handle_closed(now);
        self.drive(now, id);
        // The transport is gone: nothing more to write, no Close to ask for.
        if let Some(c) = self.conns.get_mut(id.0) {
            while c.server.poll_transmit().is_some() {}
        }
        self.conns.remove(id.0);
    }

    /// Closes connection `id` (DISCONNECT 0x98 Administrative action in
    /// 5.0).
    pub fn close(&mut self, id: ConnectionId, now: Instant) -> Result<(), Error> {
        self.disconnect(id, now, DisconnectReasonCode::AdministrativeAction)
    }

    /// Closes connection `id` with a DISCONNECT carrying `reason` in 5.0
    /// (for example 0x8B Server shutting down, 0x9C Use another server);
    /// 3.1.1 connections are just closed.
    pub fn disconnect(
        &mut self,
        id: ConnectionId,
        now: Instant,
        reason: DisconnectReasonCode,
    ) -> Result<(), Error> {
        let now = self.touch(now);
        let c = self.conns.get_mut(id.0).ok_or(Error::UnknownConnection)?;
        let _ = c
            .server
            .disconnect(now, reason, DisconnectProperties::default());
        self.drive(now, id);
        Ok(())
    }

    /// Answers [`Event::Authenticate`] / [`Event::AuthStep`].
    pub fn authenticated(
        &mut self,
        id: ConnectionId,
        now: Instant,
        decision: AuthDecision,
    ) -> Result<(), Error> {
        let now = self.touch(now);
        let c = self.conns.get_mut(id.0).ok_or(Error::UnknownConnection)?;
        if !c.pending() {
            return Err(Error::NoPendingAuthentication);
        }
        if decision == AuthDecision::Defer {
            // Still undecided: keep waiting (under the connect deadline).
            return Ok(());
        }
        if let Some(connect) = c.take_pending() {
            self.decide(now, id, connect, decision);
        }
        self.drive(now, id);
        Ok(())
    }

    /// Sends an AUTH 0x18 with `data` in an enhanced authentication.
    pub fn auth_continue(
        &mut self,
        id: ConnectionId,
        now: Instant,
        data: Option<Bytes>,
    ) -> Result<(), Error> {
        let now = self.touch(now);
        let c = self.conns.get_mut(id.0).ok_or(Error::UnknownConnection)?;
        c.server
            .auth_continue(now, data, AuthProperties::default())
            .map_err(Error::Session)?;
        self.drive(now, id);
        Ok(())
    }

    /// Ends a re-authentication (an [`Event::AuthStep`] with reason 0x19
    /// and what followed) successfully: AUTH 0x00 with `data`. A failed
    /// re-authentication is a [`disconnect`](Self::disconnect) with 0x87
    /// (MQTT-4.12.1-2).
    pub fn reauthenticated(
        &mut self,
        id: ConnectionId,
        now: Instant,
        data: Option<Bytes>,
    ) -> Result<(), Error> {
        let now = self.touch(now);
        let c = self.conns.get_mut(id.0).ok_or(Error::UnknownConnection)?;
        c.server
            .auth_success(now, data, AuthProperties::default())
            .map_err(Error::Session)?;
        self.drive(now, id);
        Ok(())
    }

    /// Publishes a message from the application (not from a client): it is
    /// routed like a client's, retained if flagged.
    pub fn publish(&mut self, now: Instant, msg: Publish) -> Result<usize, Error> {
        let now = self.touch(now);
        if msg.topic.is_none() {
            return Err(Error::MissingTopic);
        }
        let n = self.route(now, None, msg);
        Ok(n)
    }

    // ---- time ----

    /// Time has reached the deadline from `poll_timeout` (a spurious call
    /// does nothing).
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.touch(now);
        let Some(epoch) = self.epoch else {
            return;
        };
        while let Some(Reverse(entry)) = self.timers.peek().copied() {
            let (t, timer) = (entry.at(), entry.timer());
            if !t.due(epoch, now) {
                break;
            }
            self.timers.pop();
            match timer {
                Timer::Conn(key) => {
                    let id = ConnectionId(key);
                    let Some(c) = self.conns.get_mut(key) else {
                        continue;
                    };
                    if c.armed != Some(t) {
                        continue;
                    }
                    c.armed = None;
                    c.server.handle_timeout(now);
                    self.drive(now, id);
                }
                Timer::Session(key) => {
                    let Some(s) = self.sessions.get_mut(key) else {
                        continue;
                    };
                    if s.armed != Some(t) {
                        continue;
                    }
                    s.armed = None;
                    self.session_timer(now, key);
                }
                Timer::Sys => {
                    self.sys_armed = false;
                    self.publish_sys(now);
                    let _ = self.touch(now);
                }
                Timer::Release => {
                    // Connections without a keep alive get no keep-alive
                    // check: this is theirs (see `idle_release_interval`).
                    self.release_armed = false;
                    for c in self.conns.values_mut() {
                        c.server.release_idle_memory();
                    }
                    let _ = self.touch(now);
                }
            }
        }
    }

    /// When to call `handle_timeout` next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let epoch = self.epoch?;
        self.timers
            .peek()
            .and_then(|Reverse(e)| e.at().instant(epoch))
    }

    // ---- outputs ----

    /// Bytes to write to one connection's transport.
    pub fn poll_transmit(&mut self) -> Option<(ConnectionId, Bytes)> {
        while let Some(id) = self.ready.pop_front() {
            let Some(c) = self.conns.get_mut(id.0) else {
                continue;
            };
            if let Some(b) = c.server.poll_transmit() {
                if c.server.is_closed() {
                    // Come back for the Close once these bytes are out.
                    self.ready.push_back(id);
                } else {
                    c.in_ready = false;
                }
                self.stats.bytes_out += b.len() as u64;
                return Some((id, b));
            }
            c.in_ready = false;
            if c.server.is_closed() {
                self.conns.remove(id.0);
                self.events.push_back(Event::Close(id));
            }
        }
        None
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ---- internals: connection events ----

    fn arm_conn(&mut self, id: ConnectionId) {
        let Some(epoch) = self.epoch else {
            return;
        };
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        if let Some(t) = c.server.poll_timeout() {
            let t = Tick::at(epoch, t);
            if c.armed.is_none_or(|a| t < a) {
                c.armed = Some(t);
                self.timers
                    .push(Reverse(TimerEntry::new(t, Timer::Conn(id.0))));
            }
        }
    }

    fn arm_session(&mut self, key: SessionKey) {
        let Some(epoch) = self.epoch else {
            return;
        };
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        let will = s.will_at().map(|t| Tick::at(epoch, t));
        let t = match (will, s.expires_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(t) = t {
            if s.armed.is_none_or(|a| t < a) {
                s.armed = Some(t);
                self.timers
                    .push(Reverse(TimerEntry::new(t, Timer::Session(key))));
            }
        }
    }

    fn mark_ready(&mut self, id: ConnectionId) {
        if let Some(c) = self.conns.get_mut(id.0) {
            if !c.in_ready {
                c.in_ready = true;
                self.ready.push_back(id);
            }
        }
    }

    /// Processes connection `id`'s events until none is left.
    fn drive(&mut self, now: Instant, id: ConnectionId) {
        loop {
            let Some(c) = self.conns.get_mut(id.0) else {
                return;
            };
            let Some(ev) = c.server.poll_event() else {
                break;
            };
            match ev {
                ConnEvent::Connect(connect) => self.on_connect(now, id, connect),
                ConnEvent::Auth(auth) => self.events.push_back(Event::AuthStep { id, auth }),
                ConnEvent::Publish(p) => self.on_publish(now, id, p),
                ConnEvent::PubAck(a) => self.copy_done(now, id, Some(a.packet_id)),
                ConnEvent::PubComp(c) => self.copy_done(now, id, Some(c.packet_id)),
                ConnEvent::PubRecFailed(r) => self.copy_done(now, id, Some(r.packet_id)),
                ConnEvent::Dropped(p) => {
                    self.stats.messages_dropped += 1;
                    self.copy_done(now, id, p.packet_id());
                }
                ConnEvent::Subscribe(s) => self.on_subscribe(now, id, s),
                ConnEvent::Unsubscribe(u) => self.on_unsubscribe(now, id, u),
                ConnEvent::Closed(reason) => self.on_closed(now, id, reason),
                _ => {}
            }
        }
        self.mark_ready(id);
        self.arm_conn(id);
    }

    /// A copy in flight to connection `id` is finished: tell the store,
    /// then send what waits in the queue.
    fn copy_done(&mut self, now: Instant, id: ConnectionId, packet_id: Option<PacketId>) {
        let Some(key) = self.conns.get(id.0).and_then(|c| c.session) else {
            return;
        };
        if let (Some(pid), Some(s)) = (packet_id, self.sessions.get_mut(key)) {
            let done = s
                .backlog
                .as_mut()
                .and_then(|b| b.inflight.remove(&pid.get()));
            if let Some(msg_id) = done {
                self.store.message_done(&s.client_id, msg_id);
            }
        }
        self.pump(now, key);
    }

    fn on_connect(&mut self, now: Instant, id: ConnectionId, connect: Box<Connect>) {
        let decision = if connect.properties.authentication_method.is_some() {
            self.hooks.authenticate_enhanced(&connect)
        } else {
            self.hooks.authenticate(&connect)
        };
        self.decide(now, id, connect, decision);
    }

    /// Applies an authentication decision to the CONNECT of `id`.
    fn decide(&mut self, now: Instant, id: ConnectionId, connect: Box<Connect>, d: AuthDecision) {
        match d {
            AuthDecision::Allow => self.finish_connect(now, id, connect),
            AuthDecision::Deny(code) => {
                if let Some(c) = self.conns.get_mut(id.0) {
                    let _ = c.server.reject(now, code, ConnAckProperties::default());
                }
            }
            AuthDecision::Defer => {
                if let Some(c) = self.conns.get_mut(id.0) {
                    c.held = Some(Box::new(Held::Connect(connect.clone())));
                }
                self.events.push_back(Event::Authenticate { id, connect });
            }
        }
    }

    fn assign_client_id(&mut self) -> MqttString {
        loop {
            self.next_assigned += 1;
            let s = format!("auto-{:012x}", self.next_assigned);
            if let Ok(id) = MqttString::try_from(s) {
                if self.session_of(&id).is_none() {
                    return id; // MQTT-3.1.3-6 / MQTT-3.2.2-16: unique
                }
            }
        }
    }

    fn finish_connect(&mut self, now: Instant, id: ConnectionId, connect: Box<Connect>) {
        let v5 = connect.protocol.is_v5();
        let (client_id, assigned) = if connect.client_id.is_empty() {
            let a = self.assign_client_id();
            // Two copies, not two handles on one: a clone of a string
            // built from a `String` allocates a shared header that the
            // session would keep for its whole life.
            (owned(&a), Some(a))
        } else {
            // A copy: the received id is a slice of the whole CONNECT.
            (owned(&connect.client_id), None)
        };
        // Session Expiry Interval in force (MQTT-3.1.2-23).
        let requested = if v5 {
            connect.properties.session_expiry_interval.unwrap_or(0)
        } else if connect.clean_start {
            0
        } else {
            u32::MAX
        };
        let expiry = requested.min(self.config.max_session_expiry);

        // The Will is published in this client's name: a topic it may not
        // publish to refuses the CONNECT (0x87) rather than bypass the ACL.
        if let Some(w) = &connect.will {
            let info = ClientInfo {
                connection: id,
                client_id: &client_id,
                username: connect.username.as_ref(),
                version: connect.protocol,
            };
            if !self.hooks.may_publish(&info, &w.topic) {
                return self.refuse(now, id, ConnectReasonCode::NotAuthorized);
            }
        }

        let mut existing = self.session_of(&client_id);
        let username = connect.username.as_ref().map(owned);
        // A session owned by another user: the hook decides whether the
        // newcomer may take the client id over (default: no, 0x87), before
        // anything happens to the owner's connection.
        let owner = existing
            .and_then(|key| self.sessions.get(key))
            .map(|s| s.owner().map(owned));
        let foreign = owner.as_ref().is_some_and(|o| *o != username);
        if foreign {
            let info = ClientInfo {
                connection: id,
                client_id: &client_id,
                username: connect.username.as_ref(),
                version: connect.protocol,
            };
            let owner_name = owner.as_ref().and_then(Option::as_ref);
            if !self.hooks.may_replace_session(&info, owner_name) {
                return self.refuse(now, id, ConnectReasonCode::NotAuthorized);
            }
        }
        // Session takeover (MQTT-3.1.4-3): the old connection gets
        // DISCONNECT 0x8E and is closed; its session is detached first.
        if let Some(key) = existing {
            if let Some(old) = self.sessions.get(key).and_then(|s| s.conn) {
                if old != id {
                    if let Some(c) = self.conns.get_mut(old.0) {
                        let _ = c.server.disconnect(
                            now,
                            DisconnectReasonCode::SessionTakenOver,
                            DisconnectProperties::default(),
                        );
                    }
                    self.drive(now, old);
                }
            }
            // The session may have ended with the old connection.
            existing = self.session_of(&client_id);
        }
        if let Some(key) = existing {
            // A reconnection before the Will Delay: the Will is not sent
            // (MQTT-3.1.3-9).
            if let Some(s) = self.sessions.get_mut(key) {
                let _ = s.take_will();
            }
            if connect.clean_start || foreign {
                // MQTT-3.1.2-4: Clean Start discards the session. So does
                // another user taking the client id (allowed by the hook):
                // a session's subscriptions and queued messages were
                // authorized for its owner, and must not reach someone
                // else.
                self.end_session(now, key, false);
                existing = None;
            }
        }
        let (key, session_present) = match existing {
            Some(key) => (key, true),
            None => {
                if self.sessions.len() >= self.config.max_sessions {
                    return self.refuse(now, id, ConnectReasonCode::QuotaExceeded);
                }
                // The session's own copy (see `owned`); `client_id` goes
                // to the `Connected` event.
                let s = Session::new(owned(&client_id), expiry);
                let Some(key) = self.sessions.insert(s) else {
                    return;
                };
                self.index_session(key);
                (key, false)
            }
        };
        let flows = self.sessions.get_mut(key).and_then(|s| {
            s.conn = Some(id);
            if expiry > 0 && (!session_present || s.expiry != expiry) {
                self.store
                    .session_saved(&client_id, username.as_ref(), expiry);
            } else if expiry == 0 && s.expiry > 0 {
                // No longer persistent: the store forgets it.
                self.store.session_ended(&client_id);
            }
            s.owner = username.map(Box::new);
            s.expiry = expiry;
            s.expires_at = None;
            s.take_flows()
        });
        let mut accept = if session_present {
            Accept::resume(flows.unwrap_or_default())
        } else {
            Accept::new()
        };
        if v5 {
            accept.assigned_client_id = assigned;
            if expiry != requested {
                // The server's own value wins (MQTT 5.0 §3.2.2.3.2).
                accept.properties.session_expiry_interval = Some(expiry);
            }
        }
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        if c.server.accept(now, accept).is_err() {
            // Cannot happen for a CONNECT just surfaced; refuse rather than
            // leave the client waiting.
            let _ = c.server.reject(
                now,
                ConnectReasonCode::UnspecifiedError,
                ConnAckProperties::default(),
            );
            if let Some(s) = self.sessions.get_mut(key) {
                s.conn = None;
            }
            return;
        }
        c.session = Some(key);
        // MQTT-3.1.2-7: the Will is kept with the session's connection.
        c.held = connect.will.clone().map(|w| Box::new(Held::Will(w)));
        let username = self.sessions.get(key).and_then(|s| s.owner().map(owned));
        self.events.push_back(Event::Connected {
            id,
            client_id,
            username,
            version: connect.protocol,
            session_present,
        });
        self.pump(now, key);
    }

    /// Refuses a CONNECT with `code` (mapped for 3.1.1 by the session).
    fn refuse(&mut self, now: Instant, id: ConnectionId, code: ConnectReasonCode) {
        if let Some(c) = self.conns.get_mut(id.0) {
            let _ = c.server.reject(now, code, ConnAckProperties::default());
        }
    }

    fn on_closed(&mut self, now: Instant, id: ConnectionId, reason: CloseReason) {
        let (key, will) = match self.conns.get_mut(id.0) {
            Some(c) => (c.session.take(), c.take_will()),
            None => return,
        };
        let client_id = key
            .and_then(|k| self.sessions.get(k))
            .map(|s| owned(&s.client_id));
        let flows = self
            .conns
            .get_mut(id.0)
            .and_then(|c| c.server.take_session());
        if let Some(key) = key {
            if let Some(s) = self.sessions.get_mut(key) {
                if s.conn == Some(id) {
                    s.conn = None;
                    s.set_flows(flows);
                    if let CloseReason::PeerDisconnected(d) = &reason {
                        if let Some(e) = d.properties.session_expiry_interval {
                            let e = e.min(self.config.max_session_expiry);
                            if e != s.expiry {
                                if e > 0 {
                                    self.store.session_saved(&s.client_id, s.owner(), e);
                                } else {
                                    self.store.session_ended(&s.client_id);
                                }
                            }
                            s.expiry = e;
                        }
                    }
                }
            }
            // The Will: every ending but DISCONNECT 0x00 (MQTT-3.14.4-3,
            // MQTT-3.1.2-10).
            let will = will.filter(|_| reason.publishes_will());
            let expiry = self.sessions.get(key).map_or(0, |s| s.expiry);
            if let Some(w) = will {
                let delay = w.properties.will_delay_interval.unwrap_or(0);
                if delay == 0 || expiry == 0 {
                    self.publish_will(now, w);
                } else if let Some(s) = self.sessions.get_mut(key) {
                    // Published after the delay or when the session ends,
                    // whichever is first (MQTT-3.1.2-8).
                    let at = now
                        .checked_add(Duration::from_secs(u64::from(delay.min(expiry))))
                        .unwrap_or(now);
                    s.set_will(w, at);
                }
            }
            let epoch = self.epoch;
            if expiry == 0 {
                self.end_session(now, key, true);
            } else if let Some(s) = self.sessions.get_mut(key) {
                let at = if expiry == u32::MAX {
                    None
                } else {
                    now.checked_add(Duration::from_secs(u64::from(expiry)))
                };
                s.expires_at = epoch.zip(at).map(|(e, t)| Tick::at(e, t));
                self.arm_session(key);
            }
        }
        self.events.push_back(Event::Disconnected {
            id,
            client_id,
            reason,
        });
    }

    fn session_timer(&mut self, now: Instant, key: SessionKey) {
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        if s.will_at().is_some_and(|t| t <= now) {
            if let Some(w) = s.take_will() {
                self.publish_will(now, w);
            }
        }
        let epoch = self.epoch.unwrap_or(now);
        let expired = self
            .sessions
            .get(key)
            .is_some_and(|s| s.conn.is_none() && s.expires_at.is_some_and(|t| t.due(epoch, now)));
        if expired {
            // MQTT-4.1.0-2: the session ends; a Will still waiting goes out
            // now (MQTT-3.1.2-8).
            self.end_session(now, key, true);
        } else {
            self.arm_session(key);
        }
    }

    /// Ends a session: its subscriptions leave the tree, its queue is
    /// dropped, a pending Will is published if `publish_will`.
    fn end_session(&mut self, now: Instant, key: SessionKey, publish_will: bool) {
        let Some(mut s) = self.sessions.remove(key) else {
            return;
        };
        self.by_client.remove(s.client_id.as_str().as_bytes(), key);
        for f in s.subs.filters() {
            self.tree.unsubscribe(&f, &key);
        }
        if s.persistent() {
            self.store.session_ended(&s.client_id);
        }
        let rerouted = self.reroute_shared(now, &s);
        self.stats.messages_dropped += (s.queued() - rerouted) as u64;
        if publish_will {
            if let Some(w) = s.take_will() {
                self.publish_will(now, w);
            }
        }
    }

    /// A share group member's session ended: what it was given through a
    /// shared subscription and has not acknowledged goes to another member
    /// of the group (MQTT 5.0 §4.8.2): its queued copies, and its QoS 1
    /// copies in flight. A QoS 2 copy in flight is not sent to anyone else
    /// (MQTT-4.8.2-5). A copy is taken as shared when one of the session's
    /// shared subscriptions matches its topic. Returns how many queued
    /// copies were rerouted.
    fn reroute_shared(&mut self, now: Instant, s: &Session) -> usize {
        let shares: Vec<mqtt_topic::SharedFilter> = s
            .subs
            .filters()
            .filter_map(|f| match f {
                SubscriptionFilter::Shared(sf) => Some(sf),
                SubscriptionFilter::Plain(_) => None,
            })
            .collect();
        if shares.is_empty() {
            return 0;
        }
        let in_flight = s.flows().map(|f| f.outbound()).unwrap_or_default();
        let in_flight_qos1 = in_flight.into_iter().filter_map(|m| match m {
            mqtt_session::OutboundMessage::Publish(p) if p.qos() == QoS::AtLeastOnce => {
                Some((p, None))
            }
            _ => None,
        });
        let queued = s.queue().map(|q| (q.msg.clone(), q.expires_at));
        let mut rerouted_queued = 0;
        for (from_queue, (mut msg, expires_at)) in queued
            .map(|m| (true, m))
            .chain(in_flight_qos1.map(|m| (false, m)))
        {
            let Some(topic) = msg.topic.clone() else {
                continue;
            };
            let Some(share) = shares
                .iter()
                .find(|sf| mqtt_topic::matches(sf.filter(), &topic))
            else {
                continue;
            };
            // Another member of that group, connected if possible.
            let mut pick: Option<(SessionKey, SubOpts)> = None;
            {
                let sessions = &self.sessions;
                let hooks = &mut self.hooks;
                self.tree.for_each_match(&topic, |m| {
                    if let Match::Shared(g) = m {
                        if g.share_name() != share.share_name() {
                            return;
                        }
                        for (k, v) in g.members() {
                            if !may_receive(hooks, sessions, *k, &topic) {
                                continue;
                            }
                            let connected = sessions.get(*k).is_some_and(|x| x.conn.is_some());
                            if pick.is_none() || connected {
                                pick = Some((*k, *v));
                            }
                            if connected {
                                break;
                            }
                        }
                    }
                });
            }
            let Some((key, opts)) = pick else { continue };
            if let Some(t) = expires_at {
                if t <= now {
                    self.stats.messages_expired += 1;
                    continue;
                }
                set_remaining_expiry(&mut msg, t, now);
            }
            msg.dup = false;
            msg.delivery = delivery(msg.qos().min(opts.qos));
            let mut ids = SubscriptionIds::default();
            if let Some(id) = opts.id {
                ids.push(id);
            }
            msg.properties.set_subscription_identifiers(ids);
            self.deliver(now, key, msg, expires_at);
            if from_queue {
                rerouted_queued += 1;
            }
        }
        rerouted_queued
    }

    fn publish_will(&mut self, now: Instant, w: LastWill) {
        let mut p = Publish::new(w.topic, w.payload);
        p.retain = w.retain; // MQTT-3.1.2-14 / MQTT-3.1.2-15
        p.delivery = match w.qos {
            QoS::AtMostOnce => mqtt_wire::Delivery::AtMostOnce,
            QoS::AtLeastOnce => mqtt_wire::Delivery::AtLeastOnce(PID1),
            QoS::ExactlyOnce => mqtt_wire::Delivery::ExactlyOnce(PID1),
        };
        let wp = w.properties;
        p.properties.payload_format_indicator = wp.payload_format_indicator;
        p.properties.message_expiry_interval = wp.message_expiry_interval;
        p.properties.set_content_type(wp.content_type);
        p.properties.set_response_topic(wp.response_topic);
        // Decoded from a CONNECT, so within Binary Data's 65,535 bytes.
        let _ = p.properties.set_correlation_data(wp.correlation_data);
        // MQTT-3.1.3-10: User Properties in their order.
        p.properties.set_user_properties(wp.user_properties);
        self.stats.wills_published += 1;
        self.route(now, None, p);
    }

    // ---- internals: messages ----

    fn client_info(
        &self,
        id: ConnectionId,
    ) -> Option<(MqttString, Option<MqttString>, ProtocolVersion)> {
        let c = self.conns.get(id.0)?;
        let s = self.sessions.get(c.session?)?;
        Some((
            owned(&s.client_id),
            s.owner().map(owned),
            c.server.version(),
        ))
    }

    fn on_publish(&mut self, now: Instant, id: ConnectionId, p: Publish) {
        self.stats.messages_in += 1;
        let Some(c) = self.conns.get(id.0) else {
            return;
        };
        let version = c.server.version();
        let Some((from, s)) = c.session.and_then(|k| Some((k, self.sessions.get(k)?))) else {
            return;
        };
        let Some(topic) = p.topic.clone() else {
            return;
        };
        // The session's strings are borrowed, not cloned: no reference
        // count per message.
        let info = ClientInfo {
            connection: id,
            client_id: &s.client_id,
            username: s.owner(),
            version,
        };
        let allowed = self.hooks.may_publish(&info, &topic);
        let packet_id = p.packet_id();
        let reason = if allowed {
            let n = self.route(now, Some(from), p);
            if n == 0 {
                PubAckReasonCode::NoMatchingSubscribers
            } else {
                PubAckReasonCode::Success
            }
        } else {
            self.stats.messages_dropped += 1;
            PubAckReasonCode::NotAuthorized
        };
        if let Some(pid) = packet_id {
            let reason = if version.is_v5() {
                reason
            } else {
                // 3.1.1 has no codes: acknowledged normally (MQTT-3.3.5-2).
                PubAckReasonCode::Success
            };
            if let Some(c) = self.conns.get_mut(id.0) {
                let _ = c.server.ack(now, pid, reason);
            }
        }
    }

    /// Routes `msg` to every matching session; returns how many sessions
    /// it was for. `from`: the publishing session and client id (No Local).
    fn route(&mut self, now: Instant, from: Option<SessionKey>, mut msg: Publish) -> usize {
        let Some(topic) = msg.topic.clone() else {
            return 0;
        };
        let expires_at = expiry_deadline(now, &msg);
        if msg.retain && self.config.server.retain_available {
            self.store_retained(&topic, &msg, expires_at);
        }
        // What subscribers receive never carries the publisher's DUP, id or
        // alias (MQTT-3.3.1-3).
        msg.dup = false;
        msg.properties.topic_alias = None;
        if msg.properties.has_subscription_identifiers() {
            msg.properties
                .set_subscription_identifiers(SubscriptionIds::default());
        }

        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let mut rr = self.share_rr;
        // Share groups' picks: a copy each, not merged (MQTT 5.0 §4.8.2).
        let mut shared: Vec<(SessionKey, SubOpts)> = Vec::new();
        {
            let sessions = &self.sessions;
            let hooks = &mut self.hooks;
            self.tree.for_each_match(&topic, |m| match m {
                Match::Subscriber { key, value } => scratch.push((*key, *value)),
                Match::Shared(g) => {
                    // Round robin, preferring a connected member, among the
                    // members that may receive it.
                    rr = rr.wrapping_add(1);
                    let n = g.len();
                    let mut pick = None;
                    for i in 0..n {
                        if let Some((k, v)) = g.pick(rr.wrapping_add(i)) {
                            if !may_receive(hooks, sessions, *k, &topic) {
                                continue;
                            }
                            if pick.is_none() {
                                pick = Some((*k, *v));
                            }
                            if sessions.get(*k).is_some_and(|s| s.conn.is_some()) {
                                pick = Some((*k, *v));
                                break;
                            }
                        }
                    }
                    if let Some(p) = pick {
                        shared.push(p);
                    }
                }
            });
        }
        self.share_rr = rr;
        // One delivery per session (MQTT-3.3.4-2..4): highest QoS, every
        // subscription identifier.
        scratch.sort_by_key(|(k, _)| *k);
        let mut delivered = 0;
        let mut i = 0;
        while i < scratch.len() {
            let Some(&(key, _)) = scratch.get(i) else {
                break;
            };
            let mut qos = None;
            let mut rap = false;
            let mut ids = SubscriptionIds::default();
            while let Some(&(k, o)) = scratch.get(i) {
                if k != key {
                    break;
                }
                i += 1;
                if o.no_local && from == Some(key) {
                    continue; // MQTT-3.8.3-3
                }
                qos = Some(qos.map_or(o.qos, |q: QoS| q.max(o.qos)));
                rap |= o.retain_as_published;
                if let Some(id) = o.id {
                    ids.push(id);
                }
            }
            let Some(granted) = qos else { continue };
            if !may_receive(&mut self.hooks, &self.sessions, key, &topic) {
                continue;
            }
            let mut out = msg.clone();
            // MQTT-3.8.4-8: the lower of published and granted QoS.
            let q = msg.qos().min(granted);
            out.delivery = delivery(q);
            // MQTT-3.3.1-12 / MQTT-3.3.1-13
            out.retain = rap && msg.retain;
            out.properties.set_subscription_identifiers(ids);
            self.deliver(now, key, out, expires_at);
            delivered += 1;
        }
        // A share group's copy carries only that subscription's QoS and
        // identifier (MQTT-3.3.4-5, MQTT-4.8.2-3), even for a member that
        // also has a matching non-shared subscription.
        for (key, o) in shared {
            let mut out = msg.clone();
            out.delivery = delivery(msg.qos().min(o.qos));
            out.retain = o.retain_as_published && msg.retain;
            let mut ids = SubscriptionIds::default();
            if let Some(id) = o.id {
                ids.push(id);
            }
            out.properties.set_subscription_identifiers(ids);
            self.deliver(now, key, out, expires_at);
            delivered += 1;
        }
        self.scratch = scratch;
        delivered
    }

    /// Sets or clears the retained message of `topic` and reports the
    /// change to the store.
    fn store_retained(&mut self, topic: &TopicName, msg: &Publish, expires_at: Option<Instant>) {
        match self.store_retained_quiet(topic, msg, expires_at) {
            Some(true) => self.store.retained(topic, Some(msg)),
            Some(false) => self.store.retained(topic, None),
            None => {}
        }
    }

    /// Sets (`Some(true)`), clears (`Some(false)`) or, over the bounds,
    /// leaves (`None`) the retained message of `topic`.
    fn store_retained_quiet(
        &mut self,
        topic: &TopicName,
        msg: &Publish,
        expires_at: Option<Instant>,
    ) -> Option<bool> {
        if msg.payload.is_empty() {
            // MQTT-3.3.1-6 / MQTT-3.3.1-7: an empty payload clears.
            let old = self.retained.remove(topic)?;
            self.retained_bytes -= msg_bytes(&old.msg);
            return Some(false);
        }
        let mut stored = msg.clone();
        stored.dup = false;
        stored.properties.topic_alias = None;
        if stored.properties.has_subscription_identifiers() {
            stored
                .properties
                .set_subscription_identifiers(SubscriptionIds::default());
        }
        let size = msg_bytes(&stored);
        let old = self.retained.get(topic).map(|r| msg_bytes(&r.msg));
        let after = self.retained_bytes - old.unwrap_or(0) + size;
        if (old.is_none() && self.retained.len() >= self.config.max_retained_messages)
            || after > self.config.max_retained_bytes
        {
            self.stats.retained_refused += 1;
            return None;
        }
        // MQTT-3.3.1-5: replaces the earlier one.
        self.retained.insert(
            topic.clone(),
            Retained {
                msg: stored,
                expires_at,
            },
        );
        self.retained_bytes = after;
        Some(true)
    }

    /// Hands `msg` to session `key`: sent now when its connection has
    /// quota and nothing queued, queued otherwise (within bounds). A copy
    /// kept for a persistent session (QoS 1/2, or queued) is reported to
    /// the store first.
    fn deliver(
        &mut self,
        now: Instant,
        key: SessionKey,
        msg: Publish,
        expires_at: Option<Instant>,
    ) {
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        let conn = s.conn;
        let qos0 = msg.qos() == QoS::AtMostOnce;
        let direct = conn.and_then(|cid| {
            let c = self.conns.get(cid.0)?;
            let ok =
                s.queued() == 0 && c.server.is_connected() && (qos0 || c.server.send_quota() > 0);
            ok.then_some(cid)
        });
        if conn.is_none() && qos0 && !self.config.queue_qos0_offline {
            return;
        }
        let bytes = msg_bytes(&msg);
        if direct.is_none()
            && (s.queued() >= self.config.max_queued_messages
                || s.queued_bytes() + bytes > self.config.max_queued_bytes)
        {
            // Bounded queue: the new copy is dropped and counted.
            self.stats.messages_dropped += 1;
            return;
        }
        let msg_id = if s.persistent() && (!qos0 || direct.is_none()) {
            let id = self.next_msg_id;
            self.next_msg_id += 1;
            self.store.message_added(&s.client_id, id, &msg);
            id
        } else {
            0
        };
        if let Some(cid) = direct {
            if let Some(c) = self.conns.get_mut(cid.0) {
                match c.server.publish(now, msg) {
                    Ok(pid) => {
                        self.stats.messages_out += 1;
                        if let (Some(pid), true) = (pid, msg_id != 0) {
                            s.backlog().inflight.insert(pid.get(), msg_id);
                        }
                    }
                    // Too large for this client: skipped (MQTT-3.1.2-25);
                    // other failures likewise.
                    Err(_) => {
                        self.stats.messages_dropped += 1;
                        if msg_id != 0 {
                            self.store.message_done(&s.client_id, msg_id);
                        }
                    }
                }
            }
            self.mark_ready(cid);
            return;
        }
        s.backlog().push(Queued {
            msg,
            expires_at,
            bytes,
            msg_id,
        });
        if conn.is_some() {
            self.pump(now, key);
        }
    }

    /// Sends queued messages while the session's connection has quota.
    fn pump(&mut self, now: Instant, key: SessionKey) {
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        let Some(cid) = s.conn else {
            return;
        };
        let Some(c) = self.conns.get_mut(cid.0) else {
            return;
        };
        if !c.server.is_connected() {
            return;
        }
        while let Some(b) = &mut s.backlog {
            let Some(front) = b.queue.front() else { break };
            if front.msg.qos() != QoS::AtMostOnce && c.server.send_quota() == 0 {
                break;
            }
            let Some(q) = b.pop() else { break };
            let mut msg = q.msg;
            if let Some(t) = q.expires_at {
                // MQTT-3.3.2-5: expired while waiting: not delivered.
                if t <= now {
                    self.stats.messages_expired += 1;
                    if q.msg_id != 0 {
                        self.store.message_done(&s.client_id, q.msg_id);
                    }
                    continue;
                }
                // MQTT-3.3.2-6: the time waited is subtracted.
                set_remaining_expiry(&mut msg, t, now);
            }
            match c.server.publish(now, msg) {
                Ok(Some(pid)) => {
                    self.stats.messages_out += 1;
                    if q.msg_id != 0 {
                        s.backlog().inflight.insert(pid.get(), q.msg_id);
                    }
                }
                Ok(None) => {
                    self.stats.messages_out += 1;
                    if q.msg_id != 0 {
                        self.store.message_done(&s.client_id, q.msg_id);
                    }
                }
                Err(_) => {
                    self.stats.messages_dropped += 1;
                    if q.msg_id != 0 {
                        self.store.message_done(&s.client_id, q.msg_id);
                    }
                }
            }
        }
        s.release_empty_backlog();
        if !c.in_ready {
            c.in_ready = true;
            self.ready.push_back(cid);
        }
    }

    fn on_subscribe(&mut self, now: Instant, id: ConnectionId, sub: Subscribe) {
        let Some((client_id, username, version)) = self.client_info(id) else {
            return;
        };
        let Some(key) = self.conns.get(id.0).and_then(|c| c.session) else {
            return;
        };
        let v5 = version.is_v5();
        let sub_id = sub.properties.subscription_identifier;
        let mut codes = Vec::with_capacity(sub.subscriptions.len());
        let mut retained_for: Vec<(mqtt_wire::TopicFilter, SubOpts)> = Vec::new();
        for s in &sub.subscriptions {
            // A copy: the received filter is a slice of the whole SUBSCRIBE,
            // which the session would otherwise keep alive.
            let filter =
                match SubscriptionFilter::try_from(Bytes::copy_from_slice(s.filter.as_bytes())) {
                    Ok(f) => f,
                    Err(_) => {
                        codes.push(SubAckReasonCode::TopicFilterInvalid);
                        continue;
                    }
                };
            let info = ClientInfo {
                connection: id,
                client_id: &client_id,
                username: username.as_ref(),
                version,
            };
            if !self.hooks.may_subscribe(&info, &filter) {
                codes.push(SubAckReasonCode::NotAuthorized);
                continue;
            }
            let Some(session) = self.sessions.get_mut(key) else {
                return;
            };
            let exists = session.subs.contains(s.filter.as_str());
            if !exists && session.subs.len() >= self.config.max_subscriptions_per_session {
                codes.push(SubAckReasonCode::QuotaExceeded);
                continue;
            }
            // Granted: at most the server's Maximum QoS (MQTT-3.2.2-10 lets
            // the client ask for any).
            let qos = s.options.qos.min(self.config.server.maximum_qos);
            let opts = SubOpts {
                qos,
                no_local: v5 && s.options.no_local,
                retain_as_published: v5 && s.options.retain_as_published,
                id: if v5 { sub_id } else { None },
            };
            // MQTT-3.8.4-3: the same filter replaces the subscription.
            session.subs.insert(s.filter.as_str());
            if session.persistent() {
                let stored = StoredSubscription {
                    qos: opts.qos,
                    no_local: opts.no_local,
                    retain_as_published: opts.retain_as_published,
                    subscription_id: opts.id,
                };
                self.store.subscribed(&session.client_id, &filter, &stored);
            }
            self.tree.subscribe(&filter, key, opts);
            codes.push(SubAckReasonCode::granted(qos));
            if let SubscriptionFilter::Plain(f) = &filter {
                // Retained messages: never for shared subscriptions.
                let send = match s.options.retain_handling {
                    RetainHandling::SendAtSubscribe => true, // MQTT-3.3.1-9
                    RetainHandling::SendIfNew => !exists,    // MQTT-3.3.1-10
                    _ => false,                              // MQTT-3.3.1-11
                };
                if send {
                    retained_for.push((f.clone(), opts));
                }
            }
        }
        if let Some(c) = self.conns.get_mut(id.0) {
            let _ = c
                .server
                .suback(now, sub.packet_id, codes, AckProperties::default());
        }
        for (filter, opts) in retained_for {
            self.send_retained(now, key, &filter, opts);
        }
        self.mark_ready(id);
    }

    fn send_retained(
        &mut self,
        now: Instant,
        key: SessionKey,
        filter: &mqtt_wire::TopicFilter,
        opts: SubOpts,
    ) {
        let mut found: Vec<(Publish, Option<Instant>)> = Vec::new();
        self.retained.for_each_match(filter, |_, r| {
            if r.expires_at.is_none_or(|t| t > now) {
                found.push((r.msg.clone(), r.expires_at));
            }
        });
        for (mut msg, expires_at) in found {
            let readable = msg
                .topic
                .as_ref()
                .is_some_and(|t| may_receive(&mut self.hooks, &self.sessions, key, t));
            if !readable {
                continue;
            }
            let q = msg.qos().min(opts.qos);
            msg.delivery = delivery(q);
            msg.retain = true; // sent because retained
            if let Some(id) = opts.id {
                let mut ids = SubscriptionIds::default();
                ids.push(id);
                msg.properties.set_subscription_identifiers(ids);
            }
            if let Some(t) = expires_at {
                set_remaining_expiry(&mut msg, t, now);
            }
            self.deliver(now, key, msg, expires_at);
        }
    }

    fn on_unsubscribe(&mut self, now: Instant, id: ConnectionId, u: Unsubscribe) {
        let Some(key) = self.conns.get(id.0).and_then(|c| c.session) else {
            return;
        };
        let mut codes = Vec::with_capacity(u.filters.len());
        for f in &u.filters {
            // MQTT-3.10.4-1: compared character by character.
            let code = match SubscriptionFilter::try_from(f.clone()) {
                Ok(filter) => {
                    let removed = match self.sessions.get_mut(key) {
                        Some(s) => {
                            let removed = s.subs.remove(f.as_str());
                            if removed && s.persistent() {
                                self.store.unsubscribed(&s.client_id, &filter);
                            }
                            removed
                        }
                        None => false,
                    };
                    if removed {
                        self.tree.unsubscribe(&filter, &key);
                        UnsubAckReasonCode::Success
                    } else {
                        UnsubAckReasonCode::NoSubscriptionExisted
                    }
                }
                Err(_) => UnsubAckReasonCode::TopicFilterInvalid,
            };
            codes.push(code);
        }
        if let Some(c) = self.conns.get_mut(id.0) {
            let _ = c
                .server
                .unsuback(now, u.packet_id, codes, AckProperties::default());
        }
        self.mark_ready(id);
    }

    fn publish_sys(&mut self, now: Instant) {
        let s = self.stats();
        let items: [(&str, u64); 8] = [
            ("$SYS/broker/clients/connected", s.connections as u64),
            ("$SYS/broker/sessions", s.sessions as u64),
            ("$SYS/broker/subscriptions/count", s.subscriptions as u64),
            (
                "$SYS/broker/retained messages/count",
                s.retained_messages as u64,
            ),
            ("$SYS/broker/messages/received", s.messages_in),
            ("$SYS/broker/messages/sent", s.messages_out),
            ("$SYS/broker/bytes/received", s.bytes_in),
            ("$SYS/broker/bytes/sent", s.bytes_out),
        ];
        for (topic, v) in items {
            if let Ok(t) = TopicName::try_from(topic) {
                let p = Publish::new(t, Bytes::from(v.to_string())).with_retain(true);
                self.route(now, None, p);
            }
        }
    }
}

/// A placeholder packet id for messages in the router: the session
/// assigns the real one on sending.
// Evaluated at compile time: 1 is non-zero, so the panic cannot happen.
#[allow(clippy::panic)]
const PID1: mqtt_wire::PacketId = match mqtt_wire::PacketId::new(1) {
    Some(p) => p,
    None => panic!("1 is a valid packet id"),
};

/// A seed from std's randomly keyed hasher (random per process).
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// Whether the hooks let session `key` receive a message on `topic`
/// (`Hooks::may_receive`); a session that is gone receives nothing.
fn may_receive<H: Hooks>(
    hooks: &mut H,
    sessions: &Slab<Session>,
    key: SessionKey,
    topic: &TopicName,
) -> bool {
    let Some(s) = sessions.get(key) else {
        return false;
    };
    let recipient = Recipient {
        client_id: &s.client_id,
        username: s.owner(),
        connection: s.conn,
    };
    hooks.may_receive(&recipient, topic)
}

fn delivery(q: QoS) -> mqtt_wire::Delivery {
    match q {
        QoS::AtMostOnce => mqtt_wire::Delivery::AtMostOnce,
        QoS::AtLeastOnce => mqtt_wire::Delivery::AtLeastOnce(PID1),
        QoS::ExactlyOnce => mqtt_wire::Delivery::ExactlyOnce(PID1),
    }
}

/// When a message received (or restored) at `now` expires.
fn expiry_deadline(now: Instant, msg: &Publish) -> Option<Instant> {
    let secs = msg.properties.message_expiry_interval?;
    now.checked_add(Duration::from_secs(u64::from(secs)))
}

/// Sets the Message Expiry Interval to what is left of it at `now`,
/// rounded up (MQTT-3.3.2-6: the time waited in the server is subtracted).
fn set_remaining_expiry(msg: &mut Publish, expires_at: Instant, now: Instant) {
    let left = expires_at.saturating_duration_since(now);
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    msg.properties.message_expiry_interval = Some(u32::try_from(secs).unwrap_or(u32::MAX));
}

/// Bytes a message holds for bounds: topic plus payload.
fn msg_bytes(p: &Publish) -> usize {
    p.topic.as_ref().map_or(0, |t| t.len()) + p.payload.len()
}
