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
