//! The HTTP endpoint for operators (`--http-listen`, default 127.0.0.1:9644):
//! `/metrics` in Prometheus text format, `/health` (the process is up) and `/ready` (the
//! metadata store answers). Served with hyper; one small task per connection.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::broker::BrokerCtx;

/// How long `/ready` waits for the metadata store.
const READY_TIMEOUT: Duration = Duration::from_secs(2);
/// HTTP connections served at once; more wait in the accept queue.
const HTTP_CONNECTIONS_MAX: usize = 64;

pub async fn serve(listener: TcpListener, ctx: Arc<BrokerCtx>, shutdown: CancellationToken) {
    let slots = Arc::new(tokio::sync::Semaphore::new(HTTP_CONNECTIONS_MAX));
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
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| respond(ctx.clone(), req));
            let result = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(err) = result {
                tracing::debug!("HTTP connection ended: {err}");
            }
            drop(permit);
        });
    }
}

async fn respond(
    ctx: Arc<BrokerCtx>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, content_type, body) = match req.uri().path() {
        "/metrics" => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            render_metrics(&ctx),
        ),
        "/health" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        "/ready" => match tokio::time::timeout(READY_TIMEOUT, ctx.meta.get("cluster/id")).await {
            Ok(Ok(_)) => (StatusCode::OK, "text/plain", "ready\n".to_string()),
            Ok(Err(err)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("metadata store: {err}\n"),
            ),
            Err(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "metadata store: timed out\n".to_string(),
            ),
        },
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

fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// The Prometheus text exposition of the broker's counters and gauges.
pub fn render_metrics(ctx: &BrokerCtx) -> String {
    let tier = ctx.tier.stats();
    let log = ctx.log.stats();
    let topics = ctx.topics.all();
    let (mut led, mut fenced, mut index_entries) = (0u64, 0u64, 0u64);
    // Per topic, over the partitions led here: (index entries, bytes in the object store).
    let mut per_topic: Vec<(String, u64, u64)> = Vec::with_capacity(topics.len());
    for topic in &topics {
        let (mut topic_entries, mut topic_bytes) = (0u64, 0u64);
        for partition in &topic.partitions {
            let state = partition.lock();
            if state.fenced || state.needs_reload {
                fenced += 1;
            } else {
                led += 1;
                topic_entries += state.index.len() as u64;
                topic_bytes += state.index.values().map(|e| e.byte_length).sum::<u64>();
            }
        }
        index_entries += topic_entries;
        per_topic.push((topic.name.clone(), topic_entries, topic_bytes));
    }
    let mut out = String::new();
    metric(
        &mut out,
        "strato_object_store_requests_total",
        "counter",
        "Object store requests sent, retries included.",
        &[
            ("operation=\"put\"", tier.puts),
            ("operation=\"get\"", tier.gets),
            ("operation=\"list\"", tier.lists),
            ("operation=\"delete\"", tier.deletes),
        ],
    );
    metric(
        &mut out,
        "strato_object_store_bytes_total",
        "counter",
        "Bytes uploaded to and downloaded from the object store.",
        &[
            ("direction=\"put\"", tier.put_bytes),
            ("direction=\"get\"", tier.get_bytes),
        ],
    );
    metric(
        &mut out,
        "strato_chunk_cache_requests_total",
        "counter",
        "Chunk reads answered by the chunk cache's memory or disk tier (hit) or the object store (miss).",
        &[
            ("result=\"hit\",tier=\"memory\"", tier.cache_memory_hits),
            ("result=\"hit\",tier=\"disk\"", tier.cache_disk_hits),
            ("result=\"miss\"", tier.cache_misses),
        ],
    );
    metric(
        &mut out,
        "strato_chunk_reads_total",
        "counter",
        "Chunk reads that waited for another reader's GET (singleflight) or were started by read-ahead.",
        &[
            ("kind=\"singleflight_wait\"", tier.singleflight_waits),
            ("kind=\"read_ahead\"", tier.prefetches),
        ],
    );
    metric(
        &mut out,
        "strato_chunk_cache_bytes",
        "gauge",
        "Bytes of decompressed chunks in the memory tier of the chunk cache.",
        &[("", tier.cache_bytes)],
    );
    metric(
        &mut out,
        "strato_flushes_total",
        "counter",
        "Segment flushes by outcome.",
        &[
            ("result=\"committed\"", log.flushes),
            ("result=\"failed\"", log.failed_flushes),
        ],
    );
    metric(
        &mut out,
        "strato_flushed_bytes_total",
        "counter",
        "Bytes of segment objects written by flushes.",
        &[("", log.flushed_bytes)],
    );
    metric(
        &mut out,
        "strato_partitions",
        "gauge",
        "Partitions this broker leads (led) or has stopped leading (fenced).",
        &[("state=\"led\"", led), ("state=\"fenced\"", fenced)],
    );
    metric(
        &mut out,
        "strato_gc_passes_total",
        "counter",
        "Garbage collection passes completed by this broker.",
        &[("", ctx.gc.passes.load(Ordering::Relaxed))],
    );
    metric(
        &mut out,
        "strato_gc_deleted_objects_total",
        "counter",
        "Unreferenced segment objects deleted by garbage collection.",
        &[("", ctx.gc.deleted.load(Ordering::Relaxed))],
    );
    metric(
        &mut out,
        "strato_index_entries",
        "gauge",
        "Chunk index entries of the partitions this broker leads (each one key in the metadata store).",
        &[("", index_entries)],
    );
    // Topic names are `[A-Za-z0-9._-]`, safe inside a label value.
    let labels: Vec<(String, u64, u64)> = per_topic
        .into_iter()
        .map(|(name, entries, bytes)| (format!("topic=\"{name}\""), entries, bytes))
        .collect();
    let entries_by_topic: Vec<(&str, u64)> =
        labels.iter().map(|(l, e, _)| (l.as_str(), *e)).collect();
    let bytes_by_topic: Vec<(&str, u64)> =
        labels.iter().map(|(l, _, b)| (l.as_str(), *b)).collect();
    metric(
        &mut out,
        "strato_topic_index_entries",
        "gauge",
        "Chunk index entries per topic, over the partitions this broker leads.",
        &entries_by_topic,
    );
    metric(
        &mut out,
        "strato_topic_stored_bytes",
        "gauge",
        "Bytes in the object store per topic (compressed chunks), over the partitions this broker leads.",
        &bytes_by_topic,
    );
    metric(
        &mut out,
        "strato_topics",
        "gauge",
        "Topics known to this broker.",
        &[("", topics.len() as u64)],
    );
    metric(
        &mut out,
        "strato_connections",
        "gauge",
        "Open Kafka client connections.",
        &[("", ctx.open_connections.load(Ordering::Relaxed))],
    );
    metric(
        &mut out,
        "strato_partition_leadership_changes_total",
        "counter",
        "Partitions this broker started (acquired) or stopped (released) leading.",
        &[
            (
                "change=\"acquired\"",
                ctx.topics.acquisitions.load(Ordering::Relaxed),
            ),
            (
                "change=\"released\"",
                ctx.topics.releases.load(Ordering::Relaxed),
            ),
        ],
    );
    metric(
        &mut out,
        "strato_replica_reads_total",
        "counter",
        "Fetch reads of partitions led by another broker, served here from the shared index.",
        &[("", ctx.replicas.reads.load(Ordering::Relaxed))],
    );
    metric(
        &mut out,
        "strato_brokers",
        "gauge",
        "Live brokers of the cluster as this broker sees them.",
        &[("", ctx.cluster.live().len() as u64)],
    );
    let groups = ctx.groups.stats();
    metric(
        &mut out,
        "strato_consumer_groups",
        "gauge",
        "Consumer groups with members coordinated by this broker.",
        &[("", groups.groups)],
    );
    metric(
        &mut out,
        "strato_consumer_group_members",
        "gauge",
        "Members of the consumer groups coordinated by this broker.",
        &[("", groups.members)],
    );
    metric(
        &mut out,
        "strato_consumer_group_rebalances_total",
        "counter",
        "Consumer group rebalances completed (a new generation) since start.",
        &[("", groups.rebalances)],
    );
    out
}
