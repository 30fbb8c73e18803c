//! The REST API of Confluent Schema Registry on `--schema-registry-listen`: routes, query
//! parameters and JSON bodies. Bodies are JSON in and out (`application/vnd.schemaregistry.v1+json`,
//! `application/json` or none are all read as JSON); a request body is bounded and read
//! under a timeout; every failure is a `RegistryError` answered as
//! `{"error_code":..,"message":..}`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use strato_metadata::keys;
use strato_metadata::model::{SchemaRecord, SchemaReferenceRecord};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::auth::{self, RegistryAuth};
use super::error::RegistryError;
use super::store::{NewSchema, Registry};
use super::{Compatibility, Mode, SchemaType, VersionSelector};

/// Connections served at once; more wait in the accept queue.
const CONNECTIONS_MAX: usize = 256;
/// How long a client may take to send a request body.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Room in a body beyond the schema text: references, other fields, and the escaping of
/// the schema as a JSON string (at most doubling it).
const BODY_OVERHEAD_BYTES: usize = 64 * 1024;
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Serves the API on `listener` until `shutdown`; with `auth`, every request must
/// authenticate and is authorized (`auth.rs`).
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    auth: Option<Arc<RegistryAuth>>,
    shutdown: CancellationToken,
) {
    crate::http_server::serve_connections(listener, shutdown, CONNECTIONS_MAX, None, move |req| {
        respond(registry.clone(), auth.clone(), req)
    })
    .await;
}

/// An answer: JSON, or a schema's own text (`.../schema` endpoints).
enum Reply {
    Json(Value),
    Raw(String),
}

async fn respond(
    registry: Arc<Registry>,
    auth: Option<Arc<RegistryAuth>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let outcome = handle(&registry, auth.as_deref(), req).await;
    let unauthorized = matches!(outcome, Err(RegistryError::Unauthorized));
    let (status, body) = match outcome {
        Ok(Reply::Json(value)) => (200, value.to_string()),
        Ok(Reply::Raw(text)) => (200, text),
        Err(err) => {
            let (status, code) = err.codes();
            if status >= 500 {
                tracing::warn!(%method, %path, "schema registry request failed: {err}");
            }
            let body = json!({"error_code": code, "message": err.to_string()});
            (status, body.to_string())
        }
    };
    let mut response = Response::builder()
        .status(status)
        .header("content-type", CONTENT_TYPE);
    if unauthorized {
        response = response.header("www-authenticate", "Basic realm=\"strato-schema-registry\"");
    }
    let response = response
        .body(Full::new(Bytes::from(body)))
        .expect("status and headers are valid");
    Ok(response)
}

/// A request, taken apart.
struct Call {
    method: Method,
    /// Path segments, percent-decoded.
    segments: Vec<String>,
    query: Vec<(String, String)>,
    body: Bytes,
}

impl Call {
    fn flag(&self, name: &str) -> bool {
        self.query
            .iter()
            .any(|(k, v)| k == name && v.eq_ignore_ascii_case("true"))
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn json<T: for<'de> Deserialize<'de>>(&self) -> Result<T, RegistryError> {
        serde_json::from_slice(&self.body)
            .map_err(|err| RegistryError::BadRequest(format!("invalid request body: {err}")))
    }
}

async fn handle(
    registry: &Registry,
    auth: Option<&RegistryAuth>,
    req: Request<Incoming>,
) -> Result<Reply, RegistryError> {
    let session = match auth {
        Some(auth) => {
            let peer = req
                .extensions()
                .get::<crate::http_server::PeerAddr>()
                .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |p| p.0);
            let header = req.headers().get(hyper::header::AUTHORIZATION);
            Some((auth, auth.authenticate(header, peer).await?))
        }
        None => None,
    };
    let method = req.method().clone();
    let segments = req
        .uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| keys::decode_group_id(s).ok_or(RegistryError::NoSuchEndpoint))
        .collect::<Result<Vec<_>, _>>()?;
    let query = parse_query(req.uri().query().unwrap_or(""));
    let body_max = registry.limits().max_schema_bytes * 2 + BODY_OVERHEAD_BYTES;
    let body = read_body(req.into_body(), body_max).await?;
    let call = Call {
        method,
        segments,
        query,
        body,
    };
    let Some((auth, session)) = session else {
        return route(registry, &call).await;
    };
    let segments: Vec<&str> = call.segments.iter().map(String::as_str).collect();
    auth.authorize(
        &session,
        registry,
        &auth::access_of(&call.method, &segments),
    )?;
    let reply = route(registry, &call).await?;
    // Listings show only the subjects the user may read.
    let lists_subjects = matches!(
        segments.as_slice(),
        ["subjects"] | ["schemas", "ids", _, "subjects" | "versions"]
    );
    Ok(match reply {
        Reply::Json(Value::Array(items)) if lists_subjects => Reply::Json(Value::Array(
            items
                .into_iter()
                .filter(|item| {
                    let subject = item.get("subject").unwrap_or(item);
                    subject.as_str().is_some_and(|s| auth.may_read(&session, s))
                })
                .collect(),
        )),
        reply => reply,
    })
}

