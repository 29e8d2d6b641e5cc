//! Option values in mosquitto_pub / mosquitto_sub's syntax: `-V`, and the
//! MQTT 5.0 properties of `-D command identifier value`.

use std::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;
use mqtt_wire::{
    ConnectProperties, DisconnectProperties, MqttString, PayloadFormat, ProtocolVersion,
    PublishProperties, SubscribeProperties, SubscriptionId, TopicName, UserProperties,
    WillProperties,
};

/// `-V`: `31`/`mqttv31`, `311`/`mqttv311` or `5`/`mqttv5`.
pub(crate) fn protocol_version(s: &str) -> Result<ProtocolVersion, String> {
    match s {
        "31" | "mqttv31" => Ok(ProtocolVersion::V3_1),
        "311" | "mqttv311" => Ok(ProtocolVersion::V3_1_1),
        "5" | "mqttv5" => Ok(ProtocolVersion::V5),
        _ => Err(format!(
            "unknown protocol version {s:?}: use 31, 311 or 5 (or mqttv31, mqttv311, mqttv5)"
        )),
    }
}

/// `-q` / `--will-qos`: 0, 1 or 2.
pub(crate) fn qos(s: &str) -> Result<mqtt_wire::QoS, String> {
    match s {
        "0" => Ok(mqtt_wire::QoS::AtMostOnce),
        "1" => Ok(mqtt_wire::QoS::AtLeastOnce),
        "2" => Ok(mqtt_wire::QoS::ExactlyOnce),
        _ => Err(format!("QoS must be 0, 1 or 2, not {s:?}")),
    }
}

/// The MQTT 5.0 properties given with `-D`, per packet.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Properties {
    pub(crate) connect: ConnectProperties,
    pub(crate) will: WillProperties,
    pub(crate) publish: PublishProperties,
    pub(crate) subscribe: SubscribeProperties,
    pub(crate) disconnect: DisconnectProperties,
    /// Whether any `-D` was given (they need `-V 5`).
    pub(crate) any: bool,
}

/// Parses the values of every `-D command identifier value [value]`, as
/// mosquitto does: `-D publish user-property name value`,
/// `-D publish content-type text`, `-D connect session-expiry-interval
/// 60`, ... `raw` is all of them in a row; the identifier tells how many
/// values follow (two for user-property, one otherwise).
pub(crate) fn properties(raw: &[String]) -> Result<Properties, String> {
    let mut p = Properties::default();
    let mut rest = raw;
    while !rest.is_empty() {
        let n = match rest.get(1).map(String::as_str) {
            Some("user-property") => 4,
            _ => 3,
        };
        let d = rest.get(..n).unwrap_or(rest);
        rest = rest.get(n..).unwrap_or_default();
        p.any = true;
        property(&mut p, d).map_err(|e| format!("-D {}: {e}", d.join(" ")))?;
    }
    Ok(p)
}

fn property(p: &mut Properties, d: &[String]) -> Result<(), String> {
    let (command, name, values) = match d {
        [c, n, rest @ ..] => (c.as_str(), n.as_str(), rest),
        _ => return Err("expected: command identifier value".to_owned()),
    };
    // user-property takes two values, every other property one.
    let (value, value2) = match (name, values) {
        ("user-property", [k, v]) => (k.as_str(), Some(v.as_str())),
        ("user-property", _) => return Err("user-property takes a name and a value".to_owned()),
        (_, [v]) => (v.as_str(), None),
        _ => return Err(format!("{name} takes one value")),
    };
    let user = |props: &mut UserProperties| -> Result<(), String> {
        let k = MqttString::try_from(value).map_err(|e| e.to_string())?;
        let v = MqttString::try_from(value2.unwrap_or_default()).map_err(|e| e.to_string())?;
        props.push(k, v);
        Ok(())
    };
    match (command, name) {
        ("connect", "session-expiry-interval") => {
            p.connect.session_expiry_interval = Some(number(value)?);
        }
        ("connect", "receive-maximum") => {
            p.connect.receive_maximum = Some(nonzero16(value)?);
        }
        ("connect", "maximum-packet-size") => {
            let n: u32 = number(value)?;
            p.connect.maximum_packet_size =
                Some(NonZeroU32::new(n).ok_or("must not be 0".to_owned())?);
        }
        ("connect", "topic-alias-maximum") => p.connect.topic_alias_maximum = Some(number(value)?),
        ("connect", "request-problem-information") => {
            p.connect.request_problem_information = Some(flag(value)?);
        }
        ("connect", "request-response-information") => {
            p.connect.request_response_information = Some(flag(value)?);
        }
        ("connect", "user-property") => user(&mut p.connect.user_properties)?,
        ("publish", "payload-format-indicator") => {
            p.publish.payload_format_indicator = Some(payload_format(value)?);
        }
        ("publish", "message-expiry-interval") => {
            p.publish.message_expiry_interval = Some(number(value)?);
        }
        ("publish", "content-type") => p.publish.set_content_type(Some(string(value)?)),
        ("publish", "response-topic") => p.publish.set_response_topic(Some(topic(value)?)),
        ("publish", "correlation-data") => p
            .publish
            .set_correlation_data(Some(Bytes::copy_from_slice(value.as_bytes())))
            .map_err(|e| e.to_string())?,
        ("publish", "user-property") => {
            let mut up = p.publish.user_properties();
            user(&mut up)?;
            p.publish.set_user_properties(up);
        }
        ("publish", "topic-alias") => {
            return Err("topic aliases are assigned by the client session".to_owned())
        }
        ("subscribe", "subscription-identifier") => {
            let n: u32 = number(value)?;
            p.subscribe.subscription_identifier =
                Some(SubscriptionId::new(n).ok_or("must be 1..=268435455".to_owned())?);
        }
        ("subscribe", "user-property") => user(&mut p.subscribe.user_properties)?,
        ("will", "will-delay-interval") => p.will.will_delay_interval = Some(number(value)?),
        ("will", "payload-format-indicator") => {
            p.will.payload_format_indicator = Some(payload_format(value)?);
        }
        ("will", "message-expiry-interval") => {
            p.will.message_expiry_interval = Some(number(value)?);
        }
        ("will", "content-type") => p.will.content_type = Some(string(value)?),
        ("will", "response-topic") => p.will.response_topic = Some(topic(value)?),
        ("will", "correlation-data") => {
            p.will.correlation_data = Some(Bytes::copy_from_slice(value.as_bytes()));
        }
        ("will", "user-property") => user(&mut p.will.user_properties)?,
        ("disconnect", "session-expiry-interval") => {
            p.disconnect.session_expiry_interval = Some(number(value)?);
        }
        ("disconnect", "reason-string") => p.disconnect.reason_string = Some(string(value)?),
        ("disconnect", "user-property") => user(&mut p.disconnect.user_properties)?,
        ("connect" | "publish" | "subscribe" | "will" | "disconnect", _) => {
            return Err(format!(
                "unknown or unsupported property {name:?} for {command}"
            ))
        }
        _ => {
            return Err(format!(
                "unknown command {command:?}: use connect, publish, subscribe, will or disconnect"
            ))
        }
    }
    Ok(())
}

