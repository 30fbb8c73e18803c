//! One client connection: length-prefixed frames in, responses out in request order.
//!
//! A reader task cuts frames (rejecting any over `max_request_bytes` by closing the
//! connection) and hands them over a bounded channel; the connection task admits requests in
//! order and keeps at most `max_inflight_requests` responses pending, so a parked fetch does
//! not stop later produce requests from being admitted, while responses still leave in
//! order (Kafka clients require it).
//!
//! A frame's bytes are reserved from the broker-wide `BrokerCtx::request_memory` budget
//! (`max_queued_request_bytes`) before it is read and released once it is admitted. The
//! connection owns its `security::Session`: `Session::admits` decides whether a request may
//! be handled yet; after SaslHandshake v0 frames are bare SASL tokens; a failed
//! authentication stops reading; `connections_max_idle` without a request closes it. On
//! shutdown it stops reading and answers what it admitted, for at most `DRAIN_TIMEOUT`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use kafka_protocol::messages::ResponseKind;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::broker::{self, BrokerCtx, Reply};
use crate::metrics::limits::{Limit, LimitMetrics};
use crate::protocol::frame::Frame;
use crate::protocol::{self, Decoded};
use crate::security::Session;

/// What a connection reads and writes: a TCP stream, or TLS over one.
pub trait ClientStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<S: AsyncRead + AsyncWrite + Send + Unpin + 'static> ClientStream for S {}

/// Longest time a closing connection keeps answering requests it already admitted.
pub const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn sleep_until_deadline(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Fetch requests of one connection processed at once. Kafka clients (librdkafka, Java,
/// kafka-python, franz-go) keep one Fetch outstanding per broker; a connection pipelining
/// more would otherwise hold up to `max_inflight_requests` responses of `max_fetch_bytes`
/// each while it does not read them.
const FETCHES_PENDING_MAX: usize = 1;

/// Largest frame read before a SASL listener's client authenticated (Kafka's
/// `sasl.server.max.receive.size` default): SASL tokens are small.
pub const UNAUTHENTICATED_REQUEST_BYTES_MAX: u64 = 512 * 1024;

/// A frame's buffer is allocated whole up to this size (a typical produce request, read
/// without reallocating); a larger frame's buffer starts here and doubles as its bytes
/// arrive, so a client announcing a huge frame and sending little makes us allocate little.
/// Either way the frame's whole length was reserved from the request-memory budget first.
const FRAME_PREALLOC_MAX: usize = 4 * 1024 * 1024;

/// Why a connection's frame reader stopped.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes exceeds max_request_bytes")]
    TooLarge(i64),
    #[error("negative frame length {0}")]
    Negative(i32),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads one frame; `Ok(None)` at a clean end of stream. The frame's bytes are reserved
/// from the broker-wide `budget` before they are read, so all connections together never
/// hold more than `max_queued_request_bytes` of requests waiting for admission.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: u64,
    budget: &Arc<Semaphore>,
    limits: &LimitMetrics,
) -> Result<Option<(Bytes, OwnedSemaphorePermit)>, FrameError> {
    let mut len_buf = [0u8; 4];
    match reader.read_exact(&mut len_buf).await {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err.into()),
    }
    let len = i32::from_be_bytes(len_buf);
    if len < 0 {
        return Err(FrameError::Negative(len));
    }
    if len as u64 > max {
        limits.reached(Limit::RequestBytes);
        return Err(FrameError::TooLarge(i64::from(len)));
    }
    let len = len as usize;
    // Validation guarantees max_request_bytes <= max_queued_request_bytes <= u32::MAX.
    let wanted = u32::try_from(len).unwrap_or(u32::MAX).max(1);
    let permit = match budget.clone().try_acquire_many_owned(wanted) {
        Ok(permit) => permit,
        Err(_) => {
            limits.reached(Limit::QueuedRequestBytes);
            budget
                .clone()
                .acquire_many_owned(wanted)
                .await
                .map_err(|_| std::io::Error::other("broker shutting down"))?
        }
    };
    let mut frame = BytesMut::with_capacity(len.min(FRAME_PREALLOC_MAX));
    while frame.len() < len {
        if frame.len() == frame.capacity() {
            frame.reserve((len - frame.len()).min(frame.len()));
        }
        let want = (len - frame.len()).min(frame.capacity() - frame.len());
        let mut limited = (&mut *reader).take(want as u64);
        let n = limited.read_buf(&mut frame).await?;
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
    }
    Ok(Some((frame.freeze(), permit)))
}

