//! `--persist DIR`: an append-only journal implementing the core's
//! [`Store`], so persistent sessions, their queued messages and retained
//! messages survive a restart, even `kill -9`.
//!
//! - Every [`Store`] call appends one record to `DIR/journal` (buffered)
//!   and updates an in-memory mirror of the durable state (message
//!   payloads are shared `Bytes`, not copies).
//! - The run loop calls [`Storage::sync`] before it hands out any bytes:
//!   one `fdatasync` per batch of inputs (group commit). The core reports a
//!   message to the store before it queues the PUBACK / PUBREC, so nothing
//!   acknowledged can be lost.
//! - At start-up the journal is replayed (a record cut short by a crash
//!   is ignored: it was never synced, so never acknowledged), then
//!   rewritten compactly from the mirror; it is compacted again whenever
//!   it grows past twice the live state.
//!
//! Record: `u32 length (LE) | u8 kind | body`; strings are `u16 length |
//! UTF-8`, messages are `u32 length | PUBLISH encoded as MQTT 5.0`.

use std::collections::{BTreeMap, HashMap};
use std::error::Error;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use mqtt_broker::{Store, StoredSession, StoredSubscription};
use mqtt_topic::SubscriptionFilter;
use mqtt_wire::{
    decode, DecodeConfig, Encode, MqttString, Packet, ProtocolVersion, Publish, QoS,
    SubscriptionId, TopicName,
};

const SESSION_SAVED: u8 = 1;
const SESSION_ENDED: u8 = 2;
const SUBSCRIBED: u8 = 3;
const UNSUBSCRIBED: u8 = 4;
const MESSAGE_ADDED: u8 = 5;
const MESSAGE_DONE: u8 = 6;
const RETAINED_SET: u8 = 7;
const RETAINED_CLEARED: u8 = 8;

/// Compact when the journal exceeds twice the live state plus this.
const COMPACT_SLACK: u64 = 16 * 1024 * 1024;

/// What the journal held, for `Broker::restore`.
pub(crate) struct Restored {
    pub(crate) sessions: Vec<StoredSession>,
    pub(crate) retained: Vec<Publish>,
}

/// The store the broker is built with: a journal, or nothing.
#[derive(Debug, Default)]
pub(crate) struct Storage(Option<Journal>);

#[derive(Debug, Default)]
struct MirrorSession {
    /// The owner's user name (`None`: anonymous).
    owner: Option<MqttString>,
    expiry: u32,
    subs: BTreeMap<String, (SubscriptionFilter, StoredSubscription)>,
    messages: BTreeMap<u64, Publish>,
}

/// The durable state, as the journal says it is.
#[derive(Debug, Default)]
struct Mirror {
    sessions: HashMap<MqttString, MirrorSession>,
    retained: HashMap<TopicName, Publish>,
}

#[derive(Debug)]
struct Journal {
    dir: PathBuf,
    file: BufWriter<File>,
    mirror: Mirror,
    /// Bytes in the journal file.
    written: u64,
    /// Bytes appended since the last sync.
    dirty: bool,
    /// The first write error: the journal can no longer be trusted.
    failed: Option<io::Error>,
    scratch: BytesMut,
}

impl Storage {
    /// No persistence.
    pub(crate) fn none() -> Self {
        Storage(None)
    }

    /// Opens (or creates) the journal in `dir`; returns what to hand to
    /// `Broker::restore`.
    pub(crate) fn open(dir: &Path) -> Result<(Self, Restored), Box<dyn Error>> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join("journal");
        let mut mirror = Mirror::default();
        match File::open(&path) {
            Ok(mut f) => {
                let mut data = Vec::new();
                f.read_to_end(&mut data)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                replay(&mut mirror, Bytes::from(data))
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read {}: {e}", path.display()).into()),
        }
        let (file, written) = write_snapshot(dir, &mirror)
            .map_err(|e| format!("cannot write the journal in {}: {e}", dir.display()))?;
        let sessions = mirror
            .sessions
            .iter()
            .map(|(id, s)| StoredSession {
                client_id: id.clone(),
                owner: s.owner.clone(),
                expiry: s.expiry,
                subscriptions: s.subs.values().cloned().collect(),
                messages: s.messages.iter().map(|(k, m)| (*k, m.clone())).collect(),
            })
            .collect();
        let retained = mirror.retained.values().cloned().collect();
        let journal = Journal {
            dir: dir.to_owned(),
            file,
            mirror,
            written,
            dirty: false,
            failed: None,
            scratch: BytesMut::new(),
        };
        Ok((Storage(Some(journal)), Restored { sessions, retained }))
    }

