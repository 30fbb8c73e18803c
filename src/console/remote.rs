//! Asking another broker's console: a group's members live in its coordinator's memory, so
//! the console of any other broker fetches them from the coordinator's
//! `/api/v1/groups/{id}` (its registration names its HTTP port), with the viewer's
//! credentials. One hop only (the request is marked), a timeout and a size bound.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::HeaderValue;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Marks a request forwarded by another broker's console: it is not forwarded again.
pub const FORWARDED_HEADER: &str = "x-strato-console-forwarded";
const TIMEOUT: Duration = Duration::from_secs(5);
const BODY_BYTES_MAX: usize = 1 << 20;

/// GET `path` from the console at `addr` (host:port): its JSON, or why not.
pub(super) async fn get_json(
    addr: &str,
    path: &str,
    authorization: Option<&HeaderValue>,
) -> Result<Value, String> {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|err| format!("connect to {addr}: {err}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|err| format!("HTTP to {addr}: {err}"))?;
        let driver = tokio::spawn(connection);
        let mut request = hyper::Request::get(path)
            .header(hyper::header::HOST, addr)
            .header(FORWARDED_HEADER, "1");
        if let Some(authorization) = authorization {
            request = request.header(hyper::header::AUTHORIZATION, authorization);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|err| format!("request: {err}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|err| format!("HTTP to {addr}: {err}"))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), BODY_BYTES_MAX)
            .collect()
            .await
            .map_err(|err| format!("read the answer of {addr}: {err}"))?
            .to_bytes();
        driver.abort();
        if !status.is_success() {
            return Err(format!("{addr} answered {status}"));
        }
        serde_json::from_slice(&body).map_err(|err| format!("{addr} answered no JSON: {err}"))
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("{addr} did not answer in {TIMEOUT:?}")))
}
