//! Class-events WebSocket helpers for end-to-end tests.
#![allow(dead_code)]

use super::TestServer;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// A client socket.
pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Open `/ws/{class}`.
pub async fn open(server: &TestServer, class: &str) -> Ws {
    let url = format!("{}/ws/{class}", server.base.replace("http://", "ws://"));
    tokio_tungstenite::connect_async(url).await.expect("websocket").0
}

pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.expect("send");
}

/// The next JSON message, or `None` when the socket closed (or nothing within 3 s).
pub async fn next(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(3), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(&t).expect("JSON")),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => return None,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// Read until a message of `kind` (skipping others).
pub async fn wait_for(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let m = next(ws).await.unwrap_or_else(|| panic!("socket closed or silent while waiting for '{kind}'"));
        if m["type"] == kind {
            return m;
        }
    }
}

/// Open and say hello with `token`; returns the socket and the welcome.
pub async fn hello(server: &TestServer, class: &str, token: &str) -> (Ws, Value) {
    let mut ws = open(server, class).await;
    send(&mut ws, json!({"type": "hello", "token": token})).await;
    let welcome = wait_for(&mut ws, "welcome").await;
    (ws, welcome)
}
