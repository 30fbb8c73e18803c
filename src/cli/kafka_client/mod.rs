//! A small async Kafka client for the operator CLI, on `kafka-protocol` over TCP or TLS
//! (`transport.rs`): one [`Connection`] to one broker.
//!
//! A connection negotiates versions with ApiVersions and, on a SASL protocol, logs in
//! (SaslHandshake v1, then SaslAuthenticate carrying `sasl_login.rs`'s tokens; again before
//! the session lifetime the broker gave runs out, KIP-368). Then it sends one request at a
//! time with a fresh correlation id, a timeout and a bound on the response size, so a slow
//! or misbehaving peer can neither hang the CLI nor make it allocate without limit. Routing
//! to partition leaders and group coordinators is `cli::cluster`'s job; the benchmark
//! producer's `bench_pipeline` takes over a connection's stream to keep several requests in
//! flight.

mod sasl_login;
pub mod transport;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateAclsRequest, CreatePartitionsRequest,
    CreateTopicsRequest, DeleteAclsRequest, DeleteGroupsRequest, DeleteTopicsRequest,
    DescribeAclsRequest, DescribeClusterRequest, DescribeConfigsRequest, DescribeGroupsRequest,
    DescribeTransactionsRequest, FetchRequest, FindCoordinatorRequest,
    IncrementalAlterConfigsRequest, InitProducerIdRequest, ListGroupsRequest, ListOffsetsRequest,
    ListTransactionsRequest, MetadataRequest, OffsetCommitRequest, OffsetFetchRequest,
    ProduceRequest, RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, Message, Request, StrBytes, VersionRange};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use self::transport::{Security, Stream};
use crate::security::sasl::SaslMechanism;
use crate::security::scram::ScramError;

/// Largest response accepted. Kafka's own clients have no bound of their own; 100 MiB is the
/// broker's default `max_request_bytes` and far above any group or offset listing.
pub const RESPONSE_BYTES_MAX_DEFAULT: usize = 100 * 1024 * 1024;
/// Time for one connect or one request/response exchange (Kafka's `request.timeout.ms`
/// default is 30 s).
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
const CLIENT_ID: &str = "strato-cli";

/// A request this client can build: `CLIENT_VERSIONS` are the versions whose fields the
/// request builders fill correctly (checked against `kafka-protocol` at compile time).
pub trait ClientRequest: Request {
    const CLIENT_VERSIONS: VersionRange;
}

macro_rules! client_versions {
    ($($request:ty => $min:literal ..= $max:literal),* $(,)?) => {$(
        impl ClientRequest for $request {
            const CLIENT_VERSIONS: VersionRange = VersionRange { min: $min, max: $max };
        }
        const _: () = assert!(
            $min >= <$request as Message>::VERSIONS.min
                && $max <= <$request as Message>::VERSIONS.max
                && $min <= $max
        );
    )*};
}

client_versions! {
    ApiVersionsRequest => 0..=3,
    // v1 wraps the tokens in SaslAuthenticate requests; v0's bare frames are not spoken.
    SaslHandshakeRequest => 1..=1,
    // v1 gives the session lifetime (KIP-368).
    SaslAuthenticateRequest => 0..=2,
    // v1 is the first with "null topics = all topics".
    MetadataRequest => 1..=13,
    ListOffsetsRequest => 1..=10,
    FindCoordinatorRequest => 0..=6,
    ListGroupsRequest => 0..=5,
    DescribeGroupsRequest => 0..=6,
    // v2 is the first with "null topics = all committed offsets".
    OffsetFetchRequest => 2..=9,
    OffsetCommitRequest => 2..=9,
    DeleteGroupsRequest => 0..=2,
    CreateTopicsRequest => 2..=7,
    // v6 names topics in `topics` (by name or id); earlier versions in `topic_names`.
    DeleteTopicsRequest => 1..=6,
    CreatePartitionsRequest => 0..=3,
    // v1 is the first with config sources.
    DescribeConfigsRequest => 1..=4,
    IncrementalAlterConfigsRequest => 0..=1,
    // v13 addresses topics by id (KIP-516); these name them.
    ProduceRequest => 3..=12,
    FetchRequest => 4..=12,
    CreateAclsRequest => 1..=3,
    DescribeAclsRequest => 1..=3,
    DeleteAclsRequest => 1..=3,
    // v1 adds the duration filter; v2's id pattern is not used.
    ListTransactionsRequest => 0..=1,
    DescribeTransactionsRequest => 0..=0,
    // v1 adds the endpoint type (brokers, the default).
    DescribeClusterRequest => 0..=1,
    // Without a transactional id (an idempotent producer); v3's producer id and epoch stay -1.
    InitProducerIdRequest => 0..=5,
}

