//! Decodes MQTT bytes given in hex and prints each packet.
//!
//! ```text
//! cargo run -p mqtt-wire --example inspect                       # a demo stream
//! cargo run -p mqtt-wire --example inspect -- 3.1.1 "c0 00 e0 00"  # your bytes
//! ```
//!
//! The first argument is the protocol version (3.1, 3.1.1 or 5); the rest is
//! hex (spaces and `0x` prefixes allowed). Without arguments it encodes a
//! small session's worth of packets and decodes them back.

use bytes::{Bytes, BytesMut};
use mqtt_wire::{
    decode, Connect, DecodeConfig, Delivery, Encode, MqttString, Packet, PacketId, ProtocolVersion,
    Publish, QoS, Subscribe, SubscriptionOptions, TopicFilter, TopicName,
};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (version, bytes) = match args.split_first() {
        None => match demo() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("demo failed: {e}");
                return ExitCode::FAILURE;
            }
        },
        Some((v, hex)) => {
            let version = match v.as_str() {
                "3.1" | "3" => ProtocolVersion::V3_1,
                "3.1.1" | "4" => ProtocolVersion::V3_1_1,
                "5" | "5.0" => ProtocolVersion::V5,
                other => {
                    eprintln!("unknown protocol version {other:?}: use 3.1, 3.1.1 or 5");
                    return ExitCode::from(2);
                }
            };
            match parse_hex(&hex.join(" ")) {
                Ok(b) => (version, b),
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    println!("{} bytes as {version}:", bytes.len());
    let mut buf = BytesMut::from(&bytes[..]);
    let cfg = DecodeConfig::new(version);
    loop {
        match decode(&mut buf, &cfg) {
            Ok(Some(p)) => println!("{p:#?}"),
            Ok(None) if buf.is_empty() => return ExitCode::SUCCESS,
            Ok(None) => {
                println!(
                    "incomplete: {} bytes wait for the rest of a packet",
                    buf.len()
                );
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                println!(
                    "error: {e}; a 5.0 peer would send DISCONNECT {}",
                    e.reason_code()
                );
                return ExitCode::FAILURE;
            }
        }
    }
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let digits: String = s
        .split_whitespace()
        .map(|w| w.trim_start_matches("0x"))
        .collect::<Vec<_>>()
        .concat();
    if digits.len() % 2 != 0 {
        return Err("odd number of hex digits".into());
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            digits
                .get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| format!("not hex at digit {i}"))
        })
        .collect()
}

fn demo() -> Result<(ProtocolVersion, Vec<u8>), Box<dyn std::error::Error>> {
    let v = ProtocolVersion::V5;
    let mut out = BytesMut::new();
    Packet::from(Connect::new(v, MqttString::try_from("demo-client")?)).encode(v, &mut out)?;
    let id = PacketId::new(1).ok_or("packet id")?;
    let filter = TopicFilter::try_from("sensors/+/temperature")?;
    Subscribe::new(id, filter, SubscriptionOptions::new(QoS::AtLeastOnce)).encode(v, &mut out)?;
    let mut publish = Publish::new(
        TopicName::try_from("sensors/kitchen/temperature")?,
        Bytes::from_static(b"21.5"),
    )
    .with_delivery(Delivery::AtLeastOnce(PacketId::new(2).ok_or("packet id")?));
    publish
        .properties
        .set_content_type(Some(MqttString::try_from("text/plain")?));
    publish.encode(v, &mut out)?;
    Packet::PingReq.encode(v, &mut out)?;
    Ok((v, out.to_vec()))
}