    /// Makes everything appended durable. Call before handing out bytes;
    /// an error means acknowledgements can no longer be honoured.
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        let Some(j) = &mut self.0 else {
            return Ok(());
        };
        if let Some(e) = j.failed.take() {
            return Err(e);
        }
        if !j.dirty {
            return Ok(());
        }
        j.file.flush()?;
        j.file.get_ref().sync_data()?;
        j.dirty = false;
        if j.written > 2 * j.live_bytes() + COMPACT_SLACK {
            let (file, written) = write_snapshot(&j.dir, &j.mirror)?;
            j.file = file;
            j.written = written;
        }
        Ok(())
    }
}

impl Journal {
    /// Rough size of the live state (what a snapshot would write).
    fn live_bytes(&self) -> u64 {
        let msg = |m: &Publish| 64 + m.payload.len() as u64;
        let sessions: u64 = self
            .mirror
            .sessions
            .values()
            .map(|s| 64 + 64 * s.subs.len() as u64 + s.messages.values().map(msg).sum::<u64>())
            .sum();
        sessions + self.mirror.retained.values().map(msg).sum::<u64>()
    }

    /// Appends one record built by `body`.
    fn append(&mut self, kind: u8, body: impl FnOnce(&mut BytesMut)) {
        if self.failed.is_some() {
            return;
        }
        self.scratch.clear();
        self.scratch.put_u32_le(0);
        self.scratch.put_u8(kind);
        body(&mut self.scratch);
        let len = u32::try_from(self.scratch.len() - 4).unwrap_or(u32::MAX);
        if let Some(head) = self.scratch.get_mut(..4) {
            head.copy_from_slice(&len.to_le_bytes());
        }
        match self.file.write_all(&self.scratch) {
            Ok(()) => {
                self.written += self.scratch.len() as u64;
                self.dirty = true;
            }
            Err(e) => self.failed = Some(e),
        }
    }
}

impl Store for Storage {
    fn session_saved(&mut self, client_id: &MqttString, owner: Option<&MqttString>, expiry: u32) {
        let Some(j) = &mut self.0 else { return };
        apply_session_saved(&mut j.mirror, client_id, owner.cloned(), expiry);
        j.append(SESSION_SAVED, |b| {
            put_session_saved(b, client_id, owner, expiry)
        });
    }

    fn session_ended(&mut self, client_id: &MqttString) {
        let Some(j) = &mut self.0 else { return };
        j.mirror.sessions.remove(client_id);
        j.append(SESSION_ENDED, |b| put_str(b, client_id.as_str()));
    }

    fn subscribed(
        &mut self,
        client_id: &MqttString,
        filter: &SubscriptionFilter,
        sub: &StoredSubscription,
    ) {
        let Some(j) = &mut self.0 else { return };
        let text = filter.to_string();
        j.mirror
            .sessions
            .entry(client_id.clone())
            .or_default()
            .subs
            .insert(text.clone(), (filter.clone(), *sub));
        j.append(SUBSCRIBED, |b| {
            put_str(b, client_id.as_str());
            put_str(b, &text);
            put_subscription(b, sub);
        });
    }

    fn unsubscribed(&mut self, client_id: &MqttString, filter: &SubscriptionFilter) {
        let Some(j) = &mut self.0 else { return };
        let text = filter.to_string();
        if let Some(s) = j.mirror.sessions.get_mut(client_id) {
            s.subs.remove(&text);
        }
        j.append(UNSUBSCRIBED, |b| {
            put_str(b, client_id.as_str());
            put_str(b, &text);
        });
    }

    fn message_added(&mut self, client_id: &MqttString, id: u64, message: &Publish) {
        let Some(j) = &mut self.0 else { return };
        j.mirror
            .sessions
            .entry(client_id.clone())
            .or_default()
            .messages
            .insert(id, message.clone());
        let mut failed = None;
        j.append(MESSAGE_ADDED, |b| {
            put_str(b, client_id.as_str());
            b.put_u64_le(id);
            if let Err(e) = put_publish(b, message) {
                failed = Some(e);
            }
        });
        if let Some(e) = failed {
            j.failed.get_or_insert(e);
        }
    }