/// Timeouts, bounds and security of a client's connections.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub request_timeout: Duration,
    pub response_bytes_max: usize,
    pub security: Security,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            request_timeout: REQUEST_TIMEOUT_DEFAULT,
            response_bytes_max: RESPONSE_BYTES_MAX_DEFAULT,
            security: Security::plaintext(),
        }
    }
}

/// A Kafka error code, shown by its protocol name (`UNKNOWN_MEMBER_ID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub i16);

impl ErrorCode {
    pub const NONE: ErrorCode = ErrorCode(0);

    pub fn is_ok(self) -> bool {
        self.0 == 0
    }

    pub fn is(self, error: ResponseError) -> bool {
        self.0 == error.code()
    }

    /// Kafka's name for the code, as in `Errors.java`: `GROUP_ID_NOT_FOUND`.
    pub fn name(self) -> String {
        crate::protocol::error_name(self.0)
    }

    pub fn is_retryable(self) -> bool {
        ResponseError::try_from_code(self.0).is_some_and(|e| e.is_retriable())
    }

    /// The coordinator of the group moved or is not ready yet: look it up again.
    pub fn is_coordinator_moved(self) -> bool {
        self.is(ResponseError::NotCoordinator)
            || self.is(ResponseError::CoordinatorNotAvailable)
            || self.is(ResponseError::CoordinatorLoadInProgress)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// Why the broker refused one item of a request (a topic, an ACL): its code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: Option<String>,
}

impl Refusal {
    pub fn new(code: i16, message: Option<&StrBytes>) -> Self {
        Self {
            code: ErrorCode(code),
            message: message.map(|m| m.to_string()).filter(|m| !m.is_empty()),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(message) => write!(f, "{}: {message}", self.code),
            None => write!(f, "{}", self.code),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connect to {addr}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("connect to {addr}: no answer within {timeout:?}")]
    ConnectTimeout { addr: String, timeout: Duration },
    #[error("the host of {addr} is neither a DNS name nor an IP address: no TLS server name")]
    ServerName { addr: String },
    #[error("TLS handshake with {addr}")]
    Tls {
        addr: String,
        source: std::io::Error,
    },
    #[error("TLS handshake with {addr}: not done within {timeout:?}")]
    TlsTimeout { addr: String, timeout: Duration },
    #[error("the broker at {addr} does not offer SASL mechanism {mechanism}; it offers: {offered}")]
    SaslMechanismRefused {
        addr: String,
        mechanism: SaslMechanism,
        offered: String,
    },
    #[error(
        "SASL {mechanism} authentication of user {user:?} at {addr} failed: {code}{}",
        message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
    )]
    Authentication {
        addr: String,
        mechanism: SaslMechanism,
        user: String,
        code: ErrorCode,
        /// The broker's explanation (SaslAuthenticate's error message).
        message: Option<String>,
    },
    #[error("SASL {mechanism} exchange with {addr}")]
    SaslExchange {
        addr: String,
        mechanism: SaslMechanism,
        source: ScramError,
    },
    #[error("{api:?} request to {addr}")]
    Io {
        addr: String,
        api: ApiKey,
        source: std::io::Error,
    },
    #[error("{api:?} request to {addr}: no response within {timeout:?}")]
    RequestTimeout {
        addr: String,
        api: ApiKey,
        timeout: Duration,
    },
    #[error("{api:?} response from {addr} claims {size} bytes; the limit is {max}")]
    ResponseSize {
        addr: String,
        api: ApiKey,
        size: i64,
        max: usize,
    },
    #[error("{api:?} response from {addr} has correlation id {got}, expected {expected}")]
    CorrelationMismatch {
        addr: String,
        api: ApiKey,
        expected: i32,
        got: i32,
    },
    #[error("encode {api:?} v{version} request: {reason}")]
    Encode {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("decode {api:?} v{version} response from {addr}: {reason}")]
    Decode {
        addr: String,
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("the broker at {addr} does not support {api:?}")]
    UnsupportedApi { addr: String, api: ApiKey },
    #[error(
        "the broker at {addr} supports {api:?} versions {broker}, this client {client}: none in common"
    )]
    NoCommonVersion {
        addr: String,
        api: ApiKey,
        broker: VersionRange,
        client: VersionRange,
    },
    #[error("the broker at {addr} speaks {api:?} v{version}; {feature} needs v{needed}")]
    FeatureUnsupported {
        addr: String,
        api: ApiKey,
        version: i16,
        needed: i16,
        feature: &'static str,
    },
    #[error("{api:?} request to {addr} failed: {code}")]
    Kafka {
        addr: String,
        api: ApiKey,
        code: ErrorCode,
    },
    #[error("{api:?} response from {addr} is malformed: {reason}")]
    BadResponse {
        addr: String,
        api: ApiKey,
        reason: String,
    },
    #[error("broker {node_id} is not in the cluster metadata")]
    UnknownNode { node_id: i32 },
    #[error("the connection to {addr} is broken by an earlier failure")]
    Broken { addr: String },
}

