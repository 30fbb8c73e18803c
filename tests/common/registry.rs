//! A minimal HTTP/1.1 client for the broker's schema registry: one request per connection,
//! a bounded response, a timeout on every read.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// Largest response read.
const RESPONSE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// `method path` with an optional JSON body: (status, body parsed as JSON, or as a string
/// when it is not JSON).
pub fn call(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let (status, text) = raw(addr, method, path, &body);
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// Sends `body` as it is: (status, body text).
pub fn raw(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let (status, _, body) = exchange(addr, method, path, body, None);
    (status, body)
}

/// [`call`] with HTTP basic credentials (`None`: no `Authorization` header): (status, the
/// response head, body parsed as JSON or as a string).
pub fn call_as(
    addr: SocketAddr,
    credentials: Option<(&str, &str)>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, String, Value) {
    use base64::Engine;
    let authorization = credentials.map(|(user, password)| {
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    });
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let (status, head, text) = exchange(addr, method, path, &body, authorization.as_deref());
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, head, value)
}

/// One request: (status, head, body text).
fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    basic: Option<&str>,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the schema registry");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let authorization = basic
        .map(|b| format!("Authorization: Basic {b}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{authorization}\
         Content-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = Vec::new();
    stream
        .take(RESPONSE_BYTES_MAX)
        .read_to_end(&mut response)
        .expect("read the response");
    let response = String::from_utf8(response).expect("a UTF-8 response");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/vnd.schemaregistry.v1+json"),
        "{head}"
    );
    (status, head.to_string(), body.to_string())
}

/// The Confluent `error_code` of an error body (0 when there is none).
pub fn error_code(body: &Value) -> u64 {
    body["error_code"].as_u64().unwrap_or(0)
}

/// `{"schema": <schema as a string>}` plus any other fields.
pub fn schema_body(schema: &Value) -> Value {
    serde_json::json!({ "schema": schema.to_string() })
}
