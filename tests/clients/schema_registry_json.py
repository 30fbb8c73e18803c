#!/usr/bin/env python3
"""Typed JSON records through Strato with confluent-kafka's Schema Registry client and JSON Schema serializers.

The flow of _serdes.py with JSON Schema: a JSONSerializer registers User v1, a closed content model
("additionalProperties": false), and then v2, which adds an optional property (a closed model may,
under BACKWARD: old data never has it); the incompatible change is a new required property. A
JSONDeserializer with v2 as the reader schema validates every record against it and returns v1
records without the new property, v2 records with it.
"""

from __future__ import annotations

import json

import _serdes

SCRIPT = "schema_registry_json"


def user_schema(extra_properties: dict, extra_required: list[str]) -> str:
    properties = {"id": {"type": "integer"}, "name": {"type": "string", "minLength": 1}} | extra_properties
    return json.dumps(
        {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "title": "User",
            "type": "object",
            "properties": properties,
            "required": ["id", "name"] + extra_required,
            "additionalProperties": False,
        }
    )


EMAIL = {"email": {"type": ["string", "null"]}}
V1 = user_schema({}, [])
V2 = user_schema(EMAIL, [])
INCOMPATIBLE = user_schema(EMAIL | {"age": {"type": "integer"}}, ["age"])


def serdes(registry, reader_schema: str):
    from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer

    def serializer_for(schema: str):
        return JSONSerializer(schema, registry, conf={"auto.register.schemas": True})

    return serializer_for, JSONDeserializer(reader_schema, schema_registry_client=registry)


if __name__ == "__main__":
    _serdes.run(SCRIPT, __doc__.splitlines()[0], (V1, V2, INCOMPATIBLE), "JSON", serdes, _serdes.user)
