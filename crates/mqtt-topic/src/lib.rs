//! MQTT topics: names, filters, Shared Subscriptions, and the two indexes a
//! broker routes with.
//!
//! This crate does no I/O and reads no clock. It holds:
//!
//! - the validated name types [`TopicName`] and [`TopicFilter`] (1 to 65,535
//!   bytes of UTF-8 without U+0000; `#` only as the whole last level, `+`
//!   only as a whole level; names carry no wildcards; empty levels are legal
//!   and distinct). They are owned by `mqtt-wire`, because the codec must
//!   validate the topic of every PUBLISH it decodes, and re-exported here;
//! - [`SharedFilter`] and [`SubscriptionFilter`]: `$share/{ShareName}/{filter}`
//!   parsing with a typed [`ShareError`] (MQTT-4.8.2-1, MQTT-4.8.2-2);
//! - [`matches()`]: one filter against one name, with the `$` rule
//!   (MQTT-4.7.2-1);
//! - [`SubscriptionTree`]: every subscription matching a published name, at
//!   a cost set by the name's depth and the wildcard branches taken, never by
//!   the number of subscriptions, with no allocation per lookup; Shared
//!   Subscriptions as groups;
//! - [`Overlaps`]: one delivery per client at its highest QoS, with all its
//!   Subscription Identifiers;
//! - [`RetainedIndex`]: stored names found by filter, for retained messages.
//!
//! Every invalid name, filter or share string is a typed error naming the
//! rule broken (`spec_id()`); nothing panics on input; nothing recurses, so
//! a filter of 32,768 levels is as safe as one of three.
//!
//! # A broker's routing, in a few lines
//!
//! ```
//! use mqtt_topic::{
//!     Match, Overlaps, RetainedIndex, SubscriptionFilter, SubscriptionTree, TopicFilter,
//!     TopicName,
//! };
//! use core::num::NonZeroU32;
//!
//! type ClientId = u32;
//! #[derive(Clone, Copy)]
//! struct Sub { qos: u8, id: Option<NonZeroU32> }
//!
//! let mut subs: SubscriptionTree<ClientId, Sub> = SubscriptionTree::new();
//! let mut retained: RetainedIndex<&str> = RetainedIndex::new();
//! retained.insert(TopicName::try_from("site1/door").unwrap(), "open");
//!
//! // SUBSCRIBE: parse the filter (a `$share/...` one becomes a group), store
//! // it, and send the retained messages it matches.
//! let filter = SubscriptionFilter::try_from("site1/+").unwrap();
//! subs.subscribe(&filter, 7, Sub { qos: 1, id: NonZeroU32::new(5) });
//! let mut sent = Vec::new();
//! retained.for_each_match(filter.topic_filter(), |name, msg| sent.push((name.clone(), *msg)));
//! assert_eq!(sent.len(), 1);
//! subs.subscribe(&SubscriptionFilter::try_from("$share/g/site1/#").unwrap(), 8, Sub { qos: 0, id: None });
//! subs.subscribe(&SubscriptionFilter::try_from("site1/#").unwrap(), 7, Sub { qos: 2, id: None });
//!
//! // PUBLISH: one delivery per client, one member per shared group.
//! let name = TopicName::try_from("site1/door").unwrap();
//! let mut per_client = Overlaps::new();
//! let mut group_picks = Vec::new();
//! per_client.collect(&subs, &name, |s| (s.qos, s.id), |group| {
//!     group_picks.push(*group.pick(0).unwrap().0)
//! });
//! let d: Vec<_> = per_client.iter().map(|d| (*d.key, d.qos)).collect();
//! assert_eq!(d, [(7, 2)]);
//! assert_eq!(group_picks, [8]);
//! ```
//!
//! # Design
//! Plain filters without a wildcard are kept in a hash table keyed by the
//! whole filter (seeded, probes bounded, see
//! [`SubscriptionTree::with_seed`]), beside the tree, so a lookup finds
//! them with one hash of the name and one probe. The tree, holding the
//! filters with a wildcard and the Shared Subscriptions, is an arena of 64-byte, cache-line-aligned nodes linked by
//! `u32` indices; a node keeps its exact children in a sorted vector of
//! 32-byte edges (short labels inline, found by an 8-byte tag), its `+`
//! child apart, and its `#` subscriptions next to its own, so `#` needs no
//! node. A node with more than 8 children, or with shared groups, keeps
//! them behind a box, with a hashed index (keyed by the tree's seed, its
//! probes bounded; see [`SubscriptionTree::with_seed`]) over the wide
//! ones. Chains of nodes that would hold nothing are folded into
//! multi-level edge labels. Every node also summarizes for how many
//! levels left a filter of its subtree may match (one byte, a bitmask),
//! and its parent keeps a copy (in the edge, or next to the `+` link), so
//! a lookup does not enter a subtree that cannot match the name's
//! remaining depth. A lookup keeps the `+` branches still to take on a
//! fixed stack array. See `docs/architecture.md` for the reasons and
//! `docs/performance.md` for the measurements.
#![no_std]
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

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod arena;
mod edge;
mod exact;
mod index;
mod matching;
mod overlap;
mod retained;
mod share;
mod tree;

#[cfg(feature = "arbitrary")]
#[doc(hidden)]
pub mod fuzzing;

pub use matching::{matches, matches_bytes};
pub use mqtt_wire::{MqttString, StringError, TopicError, TopicFilter, TopicName, MAX_STRING_LEN};
pub use overlap::{Delivery, Overlaps};
pub use retained::RetainedIndex;
pub use share::{ShareError, SharedFilter, SubscriptionFilter, SHARE_PREFIX};
pub use tree::{Match, SharedGroup, SubscriptionTree};
