//! Where tokio has no `AsyncFd` (not Unix): no direct connections. Plain
//! TCP connections then get a task each, like TLS and WebSocket ones
//! (`net::accept_loop`); this `Direct` holds none and is never ready.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_broker::ConnectionId;

use crate::net::Core;

/// What [`Direct::send`] did with the bytes (only `Done` here).
#[allow(dead_code)]
pub(crate) enum Sent {
    Done,
    Slow,
    Failed,
}

/// An empty set of direct connections.
pub(crate) struct Direct;

impl Direct {
    /// Plain listeners are served by tasks on this platform.
    pub(crate) fn new(
        listeners: Vec<std::net::TcpListener>,
        _max_write_buffer: usize,
    ) -> io::Result<Self> {
        if listeners.is_empty() {
            Ok(Direct)
        } else {
            Err(io::Error::other("direct connections need Unix"))
        }
    }
    pub(crate) fn is_hot(&self) -> bool {
        false
    }
    pub(crate) async fn ready(&self) -> io::Result<()> {
        std::future::pending().await
    }
    pub(crate) fn deadline(&self) -> Option<Instant> {
        None
    }
    pub(crate) fn expire(&mut self, _now: Instant, _broker: &mut Core) {}
    pub(crate) fn turn(
        &mut self,
        _broker: &mut Core,
        _gone: &mut Vec<ConnectionId>,
    ) -> io::Result<()> {
        Ok(())
    }
    pub(crate) fn contains(&self, _id: ConnectionId) -> bool {
        false
    }
    pub(crate) fn ids(&self) -> impl Iterator<Item = ConnectionId> + '_ {
        std::iter::empty()
    }
    pub(crate) fn peer(&self, _id: ConnectionId) -> Option<SocketAddr> {
        None
    }
    pub(crate) fn send(&mut self, _id: ConnectionId, _bytes: Bytes) -> Sent {
        Sent::Done
    }
    pub(crate) fn close(&mut self, _id: ConnectionId, _now: Instant) -> bool {
        false
    }
    pub(crate) fn kill(&mut self, _id: ConnectionId) {}
    pub(crate) fn failed(
        &mut self,
        _id: ConnectionId,
        _now: Instant,
        _broker: &mut Core,
        _gone: &mut Vec<ConnectionId>,
    ) {
    }
    pub(crate) fn forget_ended(&mut self) {}
    pub(crate) async fn linger(self, _limit: Duration) {}
}
