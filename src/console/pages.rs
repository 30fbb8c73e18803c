//! The console's pages, rendered on the server from the API's JSON: plain HTML tables and
//! forms, one stylesheet, SVG charts drawn here. Every value from the cluster is escaped.

use std::fmt::Write as _;

use hyper::StatusCode;
use serde_json::Value;

use super::api::{self, ApiError};
use super::{Console, percent_encode};
use crate::security::Session;

pub(super) const STYLESHEET: &str = include_str!("console.css");

/// The page at `/ui/<rest>`: status and HTML.
pub(super) async fn render(
    console: &Console,
    request: &super::ConsoleRequest<'_>,
    session: &Session,
    rest: &[&str],
    query: &[(String, String)],
    object_store: Result<(), String>,
) -> (StatusCode, String) {
    let ctx = &console.ctx;
    let viewer = api::Viewer::new(ctx, session);
    let page = match rest {
        [] => api::cluster(&viewer, object_store)
            .await
            .map(|cluster| ("Overview", "overview", overview(&cluster, console))),
        ["topics"] => api::topics(&viewer)
            .await
            .map(|topics| ("Topics", "topics", topics_page(&topics, console.write))),
        ["topics", name] => match api::topic(&viewer, name).await {
            Ok(topic) => {
                let messages = match query.iter().find(|(k, _)| k == "partition") {
                    Some((_, p)) => Some(match p.parse::<i32>() {
                        Ok(p) => match super::message_query(query) {
                            Ok((from, limit)) => api::messages(&viewer, name, p, from, limit).await,
                            Err(err) => Err(err),
                        },
                        Err(_) => Err(ApiError::bad_request(format!("bad partition {p:?}"))),
                    }),
                    None => None,
                };
                Ok((
                    "Topic",
                    "topics",
                    topic_page(&topic, query, messages, console.write),
                ))
            }
            Err(err) => Err(err),
        },
        ["groups"] => api::groups(&viewer)
            .await
            .map(|groups| ("Consumer groups", "groups", groups_page(&groups))),
        ["groups", id] => console.group(&viewer, id, request).await.map(|group| {
            let history: Vec<(i64, f64)> = group["lag_history"]
                .as_array()
                .map(|h| {
                    h.iter()
                        .filter_map(|s| Some((s[0].as_i64()?, s[1].as_f64()?)))
                        .collect()
                })
                .unwrap_or_default();
            (
                "Consumer group",
                "groups",
                group_page(&group, &history, console.write),
            )
        }),
        ["bucket"] => api::bucket(&viewer)
            .await
            .map(|bucket| ("Bucket", "bucket", bucket_page(&bucket))),
        _ => Err(ApiError::not_found("no such page")),
    };
    match page {
        Ok((title, nav, body)) => (StatusCode::OK, layout(title, nav, &ctx.cluster_id, &body)),
        Err(err) => (
            StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            layout(
                "Error",
                "",
                &ctx.cluster_id,
                &format!("<h1>Error</h1><p class=\"error\">{}</p>", esc(&err.message)),
            ),
        ),
    }
}

/// A page that tells what went wrong.
pub(super) fn error_page(cluster_id: &str, message: &str) -> String {
    layout(
        "Error",
        "",
        cluster_id,
        &format!(
            "<h1>Error</h1><p class=\"error\">{}</p><p><a href=\"javascript:history.back()\">Back</a></p>",
            esc(message)
        ),
    )
}

fn layout(title: &str, nav: &str, cluster_id: &str, body: &str) -> String {
    let link = |href: &str, key: &str, label: &str| {
        let class = if key == nav { " class=\"active\"" } else { "" };
        format!("<a href=\"{href}\"{class}>{label}</a>")
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Strato</title><link rel=\"stylesheet\" href=\"/ui/assets/console.css\">\
         </head><body><header><a class=\"brand\" href=\"/ui/\">Strato</a><nav>{}{}{}{}</nav>\
         <span class=\"cluster\">cluster {}</span></header><main>{body}</main></body></html>\n",
        link("/ui/", "overview", "Overview"),
        link("/ui/topics", "topics", "Topics"),
        link("/ui/groups", "groups", "Groups"),
        link("/ui/bucket", "bucket", "Bucket"),
        esc(cluster_id),
        title = esc(title),
    )
}

