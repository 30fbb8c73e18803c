//! `/metrics`: the Prometheus text of the broker's metrics (`crate::metrics`) and of the
//! counters of the tier, the log writer, the topic registry and the coordinators.
//!
//! Label values come from fixed sets (API names, error codes, operation kinds), except
//! `topic` (and `partition` of the cleaner's dirty ratio), used only by per-topic gauges.

use std::sync::atomic::Ordering;

use strato_metrics::Encoder;
use strato_tiering::StoreOperation;

use super::BrokerCtx;
use crate::metrics::limits::LimitMetrics;
use crate::metrics::metadata_store::{MetadataOperation, MetadataTimings};
use crate::metrics::requests::RequestMetrics;

/// The Prometheus text exposition of the broker's metrics.
pub fn render(ctx: &BrokerCtx) -> String {
    let mut out = Encoder::new();
    render_requests(
        &mut out,
        &ctx.metrics.requests,
        &ctx.metrics.limits,
        ctx.log.stats().unflushed_waits,
    );
    render_storage(&mut out, ctx);
    render_metadata(&mut out, &ctx.metrics.metadata);
    render_partitions(&mut out, ctx);
    render_cluster(&mut out, ctx);
    ctx.metrics.security.render(&mut out);
    render_transactions(&mut out, ctx);
    render_authorization(&mut out, ctx);
    if let Some(process) = crate::metrics::process::ProcessSnapshot::read() {
        process.render(&mut out);
    }
    out.finish()
}

fn render_authorization(out: &mut Encoder, ctx: &BrokerCtx) {
    let denials = ctx.authorizer.denials();
    out.family(
        "strato_authorization_denied_total",
        "counter",
        "Requests (or parts of one: a topic, a group) the authorizer denied, per resource type and operation (Kafka's names).",
    );
    for (resource_type, operation, count) in denials {
        out.sample(
            "strato_authorization_denied_total",
            &[
                ("resource_type", resource_type.name()),
                ("operation", operation.name()),
            ],
            count as f64,
        );
    }
}

fn render_requests(
    out: &mut Encoder,
    requests: &RequestMetrics,
    limits: &LimitMetrics,
    unflushed_waits: u64,
) {
    let apis = requests.snapshot();
    out.labelled(
        "strato_requests_total",
        "counter",
        "Kafka requests admitted, per API.",
        "api",
        apis.iter().map(|api| (api.api.as_str(), api.requests)),
    );
    out.histograms(
        "strato_request_duration_seconds",
        "Time from a request's admission to its response being ready, per API (a Fetch includes its long-poll wait).",
        "api",
        apis.iter().map(|api| (api.api.as_str(), api.duration.clone())),
    );
    out.family(
        "strato_request_errors_total",
        "counter",
        "Error codes in responses, per API and Kafka error name (each topic, partition or group entry counts).",
    );
    for api in &apis {
        for (error, n) in &api.errors {
            out.sample(
                "strato_request_errors_total",
                &[("api", &api.api), ("error", error)],
                *n as f64,
            );
        }
    }
    out.simple(
        "strato_requests_rejected_total",
        "counter",
        "Request frames that could not be decoded (the connection was closed).",
        &[(&[], requests.rejected_total())],
    );
    out.family(
        "strato_limit_reached_total",
        "counter",
        "Times a configured bound was reached, per flag: the connection, frame or produce waited (max_connections, max_queued_request_bytes, max_inflight_requests, max_unflushed_bytes) or was refused and its connection closed (max_connections_per_ip, max_request_bytes), or was held to a bound (max_fetch_bytes, fetches_per_connection).",
    );
    for (limit, count) in limits.snapshot(unflushed_waits) {
        out.sample(
            "strato_limit_reached_total",
            &[("limit", limit.name())],
            count as f64,
        );
    }
    out.simple(
        "strato_produce_bytes_total",
        "counter",
        "Record batch bytes received in Produce requests.",
        &[(&[], requests.produce_bytes())],
    );
    out.simple(
        "strato_fetch_bytes_total",
        "counter",
        "Record batch bytes sent in Fetch responses.",
        &[(&[], requests.fetch_bytes())],
    );
}

