//! The persistence contract: what the broker reports to its `Store`, in
//! which order, and that a broker restored from it delivers what was
//! acknowledged before the "crash".
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use mqtt_broker::{
    AllowAll, Broker, BrokerConfig, ConnectionId, Store, StoredSession, StoredSubscription,
};
use mqtt_session::client::{Client, ClientConfig, Event as ClientEvent};
use mqtt_topic::SubscriptionFilter;
use mqtt_wire::{
    Connect, Delivery, MqttString, PacketId, ProtocolVersion, Publish, QoS, SubscribeProperties,
    Subscription, SubscriptionOptions, TopicFilter, TopicName,
};

/// A store that keeps what it is told, and the order of the calls.
#[derive(Debug, Default)]
struct Recorded {
    log: Vec<String>,
    sessions: BTreeMap<MqttString, (u32, Vec<(SubscriptionFilter, StoredSubscription)>)>,
    owners: BTreeMap<MqttString, Option<MqttString>>,
    messages: BTreeMap<MqttString, Vec<(u64, Publish)>>,
    retained: BTreeMap<TopicName, Publish>,
}

#[derive(Debug, Clone, Default)]
struct Shared(Arc<Mutex<Recorded>>);

impl Store for Shared {
    fn session_saved(&mut self, client_id: &MqttString, owner: Option<&MqttString>, expiry: u32) {
        let mut r = self.0.lock().unwrap();
        r.log.push(format!("session {client_id} {expiry}"));
        r.owners.insert(client_id.clone(), owner.cloned());
        r.sessions.entry(client_id.clone()).or_default().0 = expiry;
    }
    fn session_ended(&mut self, client_id: &MqttString) {
        let mut r = self.0.lock().unwrap();
        r.log.push(format!("ended {client_id}"));
        r.sessions.remove(client_id);
        r.messages.remove(client_id);
    }
    fn subscribed(
        &mut self,
        client_id: &MqttString,
        f: &SubscriptionFilter,
        s: &StoredSubscription,
    ) {
        let mut r = self.0.lock().unwrap();
        r.log.push(format!("sub {client_id}"));
        let subs = &mut r.sessions.entry(client_id.clone()).or_default().1;
        subs.retain(|(g, _)| g != f);
        subs.push((f.clone(), *s));
    }
    fn unsubscribed(&mut self, client_id: &MqttString, f: &SubscriptionFilter) {
        let mut r = self.0.lock().unwrap();
        r.log.push(format!("unsub {client_id}"));
        if let Some(s) = r.sessions.get_mut(client_id) {
            s.1.retain(|(g, _)| g != f);
        }
    }
    fn message_added(&mut self, client_id: &MqttString, id: u64, m: &Publish) {
        let mut r = self.0.lock().unwrap();
        r.log.push(format!("add {client_id} {id}"));
        r.messages
            .entry(client_id.clone())
            .or_default()
            .push((id, m.clone()));
    }
    fn message_done(&mut self, client_id: &MqttString, id: u64) {
        let mut r = self.0.lock().unwrap();
        r.log.push(format!("done {client_id} {id}"));
        if let Some(v) = r.messages.get_mut(client_id) {
            v.retain(|(i, _)| *i != id);
        }
    }
    fn retained(&mut self, topic: &TopicName, m: Option<&Publish>) {
        let mut r = self.0.lock().unwrap();
        r.log.push(format!("retained {topic} {}", m.is_some()));
        match m {
            Some(m) => r.retained.insert(topic.clone(), m.clone()),
            None => r.retained.remove(topic),
        };
    }
}

impl Shared {
    fn sessions(&self) -> Vec<StoredSession> {
        let r = self.0.lock().unwrap();
        r.sessions
            .iter()
            .map(|(id, (expiry, subs))| StoredSession {
                client_id: id.clone(),
                owner: r.owners.get(id).cloned().flatten(),
                expiry: *expiry,
                subscriptions: subs.clone(),
                messages: r.messages.get(id).cloned().unwrap_or_default(),
            })
            .collect()
    }
}

type B = Broker<AllowAll, Shared>;

struct World {
    now: Instant,
    broker: B,
    clients: Vec<(Option<ConnectionId>, Client, Vec<ClientEvent>)>,
}

