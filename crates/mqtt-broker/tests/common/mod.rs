//! The deterministic harness, now public as `mqtt_broker::testing`
//! (feature `testing`, enabled for these tests by the self dev-dependency).
#![allow(unused_imports, unreachable_pub)]

pub use mqtt_broker::testing::*;
