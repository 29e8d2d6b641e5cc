//! The two jobs: `pub` publishes messages and waits for their
//! acknowledgements; `sub` subscribes and prints what arrives.

use std::collections::VecDeque;
use std::io::Write as _;
use std::time::Instant;

use bytes::Bytes;
use mqtt_session::client::{Client, Event};
use mqtt_session::Error;
use mqtt_wire::{Publish, QoS, SubscribeProperties, Subscription};
use tokio::sync::mpsc;

use crate::net::{log, Job};

/// Messages published per [`Job::step`] at most: what is encoded before
/// the loop writes it out (a bound on memory for QoS 0, which has no
/// window).
const STEP_BATCH: usize = 64;

/// Where `pub` takes its messages.
pub(crate) enum Source {
    /// The same payload, `left` more times (`-m`, `-n`, `-s`, `-f`).
    Repeat { payload: Bytes, left: u64 },
    /// One message per line of stdin (`-l`), read by a thread into a
    /// bounded channel: stdin is read no faster than the broker accepts.
    Lines(mpsc::Receiver<Bytes>),
    /// Nothing more.
    Done,
}

/// `pub`: publishes every message of its source, windowed by the
/// broker's Receive Maximum, and is done when all are acknowledged.
pub(crate) struct Publisher {
    /// Topic, QoS, retain and properties of every message.
    template: Publish,
    source: Source,
    /// Messages to publish before taking more from the source: one that
    /// met a full window, or those of a lost session. Bounded by the
    /// window (plus one).
    waiting: VecDeque<Publish>,
    /// QoS 1/2 messages published and not yet acknowledged.
    unacked: usize,
    /// Messages the broker refused or dropped.
    pub(crate) failures: usize,
    /// `step` stopped after a full batch with more to publish.
    more: bool,
    /// `--max-inflight`: QoS 1/2 messages in flight at most, below the
    /// broker's Receive Maximum (a 3.1.1 broker announces none, and
    /// mosquitto silently drops a 3.1.1 client's messages beyond its
    /// own limit of 20).
    max_inflight: usize,
}

impl Publisher {
    /// `unacked`: messages already in the session (`--session-file`).
    pub(crate) fn new(
        template: Publish,
        source: Source,
        unacked: usize,
        max_inflight: usize,
    ) -> Self {
        Publisher {
            template,
            source,
            waiting: VecDeque::new(),
            unacked,
            failures: 0,
            more: false,
            max_inflight: max_inflight.max(1),
        }
    }

    fn message(&self, payload: Bytes) -> Publish {
        let mut p = self.template.clone();
        p.payload = payload;
        p
    }

    /// The next message from a source that can answer at once.
    fn next_ready(&mut self) -> Option<Publish> {
        let payload = match &mut self.source {
            Source::Repeat { payload, left } if *left > 0 => {
                *left -= 1;
                payload.clone()
            }
            _ => return None,
        };
        Some(self.message(payload))
    }

    fn acknowledged(&mut self) {
        self.unacked = self.unacked.saturating_sub(1);
    }

    fn failed(&mut self, what: &str) {
        self.failures += 1;
        log(&format!("warning: {what}"));
    }
}

impl Job for Publisher {
    fn step(&mut self, client: &mut Client, now: Instant) -> Result<(), String> {
        self.more = false;
        for _ in 0..STEP_BATCH {
            if self.template.qos() != QoS::AtMostOnce && client.in_flight() >= self.max_inflight {
                return Ok(()); // our own window: wait for an acknowledgement
            }
            let Some(msg) = self.waiting.pop_front().or_else(|| self.next_ready()) else {
                return Ok(());
            };
            // Cheap: topic, payload and properties are reference counted.
            match client.publish(now, msg.clone()) {
                Ok(Some(_id)) => self.unacked += 1,
                Ok(None) => {} // QoS 0: sent, nothing to wait for
                Err(Error::WindowFull) => {
                    // Wait for an acknowledgement event, then retry.
                    self.waiting.push_front(msg);
                    return Ok(());
                }
                Err(e) => return Err(format!("cannot publish: {e}")),
            }
        }
        // A full batch: let the loop write it and look at its other
        // inputs before the next one (QoS 0 has no window to stop it).
        self.more = true;
        Ok(())
    }

    fn ready(&self) -> bool {
        self.more
    }

