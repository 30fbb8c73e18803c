#!/usr/bin/env python3
"""Typed Avro records through Strato with confluent-kafka's Schema Registry client and serializers.

Against the broker's built-in schema registry (--registry, a URL): an AvroSerializer registers
User v1 under "<topic>-value" and N records are produced with it; a serializer with User v2 (a
new optional field with a default) registers the compatible evolution and N more are produced;
registering a change that breaks BACKWARD compatibility (a new field without a default) must
fail with HTTP 409 / error_code 409. Then an AvroDeserializer with v2 as the reader schema
consumes all 2N records by assign() from the beginning: v1 records come back with the new
field's default, v2 records with their value.

Prints one JSON line: {"ids": [v1 id, v2 id], "versions": [...], "produced": 2N,
"consumed": 2N, "incompatible": {"status": 409, "error_code": 409},
"schema_ids_seen": [ids in the consumed records' headers]}.
See _harness.py for the failure and timeout contract.
"""

from __future__ import annotations

import json
import struct
import uuid

import _harness as h

SCRIPT = "schema_registry_avro"


def user_schema(extra_fields: list[dict]) -> str:
    fields = [{"name": "id", "type": "long"}, {"name": "name", "type": "string"}] + extra_fields
    return json.dumps({"type": "record", "name": "User", "namespace": "strato.test", "fields": fields})


V1 = user_schema([])
V2 = user_schema([{"name": "email", "type": ["null", "string"], "default": None}])
INCOMPATIBLE = user_schema([{"name": "age", "type": "int"}])


def main() -> None:
    p = h.parser(__doc__.splitlines()[0])
    p.add_argument("--registry", required=True, help="schema registry URL, e.g. http://127.0.0.1:8081")
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=h.positive_int, required=True, help="records per schema version")
    args = p.parse_args()
    h.start_watchdog(args.timeout_s, f"{SCRIPT} against {args.bootstrap} and {args.registry}")
    deadline = h.Deadline(args.timeout_s)

    # Imported after the watchdog starts, so even a slow import is bounded.
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.schema_registry.error import SchemaRegistryError
    from confluent_kafka.serialization import MessageField, SerializationContext

    subject = f"{args.topic}-value"
    registry = SchemaRegistryClient({"url": args.registry, "timeout": 10})
    stage = "produce"
    try:
        producer = Producer({"bootstrap.servers": args.bootstrap, "client.id": SCRIPT, "acks": "all"})
        context = SerializationContext(args.topic, MessageField.VALUE)
        delivery_errors: list[str] = []

        def on_delivery(err, _msg) -> None:
            if err is not None:
                delivery_errors.append(f"{err.name()}: {err.str()}")

        produced = 0
        for schema, with_email in ((V1, False), (V2, True)):
            serializer = AvroSerializer(registry, schema, conf={"auto.register.schemas": True})
            for i in range(args.count):
                user = {"id": produced, "name": f"user-{produced}"}
                if with_email:
                    user["email"] = f"u{produced}@example.com"
                producer.produce(args.topic, value=serializer(user, context), on_delivery=on_delivery)
                producer.poll(0)
                produced += 1
        stage = "flush"
        if producer.flush(deadline.remaining_s()):
            h.fail("flush: records not delivered in time")
        if delivery_errors:
            h.fail(f"delivery failed: {delivery_errors[0]}")

        stage = "registry reads"
        versions = registry.get_versions(subject)
        ids = [registry.get_version(subject, v).schema_id for v in versions]

        stage = "register an incompatible schema"
        try:
            registry.register_schema(subject, Schema(INCOMPATIBLE, "AVRO"))
            h.fail("an incompatible schema was registered")
        except SchemaRegistryError as err:
            incompatible = {"status": err.http_status_code, "error_code": err.error_code}

        stage = "consume"
        deserializer = AvroDeserializer(registry, V2)
        consumer = Consumer(
            {
                "bootstrap.servers": args.bootstrap,
                "client.id": SCRIPT,
                "group.id": f"{SCRIPT}-{uuid.uuid4()}",
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
            user = deserializer(msg.value(), SerializationContext(args.topic, MessageField.VALUE))
            users[user["id"]] = user
        consumer.close()
        if len(users) < produced:
            h.fail(f"consumed {len(users)} of {produced} records in time")
        for i, user in users.items():
            expected_email = f"u{i}@example.com" if i >= args.count else None
            if user["name"] != f"user-{i}" or user["email"] != expected_email:
                h.fail(f"record {i} came back as {user}")
    except Exception as exc:  # noqa: BLE001 - every failure becomes the JSON error line
        h.fail(f"{stage}: {h.describe(exc)}")

    h.succeed(
        {
            "ids": ids,
            "versions": versions,
            "produced": produced,
            "consumed": len(users),
            "incompatible": incompatible,
            "schema_ids_seen": sorted(ids_seen),
        }
    )


if __name__ == "__main__":
    main()
