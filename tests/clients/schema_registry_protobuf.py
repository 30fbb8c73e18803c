#!/usr/bin/env python3
"""Typed Protobuf messages through Strato with confluent-kafka's Schema Registry client and Protobuf serializers.

The flow of _serdes.py with Protobuf. The message classes are built at run time from descriptors
written here (no protoc): strato.test.User in "strato/test/user.proto" imports an Address from
"strato/test/address.proto" (which the serializer registers as a reference under the subject
"strato/test/address.proto") and google.protobuf.Timestamp (a well-known file, not registered).
A ProtobufSerializer registers User v1 and then v2, which adds `optional string email = 5` (a new
field is compatible); the serializers send each file as a base64 FileDescriptorProto. The
incompatible change, registered as .proto text through the client, turns `int64 id` into a
string. A ProtobufDeserializer with the v2 class reads every message (it fetches the writer's
schema and its reference with format=serialized) and returns v1 messages without an email.
"""

from __future__ import annotations

import _serdes

SCRIPT = "schema_registry_protobuf"
ADDRESS_FILE = "strato/test/address.proto"
USER_FILE = "strato/test/user.proto"

INCOMPATIBLE = """
syntax = "proto3";
package strato.test;

message User {
  string id = 1;
  string name = 2;
}
"""


def user_class(with_email: bool):
    """strato.test.User (v1, or v2 with an email) as a message class of its own descriptor pool."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

    F = descriptor_pb2.FieldDescriptorProto
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    address = descriptor_pb2.FileDescriptorProto(name=ADDRESS_FILE, package="strato.test", syntax="proto3")
    city = address.message_type.add(name="Address").field.add(name="city", number=1)
    city.type, city.label = F.TYPE_STRING, F.LABEL_OPTIONAL
    pool.Add(address)

    user = descriptor_pb2.FileDescriptorProto(
        name=USER_FILE,
        package="strato.test",
        syntax="proto3",
        dependency=[ADDRESS_FILE, "google/protobuf/timestamp.proto"],
    )
    message = user.message_type.add(name="User")
    message.field.add(name="id", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    message.field.add(name="name", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    message.field.add(
        name="address", number=3, type=F.TYPE_MESSAGE, type_name=".strato.test.Address", label=F.LABEL_OPTIONAL
    )
    message.field.add(
        name="created", number=4, type=F.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp", label=F.LABEL_OPTIONAL
    )
    if with_email:
        # proto3 `optional`: the field has presence, in a synthetic oneof of its own.
        message.oneof_decl.add(name="_email")
        message.field.add(
            name="email", number=5, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL, oneof_index=0, proto3_optional=True
        )
    pool.Add(user)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("strato.test.User"))


# The versions as _serdes.run names them; the classes are built in serdes(), after the watchdog
# starts, since building them imports protobuf.
V1, V2 = "v1", "v2"


def serdes(registry, reader_version: str):
    from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer

    classes = {V1: user_class(False), V2: user_class(True)}

    def serializer_for(version: str):
        message_class = classes[version]
        serializer = ProtobufSerializer(message_class, registry, conf={"auto.register.schemas": True})

        def serialize(record: dict, ctx):
            message = message_class(id=record["id"], name=record["name"])
            message.address.city = f"city-{record['id']}"
            message.created.seconds = record["id"]
            if "email" in record:
                message.email = record["email"]
            return serializer(message, ctx)

        return serialize

    deserializer = ProtobufDeserializer(classes[reader_version], {}, schema_registry_client=registry)

    def deserialize(data: bytes, ctx) -> dict:
        message = deserializer(data, ctx)
        record = {"id": message.id, "name": message.name}
        record |= {"city": message.address.city, "created": message.created.seconds}
        if message.HasField("email"):
            record["email"] = message.email
        return record

    return serializer_for, deserialize


def expected(i: int, count: int) -> dict:
    return _serdes.user(i, count) | {"city": f"city-{i}", "created": i}


if __name__ == "__main__":
    _serdes.run(SCRIPT, __doc__.splitlines()[0], (V1, V2, INCOMPATIBLE), "PROTOBUF", serdes, expected)