fn render_storage(out: &mut Encoder, ctx: &BrokerCtx) {
    let tier = ctx.tier.stats();
    let log = ctx.log.stats();
    out.simple(
        "strato_object_store_requests_total",
        "counter",
        "Object store requests sent, retries included.",
        &[
            (&[("operation", "put")], tier.puts),
            (&[("operation", "get")], tier.gets),
            (&[("operation", "list")], tier.lists),
            (&[("operation", "delete")], tier.deletes),
        ],
    );
    out.histograms(
        "strato_object_store_request_duration_seconds",
        "Duration of object store requests (each attempt), per operation; head is the readiness probe.",
        "operation",
        StoreOperation::ALL.map(|op| (op.name(), ctx.tier.request_latency(op))),
    );
    out.labelled(
        "strato_object_store_errors_total",
        "counter",
        "Object store requests that failed or timed out (each attempt), per operation.",
        "operation",
        StoreOperation::ALL
            .iter()
            .zip(tier.failures)
            .map(|(op, failures)| (op.name(), failures)),
    );
    out.simple(
        "strato_object_store_bytes_total",
        "counter",
        "Bytes uploaded to and downloaded from the object store.",
        &[
            (&[("direction", "put")], tier.put_bytes),
            (&[("direction", "get")], tier.get_bytes),
        ],
    );
    out.simple(
        "strato_chunk_cache_requests_total",
        "counter",
        "Chunk reads answered by the chunk cache's memory or disk tier (hit) or the object store (miss).",
        &[
            (&[("result", "hit"), ("tier", "memory")], tier.cache_memory_hits),
            (&[("result", "hit"), ("tier", "disk")], tier.cache_disk_hits),
            (&[("result", "miss")], tier.cache_misses),
        ],
    );
    out.simple(
        "strato_chunk_reads_total",
        "counter",
        "Chunk reads that waited for another reader's GET (singleflight) or were started by read-ahead.",
        &[
            (&[("kind", "singleflight_wait")], tier.singleflight_waits),
            (&[("kind", "read_ahead")], tier.prefetches),
            (&[("kind", "whole_object_wait")], tier.whole_object_waits),
        ],
    );
    out.simple(
        "strato_whole_object_reads_total",
        "counter",
        "Flush objects read whole by one GET on a cache miss, and the chunks of theirs cached besides the one asked for.",
        &[
            (&[("kind", "object")], tier.whole_object_reads),
            (&[("kind", "extra_chunk")], tier.whole_object_chunks),
        ],
    );
    out.simple(
        "strato_whole_object_read_bytes_total",
        "counter",
        "Bytes received by whole-object reads (part of strato_object_store_bytes_total{direction=\"get\"}).",
        &[(&[], tier.whole_object_bytes)],
    );
    out.simple(
        "strato_chunk_cache_bytes",
        "gauge",
        "Bytes of decompressed chunks in the memory tier of the chunk cache.",
        &[(&[], tier.cache_bytes)],
    );
    out.simple(
        "strato_flushes_total",
        "counter",
        "Segment flushes by outcome.",
        &[
            (&[("result", "committed")], log.flushes),
            (&[("result", "failed")], log.failed_flushes),
        ],
    );
    out.simple(
        "strato_flushed_bytes_total",
        "counter",
        "Bytes of segment objects written by flushes.",
        &[(&[], log.flushed_bytes)],
    );
    out.simple(
        "strato_flush_uploads_in_flight",
        "gauge",
        "Flushes built and uploading or waiting for their turn to commit (at most --flush-uploads-max).",
        &[(&[], log.uploads_in_flight)],
    );
    out.family(
        "strato_flush_bytes",
        "histogram",
        "Size of the segment object of each committed flush.",
    );
    out.histogram("strato_flush_bytes", &[], &ctx.log.flush_size());
    out.family(
        "strato_flush_duration_seconds",
        "histogram",
        "Duration of each committed flush: segment build, upload and metadata commit.",
    );
    out.histogram(
        "strato_flush_duration_seconds",
        &[],
        &ctx.log.flush_duration(),
    );
    out.histograms(
        "strato_flush_phase_seconds",
        "Phases of each committed flush: build (compression), upload (PUT), wait (for earlier flushes' commits, which are in flush order) and commit (metadata commit through the acknowledgements).",
        "phase",
        ctx.log.flush_phases(),
    );
    out.simple(
        "strato_gc_passes_total",
        "counter",
        "Garbage collection passes completed by this broker.",
        &[(&[], ctx.gc.passes.load(Ordering::Relaxed))],
    );
    out.simple(
        "strato_gc_deleted_objects_total",
        "counter",
        "Unreferenced segment objects deleted by garbage collection.",
        &[(&[], ctx.gc.deleted.load(Ordering::Relaxed))],
    );
    let compaction = &ctx.metrics.compaction;
    out.simple(
        "strato_compactions_total",
        "counter",
        "Compaction steps (a run of chunks merged into one) by outcome.",
        &[
            (
                &[("result", "merged")],
                compaction.merged.load(Ordering::Relaxed),
            ),
            (
                &[("result", "failed")],
                compaction.failed.load(Ordering::Relaxed),
            ),
        ],
    );
    out.simple(
        "strato_compacted_chunks_total",
        "counter",
        "Chunks replaced by compaction (their index entries merged into one).",
        &[(&[], compaction.chunks.load(Ordering::Relaxed))],
    );
    let cleaner = &ctx.metrics.cleaner;
    out.simple(
        "strato_cleaner_passes_total",
        "counter",
        "Key cleaning passes over compacted partitions, by outcome (failed: retried later).",
        &[
            (
                &[("result", "completed")],
                cleaner.passes.load(Ordering::Relaxed),
            ),
            (
                &[("result", "failed")],
                cleaner.failed.load(Ordering::Relaxed),
            ),
        ],
    );
    out.simple(
        "strato_cleaner_bytes_total",
        "counter",
        "Uncompressed bytes of the chunks the key cleaner rewrote, read (before) and written (after).",
        &[
            (
                &[("direction", "read")],
                cleaner.bytes_read.load(Ordering::Relaxed),
            ),
            (
                &[("direction", "written")],
                cleaner.bytes_written.load(Ordering::Relaxed),
            ),
        ],
    );
    out.simple(
        "strato_cleaner_records_removed_total",
        "counter",
        "Records the key cleaner removed (superseded by a later record of their key, expired tombstones, aborted).",
        &[(&[], cleaner.records_removed.load(Ordering::Relaxed))],
    );
    out.family(
        "strato_cleaner_seconds_total",
        "counter",
        "Time the key cleaner spent in completed passes (mapping keys, rewriting chunks, swapping).",
    );
    out.sample(
        "strato_cleaner_seconds_total",
        &[],
        cleaner.busy_micros.load(Ordering::Relaxed) as f64 / 1e6,
    );
    let dirty = cleaner.dirty.lock().expect("dirty ratios lock").clone();
    out.family(
        "strato_cleaner_dirty_ratio",
        "gauge",
        "Share of a compacted partition's cleanable bytes written since its last cleaning, per partition this broker leads.",
    );
    for ((topic, partition), ratio) in &dirty {
        out.sample(
            "strato_cleaner_dirty_ratio",
            &[("topic", topic), ("partition", &partition.to_string())],
            *ratio,
        );
    }
}

