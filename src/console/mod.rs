//! The web console on `--http-listen` (issue 22): pages under `/ui/` rendered on the server
//! (HTML, a stylesheet, inline SVG charts; no script needed, nothing fetched from elsewhere)
//! and the JSON API under `/api/v1/` that they are made from (`docs/API.md`). `/` redirects
//! to `/ui/`.
//!
//! `api.rs` gathers the data, `pages.rs` renders it, `samples.rs` keeps the last hour of
//! traffic counters for the overview's charts.
//!
//! With the authorizer on (`--authorizer true`) every request needs HTTP basic credentials
//! of a SCRAM user (`security::http_basic`), and the user's ACLs decide what it sees, as
//! for a Kafka client: DESCRIBE on a topic or group to see it (listings leave out the
//! others), READ on a topic for its messages, DESCRIBE on the cluster for the overview, the
//! bucket and the traffic.
//!
//! `write.rs`: with `--console-write true`, POST and DELETE create and delete topics and
//! reset an inactive group's offsets, from the console's own pages (same origin) or scripts.
//!
//! **Invariants:** without `--console-write` read-only (GET and HEAD; nothing changes state),
//! with it only through the checks of the Kafka API that does the same; every answer is
//! bounded (messages per request, partitions per listing, samples kept); what a page shows
//! comes from the same API function as the JSON; with the authorizer on, nothing is shown
//! that the user's ACLs would not let a Kafka client of theirs see.

pub mod api;
mod pages;
mod remote;
pub use remote::FORWARDED_HEADER;
pub mod samples;
pub mod write;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::HeaderValue;
use hyper::{Method, Response, StatusCode};

use crate::broker::BrokerCtx;
use crate::security::Session;
use crate::security::http_basic::{BasicAuth, BasicAuthError};
use crate::security::listener::SecurityProtocol;
use crate::security::principal::Principal;

pub use samples::Samples;

/// The console's state: the broker's handles and the traffic samples.
pub struct Console {
    pub(crate) ctx: Arc<BrokerCtx>,
    pub(crate) samples: Arc<Samples>,
    /// Credentials checked on every request (when the authorizer is on).
    basic: Option<BasicAuth>,
    /// `--console-base-path`: empty, or `/prefix`.
    base: String,
    /// `--console-write`.
    pub(crate) write: bool,
}

/// A request the console answers: path (percent-decoded segments), query and method.
pub struct ConsoleRequest<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub authorization: Option<&'a HeaderValue>,
    pub peer: SocketAddr,
    /// `Origin` and `Host`: a write from a page of another site is refused.
    pub origin: Option<&'a HeaderValue>,
    pub host: Option<&'a HeaderValue>,
    /// Set when another broker's console forwarded the request (not forwarded again).
    pub forwarded: bool,
    /// The body of a POST (at most [`write::BODY_BYTES_MAX`]); empty otherwise.
    pub body: Bytes,
}

impl Console {
    pub fn new(ctx: Arc<BrokerCtx>, samples: Arc<Samples>) -> Self {
        let basic = ctx
            .authorizer
            .is_enabled()
            .then(|| BasicAuth::new(ctx.meta.clone()));
        let base = ctx.config.console_base_path.clone();
        let write = ctx.config.console_write;
        Self {
            ctx,
            samples,
            basic,
            base,
            write,
        }
    }

