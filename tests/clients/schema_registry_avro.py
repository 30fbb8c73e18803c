#!/usr/bin/env python3
"""Typed Avro records through Strato with confluent-kafka's Schema Registry client and serializers.

The flow of _serdes.py with Avro: an AvroSerializer registers User v1 and then v2 (a new optional
field with a default); the incompatible change is a new field without a default. An
AvroDeserializer with v2 as the reader schema returns v1 records with the new field's default
(null), v2 records with their value.
"""

from __future__ import annotations

import json

import _serdes

SCRIPT = "schema_registry_avro"


def user_schema(extra_fields: list[dict]) -> str:
    fields = [{"name": "id", "type": "long"}, {"name": "name", "type": "string"}] + extra_fields
    return json.dumps({"type": "record", "name": "User", "namespace": "strato.test", "fields": fields})


V1 = user_schema([])
V2 = user_schema([{"name": "email", "type": ["null", "string"], "default": None}])
INCOMPATIBLE = user_schema([{"name": "age", "type": "int"}])


def serdes(registry, reader_schema: str):
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer

    def serializer_for(schema: str):
        return AvroSerializer(registry, schema, conf={"auto.register.schemas": True})

    return serializer_for, AvroDeserializer(registry, reader_schema)


def expected(i: int, count: int) -> dict:
    return {"email": None} | _serdes.user(i, count)


if __name__ == "__main__":
    _serdes.run(SCRIPT, __doc__.splitlines()[0], (V1, V2, INCOMPATIBLE), "AVRO", serdes, expected)