impl World {
    fn new(store: Shared) -> Self {
        World {
            now: Instant::now(),
            broker: Broker::with_store(BrokerConfig::default(), AllowAll, store),
            clients: Vec::new(),
        }
    }

    fn client(&mut self, name: &str, clean_start: bool, expiry: u32) -> usize {
        let mut c = Connect::new(ProtocolVersion::V5, MqttString::try_from(name).unwrap());
        c.clean_start = clean_start;
        c.properties.session_expiry_interval = Some(expiry);
        self.clients
            .push((None, Client::new(ClientConfig::new(c)), Vec::new()));
        self.clients.len() - 1
    }

    fn connect(&mut self, i: usize) {
        let id = self.broker.accept(self.now).unwrap();
        self.clients[i].0 = Some(id);
        self.clients[i].1.connect(self.now).unwrap();
        self.pump();
    }

    /// The client's transport dies (broker and client both notice).
    fn drop_connection(&mut self, i: usize) {
        if let Some(id) = self.clients[i].0.take() {
            self.broker.handle_closed(id, self.now);
        }
        self.clients[i].1.handle_closed(self.now);
        self.pump();
    }

    fn pump(&mut self) {
        loop {
            let mut moved = false;
            for (id, c, _) in &mut self.clients {
                while let Some(b) = c.poll_transmit() {
                    if let Some(id) = id {
                        self.broker.handle_read(*id, self.now, &b);
                    }
                    moved = true;
                }
            }
            while let Some((id, b)) = self.broker.poll_transmit() {
                if let Some((_, c, _)) = self.clients.iter_mut().find(|(i, _, _)| *i == Some(id)) {
                    c.handle_read(self.now, &b);
                }
                moved = true;
            }
            while let Some(e) = self.broker.poll_event() {
                if let mqtt_broker::Event::Close(id) = e {
                    if let Some((slot, c, _)) =
                        self.clients.iter_mut().find(|(i, _, _)| *i == Some(id))
                    {
                        *slot = None;
                        c.handle_closed(self.now);
                    }
                }
            }
            for (_, c, evs) in &mut self.clients {
                evs.extend(std::iter::from_fn(|| c.poll_event()));
            }
            if !moved {
                break;
            }
        }
    }

    fn received(&mut self, i: usize) -> Vec<Publish> {
        std::mem::take(&mut self.clients[i].2)
            .into_iter()
            .filter_map(|e| match e {
                ClientEvent::Publish(p) => Some(p),
                _ => None,
            })
            .collect()
    }
}

fn msg(topic: &str, payload: &'static [u8], qos: QoS) -> Publish {
    Publish::new(
        TopicName::try_from(topic).unwrap(),
        Bytes::from_static(payload),
    )
    .with_delivery(Delivery::new(qos, PacketId::new(1).unwrap()))
}

fn subscribe(w: &mut World, i: usize, filter: &str) {
    let s = Subscription {
        filter: TopicFilter::try_from(filter).unwrap(),
        options: SubscriptionOptions::new(QoS::AtLeastOnce),
    };
    w.clients[i]
        .1
        .subscribe(w.now, vec![s], SubscribeProperties::default())
        .unwrap();
    w.pump();
}

#[test]
fn copies_are_stored_before_the_publisher_is_acknowledged_and_done_after_the_subscriber_acks() {
    let store = Shared::default();
    let mut w = World::new(store.clone());
    let sub = w.client("sub", false, 3600);
    let publ = w.client("pub", true, 0);
    w.connect(sub);
    w.connect(publ);
    subscribe(&mut w, sub, "t/#");
    w.drop_connection(sub);
    store.0.lock().unwrap().log.clear();

    w.clients[publ]
        .1
        .publish(w.now, msg("t/1", b"one", QoS::AtLeastOnce))
        .unwrap();
    // Feed the PUBLISH to the broker, and look at the store before the
    // broker's output (the PUBACK) is handed out.
    let bytes = w.clients[publ].1.poll_transmit().unwrap();
    let pid = w.clients[publ].0.unwrap();
    w.broker.handle_read(pid, w.now, &bytes);
    assert_eq!(store.0.lock().unwrap().log, vec!["add sub 1".to_owned()]);
    w.pump();
    assert!(w.clients[publ]
        .2
        .iter()
        .any(|e| matches!(e, ClientEvent::PubAck(_))));

    // The subscriber comes back and acknowledges: the copy is done.
    w.connect(sub);
    let got = w.received(sub);
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].payload[..], b"one");
    assert!(store
        .0
        .lock()
        .unwrap()
        .log
        .contains(&"done sub 1".to_owned()));
    assert!(store.0.lock().unwrap().messages[&MqttString::from_static("sub")].is_empty());
}