    /// The console's own path of a request path: what follows `--console-base-path`, if
    /// the console serves it.
    pub fn route<'p>(&self, path: &'p str) -> Option<&'p str> {
        let rest = path.strip_prefix(self.base.as_str())?;
        let rest = if rest.is_empty() { "/" } else { rest };
        (rest.starts_with('/') && Self::serves(rest)).then_some(rest)
    }

    /// Who is asking: the user of valid basic credentials when the authorizer is on
    /// (`Err`: the answer to give instead), else an anonymous session that every check
    /// allows.
    async fn session(&self, req: &ConsoleRequest<'_>) -> Result<Session, Response<Full<Bytes>>> {
        let Some(basic) = &self.basic else {
            return Ok(Session::new(
                req.peer,
                SecurityProtocol::Plaintext,
                Principal::anonymous(),
            ));
        };
        match basic.authenticate(req.authorization, req.peer).await {
            Ok(session) => Ok(session),
            Err(BasicAuthError::Unauthorized) => Err(Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header(
                    "www-authenticate",
                    "Basic realm=\"Strato console\", charset=\"UTF-8\"",
                )
                .header("content-type", "text/plain")
                .body(Full::new(Bytes::from_static(
                    b"log in with a user of the cluster (strato user create)\n",
                )))
                .expect("static response parts are valid")),
            Err(BasicAuthError::Metadata(err)) => Err(Response::builder()
                .status(StatusCode::SERVICE_UNAVAILABLE)
                .header("content-type", "text/plain")
                .body(Full::new(Bytes::from(format!(
                    "cannot read the users: {}\n",
                    strato_tiering::error_chain(&err)
                ))))
                .expect("static response parts are valid")),
        }
    }

    /// Whether `path` (after the base path) is the console's.
    fn serves(path: &str) -> bool {
        path == "/" || path == "/ui" || path.starts_with("/ui/") || path.starts_with("/api/v1/")
    }

    /// The answer to a request for one of the console's paths (`req.path` as [`Self::route`]
    /// gives it); `object_store` is the last object store probe (`/ready`'s).
    pub async fn respond(
        &self,
        req: ConsoleRequest<'_>,
        object_store: Result<(), String>,
    ) -> Response<Full<Bytes>> {
        let writing = req.method == Method::POST || req.method == Method::DELETE;
        if !writing && req.method != Method::GET && req.method != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        if writing && !self.write {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "the console is read-only: start the brokers with --console-write true to \
                 create and delete topics and reset offsets\n",
            );
        }
        if writing && !same_origin(req.origin, req.host) {
            return text(
                StatusCode::FORBIDDEN,
                "a change must come from the console's own pages (Origin differs from Host)\n",
            );
        }
        if req.path == "/" || req.path == "/ui" {
            return redirect(&format!("{}/ui/", self.base));
        }
        let session = match self.session(&req).await {
            Ok(session) => session,
            Err(response) => return response,
        };
        let query = parse_query(req.query.unwrap_or(""));
        let segments: Vec<String> = req
            .path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        if writing {
            return self
                .change(&session, req.method, &segments, &req.body)
                .await;
        }
        match segments.as_slice() {
            ["api", "v1", rest @ ..] => self.api(&req, &session, rest, &query, object_store).await,
            ["ui", "assets", "console.css"] => Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "text/css; charset=utf-8")
                .header("cache-control", "max-age=3600")
                .body(Full::new(Bytes::from_static(pages::STYLESHEET.as_bytes())))
                .expect("static response parts are valid"),
            ["ui", rest @ ..] => {
                let (status, body) =
                    pages::render(self, &req, &session, rest, &query, object_store).await;
                let body = self.under_base(body);
                Response::builder()
                    .status(status)
                    .header("content-type", "text/html; charset=utf-8")
                    .body(Full::new(Bytes::from(body)))
                    .expect("static response parts are valid")
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    async fn api(
        &self,
        request: &ConsoleRequest<'_>,
        session: &Session,
        rest: &[&str],
        query: &[(String, String)],
        object_store: Result<(), String>,
    ) -> Response<Full<Bytes>> {
        let ctx = &self.ctx;
        let viewer = api::Viewer::new(ctx, session);
        let result = match rest {
            ["cluster"] => api::cluster(&viewer, object_store).await,
            ["topics"] => api::topics(&viewer).await,
            ["topics", name] => api::topic(&viewer, name).await,
            ["topics", name, "partitions", p, "messages"] => match p.parse::<i32>() {
                Ok(p) => match message_query(query) {
                    Ok((from, limit)) => api::messages(&viewer, name, p, from, limit).await,
                    Err(err) => Err(err),
                },
                Err(_) => Err(api::ApiError::bad_request(format!("bad partition {p:?}"))),
            },
            ["groups"] => api::groups(&viewer).await,
            ["groups", id] => self.group(&viewer, id, request).await,
            ["bucket"] => api::bucket(&viewer).await,
            ["traffic"] => viewer.cluster_access().map(|()| self.samples.json()),
            _ => Err(api::ApiError::not_found("no such API")),
        };
        json_response(result, StatusCode::OK)
    }

    /// `/api/v1/groups/{id}` and its page: the group, its lag history, and (coordinated
    /// elsewhere) what its coordinator knows.
    pub(crate) async fn group(
        &self,
        viewer: &api::Viewer<'_>,
        id: &str,
        request: &ConsoleRequest<'_>,
    ) -> api::ApiResult {
        let mut group = api::group(viewer, id).await?;
        group["lag_history"] = serde_json::json!(self.samples.lag_history(id));
        self.ask_coordinator(&mut group, id, request).await;
        Ok(group)
    }
}

impl Console {
    /// A group another broker coordinates: its members, state, protocol and lag history
    /// from that broker's console (left as they are, with `members_error`, if it cannot
    /// be asked).
    async fn ask_coordinator(
        &self,
        group: &mut serde_json::Value,
        id: &str,
        request: &ConsoleRequest<'_>,
    ) {
        let coordinator = self.ctx.cluster.group_owner(id);
        if coordinator == self.ctx.broker_id || request.forwarded {
            return;
        }
        let Some(broker) = self.ctx.cluster.broker(coordinator) else {
            return;
        };
        let Some(port) = broker.http_port else {
            group["members_error"] =
                serde_json::json!(format!("broker {coordinator} has no console"));
            return;
        };
        let addr = format!("{}:{port}", broker.host);
        let path = format!("{}/api/v1/groups/{}", self.base, percent_encode(id));
        match remote::get_json(&addr, &path, request.authorization).await {
            Ok(remote) => {
                for field in ["members", "state", "protocol", "lag_history"] {
                    group[field] = remote[field].clone();
                }
            }
            Err(err) => group["members_error"] = serde_json::json!(err),
        }
    }