/// Serves one connection whose TLS handshake (if any) is done; `principal` is the client
/// certificate's, or `User:ANONYMOUS`.
pub async fn serve(
    stream: impl ClientStream,
    session: Session,
    ctx: Arc<BrokerCtx>,
    shutdown: CancellationToken,
) {
    let connection_id = ctx
        .next_connection_id
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let span = tracing::info_span!(
        "connection",
        peer = %session.peer,
        listener = %session.listener,
        connection_id
    );
    ctx.open_connections
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    run(stream, session, connection_id, ctx.clone(), shutdown)
        .instrument(span)
        .await;
    ctx.open_connections
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}

async fn run(
    stream: impl ClientStream,
    mut session: Session,
    connection_id: u64,
    ctx: Arc<BrokerCtx>,
    shutdown: CancellationToken,
) {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let inflight_max = ctx.config.max_inflight_requests;
    let max_request_bytes = ctx.config.max_request_bytes;
    let budget = ctx.request_memory.clone();
    // Until a SASL listener's client has authenticated, its frames are held to Kafka's
    // `sasl.server.max.receive.size`: a stranger cannot make the broker buffer 100 MiB.
    let authenticated = Arc::new(AtomicBool::new(!session.listener.uses_sasl()));
    let reader_authenticated = authenticated.clone();
    let (frames_tx, mut frames_rx) = mpsc::channel::<(Bytes, OwnedSemaphorePermit)>(inflight_max);
    let reader_ctx = ctx.clone();
    let mut reader_task = tokio::spawn(
        async move {
            let limits = &reader_ctx.metrics.limits;
            loop {
                let max = if reader_authenticated.load(Ordering::Acquire) {
                    max_request_bytes
                } else {
                    UNAUTHENTICATED_REQUEST_BYTES_MAX.min(max_request_bytes)
                };
                match read_frame(&mut reader, max, &budget, limits).await {
                    Ok(Some(frame)) => {
                        let frame = match frames_tx.try_send(frame) {
                            Ok(()) => continue,
                            Err(mpsc::error::TrySendError::Closed(_)) => return,
                            Err(mpsc::error::TrySendError::Full(frame)) => frame,
                        };
                        // `max_inflight_requests` frames wait for admission (their
                        // responses are not being taken): stop reading until one is.
                        limits.reached(Limit::InflightRequests);
                        if frames_tx.send(frame).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(FrameError::Io(err)) => {
                        tracing::debug!("connection read ended: {err}");
                        return;
                    }
                    Err(err) => {
                        tracing::warn!("closing connection: {err}");
                        return;
                    }
                }
            }
        }
        .in_current_span(),
    );

    let mut pending = Admitted::default();
    // A Fetch read while another is pending: admitted once that one is answered.
    let mut deferred: Option<(Bytes, OwnedSemaphorePermit)> = None;
    let mut reading = true;
    // On shutdown the connection stops taking requests but answers the ones it admitted
    // (produce acks come with the final flush) for at most DRAIN_TIMEOUT.
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    // Kafka's `connections.max.idle.ms`: counted from the last response written or request
    // read, only while nothing is pending.
    let idle_timeout = ctx.config.security.connections_max_idle;
    let mut idle_deadline = tokio::time::Instant::now() + idle_timeout;
    loop {
        if !reading && pending.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            Some(response) = pending.replies.next(), if !pending.is_empty() => {
                pending.answered();
                let Ok(response) = response else { break };
                // A TLS stream may keep written bytes in its buffer: flush so the response
                // leaves now (a no-op on plain TCP).
                if let Some(frame) = response {
                    let written = match write_frame(&mut writer, frame).await {
                        Ok(()) => writer.flush().await,
                        Err(err) => Err(err),
                    };
                    if let Err(err) = written {
                        tracing::debug!("connection write failed: {err}");
                        break;
                    }
                }
                idle_deadline = tokio::time::Instant::now() + idle_timeout;
                let Some((frame, permit)) =
                    deferred.take_if(|_| pending.fetches < FETCHES_PENDING_MAX && reading)
                else {
                    continue;
                };
                // The deferred Fetch goes in now, ahead of any frame read after it.
                let admitted = admit(&ctx, frame, &mut session, connection_id).await;
                drop(permit);
                let Ok(reply) = admitted else { break };
                pending.push(reply, true);
            }
            frame = frames_rx.recv(), if reading && deferred.is_none() && pending.len() < inflight_max => {
                let Some((frame, permit)) = frame else {
                    reading = false;
                    continue;
                };
                idle_deadline = tokio::time::Instant::now() + idle_timeout;
                let is_fetch = !session.expects_raw_token()
                    && protocol::peek_header(&frame)
                        .is_some_and(|h| h.api_key == kafka_protocol::messages::ApiKey::Fetch as i16);
                if is_fetch && pending.fetches >= FETCHES_PENDING_MAX {
                    // Clients keep one Fetch outstanding per broker; a second one waits
                    // (and with it everything after it) until the first is answered, so a
                    // connection pins at most one fetch response's bytes.
                    ctx.metrics.limits.reached(Limit::FetchesPerConnection);
                    deferred = Some((frame, permit));
                    continue;
                }
                let admitted = admit(&ctx, frame, &mut session, connection_id).await;
                // Admission copied what must outlive it (produce batches are accounted by
                // the log's unflushed-bytes limit from here on).
                drop(permit);
                // `admit` logged why it failed, with the request's id.
                let Ok(reply) = admitted else { break };
                pending.push(reply, is_fetch);
                if session.close_after_response {
                    // A failed authentication: answer it, then close.
                    reading = false;
                }
                if session.sasl.authenticated.is_some() {
                    authenticated.store(true, Ordering::Release);
                }
            }
            _ = tokio::time::sleep_until(idle_deadline), if reading && pending.is_empty() => {
                tracing::debug!(?idle_timeout, "closing idle connection");
                ctx.metrics.security.idle_closed();
                break;
            }
            _ = shutdown.cancelled(), if reading => {
                reading = false;
                drain_deadline = Some(tokio::time::Instant::now() + DRAIN_TIMEOUT);
            }
            _ = sleep_until_deadline(drain_deadline), if drain_deadline.is_some() => break,
        }
    }
    if session.close_after_response {
        // The last answer is a refusal: give the client a moment to read it and close its
        // side first. Closing at once can reach some clients (kafka-python over TLS was seen
        // to) together with the answer, which they then drop as a lost connection.
        let _ = tokio::time::timeout(CLOSE_LINGER, &mut reader_task).await;
    }
    reader_task.abort();
    let _ = writer.shutdown().await;
}