async fn read_body(body: Incoming, max: usize) -> Result<Bytes, RegistryError> {
    let collected = tokio::time::timeout(BODY_READ_TIMEOUT, Limited::new(body, max).collect())
        .await
        .map_err(|_| RegistryError::BadRequest("request body not received in time".into()))?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            Err(RegistryError::SchemaTooLarge(max))
        }
        Err(err) => Err(RegistryError::BadRequest(format!(
            "failed to read the request body: {err}"
        ))),
    }
}

/// `a=1&b=x%20y` into pairs ('+' is a space, as in forms).
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| keys::decode_group_id(&s.replace('+', " "));
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

async fn route(registry: &Registry, call: &Call) -> Result<Reply, RegistryError> {
    let segments: Vec<&str> = call.segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        [] => only(call, Method::GET).map(|()| Reply::Json(json!({}))),
        ["subjects", rest @ ..] => subjects(registry, call, rest).await,
        ["schemas", rest @ ..] => schemas(registry, call, rest),
        ["config", rest @ ..] => config(registry, call, rest.first().copied()).await,
        ["mode", rest @ ..] => mode(registry, call, rest.first().copied()).await,
        ["compatibility", "subjects", subject, "versions"] => {
            only(call, Method::POST)?;
            compatibility(registry, call, subject, None)
        }
        ["compatibility", "subjects", subject, "versions", version] => {
            only(call, Method::POST)?;
            let selector = parse_version(version)?;
            compatibility(registry, call, subject, Some(selector))
        }
        _ => Err(RegistryError::NoSuchEndpoint),
    }
}

fn only(call: &Call, method: Method) -> Result<(), RegistryError> {
    if call.method == method {
        Ok(())
    } else {
        Err(RegistryError::MethodNotAllowed)
    }
}

fn parse_version(text: &str) -> Result<VersionSelector, RegistryError> {
    VersionSelector::parse(text).ok_or_else(|| RegistryError::InvalidVersion(text.to_string()))
}

