"""What the Schema Registry serializer scripts share (schema_registry_avro.py, schema_registry_json.py,
schema_registry_protobuf.py).

The flow, against the broker's built-in schema registry (--registry, a URL): a serializer with
User v1 registers it under "<topic>-value" and N records are produced with it; a serializer with
User v2 (a new optional "email") registers the compatible evolution and N more are produced;
registering a change that breaks BACKWARD compatibility must fail with HTTP 409 / error_code 409.
Then a deserializer with v2 as the reader schema consumes all 2N records by assign() from the
beginning, and each must come back as the script expects.

Prints one JSON line: {"ids": [v1 id, v2 id], "versions": [...], "schema_types": [...],
"produced": 2N, "consumed": 2N, "incompatible": {"status": 409, "error_code": 409},
"schema_ids_seen": [ids in the consumed records' headers]}.
See _harness.py for the failure and timeout contract.
"""

from __future__ import annotations

import struct
import uuid
from typing import Any, Callable

import _harness as h


def user(i: int, count: int) -> dict:
    """Record i as produced: the first `count` (v1) have no email, the others (v2) have one."""
    record: dict[str, Any] = {"id": i, "name": f"user-{i}"}
    if i >= count:
        record["email"] = f"u{i}@example.com"
    return record


def run(
    script: str,
    description: str,
    schemas: tuple[str, str, str],
    schema_type: str,
    serdes: Callable[[Any, str], tuple[Callable[[str], Any], Any]],
    expected: Callable[[int, int], dict],
) -> None:
    """The flow above. `schemas`: (v1, v2, incompatible). `serdes(registry, v2)` returns a
    function making a serializer for a schema, and the deserializer reading with v2;
    `expected(i, count)` is record i as the deserializer must return it."""
    p = h.parser(description)
    p.add_argument("--registry", required=True, help="schema registry URL, e.g. http://127.0.0.1:8081")
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=h.positive_int, required=True, help="records per schema version")
    args = p.parse_args()
    h.start_watchdog(args.timeout_s, f"{script} against {args.bootstrap} and {args.registry}")
    deadline = h.Deadline(args.timeout_s)

    # Imported after the watchdog starts, so even a slow import is bounded.
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    from confluent_kafka.schema_registry.error import SchemaRegistryError
    from confluent_kafka.serialization import MessageField, SerializationContext

    v1, v2, incompatible_schema = schemas
    subject = f"{args.topic}-value"
    registry = SchemaRegistryClient({"url": args.registry, "timeout": 10})
    stage = "produce"
    try:
        serializer_for, deserializer = serdes(registry, v2)
        producer = Producer({"bootstrap.servers": args.bootstrap, "client.id": script, "acks": "all"})
        context = SerializationContext(args.topic, MessageField.VALUE)
        delivery_errors: list[str] = []

        def on_delivery(err, _msg) -> None:
            if err is not None:
                delivery_errors.append(f"{err.name()}: {err.str()}")

        produced = 0
        for schema in (v1, v2):
            serializer = serializer_for(schema)
            for _ in range(args.count):
                value = serializer(user(produced, args.count), context)
                producer.produce(args.topic, value=value, on_delivery=on_delivery)
                producer.poll(0)
                produced += 1
        stage = "flush"
        if producer.flush(deadline.remaining_s()):
            h.fail("flush: records not delivered in time")
        if delivery_errors:
            h.fail(f"delivery failed: {delivery_errors[0]}")

        stage = "registry reads"
        versions = registry.get_versions(subject)
        registered = [registry.get_version(subject, v) for v in versions]

        stage = "register an incompatible schema"
        try:
            registry.register_schema(subject, Schema(incompatible_schema, schema_type))
            h.fail("an incompatible schema was registered")
        except SchemaRegistryError as err:
            incompatible = {"status": err.http_status_code, "error_code": err.error_code}

        stage = "consume"
        consumer = Consumer(
            {
                "bootstrap.servers": args.bootstrap,
                "client.id": script,
                "group.id": f"{script}-{uuid.uuid4()}",
                "enable.auto.commit": False,
            }
        )
        partitions = consumer.list_topics(args.topic, timeout=deadline.remaining_s()).topics[args.topic].partitions
        consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in partitions])
        users: dict[int, dict] = {}
        ids_seen: set[int] = set()
        while len(users) < produced and not deadline.expired():
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                h.fail(f"consume: {msg.error()}")
            ids_seen.add(struct.unpack(">bI", msg.value()[:5])[1])
            record = deserializer(msg.value(), SerializationContext(args.topic, MessageField.VALUE))
            users[record["id"]] = record
        consumer.close()
        if len(users) < produced:
            h.fail(f"consumed {len(users)} of {produced} records in time")
        for i, record in users.items():
            if record != expected(i, args.count):
                h.fail(f"record {i} came back as {record}, expected {expected(i, args.count)}")
    except Exception as exc:  # noqa: BLE001 - every failure becomes the JSON error line
        h.fail(f"{stage}: {h.describe(exc)}")

    h.succeed(
        {
            "ids": [r.schema_id for r in registered],
            "versions": versions,
            "schema_types": [r.schema.schema_type for r in registered],
            "produced": produced,
            "consumed": len(users),
            "incompatible": incompatible,
            "schema_ids_seen": sorted(ids_seen),
        }
    )
