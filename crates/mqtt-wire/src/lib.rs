//! mqtt-wire (work in progress)
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

mod string;
mod topic;

pub use string::{MqttString, StringError, MAX_STRING_LEN};
pub use topic::{TopicError, TopicFilter, TopicName};