fn render_metadata(out: &mut Encoder, timings: &MetadataTimings) {
    out.histograms(
        "strato_metadata_request_duration_seconds",
        "Duration of metadata store calls, per operation (list: per page).",
        "operation",
        MetadataOperation::ALL.map(|op| (op.name(), timings.latency(op))),
    );
    out.labelled(
        "strato_metadata_errors_total",
        "counter",
        "Metadata store calls that failed (unavailable, timed out, ...; a lost compare-and-set is not counted), per operation.",
        "operation",
        MetadataOperation::ALL.map(|op| (op.name(), timings.failures(op))),
    );
}

fn render_partitions(out: &mut Encoder, ctx: &BrokerCtx) {
    let topics = ctx.topics.all();
    let (mut led, mut fenced, mut index_entries) = (0u64, 0u64, 0u64);
    // Compaction's backlog over the partitions led here: entries it would merge, and when
    // the oldest of them was written.
    let (mut backlog_entries, mut backlog_oldest_ms) = (0u64, None::<u64>);
    // Per topic, over the partitions led here: (index entries, bytes in the object store,
    // objects referenced).
    let mut per_topic: Vec<(&str, u64, u64, u64)> = Vec::with_capacity(topics.len());
    for topic in &topics {
        let (mut topic_entries, mut topic_bytes) = (0u64, 0u64);
        let mut objects: std::collections::HashSet<String> = std::collections::HashSet::new();
        for partition in &topic.partitions {
            let state = partition.lock();
            if state.fenced || state.needs_reload {
                fenced += 1;
                continue;
            }
            led += 1;
            topic_entries += state.index.len() as u64;
            topic_bytes += state.index.values().map(|e| e.byte_length).sum::<u64>();
            for entry in state.index.values() {
                if !objects.contains(&entry.object) {
                    objects.insert(entry.object.clone());
                }
            }
            let entries: Vec<_> = state.index.values().cloned().collect();
            drop(state);
            let (pending, oldest) = crate::log::compaction::backlog(
                &entries,
                crate::log::compaction::MergeLimits::of(
                    ctx.config.compaction_target_bytes,
                    &topic.config,
                ),
            );
            backlog_entries += pending as u64;
            backlog_oldest_ms = match (backlog_oldest_ms, oldest) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        index_entries += topic_entries;
        per_topic.push((
            topic.name.as_str(),
            topic_entries,
            topic_bytes,
            objects.len() as u64,
        ));
    }
    let lag_seconds = backlog_oldest_ms.map_or(0, |oldest| {
        u64::try_from(crate::log::flush::now_ms())
            .unwrap_or(0)
            .saturating_sub(oldest)
            / 1000
    });
    out.simple(
        "strato_compaction_backlog_entries",
        "gauge",
        "Index entries that compaction would still merge, over the partitions this broker leads.",
        &[(&[], backlog_entries)],
    );
    out.simple(
        "strato_compaction_lag_seconds",
        "gauge",
        "Age of the oldest chunk compaction would still merge (0: nothing to merge), over the partitions this broker leads.",
        &[(&[], lag_seconds)],
    );
    out.simple(
        "strato_partitions",
        "gauge",
        "Partitions this broker leads (led) or has stopped leading (fenced).",
        &[(&[("state", "led")], led), (&[("state", "fenced")], fenced)],
    );
    out.simple(
        "strato_index_entries",
        "gauge",
        "Chunk index entries of the partitions this broker leads (each one key in the metadata store).",
        &[(&[], index_entries)],
    );
    out.labelled(
        "strato_topic_index_entries",
        "gauge",
        "Chunk index entries per topic, over the partitions this broker leads.",
        "topic",
        per_topic
            .iter()
            .map(|(topic, entries, _, _)| (*topic, *entries)),
    );
    out.labelled(
        "strato_topic_stored_bytes",
        "gauge",
        "Bytes in the object store per topic (compressed chunks), over the partitions this broker leads.",
        "topic",
        per_topic.iter().map(|(topic, _, bytes, _)| (*topic, *bytes)),
    );
    out.labelled(
        "strato_topic_objects",
        "gauge",
        "Segment objects referenced per topic, over the partitions this broker leads.",
        "topic",
        per_topic
            .iter()
            .map(|(topic, _, _, objects)| (*topic, *objects)),
    );
    out.simple(
        "strato_topics",
        "gauge",
        "Topics known to this broker.",
        &[(&[], topics.len() as u64)],
    );
    out.simple(
        "strato_partition_leadership_changes_total",
        "counter",
        "Partitions this broker started (acquired) or stopped (released) leading.",
        &[
            (
                &[("change", "acquired")],
                ctx.topics.acquisitions.load(Ordering::Relaxed),
            ),
            (
                &[("change", "released")],
                ctx.topics.releases.load(Ordering::Relaxed),
            ),
        ],
    );
    out.simple(
        "strato_replica_reads_total",
        "counter",
        "Fetch reads of partitions led by another broker, served here from the shared index.",
        &[(&[], ctx.replicas.reads.load(Ordering::Relaxed))],
    );
}

fn render_cluster(out: &mut Encoder, ctx: &BrokerCtx) {
    out.simple(
        "strato_connections",
        "gauge",
        "Open Kafka client connections.",
        &[(&[], ctx.open_connections.load(Ordering::Relaxed))],
    );
    out.simple(
        "strato_brokers",
        "gauge",
        "Live brokers of the cluster as this broker sees them.",
        &[(&[], ctx.cluster.live().len() as u64)],
    );
    out.simple(
        "strato_broker_lease_held",
        "gauge",
        "1 while this broker's registration lease is kept alive, 0 once it may have expired.",
        &[(&[], u64::from(ctx.lease_held.load(Ordering::Relaxed)))],
    );
    let groups = ctx.groups.stats();
    out.simple(
        "strato_consumer_groups",
        "gauge",
        "Consumer groups with members coordinated by this broker.",
        &[(&[], groups.groups)],
    );
    out.simple(
        "strato_consumer_group_members",
        "gauge",
        "Members of the consumer groups coordinated by this broker.",
        &[(&[], groups.members)],
    );
    out.simple(
        "strato_consumer_group_rebalances_total",
        "counter",
        "Consumer group rebalances completed (a new generation) since start.",
        &[(&[], groups.rebalances)],
    );
    out.simple(
        "strato_consumer_group_joins_refused_total",
        "counter",
        "JoinGroups answered COORDINATOR_NOT_AVAILABLE because this coordinator held --group-max-groups groups.",
        &[(&[], groups.refused_joins)],
    );
}

fn render_transactions(out: &mut Encoder, ctx: &BrokerCtx) {
    let stats = ctx.txns.stats();
    out.simple(
        "strato_transactions",
        "gauge",
        "Transactions this broker coordinates, per state: open (Ongoing) or completing (markers being written).",
        &[
            (&[("state", "open")], stats.open),
            (&[("state", "completing")], stats.completing),
        ],
    );
    out.simple(
        "strato_transaction_oldest_age_seconds",
        "gauge",
        "Age of the oldest open or completing transaction this broker coordinates (0: none).",
        &[(&[], u64::try_from(stats.oldest_age_ms / 1000).unwrap_or(0))],
    );
}
