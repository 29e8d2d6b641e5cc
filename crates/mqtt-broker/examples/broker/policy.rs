//! The broker's policy: who may connect, publish and subscribe.

use std::sync::Arc;

use mqtt_broker::{AuthDecision, ClientInfo, Hooks, Recipient};
use mqtt_topic::SubscriptionFilter;
use mqtt_wire::{Connect, ConnectReasonCode, TopicName};

use crate::acl::Acl;
use crate::passwd::PasswordFile;

/// [`Hooks`] from the command line.
#[derive(Debug)]
pub(crate) struct Policy {
    /// Clients without a user name are accepted.
    pub(crate) allow_anonymous: bool,
    /// `--password-file`; checked off the broker task (see `net`).
    pub(crate) passwords: Option<Arc<PasswordFile>>,
    /// `--acl-file`; without one everything is allowed.
    pub(crate) acl: Option<Acl>,
}

impl Hooks for Policy {
    fn authenticate(&mut self, connect: &Connect) -> AuthDecision {
        match (&connect.username, &self.passwords) {
            (None, _) if self.allow_anonymous => AuthDecision::Allow,
            (None, _) => AuthDecision::Deny(ConnectReasonCode::NotAuthorized),
            // No password file: any user name is accepted (as mosquitto).
            (Some(_), None) => AuthDecision::Allow,
            // Hashing takes time: decided off the broker task.
            (Some(_), Some(_)) => AuthDecision::Defer,
        }
    }

    fn may_publish(&mut self, client: &ClientInfo<'_>, topic: &TopicName) -> bool {
        self.acl.as_ref().is_none_or(|acl| {
            acl.may_write(
                client.username.map(|u| u.as_str()),
                client.client_id.as_str(),
                topic,
            )
        })
    }

    fn may_subscribe(&mut self, client: &ClientInfo<'_>, filter: &SubscriptionFilter) -> bool {
        self.acl.as_ref().is_none_or(|acl| {
            acl.may_read(
                client.username.map(|u| u.as_str()),
                client.client_id.as_str(),
                filter,
            )
        })
    }

    fn may_receive(&mut self, recipient: &Recipient<'_>, topic: &TopicName) -> bool {
        // Checked again per message, as mosquitto does: a `deny` or a
        // `pattern` narrower than the subscribed filter still applies.
        self.acl.as_ref().is_none_or(|acl| {
            acl.may_read_topic(
                recipient.username.map(|u| u.as_str()),
                recipient.client_id.as_str(),
                topic,
            )
        })
    }
}