async fn subjects(registry: &Registry, call: &Call, rest: &[&str]) -> Result<Reply, RegistryError> {
    let deleted = call.flag("deleted");
    match (rest, &call.method) {
        ([], &Method::GET) => {
            let prefix = call.param("subjectPrefix").unwrap_or("");
            let names = registry.read(|s| s.subject_names(deleted));
            let names: Vec<String> = names
                .into_iter()
                .filter(|n| n.starts_with(prefix))
                .collect();
            Ok(Reply::Json(json!(names)))
        }
        ([subject], &Method::POST) => {
            let new = schema_body(call)?;
            let (version, id) = registry.lookup(subject, &new, call.flag("normalize"), deleted)?;
            let record = registry.read(|s| s.schema(id))?;
            Ok(Reply::Json(version_json(subject, version, &record)))
        }
        ([subject], &Method::DELETE) => {
            let versions = registry
                .delete_subject(subject, call.flag("permanent"))
                .await?;
            Ok(Reply::Json(json!(versions)))
        }
        ([subject, "versions"], &Method::GET) => {
            let versions: Vec<u32> = registry.read(|s| {
                let known = s.subject(subject, deleted)?;
                Ok::<_, RegistryError>(
                    known
                        .versions
                        .iter()
                        .filter(|(_, e)| deleted || !e.value.deleted)
                        .map(|(v, _)| *v)
                        .collect(),
                )
            })?;
            Ok(Reply::Json(json!(versions)))
        }
        ([subject, "versions"], &Method::POST) => {
            let new = schema_body(call)?;
            let normalize = call.flag("normalize");
            let (id, _version) = match import_ids(call)? {
                Some((id, version)) => {
                    registry
                        .import(subject, &new, id, version, normalize)
                        .await?
                }
                None => registry.register(subject, &new, normalize).await?,
            };
            Ok(Reply::Json(json!({ "id": id })))
        }
        ([subject, "versions", version, tail @ ..], method) => {
            let selector = parse_version(version)?;
            subject_version(registry, call, method, subject, selector, tail).await
        }
        ([] | [_] | [_, "versions"], _) => Err(RegistryError::MethodNotAllowed),
        _ => Err(RegistryError::NoSuchEndpoint),
    }
}

async fn subject_version(
    registry: &Registry,
    call: &Call,
    method: &Method,
    subject: &str,
    selector: VersionSelector,
    tail: &[&str],
) -> Result<Reply, RegistryError> {
    let deleted = call.flag("deleted");
    if *method == Method::DELETE && tail.is_empty() {
        let version = registry
            .delete_version(subject, selector, call.flag("permanent"))
            .await?;
        return Ok(Reply::Json(json!(version)));
    }
    if *method != Method::GET {
        return Err(RegistryError::MethodNotAllowed);
    }
    let (version, record) = registry.read(|s| {
        let (version, id) = s.version(subject, selector, deleted)?;
        Ok::<_, RegistryError>((version, s.schema(id)?))
    })?;
    let record = formatted(registry, call, record)?;
    match tail {
        [] => Ok(Reply::Json(version_json(subject, version, &record))),
        ["schema"] => Ok(Reply::Raw(record.schema.clone())),
        ["referencedby"] => Ok(Reply::Json(json!(
            registry.read(|s| s.referenced_by(subject, version))
        ))),
        _ => Err(RegistryError::NoSuchEndpoint),
    }
}

fn schemas(registry: &Registry, call: &Call, rest: &[&str]) -> Result<Reply, RegistryError> {
    only(call, Method::GET)?;
    let id = match rest {
        // Confluent's order.
        ["types"] => {
            return Ok(Reply::Json(json!([
                SchemaType::Json.name(),
                SchemaType::Protobuf.name(),
                SchemaType::Avro.name()
            ])));
        }
        ["ids", id, ..] => id
            .parse::<u32>()
            .map_err(|_| RegistryError::SchemaNotFound(0))?,
        _ => return Err(RegistryError::NoSuchEndpoint),
    };
    let deleted = call.flag("deleted");
    // An id is served while some version, soft-deleted ones included, uses it: consumers
    // still read records written with it.
    let (record, usages) = registry.read(|s| {
        let usages = s.usages(id, true);
        if usages.is_empty() {
            return Err(RegistryError::SchemaNotFound(id));
        }
        let live = s.usages(id, false);
        Ok((s.schema(id)?, if deleted { usages } else { live }))
    })?;
    let record = formatted(registry, call, record)?;
    match &rest[2..] {
        [] => Ok(Reply::Json(schema_json(&record))),
        ["schema"] => Ok(Reply::Raw(record.schema.clone())),
        ["subjects"] => {
            let mut subjects: Vec<String> = usages.into_iter().map(|(s, _)| s).collect();
            subjects.dedup();
            Ok(Reply::Json(json!(subjects)))
        }
        ["versions"] => Ok(Reply::Json(Value::Array(
            usages
                .into_iter()
                .map(|(subject, version)| json!({"subject": subject, "version": version}))
                .collect(),
        ))),
        _ => Err(RegistryError::NoSuchEndpoint),
    }
}