    fn message_done(&mut self, client_id: &MqttString, id: u64) {
        let Some(j) = &mut self.0 else { return };
        if let Some(s) = j.mirror.sessions.get_mut(client_id) {
            s.messages.remove(&id);
        }
        j.append(MESSAGE_DONE, |b| {
            put_str(b, client_id.as_str());
            b.put_u64_le(id);
        });
    }

    fn retained(&mut self, topic: &TopicName, message: Option<&Publish>) {
        let Some(j) = &mut self.0 else { return };
        match message {
            Some(m) => {
                j.mirror.retained.insert(topic.clone(), m.clone());
                let mut failed = None;
                j.append(RETAINED_SET, |b| {
                    put_str(b, topic.as_str());
                    if let Err(e) = put_publish(b, m) {
                        failed = Some(e);
                    }
                });
                if let Some(e) = failed {
                    j.failed.get_or_insert(e);
                }
            }
            None => {
                j.mirror.retained.remove(topic);
                j.append(RETAINED_CLEARED, |b| put_str(b, topic.as_str()));
            }
        }
    }
}

fn apply_session_saved(
    mirror: &mut Mirror,
    client_id: &MqttString,
    owner: Option<MqttString>,
    expiry: u32,
) {
    let s = mirror.sessions.entry(client_id.clone()).or_default();
    s.owner = owner;
    s.expiry = expiry;
}

/// Body of a `SESSION_SAVED` record: client id, expiry, then the owner
/// (`0`, or `1` and the user name).
fn put_session_saved(
    b: &mut BytesMut,
    client_id: &MqttString,
    owner: Option<&MqttString>,
    expiry: u32,
) {
    put_str(b, client_id.as_str());
    b.put_u32_le(expiry);
    match owner {
        Some(u) => {
            b.put_u8(1);
            put_str(b, u.as_str());
        }
        None => b.put_u8(0),
    }
}

/// Writes the mirror to `DIR/journal.tmp`, syncs it and renames it over
/// `DIR/journal`: a crash leaves either the old or the new journal.
fn write_snapshot(dir: &Path, mirror: &Mirror) -> io::Result<(BufWriter<File>, u64)> {
    let tmp = dir.join("journal.tmp");
    let path = dir.join("journal");
    let file = File::create(&tmp)?;
    let mut j2 = Journal {
        dir: dir.to_owned(),
        file: BufWriter::new(file),
        mirror: Mirror::default(),
        written: 0,
        dirty: false,
        failed: None,
        scratch: BytesMut::new(),
    };
    for (id, sess) in &mirror.sessions {
        j2.append(SESSION_SAVED, |b| {
            put_session_saved(b, id, sess.owner.as_ref(), sess.expiry);
        });
        for (text, (_, sub)) in &sess.subs {
            j2.append(SUBSCRIBED, |b| {
                put_str(b, id.as_str());
                put_str(b, text);
                put_subscription(b, sub);
            });
        }
        for (mid, m) in &sess.messages {
            j2.append(MESSAGE_ADDED, |b| {
                put_str(b, id.as_str());
                b.put_u64_le(*mid);
                let _ = put_publish(b, m);
            });
        }
    }
    for (topic, m) in &mirror.retained {
        j2.append(RETAINED_SET, |b| {
            put_str(b, topic.as_str());
            let _ = put_publish(b, m);
        });
    }
    if let Some(e) = j2.failed.take() {
        return Err(e);
    }
    j2.file.flush()?;
    j2.file.get_ref().sync_all()?;
    let written = j2.written;
    drop(j2);
    std::fs::rename(&tmp, &path)?;
    // The rename itself must survive a crash.
    File::open(dir)?.sync_all()?;
    let file = OpenOptions::new().append(true).open(&path)?;
    Ok((BufWriter::new(file), written))
}

fn put_str(b: &mut BytesMut, s: &str) {
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    b.put_u16_le(len);
    b.put_slice(s.as_bytes().get(..usize::from(len)).unwrap_or_default());
}

fn put_subscription(b: &mut BytesMut, s: &StoredSubscription) {
    b.put_u8(s.qos as u8);
    b.put_u8(u8::from(s.no_local) | (u8::from(s.retain_as_published) << 1));
    b.put_u32_le(s.subscription_id.map_or(0, SubscriptionId::get));
}

