//! PUBACK, PUBREC, PUBREL and PUBCOMP (MQTT 5.0 §3.4 to §3.7): a Packet
//! Identifier, a reason code and properties. In 3.1.1 only the identifier.

use super::{read_packet_id, v5_only, PacketBody};
use crate::codec::Reader;
use crate::error::{DecodeError, EncodeError};
use crate::property::AckProperties;
use crate::reason::{PubAckReasonCode, PubRelReasonCode};
use crate::{PacketId, PacketType, ProtocolVersion};
use bytes::BufMut;

macro_rules! ack_packet {
    ($(#[$doc:meta])* $name:ident, $reason:ident, $success:ident) => {
        $(#[$doc])*
        ///
        /// In 5.0 the reason code and the properties are left out on the
        /// wire when they are `Success` and empty. A 3.1.1 peer can only be
        /// sent `Success` without properties.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            /// Identifier of the PUBLISH this belongs to (MQTT-2.2.1-5).
            pub packet_id: PacketId,
            /// Reason code (5.0).
            pub reason_code: $reason,
            /// Properties (5.0).
            pub properties: AckProperties,
        }

        impl $name {
            /// A successful acknowledgement of `packet_id`.
            pub fn new(packet_id: PacketId) -> Self {
                $name { packet_id, reason_code: $reason::$success, properties: AckProperties::default() }
            }

            /// The same with `reason_code`.
            pub fn with_reason(mut self, reason_code: $reason) -> Self {
                self.reason_code = reason_code;
                self
            }

            pub(crate) fn decode(r: &mut Reader<'_>, v: ProtocolVersion) -> Result<Self, DecodeError> {
                let packet_id = read_packet_id(r)?;
                let mut p = $name::new(packet_id);
                if v.is_v5() && !r.is_empty() {
                    let code = r.u8()?;
                    p.reason_code = $reason::from_code(code)
                        .ok_or(DecodeError::InvalidReasonCode { packet: r.packet(), code })?;
                    if !r.is_empty() {
                        p.properties = AckProperties::decode(r)?;
                    }
                }
                r.finish()?;
                Ok(p)
            }
        }

        impl PacketBody for $name {
            const TYPE: PacketType = PacketType::$name;

            fn validate(&self, v: ProtocolVersion) -> Result<(), EncodeError> {
                v5_only(v, self.reason_code != $reason::$success, "a reason code other than Success")?;
                v5_only(v, !self.properties.is_empty(), "acknowledgement properties")?;
                self.properties.validate()
            }

            fn body_len(&self, v: ProtocolVersion) -> usize {
                if !v.is_v5() || self.properties.is_empty() {
                    if !v.is_v5() || self.reason_code == $reason::$success { 2 } else { 3 }
                } else {
                    3 + self.properties.wire_len()
                }
            }

            fn write_body<B: BufMut>(&self, v: ProtocolVersion, buf: &mut B) {
                buf.put_u16(self.packet_id.get());
                if v.is_v5() && (self.reason_code != $reason::$success || !self.properties.is_empty()) {
                    buf.put_u8(self.reason_code.code());
                    if !self.properties.is_empty() {
                        self.properties.encode(buf);
                    }
                }
            }
        }
    };
}

ack_packet!(
    /// PUBACK: the answer to a QoS 1 PUBLISH.
    PubAck, PubAckReasonCode, Success
);
ack_packet!(
    /// PUBREC: the first answer to a QoS 2 PUBLISH.
    PubRec, PubAckReasonCode, Success
);
ack_packet!(
    /// PUBREL: the answer to PUBREC (fixed-header flags 0010).
    PubRel, PubRelReasonCode, Success
);
ack_packet!(
    /// PUBCOMP: the answer to PUBREL.
    PubComp, PubRelReasonCode, Success
);