async fn config(
    registry: &Registry,
    call: &Call,
    subject: Option<&str>,
) -> Result<Reply, RegistryError> {
    let key = match subject {
        Some(s) => keys::schema_subject_config(s),
        None => keys::SCHEMA_REGISTRY_CONFIG.to_string(),
    };
    match call.method {
        Method::GET => {
            let level = configured_level(registry, subject, call.flag("defaultToGlobal"))?;
            Ok(Reply::Json(json!({ "compatibilityLevel": level.name() })))
        }
        Method::PUT => {
            let body: ConfigBody = call.json()?;
            let name = body
                .compatibility
                .or(body.compatibility_level)
                .ok_or(RegistryError::InvalidCompatibility)?;
            let level = Compatibility::parse(&name).ok_or(RegistryError::InvalidCompatibility)?;
            registry.set_compatibility(subject, level).await?;
            Ok(Reply::Json(json!({ "compatibility": level.name() })))
        }
        Method::DELETE => {
            let level = configured_level(registry, subject, false)?;
            registry.delete_key(key).await?;
            Ok(Reply::Json(json!({ "compatibilityLevel": level.name() })))
        }
        _ => Err(RegistryError::MethodNotAllowed),
    }
}

/// The level set for `subject` (or globally); without one, the global level when
/// `default_to_global`, else 40408. Globally, BACKWARD when none is set.
fn configured_level(
    registry: &Registry,
    subject: Option<&str>,
    default_to_global: bool,
) -> Result<Compatibility, RegistryError> {
    registry.read(|s| match subject {
        None => Ok(s
            .config
            .as_ref()
            .map_or(Compatibility::DEFAULT, |e| e.value)),
        Some(name) => match s.subjects.get(name).and_then(|x| x.config.as_ref()) {
            Some(e) => Ok(e.value),
            None if default_to_global => Ok(s.compatibility(name)),
            None => Err(RegistryError::SubjectConfigNotFound(name.to_string())),
        },
    })
}

async fn mode(
    registry: &Registry,
    call: &Call,
    subject: Option<&str>,
) -> Result<Reply, RegistryError> {
    let configured = |default_to_global: bool| {
        registry.read(|s| match subject {
            None => Ok(s.mode(None)),
            Some(name) => match s.subjects.get(name).and_then(|x| x.mode.as_ref()) {
                Some(e) => Ok(e.value),
                None if default_to_global => Ok(s.mode(Some(name))),
                None => Err(RegistryError::SubjectModeNotFound(name.to_string())),
            },
        })
    };
    match (&call.method, subject) {
        (&Method::GET, _) => {
            let mode = configured(call.flag("defaultToGlobal"))?;
            Ok(Reply::Json(json!({ "mode": mode.name() })))
        }
        (&Method::PUT, _) => {
            let body: ModeBody = call.json()?;
            let mode = Mode::parse(&body.mode).ok_or(RegistryError::InvalidMode)?;
            registry.set_mode(subject, mode, call.flag("force")).await?;
            Ok(Reply::Json(json!({ "mode": mode.name() })))
        }
        (&Method::DELETE, Some(name)) => {
            let mode = configured(false)?;
            registry.delete_key(keys::schema_subject_mode(name)).await?;
            Ok(Reply::Json(json!({ "mode": mode.name() })))
        }
        _ => Err(RegistryError::MethodNotAllowed),
    }
}

fn compatibility(
    registry: &Registry,
    call: &Call,
    subject: &str,
    version: Option<VersionSelector>,
) -> Result<Reply, RegistryError> {
    let new = schema_body(call)?;
    let messages = registry.check_compatibility(subject, &new, version, call.flag("normalize"))?;
    let mut answer = json!({ "is_compatible": messages.is_empty() });
    if call.flag("verbose") {
        answer["messages"] = json!(messages);
    }
    Ok(Reply::Json(answer))
}

#[derive(Deserialize)]
struct SchemaBody {
    schema: Option<String>,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
    references: Option<Vec<ReferenceBody>>,
}

#[derive(Deserialize)]
struct ReferenceBody {
    name: String,
    subject: String,
    version: i64,
}