fn put_publish(b: &mut BytesMut, m: &Publish) -> io::Result<()> {
    let mut p = BytesMut::new();
    m.encode(ProtocolVersion::V5, &mut p)
        .map_err(|e| io::Error::other(format!("cannot encode a message: {e}")))?;
    b.put_u32_le(u32::try_from(p.len()).map_err(io::Error::other)?);
    b.put_slice(&p);
    Ok(())
}

// ---- replay ----

type ReplayResult<T> = Result<T, String>;

fn get_str(b: &mut Bytes) -> ReplayResult<MqttString> {
    let len = usize::from(get_u16(b)?);
    if b.remaining() < len {
        return Err("string cut short".to_owned());
    }
    MqttString::try_from(b.split_to(len)).map_err(|e| format!("bad string: {e}"))
}

fn get_u8(b: &mut Bytes) -> ReplayResult<u8> {
    b.try_get_u8().map_err(|_| "record cut short".to_owned())
}

fn get_u16(b: &mut Bytes) -> ReplayResult<u16> {
    b.try_get_u16_le()
        .map_err(|_| "record cut short".to_owned())
}

fn get_u32(b: &mut Bytes) -> ReplayResult<u32> {
    b.try_get_u32_le()
        .map_err(|_| "record cut short".to_owned())
}

fn get_u64(b: &mut Bytes) -> ReplayResult<u64> {
    b.try_get_u64_le()
        .map_err(|_| "record cut short".to_owned())
}

fn get_publish(b: &mut Bytes) -> ReplayResult<Publish> {
    let len = get_u32(b)? as usize;
    if b.remaining() < len {
        return Err("message cut short".to_owned());
    }
    let mut p = BytesMut::from(&b.split_to(len)[..]);
    let cfg = DecodeConfig::new(ProtocolVersion::V5).with_max_packet_size(u32::MAX);
    match decode(&mut p, &cfg) {
        Ok(Some(Packet::Publish(m))) => Ok(m),
        Ok(_) => Err("not a PUBLISH".to_owned()),
        Err(e) => Err(format!("bad message: {e}")),
    }
}

fn get_subscription(b: &mut Bytes) -> ReplayResult<StoredSubscription> {
    let qos = QoS::from_u8(get_u8(b)?).ok_or("bad QoS")?;
    let flags = get_u8(b)?;
    let id = SubscriptionId::new(get_u32(b)?);
    Ok(StoredSubscription {
        qos,
        no_local: flags & 1 != 0,
        retain_as_published: flags & 2 != 0,
        subscription_id: id,
    })
}

/// Applies every complete record of `data` to `mirror`. A last record cut
/// short (a crash while writing it) is ignored; damage elsewhere is an
/// error.
fn replay(mirror: &mut Mirror, mut data: Bytes) -> ReplayResult<()> {
    let mut n = 0u64;
    while data.remaining() >= 4 {
        let Ok(len) = data.clone().try_get_u32_le() else {
            break;
        };
        let len = len as usize;
        if data.remaining() < 4 + len {
            break; // the tail of a crash: never synced, never acknowledged
        }
        data.advance(4);
        let mut rec = data.split_to(len);
        n += 1;
        apply(mirror, &mut rec).map_err(|e| format!("record {n}: {e}"))?;
    }
    Ok(())
}

fn apply(m: &mut Mirror, b: &mut Bytes) -> ReplayResult<()> {
    match get_u8(b)? {
        SESSION_SAVED => {
            let id = get_str(b)?;
            let expiry = get_u32(b)?;
            // Records written before owners were kept end here: anonymous.
            let owner = match b.has_remaining().then(|| get_u8(b)).transpose()? {
                None | Some(0) => None,
                Some(1) => Some(get_str(b)?),
                Some(x) => return Err(format!("bad owner flag {x}")),
            };
            apply_session_saved(m, &id, owner, expiry);
        }
        SESSION_ENDED => {
            let id = get_str(b)?;
            m.sessions.remove(&id);
        }
        SUBSCRIBED => {
            let id = get_str(b)?;
            let text = get_str(b)?;
            let sub = get_subscription(b)?;
            let filter = SubscriptionFilter::try_from(text.as_str())
                .map_err(|e| format!("bad filter: {e}"))?;
            let s = m.sessions.entry(id).or_default();
            s.subs.insert(text.as_str().to_owned(), (filter, sub));
        }
        UNSUBSCRIBED => {
            let id = get_str(b)?;
            let text = get_str(b)?;
            if let Some(s) = m.sessions.get_mut(&id) {
                s.subs.remove(text.as_str());
            }
        }
        MESSAGE_ADDED => {
            let id = get_str(b)?;
            let mid = get_u64(b)?;
            let msg = get_publish(b)?;
            m.sessions.entry(id).or_default().messages.insert(mid, msg);
        }
        MESSAGE_DONE => {
            let id = get_str(b)?;
            let mid = get_u64(b)?;
            if let Some(s) = m.sessions.get_mut(&id) {
                s.messages.remove(&mid);
            }
        }
        RETAINED_SET => {
            let topic = TopicName::try_from(get_str(b)?.as_str().to_owned())
                .map_err(|e| format!("bad topic: {e}"))?;
            let msg = get_publish(b)?;
            m.retained.insert(topic, msg);
        }
        RETAINED_CLEARED => {
            let topic = TopicName::try_from(get_str(b)?.as_str().to_owned())
                .map_err(|e| format!("bad topic: {e}"))?;
            m.retained.remove(&topic);
        }
        k => return Err(format!("unknown record kind {k}")),
    }
    Ok(())
}

