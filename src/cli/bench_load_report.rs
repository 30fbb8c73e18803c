//! The report of `strato bench produce|consume|e2e`: aligned tables for people, or one JSON
//! document per run for scripts (docs/BENCHMARKS.md's tables are made from it, so its field
//! names are stable: add fields, never rename them).
//!
//! Every phase object (`produce`, `consume`, `e2e`; `null` when the phase did not run) has
//! its throughput, its latency percentiles where it has latencies, and the broker's cost:
//! `broker_cpu_seconds`, `broker_cpu_seconds_per_gib`, `broker_peak_rss_bytes`,
//! `object_store_puts`, `object_store_gets`, `puts_per_gib`, `gets_per_gib` — per GiB of the
//! phase's record values; `null` where not measurable (`--bootstrap` without `--http`, or a
//! broker whose `/metrics` lacks the series) — and `client_cpu_seconds`, the benchmark
//! process's own CPU time (it shares the machine's cores with a broker it started).

use serde_json::{Value, json};

use super::bench_common::{Throughput, compression_name, per_gib, render_output, throughput_json};
use super::bench_latency::{LatencyHistogram, LatencySummary};
use super::bench_load::{LoadReport, PhaseCost};
use super::bench_producer::ProduceOutcome;
use super::table::render_table;
use crate::config::bench::{BenchBroker, BenchLoadConfig};

const BYTES_PER_MIB: f64 = (1u64 << 20) as f64;

pub(super) fn render(config: &BenchLoadConfig, report: &LoadReport) -> String {
    render_output(
        config.output,
        || report_json(config, report),
        || report_table(config, report),
    )
}

/// `prefix`p50_ms, p99, p999 and max into `value` (`null` without samples).
fn add_latency(value: &mut Value, prefix: &str, latency: &LatencyHistogram) {
    let summary = latency.summary();
    let field = |pick: fn(&LatencySummary) -> f64| json!(summary.as_ref().map(pick));
    value[format!("{prefix}p50_ms")] = field(|s| s.p50_ms);
    value[format!("{prefix}p99_ms")] = field(|s| s.p99_ms);
    value[format!("{prefix}p999_ms")] = field(|s| s.p999_ms);
    value[format!("{prefix}max_ms")] = field(|s| s.max_ms);
}

fn add_cost(value: &mut Value, cost: &PhaseCost, value_bytes: u64) {
    let per_gib_of = |amount: Option<f64>| amount.and_then(|a| per_gib(a, value_bytes));
    value["broker_cpu_seconds"] = json!(cost.broker_cpu_seconds);
    value["broker_cpu_seconds_per_gib"] = json!(per_gib_of(cost.broker_cpu_seconds));
    value["broker_peak_rss_bytes"] = json!(cost.broker_peak_rss_bytes);
    value["object_store_puts"] = json!(cost.object_store_puts);
    value["object_store_gets"] = json!(cost.object_store_gets);
    value["puts_per_gib"] = json!(per_gib_of(cost.object_store_puts.map(|n| n as f64)));
    value["gets_per_gib"] = json!(per_gib_of(cost.object_store_gets.map(|n| n as f64)));
    value["client_cpu_seconds"] = json!(cost.client_cpu_seconds);
}

/// The producer's counts: `records_produced`, `records_acked`, `errors` (records whose
/// partition answered with an error), `error_codes`, `requests`, `batches`.
fn add_producer_counts(value: &mut Value, outcome: &ProduceOutcome) {
    value["records_produced"] = json!(outcome.records_produced);
    value["records_acked"] = json!(outcome.acked.records);
    value["errors"] = json!(outcome.errors);
    value["error_codes"] = json!(outcome.error_codes);
    value["requests"] = json!(outcome.requests);
    value["batches"] = json!(outcome.batches);
}