impl ClientError {
    /// Whether the same call may succeed later (network trouble, a retriable Kafka error).
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Connect { .. }
            | ClientError::ConnectTimeout { .. }
            | ClientError::TlsTimeout { .. }
            | ClientError::Io { .. }
            | ClientError::RequestTimeout { .. }
            | ClientError::Broken { .. }
            | ClientError::UnknownNode { .. } => true,
            ClientError::Kafka { code, .. } | ClientError::Authentication { code, .. } => {
                code.is_retryable()
            }
            // Mostly certificates that do not verify: trying again changes nothing.
            ClientError::Tls { .. }
            | ClientError::ServerName { .. }
            | ClientError::SaslMechanismRefused { .. }
            | ClientError::SaslExchange { .. }
            | ClientError::ResponseSize { .. }
            | ClientError::CorrelationMismatch { .. }
            | ClientError::Encode { .. }
            | ClientError::Decode { .. }
            | ClientError::UnsupportedApi { .. }
            | ClientError::NoCommonVersion { .. }
            | ClientError::FeatureUnsupported { .. }
            | ClientError::BadResponse { .. } => false,
        }
    }

    /// Advice for a failure to connect, when the error alone may not say what to check: a
    /// client of the wrong security protocol sees a TLS handshake the listener does not
    /// speak, a connection closed, bytes that are no response (a TLS alert read as a frame)
    /// or a SaslHandshake refused by a listener without SASL.
    pub fn connect_hint(&self) -> Option<&'static str> {
        const PROTOCOL: &str =
            "does the listener speak this security protocol? see --security-protocol";
        let tls_error = match self {
            ClientError::Tls { source, .. } | ClientError::Io { source, .. } => source
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
            _ => None,
        };
        match tls_error {
            Some(rustls::Error::InvalidCertificate(_)) => {
                return Some(
                    "is the broker's CA in --tls-ca, and does its certificate name the host dialled?",
                );
            }
            Some(rustls::Error::AlertReceived(
                rustls::AlertDescription::CertificateRequired
                | rustls::AlertDescription::BadCertificate
                | rustls::AlertDescription::UnknownCA,
            )) => {
                return Some(
                    "the listener wants a client certificate signed by a CA it trusts: see --tls-cert and --tls-key",
                );
            }
            _ => {}
        }
        match self {
            ClientError::Tls { .. }
            | ClientError::Io { .. }
            | ClientError::ResponseSize { .. }
            | ClientError::Decode { .. }
            | ClientError::CorrelationMismatch { .. } => Some(PROTOCOL),
            ClientError::Kafka {
                api: ApiKey::SaslHandshake,
                code,
                ..
            } if code.is(ResponseError::IllegalSaslState) => Some(PROTOCOL),
            _ => None,
        }
    }
}