#[cfg(test)]
// Tests: a failed unwrap is a failed test.
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use mqtt_wire::{Delivery, PacketId};

    fn temp_dir(name: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        std::env::temp_dir().join(format!(
            "broker-persist-{name}-{}-{nanos}",
            std::process::id()
        ))
    }

    fn msg(topic: &str, payload: &'static [u8]) -> Publish {
        Publish::new(
            TopicName::try_from(topic).unwrap(),
            Bytes::from_static(payload),
        )
        .with_delivery(Delivery::AtLeastOnce(PacketId::new(1).unwrap()))
    }

    #[test]
    fn journal_survives_reopen_and_ignores_a_cut_tail() {
        let dir = temp_dir("reopen");
        let (mut s, kept) = Storage::open(&dir).unwrap();
        assert!(kept.sessions.is_empty() && kept.retained.is_empty());
        let c = MqttString::try_from("c1").unwrap();
        let gone = MqttString::try_from("c2").unwrap();
        let f = SubscriptionFilter::try_from("a/#").unwrap();
        let sub = StoredSubscription {
            qos: QoS::AtLeastOnce,
            no_local: true,
            retain_as_published: false,
            subscription_id: SubscriptionId::new(7),
        };
        let alice = MqttString::try_from("alice").unwrap();
        s.session_saved(&c, Some(&alice), 300);
        s.subscribed(&c, &f, &sub);
        s.message_added(&c, 1, &msg("a/1", b"one"));
        s.message_added(&c, 2, &msg("a/2", b"two"));
        s.message_done(&c, 1);
        s.session_saved(&gone, None, 60);
        s.session_ended(&gone);
        let t = TopicName::try_from("r/1").unwrap();
        s.retained(&t, Some(&msg("r/1", b"kept").with_retain(true)));
        s.retained(
            &TopicName::try_from("r/2").unwrap(),
            Some(&msg("r/2", b"x")),
        );
        s.retained(&TopicName::try_from("r/2").unwrap(), None);
        s.sync().unwrap();
        drop(s);
        // A crash in the middle of a record: a length with half a body.
        let mut f2 = OpenOptions::new()
            .append(true)
            .open(dir.join("journal"))
            .unwrap();
        f2.write_all(&[200, 0, 0, 0, MESSAGE_ADDED, 1, 2]).unwrap();
        drop(f2);

        let (_s, kept) = Storage::open(&dir).unwrap();
        assert_eq!(kept.sessions.len(), 1);
        let session = &kept.sessions[0];
        assert_eq!(session.client_id, c);
        assert_eq!(session.owner, Some(alice));
        assert_eq!(session.expiry, 300);
        assert_eq!(session.subscriptions, vec![(f, sub)]);
        assert_eq!(session.messages.len(), 1);
        assert_eq!(session.messages[0].0, 2);
        assert_eq!(&session.messages[0].1.payload[..], b"two");
        assert_eq!(kept.retained.len(), 1);
        assert_eq!(&kept.retained[0].payload[..], b"kept");
        assert!(kept.retained[0].retain);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn damaged_journal_is_an_error() {
        let dir = temp_dir("damaged");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("journal"), [1, 0, 0, 0, 99]).unwrap();
        assert!(Storage::open(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
