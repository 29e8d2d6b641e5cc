//! How `sub` prints a message: the payload, `topic payload` with `-v`, or
//! a mosquitto_sub `-F` format.

use std::fmt::Write as _;

use mqtt_wire::{PayloadFormat, Publish};

/// One received message, as bytes for stdout (newline included unless
/// `no_newline`).
pub(crate) fn message(
    p: &Publish,
    verbose: bool,
    format: Option<&str>,
    no_newline: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.payload.len() + 64);
    match format {
        Some(f) => formatted(&mut out, p, f),
        None => {
            if verbose {
                out.extend_from_slice(topic(p).as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(&p.payload);
        }
    }
    if !no_newline {
        out.push(b'\n');
    }
    out
}

fn topic(p: &Publish) -> &str {
    // The session resolves topic aliases: a delivered message has a topic.
    p.topic.as_ref().map_or("", |t| t.as_str())
}

/// mosquitto_sub's `-F`: `%t` topic, `%p` payload, `%q` QoS, `%r` retain,
/// `%l` payload length, `%m` packet id, `%x` payload in hex, and the 5.0
/// properties `%C` content type, `%D` correlation data, `%E` message
/// expiry, `%F` payload format, `%R` response topic, `%S` subscription
/// identifiers, `%P` user properties (`name:value`, space separated);
/// `%%`, `\n`, `\t` and `\\`.
fn formatted(out: &mut Vec<u8>, p: &Publish, f: &str) {
    let props = &p.properties;
    let mut chars = f.chars();
    let mut s = String::new();
    while let Some(c) = chars.next() {
        match c {
            '%' => match chars.next() {
                Some('%') => s.push('%'),
                Some('t') => s.push_str(topic(p)),
                Some('p') => {
                    out.extend_from_slice(s.as_bytes());
                    s.clear();
                    out.extend_from_slice(&p.payload);
                }
                Some('q') => {
                    let _ = write!(s, "{}", p.qos() as u8);
                }
                Some('r') => s.push(if p.retain { '1' } else { '0' }),
                Some('l') => {
                    let _ = write!(s, "{}", p.payload.len());
                }
                Some('m') => {
                    if let Some(id) = p.packet_id() {
                        let _ = write!(s, "{}", id.get());
                    }
                }
                Some('x') => {
                    for b in p.payload.iter() {
                        let _ = write!(s, "{b:02x}");
                    }
                }
                Some('C') => {
                    if let Some(c) = props.content_type() {
                        s.push_str(c.as_str());
                    }
                }
                Some('D') => {
                    if let Some(d) = props.correlation_data() {
                        out.extend_from_slice(s.as_bytes());
                        s.clear();
                        out.extend_from_slice(&d);
                    }
                }
                Some('E') => {
                    if let Some(e) = props.message_expiry_interval {
                        let _ = write!(s, "{e}");
                    }
                }
                Some('F') => {
                    if let Some(f) = props.payload_format_indicator {
                        s.push(if f == PayloadFormat::Utf8 { '1' } else { '0' });
                    }
                }
                Some('R') => {
                    if let Some(r) = props.response_topic() {
                        s.push_str(r.as_str());
                    }
                }
                Some('S') => {
                    let ids: Vec<String> = props
                        .subscription_identifiers()
                        .iter()
                        .map(|i| i.get().to_string())
                        .collect();
                    s.push_str(&ids.join(","));
                }
                Some('P') => {
                    let users: Vec<String> = props
                        .user_properties()
                        .iter()
                        .map(|(k, v)| format!("{k}:{v}"))
                        .collect();
                    s.push_str(&users.join(" "));
                }
                Some(other) => {
                    s.push('%');
                    s.push(other);
                }
                None => s.push('%'),
            },
            '\\' => match chars.next() {
                Some('n') => s.push('\n'),
                Some('t') => s.push('\t'),
                Some('\\') => s.push('\\'),
                Some(other) => {
                    s.push('\\');
                    s.push(other);
                }
                None => s.push('\\'),
            },
            c => s.push(c),
        }
    }
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bytes::Bytes;
    use mqtt_wire::{Delivery, MqttString, PacketId, TopicName};

    fn msg() -> Publish {
        let mut p = Publish::new(
            TopicName::from_static("a/b").unwrap(),
            Bytes::from_static(b"hi"),
        )
        .with_delivery(Delivery::AtLeastOnce(PacketId::new(7).unwrap()))
        .with_retain(true);
        p.properties
            .set_content_type(Some(MqttString::from_static("text/plain")));
        p.properties
            .set_correlation_data(Some(Bytes::from_static(b"c1")))
            .unwrap();
        p.properties
            .push_user_property(MqttString::from_static("k"), MqttString::from_static("v"));
        p
    }

    #[test]
    fn plain_and_verbose() {
        assert_eq!(message(&msg(), false, None, false), b"hi\n");
        assert_eq!(message(&msg(), true, None, false), b"a/b hi\n");
        assert_eq!(message(&msg(), true, None, true), b"a/b hi");
    }

    #[test]
    fn format_codes() {
        let out = message(
            &msg(),
            false,
            Some(r"%t|%q|%r|%m|%l|%p|%C|%D|%P|%E|100%%\t."),
            false,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a/b|1|1|7|2|hi|text/plain|c1|k:v||100%\t.\n"
        );
    }
}
