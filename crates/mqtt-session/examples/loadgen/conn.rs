//! One MQTT connection of the load generator: a TCP stream and the
//! sans-IO [`Client`] that speaks over it.
//!
//! Reading: the socket is drained without waiting into one scratch buffer
//! shared by every connection of the thread (10,000 idle connections must
//! not hold 10,000 read buffers), and each chunk goes to
//! [`Client::handle_read`], which keeps only an incomplete packet.
//!
//! Writing: everything [`Client::poll_transmit`] has is gathered into one
//! buffer and written with one `write_all`: the publishers call `publish`
//! as many times as their window allows, then write once.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqtt_session::client::{Client, ClientConfig, Event};
use mqtt_session::CloseReason;
use mqtt_wire::{
    Connect, DisconnectProperties, DisconnectReasonCode, SubscribeProperties, Subscription,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Bytes read from a socket at most per `read` call.
const SCRATCH_SIZE: usize = 64 * 1024;
/// Reads per [`Conn::read_ready`] call at most, so that one busy
/// connection does not starve the others of the thread.
const READS_PER_TURN: usize = 4;
/// Time allowed for TCP connect + CONNACK, and for SUBACK.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

thread_local! {
    /// The read buffer every connection of this thread shares (no await
    /// happens while it is borrowed).
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH_SIZE]);
}

/// A connected client.
pub(crate) struct Conn {
    /// The session state machine.
    pub(crate) client: Client,
    stream: TcpStream,
    /// Output gathered from several `poll_transmit` chunks.
    wbuf: BytesMut,
}

impl Conn {
    /// Dials `addr`, sends `connect` and waits for a successful CONNACK.
    pub(crate) async fn open(addr: SocketAddr, connect: Connect) -> Result<Conn, String> {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, Self::open_inner(addr, connect)).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no CONNACK from {addr} within {HANDSHAKE_TIMEOUT:?}"
            )),
        }
    }

    async fn open_inner(addr: SocketAddr, connect: Connect) -> Result<Conn, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("TCP_NODELAY: {e}"))?;
        let mut config = ClientConfig::new(connect);
        // The same bytes to every broker: aliases depend on what each one
        // announces (mosquitto: 10, ours: its --topic-alias-maximum).
        config.topic_aliases = false;
        let mut conn = Conn {
            client: Client::new(config),
            stream,
            wbuf: BytesMut::new(),
        };
        conn.client
            .connect(Instant::now())
            .map_err(|e| format!("CONNECT: {e:?}"))?;
        conn.flush().await;
        loop {
            while let Some(event) = conn.client.poll_event() {
                match event {
                    Event::Connected { .. } => return Ok(conn),
                    Event::Disconnected(reason) => {
                        return Err(format!(
                            "connection to {addr} failed: {}",
                            describe(&reason)
                        ))
                    }
                    _ => {}
                }
            }
            conn.wait_read().await;
            conn.flush().await;
        }
    }

    /// Subscribes and waits for a SUBACK granting every filter.
    pub(crate) async fn subscribe(&mut self, subs: Vec<Subscription>) -> Result<(), String> {
        let sub = async {
            let id = self
                .client
                .subscribe(Instant::now(), subs, SubscribeProperties::default())
                .map_err(|e| format!("SUBSCRIBE: {e:?}"))?;
            self.flush().await;
            loop {
                while let Some(event) = self.client.poll_event() {
                    match event {
                        Event::SubAck(ack) if ack.packet_id == id => {
                            return match ack.reason_codes.iter().find(|c| c.is_error()) {
                                Some(code) => Err(format!("subscription refused: {code}")),
                                None => Ok(()),
                            };
                        }
                        Event::Disconnected(reason) => {
                            return Err(format!(
                                "disconnected while subscribing: {}",
                                describe(&reason)
                            ))
                        }
                        _ => {}
                    }
                }
                self.wait_read().await;
                self.flush().await;
            }
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, sub).await {
            Ok(r) => r,
            Err(_) => Err(format!("no SUBACK within {HANDSHAKE_TIMEOUT:?}")),
        }
    }

    /// Waits until the socket is readable, then reads what it has.
    pub(crate) async fn wait_read(&mut self) {
        match self.stream.readable().await {
            Ok(()) => self.read_ready(),
            Err(_) => self.client.handle_closed(Instant::now()),
        }
    }

    /// Waits until the socket is readable (for `select!`); follow with
    /// [`Conn::read_ready`].
    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.stream.readable().await
    }

    /// Reads what the socket has now, without waiting, into the client. At
    /// the end of the stream or on an error the client is told the
    /// transport closed.
    pub(crate) fn read_ready(&mut self) {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            for _ in 0..READS_PER_TURN {
                match self.stream.try_read(&mut scratch) {
                    Ok(0) => {
                        self.client.handle_closed(Instant::now());
                        return;
                    }
                    Ok(n) => {
                        let chunk = scratch.get(..n).unwrap_or_default();
                        self.client.handle_read(Instant::now(), chunk);
                        if n < scratch.len() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        self.client.handle_closed(Instant::now());
                        return;
                    }
                }
            }
        });
    }

    /// Writes everything the client has to send, as one write. A failed
    /// write closes the client.
    pub(crate) async fn flush(&mut self) {
        let mut single: Option<Bytes> = None;
        while let Some(chunk) = self.client.poll_transmit() {
            if let Some(first) = single.take() {
                self.wbuf.extend_from_slice(&first);
            }
            if self.wbuf.is_empty() {
                single = Some(chunk);
            } else {
                self.wbuf.extend_from_slice(&chunk);
            }
        }
        let r = match single {
            Some(chunk) => self.stream.write_all(&chunk).await,
            None if !self.wbuf.is_empty() => {
                let r = self.stream.write_all(&self.wbuf).await;
                self.wbuf.clear();
                r
            }
            None => return,
        };
        if r.is_err() {
            self.client.handle_closed(Instant::now());
        }
    }

    /// Sends DISCONNECT (when still connected) and closes the stream.
    pub(crate) async fn close(mut self) {
        if self.client.is_connected() {
            let _ = self.client.disconnect(
                Instant::now(),
                DisconnectReasonCode::NormalDisconnection,
                DisconnectProperties::default(),
            );
            self.flush().await;
        }
        let _ = self.stream.shutdown().await;
    }
}

/// A connection's ending, for error messages.
pub(crate) fn describe(reason: &CloseReason) -> String {
    match reason {
        CloseReason::PeerDisconnected(d) => {
            format!("DISCONNECT from the broker: {}", d.reason_code)
        }
        CloseReason::TransportClosed => "connection closed".to_owned(),
        CloseReason::Refused(c) => format!("CONNACK {}", c.reason_code),
        other => format!("{other:?}"),
    }
}