/// A reply to be written: the framed response, `None` for none (acks=0), `Err` to close.
type Pending = futures::future::BoxFuture<'static, Result<Option<Frame>, ()>>;

/// The requests a connection admitted and has not answered yet, in order, and how many of
/// them are Fetches.
#[derive(Default)]
struct Admitted {
    replies: FuturesOrdered<Pending>,
    is_fetch: std::collections::VecDeque<bool>,
    fetches: usize,
}

impl Admitted {
    fn push(&mut self, reply: Pending, is_fetch: bool) {
        self.replies.push_back(reply);
        self.is_fetch.push_back(is_fetch);
        self.fetches += usize::from(is_fetch);
    }

    /// The oldest reply was taken from `replies`.
    fn answered(&mut self) {
        if self.is_fetch.pop_front() == Some(true) {
            self.fetches -= 1;
        }
    }

    fn len(&self) -> usize {
        self.replies.len()
    }

    fn is_empty(&self) -> bool {
        self.replies.is_empty()
    }
}

/// I/O vectors handed to one vectored write (Linux takes up to 1024).
const WRITE_VECTORS_MAX: usize = 64;

/// Writes a response's segments, several per system call where the stream can (a Fetch
/// response's record bytes go from the chunk cache to the socket without a copy).
async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, frame: Frame) -> std::io::Result<()> {
    let mut segments = std::collections::VecDeque::from(frame.segments);
    if !writer.is_write_vectored() {
        for segment in segments {
            writer.write_all(&segment).await?;
        }
        return Ok(());
    }
    while !segments.is_empty() {
        let slices: Vec<std::io::IoSlice<'_>> = segments
            .iter()
            .take(WRITE_VECTORS_MAX)
            .map(|segment| std::io::IoSlice::new(segment))
            .collect();
        let mut written = writer.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let first = segments
                .front_mut()
                .expect("wrote no more than the segments hold");
            if written >= first.len() {
                written -= first.len();
                segments.pop_front();
            } else {
                bytes::Buf::advance(first, written);
                written = 0;
            }
        }
        while segments.front().is_some_and(|segment| segment.is_empty()) {
            segments.pop_front();
        }
    }
    Ok(())
}

