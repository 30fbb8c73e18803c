//! The HTTP endpoint for operators (`--http-listen`, default 127.0.0.1:9644): the web
//! console (`/`, `/ui/`, `/api/v1/`: `crate::console`),
//! `/metrics` in Prometheus text format (`crate::broker::metrics_page::render`), `/health` (the process
//! is up) and `/ready` (the metadata store answers, the object store answers, and the
//! broker's registration lease is held; 503 with one line per failing check otherwise; a
//! ready broker whose dependencies answer slowly says so, one line each, still with 200).
//! Served with hyper; one small task per connection.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use strato_metadata::keys;
use strato_tiering::error_chain;

use crate::broker::BrokerCtx;
use crate::console::{Console, ConsoleRequest, Samples};

/// How long `/ready` waits for the metadata store.
const READY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `/ready` waits for the object store's answer to its probe (one HEAD).
const OBJECT_STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an object store probe's outcome is reused: readiness probes come every few
/// seconds from each prober, and each S3 request costs money.
const OBJECT_STORE_PROBE_TTL: Duration = Duration::from_secs(5);
/// HTTP connections served at once; more wait in the accept queue.
const HTTP_CONNECTIONS_MAX: usize = 64;

/// A metadata store answering `/ready`'s read slower than this is reported slow.
const METADATA_SLOW: Duration = Duration::from_millis(100);
/// An object store answering `/ready`'s probe slower than this is reported slow.
const OBJECT_STORE_SLOW: Duration = Duration::from_millis(250);

/// The last object store probe: when it ran and what it found (how long it took, or why it
/// failed).
type ProbeOutcome = Option<(Instant, Result<Duration, String>)>;

struct HttpState {
    ctx: Arc<BrokerCtx>,
    last_probe: Mutex<ProbeOutcome>,
    console: Console,
}

pub async fn serve(listener: TcpListener, ctx: Arc<BrokerCtx>, shutdown: CancellationToken) {
    let samples = Arc::new(Samples::default());
    {
        let (samples, ctx, shutdown) = (samples.clone(), ctx.clone(), shutdown.clone());
        tokio::spawn(async move { samples.run(ctx, shutdown).await });
    }
    let state = Arc::new(HttpState {
        console: Console::new(ctx.clone(), samples),
        ctx,
        last_probe: Mutex::new(None),
    });
    let tls = if state.ctx.config.http_tls {
        state.ctx.tls.clone()
    } else {
        None
    };
    crate::http_server::serve_connections(
        listener,
        shutdown,
        HTTP_CONNECTIONS_MAX,
        tls,
        move |req| respond(state.clone(), req),
    )
    .await;
}

async fn respond(
    state: Arc<HttpState>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if let Some(path) = state.console.route(req.uri().path()) {
        let path = path.to_string();
        let (parts, body) = req.into_parts();
        let body = if parts.method == hyper::Method::POST {
            use http_body_util::BodyExt;
            match http_body_util::Limited::new(body, crate::console::write::BODY_BYTES_MAX)
                .collect()
                .await
            {
                Ok(collected) => collected.to_bytes(),
                Err(_) => {
                    return Ok(Response::builder()
                        .status(StatusCode::PAYLOAD_TOO_LARGE)
                        .header("content-type", "text/plain")
                        .body(Full::new(Bytes::from_static(b"request body too large\n")))
                        .expect("static response parts are valid"));
                }
            }
        } else {
            Bytes::new()
        };
        let req = hyper::Request::from_parts(parts, ());
        let object_store = state.object_store_check().await;
        let peer = req
            .extensions()
            .get::<crate::http_server::PeerAddr>()
            .map_or_else(|| ([127, 0, 0, 1], 0).into(), |p| p.0);
        let console_request = ConsoleRequest {
            method: req.method(),
            path: &path,
            query: req.uri().query(),
            authorization: req.headers().get(hyper::header::AUTHORIZATION),
            peer,
            origin: req.headers().get(hyper::header::ORIGIN),
            host: req.headers().get(hyper::header::HOST),
            forwarded: req.headers().contains_key(crate::console::FORWARDED_HEADER),
            body,
        };
        return Ok(state.console.respond(console_request, object_store).await);
    }
    let (status, content_type, body) = match req.uri().path() {
        "/metrics" => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            crate::broker::metrics_page::render(&state.ctx),
        ),
        "/health" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        "/ready" => {
            let (failures, slow) = state.not_ready().await;
            if failures.is_empty() {
                // Slow dependencies cost latency, not correctness: the broker stays ready
                // (taking every broker out of a load balancer because S3 is slow would turn
                // latency into an outage) and says what is slow.
                (
                    StatusCode::OK,
                    "text/plain",
                    format!("ready\n{}", slow.concat()),
                )
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    failures.concat(),
                )
            }
        }
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    };
    let response = Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid");
    Ok(response)
}

impl HttpState {
    /// One line per failing readiness check (empty when the broker is ready), and one per
    /// dependency answering slower than its `*_SLOW` bound. The checks run concurrently, so
    /// `/ready` answers within the longest timeout.
    async fn not_ready(&self) -> (Vec<String>, Vec<String>) {
        let (metadata, object_store) =
            tokio::join!(self.metadata_check(), self.object_store_probe());
        let mut failures = Vec::new();
        let mut slow = Vec::new();
        let mut note =
            |what: &str, outcome: Result<Duration, String>, bound: Duration| match outcome {
                Err(reason) => failures.push(format!("{what}: {reason}\n")),
                Ok(took) if took > bound => slow.push(format!(
                    "{what}: slow (answered in {} ms; slow above {} ms)\n",
                    took.as_millis(),
                    bound.as_millis()
                )),
                Ok(_) => {}
            };
        note("metadata store", metadata, METADATA_SLOW);
        note("object store", object_store, OBJECT_STORE_SLOW);
        if !self.ctx.lease_held.load(Ordering::Relaxed) {
            failures.push("broker lease: not held (registration may have expired)\n".to_string());
        }
        (failures, slow)
    }

    /// How long the metadata store took to answer a read, or why it did not.
    async fn metadata_check(&self) -> Result<Duration, String> {
        let started = Instant::now();
        match tokio::time::timeout(READY_TIMEOUT, self.ctx.meta.get(keys::CLUSTER_ID)).await {
            Ok(Ok(_)) => Ok(started.elapsed()),
            Ok(Err(err)) => Err(error_chain(&err)),
            Err(_) => Err("timed out".to_string()),
        }
    }

    /// The object store probe's outcome, probing again when the last one is older than
    /// [`OBJECT_STORE_PROBE_TTL`]. No lock is held across the probe: two probes that race
    /// both run (at most one per HTTP connection), and the later outcome is kept.
    async fn object_store_check(&self) -> Result<(), String> {
        self.object_store_probe().await.map(|_| ())
    }

    /// [`Self::object_store_check`] with the probe's duration.
    async fn object_store_probe(&self) -> Result<Duration, String> {
        if let Some((at, outcome)) = &*self.last_probe.lock().expect("probe lock")
            && at.elapsed() < OBJECT_STORE_PROBE_TTL
        {
            return outcome.clone();
        }
        let started = Instant::now();
        let outcome = self
            .ctx
            .tier
            .probe(OBJECT_STORE_PROBE_TIMEOUT)
            .await
            .map(|()| started.elapsed())
            .map_err(|err| error_chain(&err));
        *self.last_probe.lock().expect("probe lock") = Some((Instant::now(), outcome.clone()));
        outcome
    }
}