fn api_key<R: Request>() -> ApiKey {
    ApiKey::try_from(R::KEY).expect("kafka-protocol request types carry known API keys")
}

/// The highest version both sides speak: min(client max, broker max), if that is at least
/// both minimums.
fn choose_version(client: VersionRange, broker: VersionRange) -> Option<i16> {
    let common = client.intersect(&broker);
    (!common.is_empty()).then_some(common.max)
}

/// One connection (TCP or TLS) to one broker, with the API versions it advertised.
pub struct Connection {
    addr: String,
    stream: Stream,
    options: ClientOptions,
    correlation_id: i32,
    broker_versions: BTreeMap<i16, VersionRange>,
    /// Set when an exchange failed half way: the stream position is unknown.
    broken: bool,
    /// KIP-368: when the SASL session must be renewed, before the next request.
    reauthenticate_at: Option<Instant>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.addr)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to `addr` (host:port; with TLS, its host is the server name checked),
    /// negotiates API versions and, on a SASL protocol, logs in.
    pub async fn connect(addr: &str, options: ClientOptions) -> Result<Self, ClientError> {
        let stream = transport::open(addr, &options.security, options.request_timeout).await?;
        let mut connection = Self {
            addr: addr.to_string(),
            stream,
            options,
            correlation_id: 0,
            broker_versions: BTreeMap::new(),
            broken: false,
            reauthenticate_at: None,
        };
        connection.negotiate().await?;
        connection.authenticate().await?;
        Ok(connection)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Asks for the broker's API versions: v3 first; a broker that does not know v3
    /// answers UNSUPPORTED_VERSION with a v0 body (KIP-511), and then v0 is used.
    async fn negotiate(&mut self) -> Result<(), ClientError> {
        let api = ApiKey::ApiVersions;
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let version = ApiVersionsRequest::CLIENT_VERSIONS.max;
        let body = self
            .exchange(api, version, |buf| request.encode(buf, version))
            .await?;
        let response = match ApiVersionsResponse::decode(&mut body.clone(), version) {
            Ok(response) => response,
            Err(_) => self.decode::<ApiVersionsResponse>(api, 0, body)?,
        };
        let response = if ResponseError::try_from_code(response.error_code)
            == Some(ResponseError::UnsupportedVersion)
        {
            let request = ApiVersionsRequest::default();
            let body = self.exchange(api, 0, |buf| request.encode(buf, 0)).await?;
            self.decode::<ApiVersionsResponse>(api, 0, body)?
        } else {
            response
        };
        if response.error_code != 0 {
            return Err(ClientError::Kafka {
                addr: self.addr.clone(),
                api,
                code: ErrorCode(response.error_code),
            });
        }
        self.broker_versions = response
            .api_keys
            .iter()
            .map(|k| {
                let range = VersionRange {
                    min: k.min_version,
                    max: k.max_version,
                };
                (k.api_key, range)
            })
            .collect();
        Ok(())
    }

    /// The version to send `R` at, or why there is none.
    pub fn version<R: ClientRequest>(&self) -> Result<i16, ClientError> {
        let api = api_key::<R>();
        let Some(broker) = self.broker_versions.get(&R::KEY) else {
            return Err(ClientError::UnsupportedApi {
                addr: self.addr.clone(),
                api,
            });
        };
        choose_version(R::CLIENT_VERSIONS, *broker).ok_or_else(|| ClientError::NoCommonVersion {
            addr: self.addr.clone(),
            api,
            broker: *broker,
            client: R::CLIENT_VERSIONS,
        })
    }

    /// Logs in with the SASL credentials of the options, if any, and remembers when to
    /// renew the session.
    async fn authenticate(&mut self) -> Result<(), ClientError> {
        let security = self.options.security.clone();
        if let Some(credentials) = security.sasl() {
            self.reauthenticate_at = sasl_login::login(self, credentials).await?;
        }
        Ok(())
    }

    /// Sends the request `build` makes for the negotiated version and returns the response;
    /// first renews the SASL session if it is due.
    pub async fn send<R: ClientRequest>(
        &mut self,
        build: impl FnOnce(i16) -> R,
    ) -> Result<R::Response, ClientError> {
        if self
            .reauthenticate_at
            .is_some_and(|at| Instant::now() >= at)
        {
            tracing::debug!(addr = %self.addr, "re-authenticating: the SASL session ends soon");
            self.authenticate().await?;
        }
        self.send_now(build).await
    }

    /// `send` without the session check (the SASL requests themselves).
    pub(super) async fn send_now<R: ClientRequest>(
        &mut self,
        build: impl FnOnce(i16) -> R,
    ) -> Result<R::Response, ClientError> {
        let version = self.version::<R>()?;
        let request = build(version);
        let api = api_key::<R>();
        let body = self
            .exchange(api, version, |buf| request.encode(buf, version))
            .await?;
        self.decode::<R::Response>(api, version, body)
    }

    fn decode<T: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        mut body: Bytes,
    ) -> Result<T, ClientError> {
        T::decode(&mut body, version).map_err(|err| ClientError::Decode {
            addr: self.addr.clone(),
            api,
            version,
            reason: format!("{err:#}"),
        })
    }

    /// Writes one request frame and reads its response frame; returns the body after the
    /// response header. Any failure half way leaves the connection broken.
    async fn exchange(
        &mut self,
        api: ApiKey,
        version: i16,
        encode_body: impl FnOnce(&mut BytesMut) -> anyhow::Result<()>,
    ) -> Result<Bytes, ClientError> {
        if self.broken {
            return Err(ClientError::Broken {
                addr: self.addr.clone(),
            });
        }
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        let frame = encode_frame(api, version, correlation_id, encode_body).map_err(|err| {
            ClientError::Encode {
                api,
                version,
                reason: format!("{err:#}"),
            }
        })?;
        // From here on a failure may leave part of a frame on the wire.
        self.broken = true;
        let timeout = self.options.request_timeout;
        let read = tokio::time::timeout(
            timeout,
            write_and_read(&mut self.stream, &frame, self.options.response_bytes_max),
        )
        .await
        .map_err(|_| ClientError::RequestTimeout {
            addr: self.addr.clone(),
            api,
            timeout,
        })?;
        let body = response_body(
            &self.addr,
            api,
            version,
            correlation_id,
            read,
            self.options.response_bytes_max,
        )?;
        self.broken = false;
        Ok(body)
    }

    /// The connection's stream, for a caller that pipelines requests itself (`bench
    /// produce`): it asks [`Connection::version`] first and frames with [`encode_frame`],
    /// [`read_frame`] and [`response_body`]. No SASL re-authentication happens after this.
    pub(super) fn into_stream(self) -> Result<Stream, ClientError> {
        if self.broken {
            return Err(ClientError::Broken { addr: self.addr });
        }
        Ok(self.stream)
    }
}