#[test]
fn a_restored_broker_delivers_what_was_acknowledged_before_the_crash() {
    let store = Shared::default();
    let mut w = World::new(store.clone());
    let sub = w.client("sub", false, 3600);
    let publ = w.client("pub", true, 0);
    w.connect(sub);
    w.connect(publ);
    subscribe(&mut w, sub, "t/#");
    w.drop_connection(sub);
    for (i, payload) in [&b"a"[..], b"b", b"c"].into_iter().enumerate() {
        let q = if i == 1 {
            QoS::ExactlyOnce
        } else {
            QoS::AtLeastOnce
        };
        let p = Publish::new(
            TopicName::try_from("t/x").unwrap(),
            Bytes::copy_from_slice(payload),
        )
        .with_delivery(Delivery::new(q, PacketId::new(1).unwrap()));
        w.clients[publ].1.publish(w.now, p).unwrap();
        w.pump();
    }
    let retained = msg("t/r", b"kept", QoS::AtMostOnce).with_retain(true);
    w.clients[publ].1.publish(w.now, retained).unwrap();
    w.pump();

    // "Crash": a new broker from the store's contents only.
    let mut w2 = World::new(Shared::default());
    let retained: Vec<Publish> = store.0.lock().unwrap().retained.values().cloned().collect();
    w2.broker
        .restore(w2.now, store.sessions(), retained)
        .unwrap();
    let sub2 = w2.client("sub", false, 3600);
    w2.connect(sub2);
    match w2.clients[sub2].2.first() {
        Some(ClientEvent::Connected {
            session_present, ..
        }) => assert!(*session_present),
        other => panic!("{other:?}"),
    }
    let got: Vec<Vec<u8>> = w2
        .received(sub2)
        .iter()
        .map(|p| p.payload.to_vec())
        .collect();
    assert_eq!(got, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    // The subscription came back too, and the retained message.
    let late = w2.client("late", true, 0);
    w2.connect(late);
    subscribe(&mut w2, late, "t/r");
    let got = w2.received(late);
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].payload[..], b"kept");
    assert!(got[0].retain);
}

#[test]
fn non_persistent_sessions_are_never_reported() {
    let store = Shared::default();
    let mut w = World::new(store.clone());
    let sub = w.client("sub", true, 0);
    let publ = w.client("pub", true, 0);
    w.connect(sub);
    w.connect(publ);
    subscribe(&mut w, sub, "t/#");
    w.clients[publ]
        .1
        .publish(w.now, msg("t/1", b"x", QoS::AtLeastOnce))
        .unwrap();
    w.pump();
    assert_eq!(w.received(sub).len(), 1);
    assert!(
        store.0.lock().unwrap().log.is_empty(),
        "{:?}",
        store.0.lock().unwrap().log
    );
}

#[test]
fn restored_copies_still_expire() {
    let mut w = World::new(Shared::default());
    let mut m = msg("t/x", b"soon", QoS::AtLeastOnce);
    m.properties.message_expiry_interval = Some(10);
    let stored = StoredSession {
        client_id: MqttString::from_static("sub"),
        owner: None,
        expiry: 3600,
        subscriptions: vec![],
        messages: vec![(7, m), (8, msg("t/x", b"forever", QoS::AtLeastOnce))],
    };
    w.broker.restore(w.now, vec![stored], vec![]).unwrap();
    w.now += std::time::Duration::from_secs(11);
    let sub = w.client("sub", false, 3600);
    w.connect(sub);
    let got: Vec<Vec<u8>> = w.received(sub).iter().map(|p| p.payload.to_vec()).collect();
    assert_eq!(got, vec![b"forever".to_vec()]);
    assert_eq!(w.broker.stats().messages_expired, 1);
}
