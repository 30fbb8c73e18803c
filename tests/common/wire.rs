//! Raw Kafka frames over a blocking TCP stream, for tests that speak the protocol directly
//! (exact versions, malformed input, error codes real clients rarely trigger).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

use super::Broker;

pub const IO_TIMEOUT: Duration = Duration::from_secs(15);

pub fn connect(broker: &Broker) -> TcpStream {
    let stream = TcpStream::connect(broker.addr).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// Raw requests on one connection, with increasing correlation ids.
pub struct Wire {
    pub stream: TcpStream,
    correlation_id: i32,
}

impl Wire {
    pub fn connect(broker: &Broker) -> Wire {
        Wire {
            stream: connect(broker),
            correlation_id: 0,
        }
    }

    /// Sends `request` as `version` and reads its response.
    pub fn call<R: Request>(&mut self, version: i16, request: &R) -> R::Response {
        let key = ApiKey::try_from(R::KEY).expect("a known API");
        self.correlation_id += 1;
        send(&mut self.stream, key, version, self.correlation_id, request);
        response(&mut self.stream, key, version, self.correlation_id)
    }
}

pub fn send<T: Encodable>(
    stream: &mut TcpStream,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) {
    let frame = request_frame(key, version, correlation_id, body);
    stream.write_all(&frame).expect("write request");
}

/// A request as it goes on the wire: length prefix, header, body.
pub fn request_frame<T: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("robustness-test")))
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf
}

/// Fetch (v4 and later) of `topic` partition 0 from `offset`: at most `max_bytes`, waiting
/// at most `max_wait_ms` for at least one byte.
pub fn fetch_request(
    topic: &str,
    offset: i64,
    max_bytes: i32,
    max_wait_ms: i32,
) -> kafka_protocol::messages::FetchRequest {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, TopicName};
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(max_bytes),
                ]),
        ])
}

/// Reads one response frame; `None` when the broker closed the connection.
pub fn read_frame(stream: &mut TcpStream) -> Option<Bytes> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len) {
        Ok(()) => {}
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ) =>
        {
            return None;
        }
        Err(err) => panic!("read response: {err}"),
    }
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).expect("read response body");
    Some(Bytes::from(body))
}

pub fn response<T: Decodable>(
    stream: &mut TcpStream,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
) -> T {
    let mut frame = read_frame(stream).expect("a response, not a closed connection");
    let header = ResponseHeader::decode(&mut frame, key.response_header_version(version)).unwrap();
    assert_eq!(
        header.correlation_id, correlation_id,
        "responses in request order"
    );
    T::decode(&mut frame, version).expect("decode response")
}

/// Sends a request and reads its response.
pub fn call<Req: Encodable, Resp: Decodable>(
    stream: &mut TcpStream,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    request: &Req,
) -> Resp {
    send(stream, key, version, correlation_id, request);
    response(stream, key, version, correlation_id)
}

/// InitProducerId v4 for an idempotent (non-transactional) producer: a new producer id, or
/// with `current` = (id, epoch) a KIP-360 epoch bump. Returns (producer id, epoch) after
/// checking that there was no error.
pub fn init_producer_id(
    stream: &mut TcpStream,
    correlation_id: i32,
    current: Option<(i64, i16)>,
) -> (i64, i16) {
    use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
    let (id, epoch) = current.unwrap_or((-1, -1));
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(epoch);
    send(stream, ApiKey::InitProducerId, 4, correlation_id, &request);
    let response: InitProducerIdResponse =
        response(stream, ApiKey::InitProducerId, 4, correlation_id);
    assert_eq!(
        response.error_code, 0,
        "InitProducerId answered without error"
    );
    (response.producer_id.0, response.producer_epoch)
}