/// HTML-escaped text.
pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as table text (strings unquoted, null as —).
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "—".to_string(),
        Value::String(s) => esc(s),
        Value::Number(n) => match n.as_i64() {
            Some(i) => thousands(i),
            None => n.to_string(),
        },
        other => esc(&other.to_string()),
    }
}

fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn bytes(v: &Value) -> String {
    let Some(n) = v.as_f64() else {
        return "—".to_string();
    };
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table><thead><tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    if rows.is_empty() {
        let _ = write!(
            out,
            "<tr><td colspan=\"{}\" class=\"empty\">none</td></tr>",
            headers.len()
        );
    }
    for row in rows {
        out.push_str("<tr>");
        for c in row {
            let _ = write!(out, "<td>{c}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

fn card(label: &str, value: &str) -> String {
    format!(
        "<div class=\"card\"><div class=\"label\">{}</div><div class=\"value\">{value}</div></div>",
        esc(label)
    )
}

fn health(v: &Value) -> String {
    if v["ok"].as_bool() == Some(true) {
        "<span class=\"ok\">OK</span>".to_string()
    } else {
        format!(
            "<span class=\"bad\" title=\"{}\">failing</span>",
            esc(v["error"].as_str().unwrap_or(""))
        )
    }
}

fn overview(cluster: &Value, console: &Console) -> String {
    let mut out = String::from("<h1>Overview</h1><div class=\"cards\">");
    out.push_str(&card(
        "Brokers",
        &cell(&Value::from(
            cluster["brokers"].as_array().map_or(0, Vec::len),
        )),
    ));
    out.push_str(&card("Topics", &cell(&cluster["topics"])));
    out.push_str(&card("Partitions", &cell(&cluster["partitions"])));
    out.push_str(&card("Metadata store", &health(&cluster["metadata_store"])));
    out.push_str(&card("Object store", &health(&cluster["object_store"])));
    out.push_str("</div><h2>Traffic, last hour</h2>");
    let rates = console.samples.rates();
    let series = |pick: fn(&super::samples::Rate) -> f64| -> Vec<(i64, f64)> {
        rates.iter().map(|r| (r.at_ms, pick(r))).collect()
    };
    out.push_str("<div class=\"charts\">");
    out.push_str(&chart(
        "Bytes in (produce) per second",
        &series(|r| r.bytes_in),
        true,
    ));
    out.push_str(&chart(
        "Bytes out (fetch) per second",
        &series(|r| r.bytes_out),
        true,
    ));
    out.push_str(&chart(
        "Requests per second",
        &series(|r| r.requests),
        false,
    ));
    out.push_str("</div><h2>Brokers</h2>");
    let rows: Vec<Vec<String>> = cluster["brokers"]
        .as_array()
        .map(|brokers| {
            brokers
                .iter()
                .map(|b| {
                    let this = if b["this"].as_bool() == Some(true) {
                        " (this one)"
                    } else {
                        ""
                    };
                    vec![
                        format!("{}{this}", cell(&b["id"])),
                        format!("{}:{}", cell(&b["host"]), b["port"]),
                        cell(&b["rack"]),
                        cell(&b["state"]),
                        cell(&b["partitions"]),
                        cell(&b["partitions_led"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&table(
        &[
            "Broker",
            "Address",
            "Rack",
            "State",
            "Partitions owned",
            "Partitions led",
        ],
        &rows,
    ));
    let _ = write!(
        out,
        "<p class=\"note\">Cluster {} · served by broker {} · lease {}</p>",
        cell(&cluster["cluster_id"]),
        cell(&cluster["broker_id"]),
        if cluster["lease_held"].as_bool() == Some(true) {
            "held"
        } else {
            "not held"
        }
    );
    out
}

/// A line chart of `points` (ms, value) as inline SVG.
fn chart(title: &str, points: &[(i64, f64)], as_bytes: bool) -> String {
    const W: f64 = 560.0;
    const H: f64 = 140.0;
    let mut out = format!(
        "<figure class=\"chart\"><figcaption>{}</figcaption>",
        esc(title)
    );
    if points.len() < 2 {
        out.push_str("<p class=\"empty\">Collecting samples (one every 10 s)…</p></figure>");
        return out;
    }
    let max = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0);
    let (t0, t1) = (points[0].0, points[points.len() - 1].0);
    let span = (t1 - t0).max(1) as f64;
    let mut path = String::new();
    for (i, (t, v)) in points.iter().enumerate() {
        let x = (*t - t0) as f64 / span * W;
        let y = H - v / max * (H - 10.0);
        let _ = write!(path, "{}{x:.1},{y:.1} ", if i == 0 { "M" } else { "L" });
    }
    let last = points[points.len() - 1].1;
    let label = |v: f64| {
        if as_bytes {
            bytes(&Value::from(v))
        } else {
            format!("{v:.1}")
        }
    };
    let _ = write!(
        out,
        "<svg viewBox=\"0 0 {W} {H}\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"{}\">\
         <path class=\"line\" d=\"{path}\"/></svg>\
         <div class=\"axis\"><span>max {}</span><span>now {}</span></div></figure>",
        esc(title),
        esc(&label(max)),
        esc(&label(last))
    );
    out
}

fn topics_page(topics: &Value, write: bool) -> String {
    let rows: Vec<Vec<String>> = topics["topics"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|t| {
                    let name = t["name"].as_str().unwrap_or_default();
                    vec![
                        format!(
                            "<a href=\"/ui/topics/{}\">{}</a>",
                            percent_encode(name),
                            esc(name)
                        ),
                        cell(&t["partitions"]),
                        cell(&t["records"]),
                        bytes(&t["bytes"]),
                        cell(&t["objects"]),
                        cell(&t["cleanup_policy"]),
                        cell(&t["retention_ms"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = String::from("<h1>Topics</h1>");
    out.push_str(&table(
        &[
            "Topic",
            "Partitions",
            "Records",
            "In the bucket",
            "Objects",
            "Cleanup",
            "retention.ms",
        ],
        &rows,
    ));
    if topics["truncated"].as_bool() == Some(true) {
        out.push_str("<p class=\"note\">Only the first topics are listed.</p>");
    }
    if write {
        out.push_str(
            "<h2>Create a topic</h2><form class=\"browse\" method=\"post\" action=\"/ui/topics\">\
             <label>Name <input name=\"name\" required></label>\
             <label>Partitions <input name=\"partitions\" inputmode=\"numeric\" placeholder=\"default\"></label>\
             <label>Configs (name=value, a line each) <textarea name=\"configs\" rows=\"2\"></textarea></label>\
             <button type=\"submit\">Create</button></form>",
        );
    }
    out
}

fn topic_page(
    topic: &Value,
    query: &[(String, String)],
    messages: Option<Result<Value, ApiError>>,
    write: bool,
) -> String {
    let name = topic["name"].as_str().unwrap_or_default();
    let mut out = format!(
        "<h1>Topic <span class=\"mono\">{}</span></h1><div class=\"cards\">",
        esc(name)
    );
    out.push_str(&card("Partitions", &cell(&topic["partitions"])));
    out.push_str(&card("Records", &cell(&topic["records"])));
    out.push_str(&card("In the bucket", &bytes(&topic["bytes"])));
    out.push_str(&card("Chunks", &cell(&topic["chunks"])));
    out.push_str(&card("Objects", &cell(&topic["objects"])));
    out.push_str("</div><h2>Partitions</h2>");
    let rows: Vec<Vec<String>> = topic["partition_details"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|p| {
                    vec![
                        format!(
                            "<a href=\"/ui/topics/{}?partition={}#messages\">{}</a>",
                            percent_encode(name),
                            p["partition"],
                            p["partition"]
                        ),
                        cell(&p["leader"]),
                        cell(&p["log_start_offset"]),
                        cell(&p["end_offset"]),
                        cell(&p["records"]),
                        bytes(&p["bytes"]),
                        cell(&p["chunks"]),
                        cell(&p["objects"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&table(
        &[
            "Partition",
            "Leader",
            "Log start",
            "End",
            "Records",
            "Bytes",
            "Chunks",
            "Objects",
        ],
        &rows,
    ));
    // The message browser: a plain GET form.
    let value = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map_or(String::new(), |(_, v)| esc(v))
    };
    let partitions = topic["partitions"].as_i64().unwrap_or(0);
    let selected = value("partition");
    let mut options = String::new();
    for p in 0..partitions {
        let sel = if selected == p.to_string() {
            " selected"
        } else {
            ""
        };
        let _ = write!(options, "<option{sel}>{p}</option>");
    }
    let _ = write!(
        out,
        "<h2 id=\"messages\">Messages</h2><form class=\"browse\" method=\"get\" action=\"/ui/topics/{}#messages\">\
         <label>Partition <select name=\"partition\">{options}</select></label>\
         <label>From offset <input name=\"offset\" inputmode=\"numeric\" value=\"{}\" placeholder=\"latest\"></label>\
         <label>or time (ms) <input name=\"timestamp\" inputmode=\"numeric\" value=\"{}\"></label>\
         <label>Limit <input name=\"limit\" inputmode=\"numeric\" value=\"{}\" placeholder=\"{}\"></label>\
         <button type=\"submit\">Show</button></form>",
        percent_encode(name),
        value("offset"),
        value("timestamp"),
        value("limit"),
        api::MESSAGES_DEFAULT,
    );
    match messages {
        None => out.push_str("<p class=\"note\">Pick a partition to read its latest messages.</p>"),
        Some(Err(err)) => {
            let _ = write!(out, "<p class=\"error\">{}</p>", esc(&err.message));
        }
        Some(Ok(m)) => out.push_str(&messages_table(name, &m)),
    }
    out.push_str("<h2>Configuration</h2>");
    let overrides = topic["overrides"].as_object();
    let rows: Vec<Vec<String>> = topic["configs"]
        .as_object()
        .map(|configs| {
            configs
                .iter()
                .map(|(k, v)| {
                    let set = overrides.is_some_and(|o| o.contains_key(k));
                    vec![
                        format!("<span class=\"mono\">{}</span>", esc(k)),
                        cell(v),
                        if set {
                            "topic".to_string()
                        } else {
                            "default".to_string()
                        },
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&table(&["Name", "Value", "Source"], &rows));
    if write {
        let _ = write!(
            out,
            "<h2>Delete the topic</h2><form class=\"browse\" method=\"post\" action=\"/ui/topics/{}\">\
             <label>Type its name to confirm <input name=\"confirm\" required></label>\
             <button type=\"submit\" class=\"danger\">Delete {}</button></form>",
            percent_encode(name),
            esc(name)
        );
    }
    out
}

fn shown(v: &Value) -> String {
    if v.is_null() {
        return "<span class=\"null\">null</span>".to_string();
    }
    let format = v["format"].as_str().unwrap_or("text");
    let cut = if v["truncated"].as_bool() == Some(true) {
        " (cut)"
    } else {
        ""
    };
    format!(
        "<pre class=\"{format}\">{}</pre><span class=\"format\">{format}{cut}, {} B</span>",
        esc(v["text"].as_str().unwrap_or_default()),
        v["bytes"]
    )
}

fn messages_table(topic: &str, m: &Value) -> String {
    let rows: Vec<Vec<String>> = m["messages"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|msg| {
                    let headers: Vec<String> = msg["headers"]
                        .as_array()
                        .map(|hs| {
                            hs.iter()
                                .map(|h| format!("{}: {}", cell(&h["name"]), shown(&h["value"])))
                                .collect()
                        })
                        .unwrap_or_default();
                    vec![
                        cell(&msg["offset"]),
                        esc(&time(msg["timestamp"].as_i64().unwrap_or(-1))),
                        shown(&msg["key"]),
                        shown(&msg["value"]),
                        headers.join("<br>"),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = format!(
        "<p class=\"note\">Partition {}: log start {}, end {}.</p>",
        m["partition"],
        cell(&m["log_start_offset"]),
        cell(&m["end_offset"])
    );
    out.push_str("<div id=\"message-list\">");
    out.push_str(&table(
        &["Offset", "Timestamp", "Key", "Value", "Headers"],
        &rows,
    ));
    out.push_str("</div>");
    if let Some(next) = m["next_offset"].as_i64() {
        let _ = write!(
            out,
            "<p><a class=\"button\" href=\"/ui/topics/{}?partition={}&amp;offset={next}#messages\">Next messages</a></p>",
            percent_encode(topic),
            m["partition"]
        );
    }
    out
}

fn groups_page(groups: &Value) -> String {
    let rows: Vec<Vec<String>> = groups["groups"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|g| {
                    let id = g["group_id"].as_str().unwrap_or_default();
                    vec![
                        format!(
                            "<a href=\"/ui/groups/{}\">{}</a>",
                            percent_encode(id),
                            esc(id)
                        ),
                        cell(&g["state"]),
                        cell(&g["protocol_type"]),
                        cell(&g["coordinator"]),
                        cell(&g["lag"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = String::from("<h1>Consumer groups</h1>");
    out.push_str(&table(
        &["Group", "State", "Protocol", "Coordinator", "Total lag"],
        &rows,
    ));
    out
}

fn group_page(group: &Value, lag_history: &[(i64, f64)], write: bool) -> String {
    let id = group["group_id"].as_str().unwrap_or_default();
    let mut out = format!(
        "<h1>Consumer group <span class=\"mono\">{}</span></h1><div class=\"cards\">",
        esc(id)
    );
    out.push_str(&card("Total lag", &cell(&group["lag"])));
    out.push_str(&card("State", &cell(&group["state"])));
    out.push_str(&card("Coordinator", &cell(&group["coordinator"])));
    out.push_str(&card("Protocol", &cell(&group["protocol"])));
    out.push_str("</div>");
    if !lag_history.is_empty() {
        out.push_str("<div class=\"charts\">");
        out.push_str(&chart("Total lag, last hour", lag_history, false));
        out.push_str("</div>");
    }
    out.push_str("<h2>Members</h2>");
    match group["members"].as_array() {
        Some(members) => {
            let rows: Vec<Vec<String>> = members
                .iter()
                .map(|m| {
                    let assignment = m["assignment"]
                        .as_object()
                        .map(|topics| {
                            topics
                                .iter()
                                .map(|(t, ps)| format!("{} {}", esc(t), esc(&ps.to_string())))
                                .collect::<Vec<_>>()
                                .join("<br>")
                        })
                        .unwrap_or_else(|| "—".to_string());
                    vec![
                        format!("<span class=\"mono\">{}</span>", cell(&m["member_id"])),
                        cell(&m["client_id"]),
                        cell(&m["client_host"]),
                        assignment,
                    ]
                })
                .collect();
            out.push_str(&table(
                &["Member", "Client id", "Host", "Assigned partitions"],
                &rows,
            ));
        }
        None => {
            let _ = write!(
                out,
                "<p class=\"note\">Members are kept by the group's coordinator, broker {}, which could not be asked: {}</p>",
                cell(&group["coordinator"]),
                cell(&group["members_error"])
            );
        }
    }
    out.push_str("<h2>Committed offsets and lag</h2>");
    let rows: Vec<Vec<String>> = group["offsets"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|o| {
                    let topic = o["topic"].as_str().unwrap_or_default();
                    vec![
                        format!(
                            "<a href=\"/ui/topics/{}\">{}</a>",
                            percent_encode(topic),
                            esc(topic)
                        ),
                        cell(&o["partition"]),
                        cell(&o["committed_offset"]),
                        cell(&o["end_offset"]),
                        format!("<span class=\"lag\">{}</span>", cell(&o["lag"])),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&table(
        &["Topic", "Partition", "Committed", "End", "Lag"],
        &rows,
    ));
    if write {
        let _ = write!(
            out,
            "<h2>Reset offsets</h2><p class=\"note\">Only while the group has no active member, on its coordinator's console.</p>\
             <form class=\"browse\" method=\"post\" action=\"/ui/groups/{}\">\
             <label>Topic <input name=\"topic\" required></label>\
             <label>To <select name=\"to\"><option>earliest</option><option>latest</option>\
             <option>offset</option><option>timestamp</option></select></label>\
             <label>Offset or time (ms) <input name=\"value\" inputmode=\"numeric\"></label>\
             <button type=\"submit\">Reset</button></form>",
            percent_encode(id)
        );
    }
    out
}

fn bucket_page(bucket: &Value) -> String {
    let mut out = String::from("<h1>Bucket</h1><div class=\"cards\">");
    out.push_str(&card("Stored", &bytes(&bucket["bytes"])));
    out.push_str(&card("Objects referenced", &cell(&bucket["objects"])));
    out.push_str(&card("Chunks", &cell(&bucket["chunks"])));
    out.push_str(&card("GC passes", &cell(&bucket["gc"]["passes"])));
    out.push_str(&card(
        "Objects collected",
        &cell(&bucket["gc"]["deleted_objects"]),
    ));
    out.push_str(&card(
        "Garbage within its grace",
        &cell(&bucket["gc"]["waiting_objects"]),
    ));
    let _ = write!(
        out,
        "</div><p class=\"note\">Object store <span class=\"mono\">{}</span>; unreferenced objects are deleted {} ms after they became garbage.</p><h2>Per topic</h2>",
        cell(&bucket["object_store"]),
        cell(&bucket["gc"]["grace_ms"])
    );
    let rows: Vec<Vec<String>> = bucket["topics"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|t| {
                    let name = t["topic"].as_str().unwrap_or_default();
                    vec![
                        format!(
                            "<a href=\"/ui/topics/{}\">{}</a>",
                            percent_encode(name),
                            esc(name)
                        ),
                        bytes(&t["bytes"]),
                        cell(&t["chunks"]),
                        cell(&t["objects"]),
                        cell(&t["compaction_backlog_chunks"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&table(
        &[
            "Topic",
            "Stored",
            "Chunks",
            "Objects",
            "Chunks waiting for compaction",
        ],
        &rows,
    ));
    out.push_str("<h2>Requests by this broker since it started</h2>");
    let r = &bucket["requests"];
    out.push_str(&table(
        &["GETs", "PUTs", "DELETEs", "Bytes read", "Bytes written"],
        &[vec![
            cell(&r["gets"]),
            cell(&r["puts"]),
            cell(&r["deletes"]),
            bytes(&r["get_bytes"]),
            bytes(&r["put_bytes"]),
        ]],
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_numbers_grouped() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(-1000), "-1,000");
        assert_eq!(thousands(12), "12");
        assert_eq!(bytes(&Value::from(1536)), "1.5 KiB");
        assert_eq!(bytes(&Value::from(10)), "10 B");
    }

    #[test]
    fn a_chart_needs_two_points_and_scales_to_its_maximum() {
        assert!(chart("x", &[(0, 1.0)], false).contains("Collecting"));
        let svg = chart("x", &[(0, 0.0), (10_000, 50.0), (20_000, 100.0)], false);
        assert!(svg.contains("M0.0,140.0 L280.0,75.0 L560.0,10.0"), "{svg}");
        assert!(svg.contains("max 100.0"));
    }
}