    fn event(&mut self, _client: &mut Client, _now: Instant, event: Event) -> Result<(), String> {
        match event {
            Event::PubAck(a) => {
                self.acknowledged();
                if a.reason_code.is_error() {
                    self.failed(&format!(
                        "publish {} refused: {}",
                        a.packet_id.get(),
                        a.reason_code
                    ));
                }
            }
            Event::PubRecFailed(r) => {
                self.acknowledged();
                self.failed(&format!(
                    "publish {} refused: {}",
                    r.packet_id.get(),
                    r.reason_code
                ));
            }
            // PUBCOMP 0x92 (Packet Identifier not found) answers a PUBREL
            // resent after a connection loss when the broker had completed
            // the flow and its PUBCOMP was lost with the connection: the
            // message was delivered; not a failure.
            Event::PubComp(_) => self.acknowledged(),
            Event::SessionLost {
                unacknowledged,
                unreleased,
            } => {
                // The broker did not keep the session: publish the
                // unacknowledged messages again, as new messages, first
                // and in order (at least once). The unreleased ones
                // reached the broker already.
                self.unacked = self
                    .unacked
                    .saturating_sub(unacknowledged.len() + unreleased.len());
                if !unacknowledged.is_empty() {
                    log(&format!(
                        "the broker did not keep the session: publishing {} messages again",
                        unacknowledged.len()
                    ));
                }
                for p in unacknowledged.into_iter().rev() {
                    self.waiting.push_front(p);
                }
            }
            Event::Dropped(p) => {
                self.acknowledged();
                let topic = p.topic.as_ref().map_or("", |t| t.as_str());
                self.failed(&format!(
                    "a stored message to '{topic}' exceeds the broker's new limits: dropped"
                ));
            }
            _ => {}
        }
        Ok(())
    }

    fn done(&self) -> bool {
        matches!(self.source, Source::Done | Source::Repeat { left: 0, .. })
            && self.waiting.is_empty()
            && self.unacked == 0
    }

    fn wants_input(&self) -> bool {
        matches!(self.source, Source::Lines(_)) && self.waiting.is_empty()
    }

    async fn input(&mut self) -> Option<Bytes> {
        match &mut self.source {
            Source::Lines(rx) => rx.recv().await,
            _ => None,
        }
    }

    fn push_input(&mut self, input: Option<Bytes>) {
        match input {
            Some(line) => {
                let msg = self.message(line);
                self.waiting.push_back(msg);
            }
            None => self.source = Source::Done,
        }
    }
}

/// How `sub` prints messages.
pub(crate) struct Printer {
    /// `-v`: topic, space, payload.
    pub(crate) verbose: bool,
    /// `-F`: mosquitto_sub's format.
    pub(crate) format: Option<String>,
    /// `-N`: no newline after each message.
    pub(crate) no_newline: bool,
}

/// `sub`: subscribes (again after a connection whose session is new) and
/// prints messages until `-C` of them arrived, or after the SUBACK with
/// `-E`.
pub(crate) struct Subscriber {
    subscriptions: Vec<Subscription>,
    properties: SubscribeProperties,
    /// Whether the session holds the subscriptions.
    subscribed: bool,
    /// A SUBSCRIBE is waiting for its SUBACK.
    requested: bool,
    /// `-C`.
    count: Option<u64>,
    received: u64,
    /// `-E`.
    exit_after_subscribe: bool,
    printer: Printer,
    finished: bool,
}

impl Subscriber {
    pub(crate) fn new(
        subscriptions: Vec<Subscription>,
        properties: SubscribeProperties,
        count: Option<u64>,
        exit_after_subscribe: bool,
        printer: Printer,
    ) -> Self {
        Subscriber {
            subscriptions,
            properties,
            subscribed: false,
            requested: false,
            count,
            received: 0,
            exit_after_subscribe,
            printer,
            finished: false,
        }
    }

    fn print(&self, p: &Publish) -> Result<(), String> {
        let bytes = crate::format::message(
            p,
            self.printer.verbose,
            self.printer.format.as_deref(),
            self.printer.no_newline,
        );
        let mut out = std::io::stdout().lock();
        out.write_all(&bytes)
            .and_then(|()| out.flush())
            .map_err(|e| format!("cannot write to stdout: {e}"))
    }
}

impl Job for Subscriber {
    fn step(&mut self, client: &mut Client, now: Instant) -> Result<(), String> {
        if !self.subscribed && !self.requested {
            client
                .subscribe(now, self.subscriptions.clone(), self.properties.clone())
                .map_err(|e| format!("cannot subscribe: {e}"))?;
            self.requested = true;
        }
        Ok(())
    }

    fn event(&mut self, _client: &mut Client, _now: Instant, event: Event) -> Result<(), String> {
        match event {
            // A new session has no subscriptions.
            Event::Connected {
                session_present: false,
                ..
            } => self.subscribed = false,
            Event::SubAck(s) => {
                self.requested = false;
                let refused: Vec<String> = self
                    .subscriptions
                    .iter()
                    .zip(&s.reason_codes)
                    .filter(|(_, c)| c.is_error())
                    .map(|(sub, c)| format!("{}: {c}", sub.filter.as_str()))
                    .collect();
                if refused.len() == s.reason_codes.len() {
                    return Err(format!(
                        "every subscription was refused ({})",
                        refused.join(", ")
                    ));
                }
                if !refused.is_empty() {
                    log(&format!(
                        "warning: subscription refused: {}",
                        refused.join(", ")
                    ));
                }
                self.subscribed = true;
                if self.exit_after_subscribe {
                    self.finished = true;
                }
            }
            // Its answer never came: subscribe again on the next connection.
            Event::RequestLost(_) => self.requested = false,
            Event::Publish(p) => {
                if self.count.is_some_and(|c| self.received >= c) {
                    return Ok(()); // -C reached; DISCONNECT is on its way
                }
                self.print(&p)?;
                self.received += 1;
                if self.count.is_some_and(|c| self.received >= c) {
                    self.finished = true;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn done(&self) -> bool {
        self.finished
    }
}
