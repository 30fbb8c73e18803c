//! A pipelined Kafka connection for the benchmark producer: several requests written before
//! their responses are read, as librdkafka does (`max.in.flight.requests.per.connection`);
//! [`Connection`] sends one request at a time.
//!
//! A [`Pipeline`] takes over a negotiated [`Connection`]'s stream. A reader task reads the
//! response frames in request order, each by the request timeout counted from when its
//! request was written, and stamps when each arrived: latency is measured to that instant,
//! not to when the sender gets round to the answer. Any failure breaks the pipeline: the
//! failed request and every later one get an error. Dropping the pipeline stops the reader.

use std::marker::PhantomData;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Decodable;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::kafka_client::transport::Stream;
use super::kafka_client::{
    ClientError, ClientOptions, ClientRequest, Connection, encode_frame, read_frame, response_body,
};

/// One connection with up to `in_flight_max` requests awaiting their responses.
pub(super) struct Pipeline {
    addr: String,
    writer: WriteHalf<Stream>,
    /// Requests written, in order, for the reader; bounded by the in-flight limit.
    awaited_tx: mpsc::Sender<Awaited>,
    correlation_id: i32,
    request_timeout: Duration,
    reader: tokio::task::JoinHandle<()>,
    broken: bool,
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A written request whose response the reader waits for.
struct Awaited {
    correlation_id: i32,
    api: ApiKey,
    version: i16,
    deadline: Instant,
    reply: oneshot::Sender<Result<Answer, ClientError>>,
}

/// A response body and when its frame had been read.
struct Answer {
    received_at: Instant,
    body: Bytes,
}

/// The response to one pipelined request, to be awaited.
pub(super) struct PendingResponse<R> {
    rx: oneshot::Receiver<Result<Answer, ClientError>>,
    addr: String,
    version: i16,
    request: PhantomData<fn() -> R>,
}

impl<R: ClientRequest> PendingResponse<R> {
    /// The decoded response and when it arrived.
    pub(super) async fn wait(self) -> Result<(Instant, R::Response), ClientError> {
        let answer = self.rx.await.map_err(|_| ClientError::Broken {
            addr: self.addr.clone(),
        })??;
        let mut body = answer.body;
        let response =
            R::Response::decode(&mut body, self.version).map_err(|err| ClientError::Decode {
                addr: self.addr.clone(),
                api: api_key::<R>(),
                version: self.version,
                reason: format!("{err:#}"),
            })?;
        Ok((answer.received_at, response))
    }
}

fn api_key<R: ClientRequest>() -> ApiKey {
    ApiKey::try_from(R::KEY).expect("kafka-protocol request types carry known API keys")
}

impl Pipeline {
    /// Takes over `connection` (versions negotiated, logged in) for up to `in_flight_max`
    /// requests at a time.
    pub(super) fn new(
        connection: Connection,
        options: &ClientOptions,
        in_flight_max: usize,
    ) -> Result<Self, ClientError> {
        let addr = connection.addr().to_string();
        let stream = connection.into_stream()?;
        let (reader, writer) = tokio::io::split(stream);
        let (awaited_tx, awaited_rx) = mpsc::channel(in_flight_max.max(1));
        let reader = tokio::spawn(read_responses(
            reader,
            awaited_rx,
            addr.clone(),
            options.response_bytes_max,
            options.request_timeout,
        ));
        Ok(Self {
            addr,
            writer,
            awaited_tx,
            correlation_id: 0,
            request_timeout: options.request_timeout,
            reader,
            broken: false,
        })
    }

    /// Writes `request` at `version` (from [`Connection::version`] before the hand-over);
    /// its response is awaited with the returned handle.
    pub(super) async fn send<R: ClientRequest>(
        &mut self,
        version: i16,
        request: &R,
    ) -> Result<PendingResponse<R>, ClientError> {
        let (reply, rx) = oneshot::channel();
        let correlation_id = self.next_correlation_id();
        let awaited = Awaited {
            correlation_id,
            api: api_key::<R>(),
            version,
            deadline: Instant::now() + self.request_timeout,
            reply,
        };
        // The reader learns of the request before its response can arrive.
        self.awaited_tx
            .send(awaited)
            .await
            .map_err(|_| ClientError::Broken {
                addr: self.addr.clone(),
            })?;
        self.write(correlation_id, version, request).await?;
        Ok(PendingResponse {
            rx,
            addr: self.addr.clone(),
            version,
            request: PhantomData,
        })
    }

    /// Writes `request`, which gets no response (Produce with acks=0); returns when it was
    /// written.
    pub(super) async fn send_unanswered<R: ClientRequest>(
        &mut self,
        version: i16,
        request: &R,
    ) -> Result<Instant, ClientError> {
        let correlation_id = self.next_correlation_id();
        self.write(correlation_id, version, request).await?;
        Ok(Instant::now())
    }

    fn next_correlation_id(&mut self) -> i32 {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        self.correlation_id
    }

    async fn write<R: ClientRequest>(
        &mut self,
        correlation_id: i32,
        version: i16,
        request: &R,
    ) -> Result<(), ClientError> {
        let api = api_key::<R>();
        if self.broken {
            return Err(ClientError::Broken {
                addr: self.addr.clone(),
            });
        }
        let frame = encode_frame(api, version, correlation_id, |buf| {
            request.encode(buf, version)
        })
        .map_err(|err| ClientError::Encode {
            api,
            version,
            reason: format!("{err:#}"),
        })?;
        // A failure part way leaves part of a frame on the wire.
        self.broken = true;
        let written = tokio::time::timeout(self.request_timeout, async {
            self.writer.write_all(&frame).await?;
            // TLS may hold the last record back until flushed.
            self.writer.flush().await
        })
        .await
        .map_err(|_| ClientError::RequestTimeout {
            addr: self.addr.clone(),
            api,
            timeout: self.request_timeout,
        })?;
        written.map_err(|source| ClientError::Io {
            addr: self.addr.clone(),
            api,
            source,
        })?;
        self.broken = false;
        Ok(())
    }
}

/// Reads the responses of the awaited requests in order until one fails or the pipeline is
/// dropped; a failure drops the queue, so every later request sees the pipeline broken.
async fn read_responses(
    mut reader: ReadHalf<Stream>,
    mut awaited_rx: mpsc::Receiver<Awaited>,
    addr: String,
    response_bytes_max: usize,
    request_timeout: Duration,
) {
    while let Some(awaited) = awaited_rx.recv().await {
        let read = tokio::time::timeout_at(
            awaited.deadline,
            read_frame(&mut reader, response_bytes_max),
        )
        .await;
        let received_at = Instant::now();
        let body = match read {
            Ok(frame) => response_body(
                &addr,
                awaited.api,
                awaited.version,
                awaited.correlation_id,
                frame,
                response_bytes_max,
            ),
            Err(_) => Err(ClientError::RequestTimeout {
                addr: addr.clone(),
                api: awaited.api,
                timeout: request_timeout,
            }),
        };
        let failed = body.is_err();
        // The sender may have given up on the answer (the benchmark stopped).
        let _ = awaited
            .reply
            .send(body.map(|body| Answer { received_at, body }));
        if failed {
            return;
        }
    }
}