    /// A POST or DELETE (with `--console-write`): the API's JSON answers, or for a page's
    /// form a redirect to the page that shows the outcome (an error page if it failed).
    async fn change(
        &self,
        session: &Session,
        method: &Method,
        segments: &[&str],
        body: &[u8],
    ) -> Response<Full<Bytes>> {
        let viewer = api::Viewer::new(&self.ctx, session);
        let form = || parse_query(std::str::from_utf8(body).unwrap_or(""));
        let field = |form: &[(String, String)], name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let number = |text: Option<String>, what: &str| -> Result<Option<i64>, api::ApiError> {
            text.map(|t| {
                t.parse::<i64>().map_err(|_| {
                    api::ApiError::bad_request(format!("{what} {t:?} is not a number"))
                })
            })
            .transpose()
        };
        match (method, segments) {
            (&Method::POST, ["api", "v1", "topics"]) => {
                let result = match write::json_body(body) {
                    Ok(map) => {
                        let name = map.get("name").and_then(|v| v.as_str()).unwrap_or_default();
                        let partitions = map
                            .get("partitions")
                            .and_then(serde_json::Value::as_i64)
                            .map(|p| i32::try_from(p).unwrap_or(i32::MAX));
                        let configs = map
                            .get("configs")
                            .and_then(|c| c.as_object())
                            .map(|c| {
                                c.iter()
                                    .map(|(k, v)| {
                                        (
                                            k.clone(),
                                            v.as_str()
                                                .map_or_else(|| v.to_string(), str::to_string),
                                        )
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        write::create_topic(&viewer, name, partitions, configs).await
                    }
                    Err(err) => Err(err),
                };
                json_response(result, StatusCode::CREATED)
            }
            (&Method::DELETE, ["api", "v1", "topics", name]) => {
                json_response(write::delete_topic(&viewer, name).await, StatusCode::OK)
            }
            (&Method::POST, ["api", "v1", "groups", group, "reset-offsets"]) => {
                let result = match write::json_body(body) {
                    Ok(map) => {
                        let topic = map
                            .get("topic")
                            .and_then(|v| v.as_str())
                            .unwrap_or_default();
                        let to = map.get("to").and_then(|v| v.as_str()).unwrap_or_default();
                        let value = map.get("value").and_then(serde_json::Value::as_i64);
                        match write::ResetTo::parse(to, value) {
                            Ok(to) => write::reset_offsets(&viewer, group, topic, to).await,
                            Err(err) => Err(err),
                        }
                    }
                    Err(err) => Err(err),
                };
                json_response(result, StatusCode::OK)
            }
            (&Method::POST, ["ui", "topics"]) => {
                let form = form();
                let name = field(&form, "name").unwrap_or_default();
                let result = match number(field(&form, "partitions"), "partitions") {
                    Ok(partitions) => {
                        let mut configs = std::collections::BTreeMap::new();
                        for line in field(&form, "configs").unwrap_or_default().lines() {
                            if let Some((k, v)) = line.split_once('=') {
                                configs.insert(k.trim().to_string(), v.trim().to_string());
                            }
                        }
                        let partitions = partitions.map(|p| i32::try_from(p).unwrap_or(i32::MAX));
                        write::create_topic(&viewer, &name, partitions, configs).await
                    }
                    Err(err) => Err(err),
                };
                self.after_form(result, &format!("/ui/topics/{}", percent_encode(&name)))
            }
            (&Method::POST, ["ui", "topics", name]) => {
                let form = form();
                let result = if field(&form, "confirm").as_deref() == Some(name) {
                    write::delete_topic(&viewer, name).await
                } else {
                    Err(api::ApiError::bad_request(format!(
                        "type the topic's name ({name}) to confirm its deletion"
                    )))
                };
                self.after_form(result, "/ui/topics")
            }
            (&Method::POST, ["ui", "groups", group]) => {
                let form = form();
                let topic = field(&form, "topic").unwrap_or_default();
                let to = field(&form, "to").unwrap_or_default();
                let result = match number(field(&form, "value"), "value") {
                    Ok(value) => match write::ResetTo::parse(&to, value) {
                        Ok(to) => write::reset_offsets(&viewer, group, &topic, to).await,
                        Err(err) => Err(err),
                    },
                    Err(err) => Err(err),
                };
                self.after_form(result, &format!("/ui/groups/{}", percent_encode(group)))
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    /// A page's HTML with its links under the base path (every link starts with /ui/).
    fn under_base(&self, html: String) -> String {
        if self.base.is_empty() {
            html
        } else {
            html.replace("=\"/ui/", &format!("=\"{}/ui/", self.base))
        }
    }

    /// After a page's form: see the page (303), or an error page.
    fn after_form(&self, result: api::ApiResult, page: &str) -> Response<Full<Bytes>> {
        match result {
            Ok(_) => Response::builder()
                .status(StatusCode::SEE_OTHER)
                .header("location", format!("{}{page}", self.base))
                .body(Full::new(Bytes::new()))
                .expect("static response parts are valid"),
            Err(err) => {
                let body = self.under_base(pages::error_page(&self.ctx.cluster_id, &err.message));
                Response::builder()
                    .status(StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_REQUEST))
                    .header("content-type", "text/html; charset=utf-8")
                    .body(Full::new(Bytes::from(body)))
                    .expect("static response parts are valid")
            }
        }
    }
}

fn json_response(result: api::ApiResult, ok: StatusCode) -> Response<Full<Bytes>> {
    let (status, body) = match result {
        Ok(value) => (ok, value),
        Err(err) => (
            StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            serde_json::json!({ "error": err.message }),
        ),
    };
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            serde_json::to_vec_pretty(&body).expect("JSON values serialize"),
        )))
        .expect("static response parts are valid")
}

/// Whether a change comes from the console's own pages: no `Origin` (not a browser's
/// cross-site request: scripts, curl), or one whose host is the request's `Host`.
fn same_origin(origin: Option<&HeaderValue>, host: Option<&HeaderValue>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let origin_host = origin.to_str().ok().and_then(|o| {
        o.split_once("://")
            .map(|(_, rest)| rest.trim_end_matches('/'))
    });
    match (origin_host, host.and_then(|h| h.to_str().ok())) {
        (Some(o), Some(h)) => o.eq_ignore_ascii_case(h),
        _ => false,
    }
}

/// `offset=N` | `timestamp=MS` (default: the latest records), `limit=N`.
pub(crate) fn message_query(
    query: &[(String, String)],
) -> Result<(api::Start, usize), api::ApiError> {
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    };
    let number = |name: &str, text: &str| {
        text.trim()
            .parse::<i64>()
            .map_err(|_| api::ApiError::bad_request(format!("{name}={text:?} is not a number")))
    };
    let from = match (get("offset"), get("timestamp")) {
        (Some(_), Some(_)) => {
            return Err(api::ApiError::bad_request("offset or timestamp, not both"));
        }
        (Some(o), None) => api::Start::Offset(number("offset", o)?),
        (None, Some(t)) => api::Start::Timestamp(number("timestamp", t)?),
        (None, None) => api::Start::Latest,
    };
    let limit = match get("limit") {
        Some(l) => usize::try_from(number("limit", l)?.max(1)).unwrap_or(api::MESSAGES_MAX),
        None => api::MESSAGES_DEFAULT,
    };
    Ok((from, limit.min(api::MESSAGES_MAX)))
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("static response parts are valid")
}

fn redirect(to: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::FOUND)
        .header("location", to)
        .body(Full::new(Bytes::new()))
        .expect("static response parts are valid")
}

/// `a=1&b=x%20y` → [("a", "1"), ("b", "x y")] (`+` is a space).
pub(crate) fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .take(32)
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

/// `%XX` escapes decoded (invalid ones and non-UTF-8 results kept as they are).
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_string())
}

/// `text` with every byte outside unreserved characters as `%XX` (a path segment or query
/// value in a link).
pub(crate) fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_round_trip() {
        for text in ["plain", "a b/c%d", "grüße", "", "%zz", "%4"] {
            assert_eq!(percent_decode(&percent_encode(text)), text);
        }
        assert_eq!(percent_decode("%41%42c"), "ABc");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn queries_parse() {
        let q = parse_query("offset=5&limit=10&x=a+b%21&flag");
        assert_eq!(q[0], ("offset".to_string(), "5".to_string()));
        assert_eq!(q[2], ("x".to_string(), "a b!".to_string()));
        assert_eq!(q[3], ("flag".to_string(), String::new()));
        let (from, limit) = message_query(&q).unwrap();
        assert!(matches!(from, api::Start::Offset(5)));
        assert_eq!(limit, 10);
        assert!(message_query(&parse_query("offset=1&timestamp=2")).is_err());
        assert!(message_query(&parse_query("offset=x")).is_err());
        let (from, limit) = message_query(&parse_query("limit=100000")).unwrap();
        assert!(matches!(from, api::Start::Latest));
        assert_eq!(limit, api::MESSAGES_MAX);
    }
}