/// The body after the response header of a frame read for request `correlation_id`, or the
/// error that `frame` (the read) or the header holds.
pub(super) fn response_body(
    addr: &str,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    frame: Result<Bytes, FrameError>,
    response_bytes_max: usize,
) -> Result<Bytes, ClientError> {
    let mut body = match frame {
        Ok(body) => body,
        Err(FrameError::Io(source)) => {
            return Err(ClientError::Io {
                addr: addr.to_string(),
                api,
                source,
            });
        }
        Err(FrameError::Size(size)) => {
            return Err(ClientError::ResponseSize {
                addr: addr.to_string(),
                api,
                size,
                max: response_bytes_max,
            });
        }
    };
    let header =
        ResponseHeader::decode(&mut body, api.response_header_version(version)).map_err(|err| {
            ClientError::Decode {
                addr: addr.to_string(),
                api,
                version,
                reason: format!("response header: {err:#}"),
            }
        })?;
    if header.correlation_id != correlation_id {
        return Err(ClientError::CorrelationMismatch {
            addr: addr.to_string(),
            api,
            expected: correlation_id,
            got: header.correlation_id,
        });
    }
    Ok(body)
}

/// Length prefix, request header (v1 or v2, by the API version's flexibility), body.
pub(super) fn encode_frame(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    encode_body: impl FnOnce(&mut BytesMut) -> anyhow::Result<()>,
) -> anyhow::Result<BytesMut> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let mut frame = BytesMut::with_capacity(256);
    frame.put_i32(0);
    header.encode(&mut frame, api.request_header_version(version))?;
    encode_body(&mut frame)?;
    let length = i32::try_from(frame.len() - 4)?;
    frame[..4].copy_from_slice(&length.to_be_bytes());
    Ok(frame)
}