fn number<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not a number in range"))
}

fn nonzero16(s: &str) -> Result<NonZeroU16, String> {
    NonZeroU16::new(number(s)?).ok_or_else(|| "must not be 0".to_owned())
}

fn flag(s: &str) -> Result<bool, String> {
    match s {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(format!("{s:?}: use 0 or 1")),
    }
}

fn payload_format(s: &str) -> Result<PayloadFormat, String> {
    Ok(if flag(s)? {
        PayloadFormat::Utf8
    } else {
        PayloadFormat::Unspecified
    })
}

fn string(s: &str) -> Result<MqttString, String> {
    MqttString::try_from(s).map_err(|e| e.to_string())
}

pub(crate) fn topic(s: &str) -> Result<TopicName, String> {
    TopicName::try_from(s).map_err(|e| format!("invalid topic {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn d(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    fn all(ds: &[Vec<String>]) -> Vec<String> {
        ds.concat()
    }

    #[test]
    fn versions() {
        assert_eq!(protocol_version("311"), Ok(ProtocolVersion::V3_1_1));
        assert_eq!(protocol_version("mqttv5"), Ok(ProtocolVersion::V5));
        assert_eq!(protocol_version("31"), Ok(ProtocolVersion::V3_1));
        assert!(protocol_version("6").is_err());
    }

    #[test]
    fn publish_properties() {
        let p = properties(&all(&[
            d(&["publish", "user-property", "k1", "v1"]),
            d(&["publish", "user-property", "k1", "v2"]),
            d(&["publish", "content-type", "text/plain"]),
            d(&["publish", "response-topic", "re/ply"]),
            d(&["publish", "correlation-data", "c-1"]),
            d(&["publish", "message-expiry-interval", "30"]),
        ]))
        .unwrap();
        assert!(p.any);
        let users: Vec<_> = p
            .publish
            .user_properties()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(users, ["k1=v1", "k1=v2"]);
        assert_eq!(p.publish.content_type().unwrap(), "text/plain");
        assert_eq!(p.publish.response_topic().unwrap(), "re/ply");
        assert_eq!(&p.publish.correlation_data().unwrap()[..], b"c-1");
        assert_eq!(p.publish.message_expiry_interval, Some(30));
    }

    #[test]
    fn connect_and_subscribe_properties() {
        let p = properties(&all(&[
            d(&["connect", "session-expiry-interval", "60"]),
            d(&["connect", "receive-maximum", "5"]),
            d(&["subscribe", "subscription-identifier", "7"]),
        ]))
        .unwrap();
        assert_eq!(p.connect.session_expiry_interval, Some(60));
        assert_eq!(p.connect.receive_maximum.map(NonZeroU16::get), Some(5));
        assert_eq!(
            p.subscribe.subscription_identifier.map(|s| s.get()),
            Some(7)
        );
    }

    #[test]
    fn rejects_bad_properties() {
        for bad in [
            d(&["publish", "user-property", "only-name"]),
            d(&["publish", "content-type"]),
            d(&["publish", "message-expiry-interval", "soon"]),
            d(&["publish", "response-topic", "wild/#"]),
            d(&["publish", "topic-alias", "1"]),
            d(&["publish", "no-such-property", "1"]),
            d(&["nonsense", "content-type", "x"]),
            d(&["connect", "receive-maximum", "0"]),
            d(&["subscribe", "subscription-identifier", "0"]),
        ] {
            let e = properties(&bad).unwrap_err();
            assert!(e.starts_with("-D "), "{bad:?}: {e}");
        }
    }
}
