#!/usr/bin/env python3
"""Kafka conformance checks with kafka-python 3.x (tests/conformance.rs runs one step a time).

Steps (--step):
- record-errors: sends three records (keys k0, none, k2) in one batch to --topic (a
  compacted topic), then one record with a key; prints each record's outcome.
- old-timestamp: sends one record with a CreateTime two hours old to --topic, then one with
  the current time; prints both outcomes.
- offsets-for-times: looks up --timestamps (comma-separated) in partition 0 of --topic with
  KafkaConsumer.offsets_for_times; prints the offset and timestamp each one gets (null when
  none).
- consume: reads --count records of partition 0 of --topic from offset 0 with
  confluent-kafka (this venv's kafka-python has no lz4 or zstd library); prints their values
  (latin-1 text) in offset order.
- configs: creates --topic with configs Kafka accepts and ignores, describes them, sets
  flush.ms with IncrementalAlterConfigs and reads it back, then tries an unknown config.

An outcome is "ok@<offset>" or "<ErrorClass>: <message>". Prints one JSON line; see
_harness.py for the failure and timeout contract.
"""

from __future__ import annotations

import time

import _harness as h

SCRIPT = "kafka_python_conformance"

IGNORED_CONFIGS = {
    "message.format.version": "2.8",
    "message.downconversion.enable": "false",
    "file.delete.delay.ms": "1000",
    "preallocate": "true",
    "segment.index.bytes": "4096",
    "remote.storage.enable": "false",
    "local.retention.ms": "1000",
}


def outcome(future, timeout_s: float) -> str:
    try:
        metadata = future.get(timeout=timeout_s)
        return f"ok@{metadata.offset}"
    except Exception as exc:  # noqa: BLE001 - the outcome is what the step reports
        return h.describe(exc)


def producer(args, deadline, **extra):
    from kafka import KafkaProducer

    return KafkaProducer(
        bootstrap_servers=args.bootstrap,
        client_id=SCRIPT,
        acks="all",
        retries=0,
        request_timeout_ms=max(1, min(30_000, deadline.remaining_ms())),
        **extra,
    )


def record_errors(args, deadline) -> dict:
    # A long linger and one flush put the three records in one batch.
    p = producer(args, deadline, linger_ms=60_000, enable_idempotence=False)
    futures = [
        p.send(args.topic, key=b"k0", value=b"v0", partition=0),
        p.send(args.topic, key=None, value=b"v1", partition=0),
        p.send(args.topic, key=b"k2", value=b"v2", partition=0),
    ]
    p.flush(timeout=deadline.remaining_s())
    batch = [outcome(f, deadline.remaining_s()) for f in futures]
    keyed = p.send(args.topic, key=b"k3", value=b"v3", partition=0)
    p.flush(timeout=deadline.remaining_s())
    result = {"batch": batch, "keyed": outcome(keyed, deadline.remaining_s())}
    h.close_with_timeout(p.close, 5, "producer")
    return result


def old_timestamp(args, deadline) -> dict:
    p = producer(args, deadline, linger_ms=0, enable_idempotence=False)
    now_ms = int(time.time() * 1000)
    old = p.send(args.topic, value=b"old", partition=0, timestamp_ms=now_ms - 2 * 3600 * 1000)
    p.flush(timeout=deadline.remaining_s())
    old = outcome(old, deadline.remaining_s())
    current = p.send(args.topic, value=b"now", partition=0, timestamp_ms=now_ms)
    p.flush(timeout=deadline.remaining_s())
    result = {"old": old, "current": outcome(current, deadline.remaining_s())}
    h.close_with_timeout(p.close, 5, "producer")
    return result


def consumer(args, deadline):
    from kafka import KafkaConsumer

    return KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        client_id=SCRIPT,
        enable_auto_commit=False,
        request_timeout_ms=max(1, min(30_000, deadline.remaining_ms())),
    )