/// Longest wait for a client to close after its connection's refusal was answered.
const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// The span of one request: its connection-scoped id (`<connection id>-<correlation id>`,
/// unique while the broker runs) and what it asks for. Everything logged while the request
/// is admitted or answered carries these fields (the JSON log format lists them under
/// `span` and `spans`).
fn request_span(connection_id: u64, frame: &[u8]) -> tracing::Span {
    let Some(header) = protocol::peek_header(frame) else {
        return tracing::info_span!("request", request_id = %format_args!("{connection_id}-?"));
    };
    let api = kafka_protocol::messages::ApiKey::try_from(header.api_key)
        .map(|key| format!("{key:?}"))
        .unwrap_or_else(|_| format!("unknown({})", header.api_key));
    tracing::info_span!(
        "request",
        request_id = %format_args!("{connection_id}-{}", header.correlation_id),
        api = %api,
        api_version = header.api_version,
        correlation_id = header.correlation_id,
    )
}

/// Decodes and admits one request; the returned future yields its framed response.
/// `Err(())`: the connection must close (why is logged here, in the request's span).
async fn admit(
    ctx: &Arc<BrokerCtx>,
    frame: Bytes,
    session: &mut Session,
    connection_id: u64,
) -> Result<futures::future::BoxFuture<'static, Result<Option<Frame>, ()>>, ()> {
    if session.expects_raw_token() {
        // After SaslHandshake v0 the frame is a bare SASL token, not a request.
        let span =
            tracing::info_span!("sasl_token", request_id = %format_args!("{connection_id}-sasl"));
        use futures::FutureExt;
        let reply = broker::handle_raw_sasl_token(ctx, session, frame)
            .instrument(span)
            .await;
        let frame = |bytes: Option<BytesMut>| {
            Ok(bytes.map(|bytes| Frame {
                segments: vec![bytes.freeze()],
            }))
        };
        return Ok(reply.map(frame).boxed());
    }
    let span = request_span(connection_id, &frame);
    admit_in_span(ctx, frame, session, span.clone())
        .instrument(span)
        .await
}

async fn admit_in_span(
    ctx: &Arc<BrokerCtx>,
    frame: Bytes,
    session: &mut Session,
    span: tracing::Span,
) -> Result<futures::future::BoxFuture<'static, Result<Option<Frame>, ()>>, ()> {
    use futures::FutureExt;
    let started = std::time::Instant::now();
    let request = match protocol::decode_request(frame) {
        Ok(Decoded::Request(request)) => *request,
        Ok(Decoded::UnsupportedApiVersions(response)) => {
            return Ok(futures::future::ready(Ok(Some(response))).boxed());
        }
        Err(err) => {
            ctx.metrics.requests.rejected();
            tracing::warn!("closing connection: {err}");
            return Err(());
        }
    };
    let correlation_id = request.header.correlation_id;
    let api_key = request.api_key;
    let version = request.header.request_api_version;
    if let Err(refusal) = session.admits(api_key, tokio::time::Instant::now()) {
        ctx.metrics.security.unauthenticated_closed();
        tracing::info!("closing connection: {refusal}");
        return Err(());
    }
    tracing::debug!("request");
    ctx.metrics.requests.request(api_key, &request.body);
    let reply = match broker::handle(ctx, request, session).await {
        Ok(reply) => reply,
        Err(err) => {
            tracing::warn!("closing connection: {err}");
            return Err(());
        }
    };
    let metrics_ctx = ctx.clone();
    let frame_response = move |body: Option<ResponseKind>| -> Result<Option<Frame>, ()> {
        // One log line per response, however many partitions carry an error.
        let (mut errors, mut first_code) = (0u32, 0i16);
        metrics_ctx
            .metrics
            .requests
            .response(api_key, body.as_ref(), started.elapsed(), |code| {
                errors += 1;
                if first_code == 0 {
                    first_code = code;
                }
            });
        if errors > 0 {
            let error = kafka_protocol::ResponseError::try_from_code(first_code);
            tracing::debug!(errors, code = first_code, ?error, "response carries errors");
        }
        let Some(body) = body else { return Ok(None) };
        match protocol::encode_response(correlation_id, api_key, version, &body) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(err) => {
                // Our own response failed to encode: a bug, but one connection's problem.
                // The client would wait for this correlation id forever, so close instead.
                tracing::error!("failed to encode response: {err:#}");
                Err(())
            }
        }
    };
    Ok(match reply {
        Reply::Now(body) => futures::future::ready(frame_response(body.map(|b| *b))).boxed(),
        Reply::Later(future) => future.map(frame_response).instrument(span).boxed(),
    })
}
