//! `--ws-listen`: MQTT over WebSockets (MQTT 5.0 §6). The handshake
//! answers the `mqtt` subprotocol; each binary frame carries MQTT bytes
//! (a packet may span frames, a frame may hold several packets).

use std::io;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::net::{Inbound, Outbound};

/// Largest WebSocket message and frame accepted; MQTT packets are bounded
/// by the core's maximum packet size, and a packet may span messages.
const MAX_MESSAGE: usize = 1 << 20;

type Ws = WebSocketStream<TcpStream>;

/// The read half: binary frames' payloads.
pub(crate) struct WsIn(SplitStream<Ws>);

/// The write half: one binary frame per chunk.
pub(crate) struct WsOut(SplitSink<Ws, Message>);

/// The WebSocket handshake on `tcp`.
pub(crate) async fn accept(
    tcp: TcpStream,
) -> Result<(WsIn, WsOut), tokio_tungstenite::tungstenite::Error> {
    // The callback's signature is tungstenite's (a large error type).
    #[allow(clippy::result_large_err)]
    let choose = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        // Offered subprotocols, comma separated, maybe over several headers.
        let offered = req
            .headers()
            .get_all("Sec-WebSocket-Protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .find(|p| p.eq_ignore_ascii_case("mqtt") || p.eq_ignore_ascii_case("mqttv3.1"))
            .map(str::to_owned);
        if let Some(p) = offered.and_then(|p| HeaderValue::from_str(&p).ok()) {
            resp.headers_mut().insert("Sec-WebSocket-Protocol", p);
        }
        Ok(resp)
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let ws = tokio_tungstenite::accept_hdr_async_with_config(tcp, choose, Some(config)).await?;
    let (sink, stream) = ws.split();
    Ok((WsIn(stream), WsOut(sink)))
}

impl Inbound for WsIn {
    async fn read_chunk(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            match self.0.next().await {
                Some(Ok(Message::Binary(b))) => return Ok(Some(b)),
                // Pings are answered by tungstenite; pongs carry nothing.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                // MQTT 5.0 §6: a text frame closes the connection.
                Some(Ok(Message::Text(_))) => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "text frame"))
                }
                Some(Ok(Message::Close(_))) | None => return Ok(None),
                Some(Err(e)) => return Err(io::Error::other(e)),
            }
        }
    }
}

impl Outbound for WsOut {
    async fn write(&mut self, bytes: Bytes) -> io::Result<()> {
        self.0
            .feed(Message::Binary(bytes))
            .await
            .map_err(io::Error::other)
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.0.flush().await.map_err(io::Error::other)
    }

    async fn close(&mut self) -> io::Result<()> {
        self.0.close().await.map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]

    use super::*;
    use bytes::BytesMut;
    use mqtt_wire::{DecodeConfig, Packet, ProtocolVersion};
    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    /// A server-side `accept` and a client offering `protocol`, on 127.0.0.1.
    async fn pair(protocol: &str) -> (WsIn, WebSocketStream<TcpStream>, Option<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            accept(tcp).await.unwrap()
        });
        let mut req = format!("ws://{addr}/mqtt").into_client_request().unwrap();
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(protocol).unwrap(),
        );
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (client, resp) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
        let chosen = resp
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let (inb, _out) = server.await.unwrap();
        (inb, client, chosen)
    }

    #[tokio::test]
    async fn mqtt5_6_0_0_4_server_selects_the_mqtt_subprotocol() {
        let (_, _, chosen) = pair("mqtt").await;
        assert_eq!(chosen.as_deref(), Some("mqtt"));
        // Offered among others, it is still the one selected.
        let (_, _, chosen) = pair("chat, mqtt").await;
        assert_eq!(chosen.as_deref(), Some("mqtt"));
    }

    #[tokio::test]
    async fn mqtt5_6_0_0_1_a_text_frame_closes_the_connection() {
        let (mut inb, mut client, _) = pair("mqtt").await;
        client
            .send(Message::Binary(Bytes::from_static(&[0xc0, 0x00])))
            .await
            .unwrap();
        assert_eq!(&inb.read_chunk().await.unwrap().unwrap()[..], &[0xc0, 0x00]);
        client.send(Message::text("hello")).await.unwrap();
        assert!(
            inb.read_chunk().await.is_err(),
            "text frame must end the connection"
        );
    }

    #[tokio::test]
    async fn mqtt5_6_0_0_2_packets_do_not_follow_frame_boundaries() {
        let (mut inb, mut client, _) = pair("mqtt").await;
        // A PUBLISH split over two frames, the second also holding a PINGREQ.
        let frames: [&'static [u8]; 2] =
            [&[0x30, 0x05, 0x00], &[0x01, b'a', b'x', b'y', 0xc0, 0x00]];
        for f in frames {
            client
                .send(Message::Binary(Bytes::from_static(f)))
                .await
                .unwrap();
        }
        // The chunks reach the decoder as a byte stream, whatever the frames.
        let cfg = DecodeConfig::new(ProtocolVersion::V3_1_1);
        let mut buf = BytesMut::new();
        let mut packets = Vec::new();
        while packets.len() < 2 {
            let chunk = inb.read_chunk().await.unwrap().unwrap();
            buf.extend_from_slice(&chunk);
            while let Some(p) = mqtt_wire::decode(&mut buf, &cfg).unwrap() {
                packets.push(p);
            }
        }
        assert!(matches!(&packets[0], Packet::Publish(p) if &p.payload[..] == b"xy"));
        assert_eq!(packets[1], Packet::PingReq);
    }
}