#[derive(Deserialize)]
struct ConfigBody {
    compatibility: Option<String>,
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: Option<String>,
}

#[derive(Deserialize)]
struct ModeBody {
    mode: String,
}

#[derive(Deserialize)]
struct ImportBody {
    id: Option<i64>,
    version: Option<i64>,
}

/// The `id` and `version` a registration gives (IMPORT mode), if it gives an id.
fn import_ids(call: &Call) -> Result<Option<(u32, Option<u32>)>, RegistryError> {
    let body: ImportBody = call.json()?;
    let positive = |n: i64| u32::try_from(n).ok().filter(|n| *n >= 1);
    let version = match body.version {
        None | Some(-1) => None,
        Some(v) => Some(positive(v).ok_or_else(|| RegistryError::InvalidVersion(v.to_string()))?),
    };
    match body.id {
        None | Some(-1) => Ok(None),
        Some(id) => {
            let id = positive(id)
                .ok_or_else(|| RegistryError::InvalidSchema(format!("invalid schema id {id}")))?;
            Ok(Some((id, version)))
        }
    }
}

/// The schema of a register, lookup or compatibility request.
fn schema_body(call: &Call) -> Result<NewSchema, RegistryError> {
    let body: SchemaBody = call.json()?;
    let schema = body
        .schema
        .ok_or_else(|| RegistryError::InvalidSchema("the request has no schema".into()))?;
    let schema_type = match body.schema_type.as_deref() {
        None => SchemaType::Avro,
        Some(name) => SchemaType::parse(name)
            .ok_or_else(|| RegistryError::InvalidSchema(format!("unknown schema type {name:?}")))?,
    };
    let references = body
        .references
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let version = u32::try_from(r.version)
                .ok()
                .filter(|v| *v >= 1)
                .ok_or_else(|| RegistryError::InvalidVersion(r.version.to_string()))?;
            Ok(SchemaReferenceRecord {
                name: r.name,
                subject: r.subject,
                version,
            })
        })
        .collect::<Result<Vec<_>, RegistryError>>()?;
    Ok(NewSchema {
        schema,
        schema_type,
        references,
    })
}

/// `record` as `?format=` asks: `serialized` gives a Protobuf schema as a base64
/// `FileDescriptorProto` (what confluent-kafka's deserializers ask for); other formats and
/// types are served as stored.
fn formatted(
    registry: &Registry,
    call: &Call,
    record: Arc<SchemaRecord>,
) -> Result<Arc<SchemaRecord>, RegistryError> {
    if call.param("format") == Some("serialized")
        && record.schema_type == SchemaType::Protobuf.name()
        && let Some(serialized) = registry.serialized(record.id)?
    {
        let mut owned = SchemaRecord::clone(&record);
        owned.schema = serialized;
        return Ok(Arc::new(owned));
    }
    Ok(record)
}

/// `{"schema":..}` plus `schemaType` (not for AVRO) and `references` (when there are some),
/// as Confluent answers.
fn schema_json(record: &SchemaRecord) -> Value {
    let mut value = json!({ "schema": record.schema });
    if record.schema_type != SchemaType::Avro.name() {
        value["schemaType"] = json!(record.schema_type);
    }
    if !record.references.is_empty() {
        value["references"] = Value::Array(
            record
                .references
                .iter()
                .map(|r| json!({"name": r.name, "subject": r.subject, "version": r.version}))
                .collect(),
        );
    }
    value
}

fn version_json(subject: &str, version: u32, record: &SchemaRecord) -> Value {
    let mut value = schema_json(record);
    value["subject"] = json!(subject);
    value["version"] = json!(version);
    value["id"] = json!(record.id);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_decoded() {
        assert_eq!(
            parse_query("normalize=true&subject=a%2Fb+c&flag"),
            vec![
                ("normalize".to_string(), "true".to_string()),
                ("subject".to_string(), "a/b c".to_string()),
                ("flag".to_string(), String::new()),
            ]
        );
        assert!(parse_query("").is_empty());
        assert!(parse_query("bad=%zz").is_empty());
    }
}