pub(super) enum FrameError {
    Io(std::io::Error),
    /// The length prefix was negative, too short for a header or above the limit.
    Size(i64),
}

async fn write_and_read(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    frame: &[u8],
    response_bytes_max: usize,
) -> Result<Bytes, FrameError> {
    stream.write_all(frame).await.map_err(FrameError::Io)?;
    // TLS may hold the last record back until flushed.
    stream.flush().await.map_err(FrameError::Io)?;
    read_frame(stream, response_bytes_max).await
}

/// One length-prefixed response frame of at most `response_bytes_max` bytes.
pub(super) async fn read_frame(
    stream: &mut (impl AsyncRead + Unpin),
    response_bytes_max: usize,
) -> Result<Bytes, FrameError> {
    let size = stream.read_i32().await.map_err(FrameError::Io)?;
    // A response holds at least a correlation id.
    let len = usize::try_from(size)
        .ok()
        .filter(|len| (4..=response_bytes_max).contains(len))
        .ok_or(FrameError::Size(i64::from(size)))?;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.map_err(FrameError::Io)?;
    Ok(Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;

    #[test]
    fn error_codes_have_kafka_names() {
        assert_eq!(ErrorCode(25).name(), "UNKNOWN_MEMBER_ID");
        assert_eq!(ErrorCode(69).name(), "GROUP_ID_NOT_FOUND");
        assert_eq!(ErrorCode(68).name(), "NON_EMPTY_GROUP");
        assert_eq!(ErrorCode(0).name(), "NONE");
        assert_eq!(ErrorCode(-1).name(), "UNKNOWN_SERVER_ERROR");
        assert_eq!(ErrorCode(9999).name(), "UNKNOWN_ERROR_CODE_9999");
        assert_eq!(ErrorCode(27).to_string(), "REBALANCE_IN_PROGRESS (27)");
        assert!(ErrorCode(15).is_coordinator_moved());
        assert!(!ErrorCode(25).is_coordinator_moved());
    }

    #[test]
    fn version_is_the_highest_common_one() {
        let client = VersionRange { min: 2, max: 9 };
        assert_eq!(
            choose_version(client, VersionRange { min: 0, max: 7 }),
            Some(7)
        );
        assert_eq!(
            choose_version(client, VersionRange { min: 0, max: 12 }),
            Some(9)
        );
        assert_eq!(
            choose_version(client, VersionRange { min: 0, max: 1 }),
            None
        );
        assert_eq!(
            choose_version(client, VersionRange { min: 10, max: 12 }),
            None
        );
    }

    #[test]
    fn frames_carry_length_header_and_body() {
        // Metadata v12 is flexible: request header v2 (client id, then tagged fields).
        let request = MetadataRequest::default().with_topics(None);
        let frame = encode_frame(ApiKey::Metadata, 12, 7, |buf| request.encode(buf, 12)).unwrap();
        let mut bytes = Bytes::from(frame.to_vec());
        let length = bytes.get_i32();
        assert_eq!(usize::try_from(length).unwrap(), bytes.len());
        assert_eq!(bytes.slice(4..).get_i32(), 7, "correlation id");
        let header = RequestHeader::decode(&mut bytes, 2).unwrap();
        assert_eq!(header.request_api_key, ApiKey::Metadata as i16);
        assert_eq!(header.request_api_version, 12);
        assert_eq!(header.client_id.as_deref(), Some(CLIENT_ID));
        let decoded = MetadataRequest::decode(&mut bytes, 12).unwrap();
        assert_eq!(decoded.topics, None);
        assert!(bytes.is_empty());
    }
}
