//! Reason codes (MQTT 5.0 §2.4), one enum per packet so a code a packet may
//! not carry cannot be built. 3.1.1 return codes map onto the same enums
//! (see each packet's docs for the table).

use core::fmt;

macro_rules! reason_codes {
    (
        $(#[$doc:meta])*
        $name:ident for $packets:literal {
            $( $(#[$vdoc:meta])* $variant:ident = $value:literal, )+
        }
    ) => {
        $(#[$doc])*
        #[doc = concat!("\n\nMay appear in: ", $packets, ".")]
        #[non_exhaustive]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
        #[repr(u8)]
        pub enum $name {
            $( $(#[$vdoc])* $variant = $value, )+
        }

        impl $name {
            /// Every value, in numeric order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The byte on the wire.
            pub const fn code(self) -> u8 {
                self as u8
            }

            /// The value for a byte, if the packet may carry it.
            pub const fn from_code(code: u8) -> Option<Self> {
                match code {
                    $( $value => Some($name::$variant), )+
                    _ => None,
                }
            }

            /// Whether this code reports a failure (0x80 and above).
            pub const fn is_error(self) -> bool {
                (self as u8) >= 0x80
            }
        }

        impl From<$name> for u8 {
            fn from(c: $name) -> u8 {
                c as u8
            }
        }

        impl TryFrom<u8> for $name {
            type Error = u8;
            /// Fails with the byte itself when the packet may not carry it.
            fn try_from(code: u8) -> Result<Self, u8> {
                Self::from_code(code).ok_or(code)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?} ({:#04x})", self, *self as u8)
            }
        }
    };
}

reason_codes! {
    /// CONNACK reason code. In 3.1.1 and 3.1 the Connect Return Code: 0
    /// Success, 1 UnsupportedProtocolVersion, 2 ClientIdentifierNotValid,
    /// 3 ServerUnavailable, 4 BadUserNameOrPassword, 5 NotAuthorized; other
    /// codes cannot be sent to such a peer (see
    /// [`ConnectReasonCode::to_v3`]).
    ConnectReasonCode for "CONNACK" {
        /// The connection is accepted.
        Success = 0x00,
        /// The server does not wish to reveal the reason, or none applies.
        UnspecifiedError = 0x80,
        /// The CONNECT could not be parsed.
        MalformedPacket = 0x81,
        /// The CONNECT breaks the protocol.
        ProtocolError = 0x82,
        /// Valid, but refused by this implementation.
        ImplementationSpecificError = 0x83,
        /// The protocol version is not supported.
        UnsupportedProtocolVersion = 0x84,
        /// The client identifier is valid but not allowed.
        ClientIdentifierNotValid = 0x85,
        /// User name or password refused.
        BadUserNameOrPassword = 0x86,
        /// Not authorized to connect.
        NotAuthorized = 0x87,
        /// The server is not available.
        ServerUnavailable = 0x88,
        /// The server is busy; try later.
        ServerBusy = 0x89,
        /// This client is banned.
        Banned = 0x8A,
        /// The authentication method is not supported or does not match.
        BadAuthenticationMethod = 0x8C,
        /// The will topic is not accepted.
        TopicNameInvalid = 0x90,
        /// The CONNECT exceeded the maximum permissible size.
        PacketTooLarge = 0x95,
        /// An implementation or administrative quota is exceeded.
        QuotaExceeded = 0x97,
        /// The will payload does not match its payload format indicator.
        PayloadFormatInvalid = 0x99,
        /// Retained wills are not supported.
        RetainNotSupported = 0x9A,
        /// The will QoS is not supported.
        QoSNotSupported = 0x9B,
        /// Use another server (temporarily).
        UseAnotherServer = 0x9C,
        /// Use another server (permanently).
        ServerMoved = 0x9D,
        /// The connection rate limit is exceeded.
        ConnectionRateExceeded = 0x9F,
    }
}

impl ConnectReasonCode {
    /// The 3.1.1 Connect Return Code for this reason, if it has one.
    pub const fn to_v3(self) -> Option<u8> {
        Some(match self {
            ConnectReasonCode::Success => 0,
            ConnectReasonCode::UnsupportedProtocolVersion => 1,
            ConnectReasonCode::ClientIdentifierNotValid => 2,
            ConnectReasonCode::ServerUnavailable => 3,
            ConnectReasonCode::BadUserNameOrPassword => 4,
            ConnectReasonCode::NotAuthorized => 5,
            _ => return None,
        })
    }

    /// The reason for a 3.1.1 Connect Return Code (0..=5).
    pub const fn from_v3(code: u8) -> Option<Self> {
        Some(match code {
            0 => ConnectReasonCode::Success,
            1 => ConnectReasonCode::UnsupportedProtocolVersion,
            2 => ConnectReasonCode::ClientIdentifierNotValid,
            3 => ConnectReasonCode::ServerUnavailable,
            4 => ConnectReasonCode::BadUserNameOrPassword,
            5 => ConnectReasonCode::NotAuthorized,
            _ => return None,
        })
    }

    /// The nearest reason a 3.1.1 peer understands: itself where it has a
    /// return code; credentials and authorization problems as
    /// `NotAuthorized`; everything else as `ServerUnavailable`. A broker
    /// answering 3.1.1 clients applies this before encoding.
    pub const fn v3_equivalent(self) -> Self {
        match self {
            c if c.to_v3().is_some() => c,
            ConnectReasonCode::Banned | ConnectReasonCode::BadAuthenticationMethod => {
                ConnectReasonCode::NotAuthorized
            }
            _ => ConnectReasonCode::ServerUnavailable,
        }
    }
}

reason_codes! {
    /// PUBACK and PUBREC reason code (the two share one list). 3.1.1 has no
    /// reason codes: only `Success` can be sent to such a peer.
    PubAckReasonCode for "PUBACK, PUBREC" {
        /// Accepted.
        Success = 0x00,
        /// Accepted, but nobody subscribes to it.
        NoMatchingSubscribers = 0x10,
        /// Not accepted; no reason given.
        UnspecifiedError = 0x80,
        /// Valid, but refused by this implementation.
        ImplementationSpecificError = 0x83,
        /// The sender may not publish this.
        NotAuthorized = 0x87,
        /// The topic name is not accepted.
        TopicNameInvalid = 0x90,
        /// The packet identifier is already in use.
        PacketIdentifierInUse = 0x91,
        /// A quota is exceeded.
        QuotaExceeded = 0x97,
        /// The payload does not match its payload format indicator.
        PayloadFormatInvalid = 0x99,
    }
}

reason_codes! {
    /// PUBREL and PUBCOMP reason code. Only `Success` can be sent to a 3.1.1
    /// peer.
    PubRelReasonCode for "PUBREL, PUBCOMP" {
        /// The packet identifier was found and released.
        Success = 0x00,
        /// The packet identifier is not known.
        PacketIdentifierNotFound = 0x92,
    }
}

reason_codes! {
    /// SUBACK reason code, one per requested subscription. 3.1.1 knows
    /// 0x00, 0x01, 0x02 and 0x80 (MQTT-3.9.3-2 of 3.1.1), with the same
    /// values.
    SubAckReasonCode for "SUBACK" {
        /// Subscribed at QoS 0.
        GrantedQoS0 = 0x00,
        /// Subscribed at QoS 1.
        GrantedQoS1 = 0x01,
        /// Subscribed at QoS 2.
        GrantedQoS2 = 0x02,
        /// Not subscribed; no reason given (3.1.1: Failure).
        UnspecifiedError = 0x80,
        /// Valid, but refused by this implementation.
        ImplementationSpecificError = 0x83,
        /// Not authorized to subscribe.
        NotAuthorized = 0x87,
        /// The topic filter is not accepted.
        TopicFilterInvalid = 0x8F,
        /// The packet identifier is already in use.
        PacketIdentifierInUse = 0x91,
        /// A quota is exceeded.
        QuotaExceeded = 0x97,
        /// Shared subscriptions are not supported.
        SharedSubscriptionsNotSupported = 0x9E,
        /// Subscription identifiers are not supported.
        SubscriptionIdentifiersNotSupported = 0xA1,
        /// Wildcard subscriptions are not supported.
        WildcardSubscriptionsNotSupported = 0xA2,
    }
}

impl SubAckReasonCode {
    /// The code granting `qos`.
    pub const fn granted(qos: crate::QoS) -> Self {
        match qos {
            crate::QoS::AtMostOnce => SubAckReasonCode::GrantedQoS0,
            crate::QoS::AtLeastOnce => SubAckReasonCode::GrantedQoS1,
            crate::QoS::ExactlyOnce => SubAckReasonCode::GrantedQoS2,
        }
    }

    /// Whether a 3.1.1 peer understands this code.
    pub const fn in_v3(self) -> bool {
        matches!(
            self,
            SubAckReasonCode::GrantedQoS0
                | SubAckReasonCode::GrantedQoS1
                | SubAckReasonCode::GrantedQoS2
                | SubAckReasonCode::UnspecifiedError
        )
    }
}

reason_codes! {
    /// UNSUBACK reason code, one per filter. 3.1.1 UNSUBACK carries none.
    UnsubAckReasonCode for "UNSUBACK" {
        /// The subscription is deleted.
        Success = 0x00,
        /// No matching subscription existed.
        NoSubscriptionExisted = 0x11,
        /// Not unsubscribed; no reason given.
        UnspecifiedError = 0x80,
        /// Valid, but refused by this implementation.
        ImplementationSpecificError = 0x83,
        /// Not authorized to unsubscribe.
        NotAuthorized = 0x87,
        /// The topic filter is not valid.
        TopicFilterInvalid = 0x8F,
        /// The packet identifier is already in use.
        PacketIdentifierInUse = 0x91,
    }
}

reason_codes! {
    /// DISCONNECT reason code. 3.1.1 DISCONNECT carries none: only
    /// `NormalDisconnection` can be sent to such a peer.
    DisconnectReasonCode for "DISCONNECT" {
        /// Close normally; do not send the will.
        NormalDisconnection = 0x00,
        /// Close, and the server publishes the will (client only).
        DisconnectWithWillMessage = 0x04,
        /// No reason given.
        UnspecifiedError = 0x80,
        /// A packet could not be parsed.
        MalformedPacket = 0x81,
        /// A packet broke the protocol.
        ProtocolError = 0x82,
        /// Valid, but refused by this implementation.
        ImplementationSpecificError = 0x83,
        /// Not authorized.
        NotAuthorized = 0x87,
        /// The server is busy.
        ServerBusy = 0x89,
        /// The server is shutting down.
        ServerShuttingDown = 0x8B,
        /// No packet arrived within 1.5 times the keep alive.
        KeepAliveTimeout = 0x8D,
        /// Another connection with the same client id took over.
        SessionTakenOver = 0x8E,
        /// A topic filter is not accepted.
        TopicFilterInvalid = 0x8F,
        /// A topic name is not accepted.
        TopicNameInvalid = 0x90,
        /// More unacknowledged QoS > 0 publishes than Receive Maximum.
        ReceiveMaximumExceeded = 0x93,
        /// A topic alias is 0 or above the maximum.
        TopicAliasInvalid = 0x94,
        /// A packet exceeded the maximum packet size.
        PacketTooLarge = 0x95,
        /// The message rate is too high.
        MessageRateTooHigh = 0x96,
        /// A quota is exceeded.
        QuotaExceeded = 0x97,
        /// Closed by an administrator.
        AdministrativeAction = 0x98,
        /// A payload does not match its payload format indicator.
        PayloadFormatInvalid = 0x99,
        /// Retained messages are not supported.
        RetainNotSupported = 0x9A,
        /// A QoS above the maximum QoS.
        QoSNotSupported = 0x9B,
        /// Use another server (temporarily).
        UseAnotherServer = 0x9C,
        /// Use another server (permanently).
        ServerMoved = 0x9D,
        /// Shared subscriptions are not supported.
        SharedSubscriptionsNotSupported = 0x9E,
        /// The connection rate limit is exceeded.
        ConnectionRateExceeded = 0x9F,
        /// The maximum connection time is over.
        MaximumConnectTime = 0xA0,
        /// Subscription identifiers are not supported.
        SubscriptionIdentifiersNotSupported = 0xA1,
        /// Wildcard subscriptions are not supported.
        WildcardSubscriptionsNotSupported = 0xA2,
    }
}

reason_codes! {
    /// AUTH reason code (5.0 only).
    AuthReasonCode for "AUTH" {
        /// Authentication succeeded.
        Success = 0x00,
        /// Continue the authentication with another step.
        ContinueAuthentication = 0x18,
        /// Start re-authentication (client only).
        ReAuthenticate = 0x19,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_codes_are_refused() {
        for c in ConnectReasonCode::ALL {
            assert_eq!(ConnectReasonCode::from_code(c.code()), Some(*c));
        }
        let known = DisconnectReasonCode::ALL.len();
        let accepted = (0..=255u8)
            .filter(|b| DisconnectReasonCode::from_code(*b).is_some())
            .count();
        assert_eq!(known, accepted);
        assert_eq!(known, 29);
        assert_eq!(SubAckReasonCode::try_from(0x03), Err(0x03));
        assert_eq!(AuthReasonCode::ALL.len(), 3);
    }

    #[test]
    fn v3_connect_return_codes() {
        for rc in 0..=5 {
            let c = ConnectReasonCode::from_v3(rc).unwrap();
            assert_eq!(c.to_v3(), Some(rc));
        }
        assert_eq!(ConnectReasonCode::from_v3(6), None);
        for c in ConnectReasonCode::ALL {
            assert!(c.v3_equivalent().to_v3().is_some());
        }
    }
}