fn report_json(config: &BenchLoadConfig, report: &LoadReport) -> Value {
    let producer = &config.producer;
    let broker = match &config.broker {
        BenchBroker::Own(serve) => json!({
            "kind": "own",
            "kafka": report.kafka_addr,
            "object_store": report.object_store,
            "s3_latency_ms": serve.s3_latency.as_ref().map_or(0, |(_, l)| l.as_millis() as u64),
            "serve_args": serve.serve_args,
        }),
        BenchBroker::Bootstrap { kafka, http } => json!({
            "kind": "bootstrap",
            "kafka": kafka,
            "http": http,
        }),
    };
    let produce = report.produce.as_ref().map(|phase| {
        // `records` and the rates count acknowledged records.
        let mut value = throughput_json(&phase.outcome.acked);
        add_producer_counts(&mut value, &phase.outcome);
        add_latency(&mut value, "latency_", &phase.outcome.latency);
        add_latency(
            &mut value,
            "request_latency_",
            &phase.outcome.request_latency,
        );
        add_cost(&mut value, &phase.cost, phase.outcome.acked.value_bytes);
        value
    });
    let consume = report.consume.as_ref().map(|phase| {
        let mut value = throughput_json(&phase.throughput);
        add_cost(&mut value, &phase.cost, phase.throughput.value_bytes);
        value
    });
    let e2e = report.e2e.as_ref().map(|phase| {
        // `records` and the rates count consumed records; `latency_*` is produce→consume,
        // `produce_latency_*` append→acknowledgement.
        let mut value = throughput_json(&phase.consumed);
        add_producer_counts(&mut value, &phase.produce);
        add_latency(&mut value, "latency_", &phase.latency);
        add_latency(&mut value, "produce_latency_", &phase.produce.latency);
        add_cost(&mut value, &phase.cost, phase.consumed.value_bytes);
        value
    });
    json!({
        "benchmark": config.kind.name(),
        "topic": producer.topic,
        "partitions": report.partitions,
        "record_bytes": producer.record_bytes,
        "compression": compression_name(producer.compression),
        "acks": producer.acks.name(),
        "linger_ms": producer.linger.as_millis() as u64,
        "batch_bytes": producer.batch_bytes,
        "idempotent": producer.idempotent,
        "in_flight": producer.in_flight,
        "rate": producer.rate,
        "queue_records": producer.queue_records,
        "fetch_max_bytes": config.fetch.bytes_max,
        "max_partition_fetch_bytes": config.fetch.partition_bytes_max,
        "fetch_wait_max_ms": config.fetch.wait_max.as_millis() as u64,
        "broker": broker,
        "produce": produce,
        "consume": consume,
        "e2e": e2e,
    })
}

/// The run's settings and broker, for the top of the tables.
fn table_heading(config: &BenchLoadConfig, report: &LoadReport) -> String {
    let producer = &config.producer;
    let rate = match producer.rate {
        0 => "unlimited rate".to_string(),
        rate => format!("{rate} records/s"),
    };
    let broker = match (&config.broker, &report.object_store) {
        (BenchBroker::Own(serve), Some(store)) => {
            let latency = serve.s3_latency.as_ref().map_or(String::new(), |(_, l)| {
                format!(", +{} ms per S3 request", l.as_millis())
            });
            format!("own broker at {}, {store}{latency}", report.kafka_addr)
        }
        _ => format!("broker at {}", report.kafka_addr),
    };
    format!(
        "bench {}: topic {} ({} partitions), {} B records, {} compression, acks={}, linger {} ms, \
         batches ≤ {} B, {}idempotent, {} in flight, {rate}\n{broker}\n\n",
        config.kind.name(),
        producer.topic,
        report.partitions,
        producer.record_bytes,
        compression_name(producer.compression),
        producer.acks.name(),
        producer.linger.as_millis(),
        producer.batch_bytes,
        if producer.idempotent { "" } else { "not " },
        producer.in_flight,
    )
}