def offsets_for_times(args, deadline) -> dict:
    from kafka import TopicPartition

    c = consumer(args, deadline)
    tp = TopicPartition(args.topic, 0)
    found = {}
    for ts in [int(t) for t in args.timestamps.split(",")]:
        answer = c.offsets_for_times({tp: ts}, timeout_ms=deadline.remaining_ms())[tp]
        found[str(ts)] = None if answer is None else [answer.offset, answer.timestamp]
    h.close_with_timeout(c.close, 5, "consumer")
    return {"offsets": found}


def consume(args, deadline) -> dict:
    # confluent-kafka: this venv's kafka-python lacks the lz4 and zstd libraries.
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": SCRIPT,
            "enable.auto.commit": False,
            "client.id": SCRIPT,
        }
    )
    c.assign([TopicPartition(args.topic, 0, 0)])
    values = []
    offsets = []
    while len(values) < args.count:
        if deadline.expired():
            h.fail(f"consumed {len(values)} of {args.count} records", values=values)
        message = c.poll(0.5)
        if message is None:
            continue
        if message.error():
            h.fail(f"consume: {message.error()}", values=values)
        offsets.append(message.offset())
        values.append(None if message.value() is None else message.value().decode("latin-1"))
    h.close_with_timeout(c.close, 5, "consumer")
    return {"values": values, "offsets": offsets}


def configs(args, deadline) -> dict:
    from kafka import KafkaAdminClient
    from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(
        bootstrap_servers=args.bootstrap,
        client_id=SCRIPT,
        request_timeout_ms=max(1, min(30_000, deadline.remaining_ms())),
    )
    result: dict = {}
    admin.create_topics(
        {args.topic: {"num_partitions": 1, "replication_factor": 1, "configs": dict(IGNORED_CONFIGS)}}
    )
    result["created"] = True
    resource = ConfigResource(ConfigResourceType.TOPIC, args.topic)
    described = admin.describe_configs([resource], config_filter="all")["topic"][args.topic]
    result["described"] = {
        name: described[name].get("value")
        for name in list(IGNORED_CONFIGS) + ["flush.ms", "leader.replication.throttled.replicas"]
        if name in described
    }
    altered = admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, args.topic, configs={"flush.ms": (AlterConfigOp.SET, "5000")})],
        raise_on_unknown=False,
        incremental=True,
    )
    result["altered"] = str(altered["topic"][args.topic])
    described = admin.describe_configs([resource], config_filter="all")["topic"][args.topic]
    result["flush.ms"] = described["flush.ms"].get("value")
    refused = admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, args.topic, configs={"flush.msec": (AlterConfigOp.SET, "1")})],
        raise_on_unknown=False,
        incremental=True,
    )
    result["unknown"] = str(refused["topic"][args.topic])
    h.close_with_timeout(admin.close, 5, "admin")
    return result


STEPS = {
    "record-errors": record_errors,
    "old-timestamp": old_timestamp,
    "offsets-for-times": offsets_for_times,
    "consume": consume,
    "configs": configs,
}


def main() -> None:
    p = h.parser(__doc__.splitlines()[0])
    p.add_argument("--step", required=True, choices=sorted(STEPS))
    p.add_argument("--topic", required=True)
    p.add_argument("--timestamps", default="", help="offsets-for-times: comma-separated timestamps")
    p.add_argument("--count", type=h.positive_int, default=1, help="consume: records to read")
    args = p.parse_args()
    h.start_watchdog(args.timeout_s, f"{SCRIPT} {args.step} against {args.bootstrap}")
    deadline = h.Deadline(args.timeout_s)
    h.client_logger("kafka", args.verbose)
    try:
        result = STEPS[args.step](args, deadline)
    except Exception as exc:  # noqa: BLE001 - any client error is a test failure with its step
        h.fail(f"{args.step}: {h.describe(exc)}")
    h.succeed(result)


if __name__ == "__main__":
    main()
