//! A small HTTP/1.1 server on hyper, shared by the operators' endpoint (`crate::http`:
//! console, `/metrics`, `/ready`) and the schema registry's REST API: bounded connections,
//! optional TLS, a header timeout, the peer's address in each request.
//! **Layer:** knows HTTP and TLS only, nothing of the broker or the registry.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The client's address, in every request's extensions (for ACL host checks).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves HTTP/1.1 on `listener` until `shutdown`: each connection in a task of its own, at
/// most `connections_max` at once (more wait in the accept queue), each request answered by
/// `handler`.
pub async fn serve_connections<H, F>(
    listener: TcpListener,
    shutdown: CancellationToken,
    connections_max: usize,
    tls: Option<Arc<crate::security::tls::Tls>>,
    handler: H,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(connections_max));
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("semaphore never closed"),
            _ = shutdown.cancelled() => return,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!("failed to accept HTTP connection: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let handler = handler.clone();
        let peer = stream.peer_addr().ok().map(PeerAddr);
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_one(stream, peer, handler).await,
                Some(tls) => {
                    // The SASL_SSL acceptor: server authentication, no client certificate.
                    let acceptor =
                        tls.acceptor(crate::security::listener::SecurityProtocol::SaslSsl);
                    match tokio::time::timeout(
                        crate::security::tls::HANDSHAKE_TIMEOUT,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(stream)) => serve_one(stream, peer, handler).await,
                        Ok(Err(err)) => tracing::debug!("HTTPS handshake failed: {err}"),
                        Err(_) => tracing::debug!("HTTPS handshake timed out"),
                    }
                }
            }
            drop(permit);
        });
    }
}

/// Serves one HTTP/1.1 connection over `io` (TCP or TLS).
async fn serve_one<S, H, F>(io: S, peer: Option<PeerAddr>, handler: H)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    let service = service_fn(move |mut req: Request<Incoming>| {
        if let Some(peer) = peer {
            req.extensions_mut().insert(peer);
        }
        handler(req)
    });
    let result = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .await;
    if let Err(err) = result {
        tracing::debug!("HTTP connection ended: {err}");
    }
}