fn report_table(config: &BenchLoadConfig, report: &LoadReport) -> String {
    let mut out = table_heading(config, report);
    let mut rows = Vec::new();
    let mut costs = Vec::new();
    let mut add = |phase: &str,
                   t: &Throughput,
                   latency: Option<&LatencyHistogram>,
                   errors: Option<u64>,
                   cost: &PhaseCost| {
        rows.push(phase_row(phase, t, latency, errors));
        costs.push(cost_row(phase, cost, t.value_bytes));
    };
    if let Some(p) = &report.produce {
        let errors = Some(p.outcome.errors);
        add(
            "produce",
            &p.outcome.acked,
            Some(&p.outcome.latency),
            errors,
            &p.cost,
        );
    }
    if let Some(c) = &report.consume {
        add("consume", &c.throughput, None, None, &c.cost);
    }
    if let Some(e) = &report.e2e {
        let errors = Some(e.produce.errors);
        add("e2e", &e.consumed, Some(&e.latency), errors, &e.cost);
    }
    out.push_str(&render_table(
        &[
            "PHASE",
            "RECORDS",
            "VALUE_MIB",
            "SECONDS",
            "MB/S",
            "RECORDS/S",
            "P50_MS",
            "P99_MS",
            "P999_MS",
            "MAX_MS",
            "ERRORS",
        ],
        &rows,
    ));
    out.push('\n');
    out.push_str(&render_table(
        &[
            "PHASE",
            "BROKER_CPU_S",
            "CPU_S/GIB",
            "PEAK_RSS_MIB",
            "PUTS",
            "PUTS/GIB",
            "GETS",
            "GETS/GIB",
            "CLIENT_CPU_S",
        ],
        &costs,
    ));
    if let Some(p) = &report.produce
        && let Some(s) = p.outcome.request_latency.summary()
    {
        out.push_str(&format!(
            "\nproduce requests, written to answered: p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms, max {:.2} ms\n",
            s.p50_ms, s.p99_ms, s.p999_ms, s.max_ms
        ));
    }
    if let Some(e) = &report.e2e
        && let Some(s) = e.produce.latency.summary()
    {
        out.push_str(&format!(
            "\ne2e producer, append to acknowledgement: p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms, max {:.2} ms\n",
            s.p50_ms, s.p99_ms, s.p999_ms, s.max_ms
        ));
    }
    out
}

fn dash() -> String {
    "-".to_string()
}

fn phase_row(
    phase: &str,
    t: &Throughput,
    latency: Option<&LatencyHistogram>,
    errors: Option<u64>,
) -> Vec<String> {
    let summary = latency.and_then(LatencyHistogram::summary);
    let ms = |pick: fn(&LatencySummary) -> f64| {
        summary
            .as_ref()
            .map_or_else(dash, |s| format!("{:.2}", pick(s)))
    };
    vec![
        phase.to_string(),
        t.records.to_string(),
        format!("{:.1}", t.value_bytes as f64 / BYTES_PER_MIB),
        format!("{:.2}", t.seconds),
        format!("{:.1}", t.value_mb_per_s()),
        format!("{:.0}", t.records_per_s()),
        ms(|s| s.p50_ms),
        ms(|s| s.p99_ms),
        ms(|s| s.p999_ms),
        ms(|s| s.max_ms),
        errors.map_or_else(dash, |e| e.to_string()),
    ]
}

fn cost_row(phase: &str, cost: &PhaseCost, value_bytes: u64) -> Vec<String> {
    let per_gib_of = |amount: Option<f64>, decimals: usize| {
        amount
            .and_then(|a| per_gib(a, value_bytes))
            .map_or_else(dash, |v| format!("{v:.decimals$}"))
    };
    let count = |n: Option<u64>| n.map_or_else(dash, |n| n.to_string());
    vec![
        phase.to_string(),
        cost.broker_cpu_seconds
            .map_or_else(dash, |s| format!("{s:.2}")),
        per_gib_of(cost.broker_cpu_seconds, 2),
        cost.broker_peak_rss_bytes
            .map_or_else(dash, |b| format!("{:.1}", b as f64 / BYTES_PER_MIB)),
        count(cost.object_store_puts),
        per_gib_of(cost.object_store_puts.map(|n| n as f64), 0),
        count(cost.object_store_gets),
        per_gib_of(cost.object_store_gets.map(|n| n as f64), 0),
        format!("{:.2}", cost.client_cpu_seconds),
    ]
}
