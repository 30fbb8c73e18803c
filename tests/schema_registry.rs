//! The built-in schema registry over HTTP, against a real broker: Confluent's endpoints,
//! answers and error codes, deletes, config and mode, references, restarts, and two brokers
//! on one etcd serving one registry, for AVRO, JSON and PROTOBUF schemas.
//! (tests/clients/schema_registry_{avro,json,protobuf}.py drive it with confluent-kafka's own
//! serializers.)

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::registry::{call, error_code, raw, schema_body};
use common::{Broker, wait_until};
use serde_json::{Value, json};

fn record(name: &str, fields: Value) -> Value {
    json!({"type": "record", "name": name, "namespace": "test", "fields": fields})
}

fn user_v1() -> Value {
    record("User", json!([{"name": "id", "type": "long"}]))
}

fn user_v2() -> Value {
    record(
        "User",
        json!([{"name": "id", "type": "long"},
               {"name": "email", "type": ["null", "string"], "default": null}]),
    )
}

/// A field without a default: new readers cannot read v1 or v2 data.
fn user_incompatible() -> Value {
    record(
        "User",
        json!([{"name": "id", "type": "long"}, {"name": "age", "type": "int"}]),
    )
}

fn register(addr: SocketAddr, subject: &str, schema: &Value) -> (u16, Value) {
    post_version(addr, subject, &schema_body(schema))
}

fn registered_id(addr: SocketAddr, subject: &str, schema: &Value) -> u64 {
    id_of(register(addr, subject, schema))
}

fn post_version(addr: SocketAddr, subject: &str, body: &Value) -> (u16, Value) {
    call(
        addr,
        "POST",
        &format!("/subjects/{subject}/versions"),
        Some(body),
    )
}

/// The id of a successful register answer.
fn id_of((status, body): (u16, Value)) -> u64 {
    assert_eq!(status, 200, "{body}");
    body["id"].as_u64().expect("an id")
}

fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    call(addr, "GET", path, None)
}

/// A register, lookup or compatibility body for a JSON Schema.
fn json_body(schema: &Value) -> Value {
    let mut body = schema_body(schema);
    body["schemaType"] = json!("JSON");
    body
}

fn register_json(addr: SocketAddr, subject: &str, schema: &Value) -> (u16, Value) {
    post_version(addr, subject, &json_body(schema))
}

fn registered_json_id(addr: SocketAddr, subject: &str, schema: &Value) -> u64 {
    id_of(register_json(addr, subject, schema))
}

/// An order as a JSON Schema with a closed content model, and `extra` properties.
fn order(id_type: &str, extra: Value) -> Value {
    let mut properties = json!({"id": {"type": id_type}, "item": {"type": "string"}});
    for (name, schema) in extra.as_object().unwrap() {
        properties[name] = schema.clone();
    }
    json!({"type": "object", "properties": properties, "required": ["id"],
           "additionalProperties": false})
}

/// Goal: the register / evolve / refuse / read-back cycle a serializer goes through, with
/// Confluent's answers: ids shared by identical schemas across subjects, re-registering
/// returns the existing id, an incompatible change is 409, and every read endpoint shows
/// the versions.
#[test]
fn register_evolve_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let sr = broker.schema_registry();

    assert_eq!(get(sr, "/subjects"), (200, json!([])));
    let id1 = registered_id(sr, "users-value", &user_v1());
    // Whitespace and key order do not make another schema.
    let spaced = serde_json::to_string_pretty(&user_v1()).unwrap();
    let (status, again) = call(
        sr,
        "POST",
        "/subjects/users-value/versions",
        Some(&json!({ "schema": spaced })),
    );
    assert_eq!((status, again["id"].as_u64()), (200, Some(id1)));
    assert_eq!(registered_id(sr, "other-value", &user_v1()), id1);
    let id2 = registered_id(sr, "users-value", &user_v2());
    assert_ne!(id1, id2);

    let (status, refused) = register(sr, "users-value", &user_incompatible());
    assert_eq!((status, error_code(&refused)), (409, 409), "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("READER_FIELD_MISSING_DEFAULT_VALUE"),
        "{message}"
    );

    assert_eq!(
        get(sr, "/subjects"),
        (200, json!(["other-value", "users-value"]))
    );
    assert_eq!(
        get(sr, "/subjects/users-value/versions"),
        (200, json!([1, 2]))
    );
    let (status, latest) = get(sr, "/subjects/users-value/versions/latest");
    assert_eq!(status, 200);
    assert_eq!(latest["subject"], "users-value");
    assert_eq!(latest["version"], 2);
    assert_eq!(latest["id"].as_u64(), Some(id2));
    assert!(latest.get("schemaType").is_none(), "AVRO is implied");
    let stored: Value = serde_json::from_str(latest["schema"].as_str().unwrap()).unwrap();
    assert_eq!(stored, user_v2());
    let (status, raw_schema) = get(sr, "/subjects/users-value/versions/1/schema");
    assert_eq!((status, raw_schema), (200, user_v1()));

    let (status, by_id) = get(sr, &format!("/schemas/ids/{id1}"));
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(by_id["schema"].as_str().unwrap()).unwrap(),
        user_v1()
    );
    assert_eq!(
        get(sr, &format!("/schemas/ids/{id1}/subjects")),
        (200, json!(["other-value", "users-value"]))
    );
    assert_eq!(
        get(sr, &format!("/schemas/ids/{id1}/versions")),
        (
            200,
            json!([{"subject": "other-value", "version": 1},
                   {"subject": "users-value", "version": 1}])
        )
    );
    assert_eq!(
        get(sr, "/schemas/types"),
        (200, json!(["JSON", "PROTOBUF", "AVRO"]))
    );

    // Lookup: which version of the subject holds this schema.
    let (status, found) = call(
        sr,
        "POST",
        "/subjects/users-value",
        Some(&schema_body(&user_v1())),
    );
    assert_eq!(
        (status, &found["version"], found["id"].as_u64()),
        (200, &json!(1), Some(id1))
    );
    let (status, missing) = call(
        sr,
        "POST",
        "/subjects/users-value",
        Some(&schema_body(&user_incompatible())),
    );
    assert_eq!((status, error_code(&missing)), (404, 40403));
}

/// Goal: JSON Schema (`schemaType` JSON) through the REST API, with Confluent's answers: a
/// schema registered twice (another spelling too) keeps one id and version, every answer
/// carries `schemaType`, an evolution the content-model rules allow is registered and one
/// they do not is refused with 409 and the reason, lookups and compatibility checks take
/// JSON, `normalize` makes equivalent spellings one schema, and bad schemas are 42201.
#[test]
fn json_schema_register_evolve_and_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let sr = broker.schema_registry();

    let v1 = order("integer", json!({}));
    let id1 = registered_json_id(sr, "orders-value", &v1);
    let spaced = serde_json::to_string_pretty(&v1).unwrap();
    let (status, again) = call(
        sr,
        "POST",
        "/subjects/orders-value/versions",
        Some(&json!({"schema": spaced, "schemaType": "JSON"})),
    );
    assert_eq!((status, again["id"].as_u64()), (200, Some(id1)), "{again}");
    assert_eq!(
        get(sr, "/subjects/orders-value/versions"),
        (200, json!([1]))
    );
    let (status, version) = get(sr, "/subjects/orders-value/versions/1");
    assert_eq!(
        (status, &version["schemaType"]),
        (200, &json!("JSON")),
        "{version}"
    );
    let stored: Value = serde_json::from_str(version["schema"].as_str().unwrap()).unwrap();
    assert_eq!(stored, v1);
    let (status, by_id) = get(sr, &format!("/schemas/ids/{id1}"));
    assert_eq!(
        (status, &by_id["schemaType"]),
        (200, &json!("JSON")),
        "{by_id}"
    );
    let (status, found) = call(sr, "POST", "/subjects/orders-value", Some(&json_body(&v1)));
    assert_eq!(
        (
            status,
            &found["version"],
            found["id"].as_u64(),
            &found["schemaType"]
        ),
        (200, &json!(1), Some(id1), &json!("JSON")),
        "{found}"
    );

    // A closed content model may gain an optional property (old data never has it)...
    let v2 = order("integer", json!({"note": {"type": "string"}}));
    let id2 = registered_json_id(sr, "orders-value", &v2);
    assert_ne!(id1, id2);
    // ...but not change a property's type.
    let (status, refused) = register_json(sr, "orders-value", &order("string", json!({})));
    assert_eq!((status, error_code(&refused)), (409, 409), "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("TYPE_CHANGED") && message.contains("#/properties/id"),
        "{message}"
    );
    // An AVRO schema cannot follow a JSON one under BACKWARD.
    let (status, refused) = register(sr, "orders-value", &user_v1());
    assert_eq!((status, error_code(&refused)), (409, 409), "{refused}");

    let check = |subject: &str, schema: &Value| {
        let path = format!("/compatibility/subjects/{subject}/versions/latest?verbose=true");
        let (status, body) = call(sr, "POST", &path, Some(&json_body(schema)));
        assert_eq!(status, 200, "{body}");
        body
    };
    // integer -> number widens; dropping a property a closed model had does not read it.
    let widened = order("number", json!({"note": {"type": "string"}}));
    assert_eq!(check("orders-value", &widened)["is_compatible"], true);
    let dropped = check("orders-value", &order("integer", json!({})));
    assert_eq!(dropped["is_compatible"], false, "{dropped}");
    assert!(
        dropped["messages"][0]
            .as_str()
            .unwrap()
            .contains("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"),
        "{dropped}"
    );
    // FORWARD: the old schema must read the new one's data, and integer cannot read number.
    call(
        sr,
        "PUT",
        "/config/orders-value",
        Some(&json!({"compatibility": "FORWARD"})),
    );
    assert_eq!(check("orders-value", &widened)["is_compatible"], false);

    // An open content model cannot gain a property under BACKWARD: old data may hold it
    // with any value.
    let open = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    registered_json_id(sr, "open-value", &open);
    let added = json!({"type": "object",
                       "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}});
    let (status, refused) = register_json(sr, "open-value", &added);
    assert_eq!((status, error_code(&refused)), (409, 409), "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"),
        "{refused}"
    );

    // normalize=true: the order of `type` and `required` lists does not make a new schema.
    let nullable = |types: Value| json!({"type": "object", "properties": {"x": {"type": types}}});
    let normalized = |types: Value| {
        let (status, body) = call(
            sr,
            "POST",
            "/subjects/n-value/versions?normalize=true",
            Some(&json_body(&nullable(types))),
        );
        assert_eq!(status, 200, "{body}");
        body["id"].as_u64().unwrap()
    };
    assert_eq!(
        normalized(json!(["string", "null"])),
        normalized(json!(["null", "string"]))
    );
    assert_eq!(get(sr, "/subjects/n-value/versions"), (200, json!([1])));
    assert_ne!(
        registered_json_id(sr, "raw-value", &nullable(json!(["string", "null"]))),
        registered_json_id(sr, "raw-value", &nullable(json!(["null", "string"])))
    );

    for bad in [
        "{not json",
        "[1]",
        "\"object\"",
        "{\"type\": \"strin\"}",
        "{\"$ref\": \"#/definitions/nowhere\"}",
    ] {
        let body = json!({"schema": bad, "schemaType": "JSON"});
        let (status, refused) = call(sr, "POST", "/subjects/bad-value/versions", Some(&body));
        assert_eq!(
            (status, error_code(&refused)),
            (422, 42201),
            "{bad}: {refused}"
        );
    }
}

/// A register, lookup or compatibility body for a Protobuf schema (`.proto` text).
fn proto_body(text: &str) -> Value {
    json!({"schema": text, "schemaType": "PROTOBUF"})
}

fn register_proto(addr: SocketAddr, subject: &str, text: &str) -> (u16, Value) {
    post_version(addr, subject, &proto_body(text))
}

/// An event message in package `test` with `fields`, and a `Kind` enum.
fn event(fields: &str) -> String {
    format!(
        "syntax = \"proto3\";\npackage test;\n\nenum Kind {{ UNKNOWN = 0; CLICK = 1; }}\n\nmessage Event {{\n{fields}\n}}\n"
    )
}

/// Goal: Protobuf (`schemaType` PROTOBUF) through the REST API, with Confluent's answers: a
/// schema registered twice keeps one id and version, every answer carries `schemaType`, a
/// compatible evolution (a field added, int32 widened to int64) is registered and an
/// incompatible one (a field's type changed, a message removed) is refused with 409 and the
/// reason, lookups and compatibility checks take PROTOBUF, `format=serialized` gives the
/// base64 descriptor that `normalize` makes one schema with the text, and bad schemas are
/// 42201.
#[test]
fn protobuf_register_evolve_and_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let sr = broker.schema_registry();

    let v1 = event("  int32 id = 1;\n  Kind kind = 2;");
    let id1 = id_of(register_proto(sr, "events-value", &v1));
    assert_eq!(
        id_of(register_proto(sr, "events-value", &v1)),
        id1,
        "the same schema twice is one schema"
    );
    assert_eq!(
        get(sr, "/subjects/events-value/versions"),
        (200, json!([1]))
    );
    let (status, version) = get(sr, "/subjects/events-value/versions/1");
    assert_eq!(
        (status, &version["schemaType"], version["schema"].as_str()),
        (200, &json!("PROTOBUF"), Some(v1.trim())),
        "{version}"
    );
    let (status, by_id) = get(sr, &format!("/schemas/ids/{id1}"));
    assert_eq!(
        (status, &by_id["schemaType"]),
        (200, &json!("PROTOBUF")),
        "{by_id}"
    );
    let (status, found) = call(sr, "POST", "/subjects/events-value", Some(&proto_body(&v1)));
    assert_eq!(
        (status, &found["version"], found["id"].as_u64()),
        (200, &json!(1), Some(id1)),
        "{found}"
    );

    // format=serialized: a base64 FileDescriptorProto, itself a schema the registry takes;
    // with normalize=true it is one schema with the text it came from.
    let (status, serialized) = get(sr, &format!("/schemas/ids/{id1}?format=serialized"));
    assert_eq!(status, 200, "{serialized}");
    let serialized = serialized["schema"].as_str().unwrap().to_string();
    assert!(!serialized.contains(' '), "{serialized}");
    let normalized = |text: &str| {
        let (status, body) = call(
            sr,
            "POST",
            "/subjects/normalized-value/versions?normalize=true",
            Some(&proto_body(text)),
        );
        assert_eq!(status, 200, "{body}");
        body["id"].as_u64().unwrap()
    };
    assert_eq!(normalized(&v1), normalized(&serialized));
    assert_eq!(
        normalized(&v1.replace("int32 id = 1;", "int32   id=1 ;")),
        normalized(&v1)
    );
    assert_eq!(
        get(sr, "/subjects/normalized-value/versions"),
        (200, json!([1]))
    );

    // A new field and int32 -> int64 are compatible...
    let v2 = event("  int64 id = 1;\n  Kind kind = 2;\n  string note = 3;");
    let id2 = id_of(register_proto(sr, "events-value", &v2));
    assert_ne!(id1, id2);
    // ...a field's type changed is not...
    let (status, refused) = register_proto(sr, "events-value", &event("  string id = 1;"));
    assert_eq!((status, error_code(&refused)), (409, 409), "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("FIELD_SCALAR_KIND_CHANGED") && message.contains("'Event.id'"),
        "{message}"
    );
    // ...and neither is an AVRO schema after a PROTOBUF one.
    let (status, refused) = register(sr, "events-value", &user_v1());
    assert_eq!((status, error_code(&refused)), (409, 409), "{refused}");

    let check = |schema: &str| {
        let path = "/compatibility/subjects/events-value/versions/latest?verbose=true";
        let (status, body) = call(sr, "POST", path, Some(&proto_body(schema)));
        assert_eq!(status, 200, "{body}");
        body
    };
    let renamed = check(&v2.replace("message Event", "message Renamed"));
    assert_eq!(renamed["is_compatible"], false, "{renamed}");
    assert!(
        renamed["messages"][0]
            .as_str()
            .unwrap()
            .contains("MESSAGE_REMOVED"),
        "{renamed}"
    );
    assert_eq!(
        check(&v2.replace("string note = 3;", ""))["is_compatible"],
        true
    );
    // FORWARD: the old schema must read the new one's data, and an added message is not
    // in it.
    call(
        sr,
        "PUT",
        "/config/events-value",
        Some(&json!({"compatibility": "FORWARD"})),
    );
    let added = format!("{v2}\nmessage Other {{ int32 x = 1; }}\n");
    assert_eq!(check(&added)["is_compatible"], false);

    for bad in [
        "message",
        "syntax = \"proto3\"; message A { int32 a = 1; int32 b = 1; }",
        "syntax = \"proto3\"; message A { Missing m = 1; }",
        "syntax = \"proto3\"; import \"nowhere.proto\";",
        "AAAA",
    ] {
        let (status, refused) = register_proto(sr, "bad-value", bad);
        assert_eq!(
            (status, error_code(&refused)),
            (422, 42201),
            "{bad}: {refused}"
        );
    }
}

/// Goal: a Protobuf schema's imports resolve against its references, named by import
/// path, and against Google's well-known files without any; an import that is neither is
/// 42201, and a referenced schema is protected from deletion.
#[test]
fn protobuf_imports_resolve_against_references() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let sr = broker.schema_registry();
    let address = "syntax = \"proto3\"; package acme; message Address { string city = 1; }";
    // The subject has a '/' in it: clients send it percent-encoded.
    id_of(register_proto(sr, "acme%2Faddress.proto", address));
    let person = "syntax = \"proto3\"; package acme;
                  import \"acme/address.proto\";
                  import \"google/protobuf/timestamp.proto\";
                  message Person { Address home = 1; google.protobuf.Timestamp born = 2; }";
    let (status, unresolved) = register_proto(sr, "person-value", person);
    assert_eq!(
        (status, error_code(&unresolved)),
        (422, 42201),
        "{unresolved}"
    );

    let mut body = proto_body(person);
    body["references"] =
        json!([{"name": "acme/address.proto", "subject": "acme/address.proto", "version": 1}]);
    let person_id = id_of(post_version(sr, "person-value", &body));
    let (_, by_id) = get(sr, &format!("/schemas/ids/{person_id}"));
    assert_eq!(by_id["references"][0]["name"], "acme/address.proto");
    assert_eq!(
        get(sr, "/subjects/acme%2Faddress.proto/versions/1/referencedby"),
        (200, json!([person_id]))
    );
    let (status, code) = call(sr, "DELETE", "/subjects/acme%2Faddress.proto", None);
    assert_eq!((status, error_code(&code)), (422, 42206));
    // A reference under another name than the import path does not resolve it.
    body["references"][0]["name"] = json!("address.proto");
    let (status, refused) = post_version(sr, "person2-value", &body);
    assert_eq!((status, error_code(&refused)), (422, 42201), "{refused}");
}

/// Goal: Confluent's error codes for the requests clients get wrong.
#[test]
fn errors_carry_confluents_codes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(
        dir.path(),
        &[
            "--schema-registry-max-schema-bytes",
            "2000",
            "--schema-registry-max-versions",
            "2",
        ],
    );
    let sr = broker.schema_registry();
    registered_id(sr, "s", &user_v1());

    let cases: Vec<(&str, &str, Option<Value>, u16, u64)> = vec![
        ("GET", "/subjects/nope/versions", None, 404, 40401),
        ("GET", "/subjects/nope/versions/1", None, 404, 40401),
        ("GET", "/subjects/s/versions/9", None, 404, 40402),
        ("GET", "/subjects/s/versions/0", None, 422, 42202),
        ("GET", "/subjects/s/versions/abc", None, 422, 42202),
        ("GET", "/schemas/ids/999", None, 404, 40403),
        ("GET", "/schemas/ids/x", None, 404, 40403),
        ("GET", "/config/s", None, 404, 40408),
        ("GET", "/nothing-here", None, 404, 404),
        ("PATCH", "/subjects", None, 405, 405),
        (
            "POST",
            "/subjects/s/versions",
            Some(json!({"schema": "{\"type\": \"recod\"}"})),
            422,
            42201,
        ),
        (
            "POST",
            "/subjects/s/versions",
            Some(json!({"schema": "\"int\"", "schemaType": "XML"})),
            422,
            42201,
        ),
        (
            "POST",
            "/subjects/s/versions",
            Some(json!({"schema": "\"int\"", "schemaType": "PROTOBUF"})),
            422,
            42201,
        ),
        ("POST", "/subjects/s/versions", Some(json!({})), 422, 42201),
        (
            "POST",
            "/subjects/s/versions",
            Some(json!({"schema": format!("\"{}\"", "x".repeat(3000))})),
            422,
            42209,
        ),
        (
            "PUT",
            "/config",
            Some(json!({"compatibility": "SIDEWAYS"})),
            422,
            42203,
        ),
        (
            "PUT",
            "/mode",
            Some(json!({"mode": "WRITEONLY"})),
            422,
            42204,
        ),
    ];
    for (method, path, body, status, code) in cases {
        let (got_status, got) = call(sr, method, path, body.as_ref());
        assert_eq!(
            (got_status, error_code(&got)),
            (status, code),
            "{method} {path}: {got}"
        );
        assert!(got["message"].is_string(), "{got}");
    }
    let (status, body) = raw(sr, "POST", "/subjects/s/versions", "{not json");
    assert_eq!(status, 400, "{body}");

    // The second version fits the limit of 2, the third does not.
    registered_id(sr, "s", &user_v2());
    let third = record(
        "User",
        json!([{"name": "id", "type": "long"},
               {"name": "email", "type": ["null", "string"], "default": null},
               {"name": "n", "type": "int", "default": 0}]),
    );
    let (status, refused) = register(sr, "s", &third);
    assert_eq!((status, error_code(&refused)), (422, 42205), "{refused}");
}

/// Goal: soft delete hides, permanent delete removes, each in Confluent's order (soft
/// first), and an id stays readable while a soft-deleted version uses it (consumers of old
/// records need it).
#[test]
fn soft_and_permanent_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let sr = broker.schema_registry();
    let id1 = registered_id(sr, "d", &user_v1());
    registered_id(sr, "d", &user_v2());

    let (status, code) = call(sr, "DELETE", "/subjects/d/versions/1?permanent=true", None);
    assert_eq!((status, error_code(&code)), (404, 40407));
    assert_eq!(
        call(sr, "DELETE", "/subjects/d/versions/1", None),
        (200, json!(1))
    );
    let (status, again) = call(sr, "DELETE", "/subjects/d/versions/1", None);
    assert_eq!((status, error_code(&again)), (404, 40406));
    assert_eq!(get(sr, "/subjects/d/versions"), (200, json!([2])));
    assert_eq!(
        get(sr, "/subjects/d/versions?deleted=true"),
        (200, json!([1, 2]))
    );
    let (status, hidden) = get(sr, "/subjects/d/versions/1");
    assert_eq!((status, error_code(&hidden)), (404, 40402));
    assert_eq!(get(sr, "/subjects/d/versions/1?deleted=true").0, 200);
    assert_eq!(get(sr, &format!("/schemas/ids/{id1}")).0, 200);

    let (status, code) = call(sr, "DELETE", "/subjects/d?permanent=true", None);
    assert_eq!((status, error_code(&code)), (404, 40405));
    assert_eq!(call(sr, "DELETE", "/subjects/d", None), (200, json!([2])));
    let (status, code) = call(sr, "DELETE", "/subjects/d", None);
    assert_eq!((status, error_code(&code)), (404, 40404));
    assert_eq!(get(sr, "/subjects"), (200, json!([])));
    assert_eq!(get(sr, "/subjects?deleted=true"), (200, json!(["d"])));
    let (status, code) = get(sr, "/subjects/d/versions");
    assert_eq!((status, error_code(&code)), (404, 40401));

    assert_eq!(
        call(sr, "DELETE", "/subjects/d?permanent=true", None),
        (200, json!([1, 2]))
    );
    let (status, gone) = get(sr, &format!("/schemas/ids/{id1}"));
    assert_eq!((status, error_code(&gone)), (404, 40403));
    // Registering the same schema again brings its id back, as version 1.
    assert_eq!(registered_id(sr, "d", &user_v1()), id1);
    assert_eq!(get(sr, "/subjects/d/versions"), (200, json!([1])));
}

/// Goal: compatibility levels (global, per subject, defaultToGlobal, delete) and modes
/// change what registering accepts; the compatibility endpoint answers without
/// registering, with reasons when verbose.
#[test]
fn config_mode_and_compatibility_checks() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let sr = broker.schema_registry();
    assert_eq!(
        get(sr, "/config"),
        (200, json!({"compatibilityLevel": "BACKWARD"}))
    );
    registered_id(sr, "c", &user_v1());

    let check = |path: &str, schema: &Value| {
        let (status, body) = call(sr, "POST", path, Some(&schema_body(schema)));
        assert_eq!(status, 200, "{body}");
        body
    };
    let latest = "/compatibility/subjects/c/versions/latest";
    assert_eq!(check(latest, &user_v2()), json!({"is_compatible": true}));
    let verbose = check(&format!("{latest}?verbose=true"), &user_incompatible());
    assert_eq!(verbose["is_compatible"], false);
    assert!(
        verbose["messages"][0]
            .as_str()
            .unwrap()
            .contains("READER_FIELD_MISSING_DEFAULT_VALUE"),
        "{verbose}"
    );
    // A subject with no versions accepts anything.
    assert_eq!(
        check("/compatibility/subjects/empty/versions/latest", &user_v1()),
        json!({"is_compatible": true})
    );

    // FORWARD: the old schema must read the new one's data; dropping a field without a
    // default breaks it, adding one does not.
    let put = |path: &str, body: Value| call(sr, "PUT", path, Some(&body));
    assert_eq!(
        put("/config/c", json!({"compatibility": "FORWARD"})),
        (200, json!({"compatibility": "FORWARD"}))
    );
    assert_eq!(
        get(sr, "/config/c"),
        (200, json!({"compatibilityLevel": "FORWARD"}))
    );
    assert_eq!(
        get(sr, "/config/other?defaultToGlobal=true"),
        (200, json!({"compatibilityLevel": "BACKWARD"}))
    );
    assert_eq!(
        check(latest, &user_incompatible()),
        json!({"is_compatible": true})
    );
    let no_id = record(
        "User",
        json!([{"name": "name", "type": "string", "default": ""}]),
    );
    assert_eq!(check(latest, &no_id), json!({"is_compatible": false}));

    assert_eq!(
        put("/config/c", json!({"compatibility": "NONE"})),
        (200, json!({"compatibility": "NONE"}))
    );
    registered_id(sr, "c", &no_id);
    assert_eq!(
        call(sr, "DELETE", "/config/c", None),
        (200, json!({"compatibilityLevel": "NONE"}))
    );
    let (status, code) = get(sr, "/config/c");
    assert_eq!((status, error_code(&code)), (404, 40408));

    assert_eq!(
        put("/mode", json!({"mode": "READONLY"})),
        (200, json!({"mode": "READONLY"}))
    );
    let (status, refused) = register(sr, "c", &user_v1());
    assert_eq!((status, error_code(&refused)), (422, 42205), "{refused}");
    assert_eq!(
        put("/mode", json!({"mode": "READWRITE"})),
        (200, json!({"mode": "READWRITE"}))
    );
    assert_eq!(get(sr, "/mode"), (200, json!({"mode": "READWRITE"})));
}

/// Goal: a schema that references another subject's schema registers, resolves its named
/// type, lists as referencing it, and keeps it from being deleted.
#[test]
fn references_resolve_and_protect_their_targets() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let sr = broker.schema_registry();
    let address = json!({"type": "record", "name": "Address", "namespace": "test",
                         "fields": [{"name": "city", "type": "string"}]});
    registered_id(sr, "address", &address);
    let person = record("Person", json!([{"name": "home", "type": "test.Address"}]));
    let (status, unresolved) = register(sr, "person", &person);
    assert_eq!((status, error_code(&unresolved)), (422, 42201));

    let mut body = schema_body(&person);
    body["references"] = json!([{"name": "test.Address", "subject": "address", "version": 1}]);
    let (status, registered) = call(sr, "POST", "/subjects/person/versions", Some(&body));
    assert_eq!(status, 200, "{registered}");
    let person_id = registered["id"].as_u64().unwrap();
    let (_, by_id) = get(sr, &format!("/schemas/ids/{person_id}"));
    assert_eq!(by_id["references"][0]["subject"], "address");
    assert_eq!(
        get(sr, "/subjects/address/versions/1/referencedby"),
        (200, json!([person_id]))
    );
    let (status, code) = call(sr, "DELETE", "/subjects/address", None);
    assert_eq!((status, error_code(&code)), (422, 42206));
}

/// Goal: the registry is in the metadata store, not the broker: ids, versions and config
/// are all there after a restart, and new ids continue after the old ones.
#[test]
fn registry_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let sr = broker.schema_registry();
    let id1 = registered_id(sr, "r", &user_v1());
    let id2 = registered_id(sr, "r", &user_v2());
    call(
        sr,
        "PUT",
        "/config/r",
        Some(&json!({"compatibility": "FULL"})),
    );

    let broker = broker.restart_graceful();
    let sr = broker.schema_registry();
    assert_eq!(get(sr, "/subjects/r/versions"), (200, json!([1, 2])));
    assert_eq!(
        get(sr, "/subjects/r/versions/latest").1["id"].as_u64(),
        Some(id2)
    );
    assert_eq!(
        get(sr, "/config/r"),
        (200, json!({"compatibilityLevel": "FULL"}))
    );
    assert_eq!(registered_id(sr, "r", &user_v1()), id1);
    let new_id = registered_id(sr, "fresh", &record("Other", json!([])));
    assert!(new_id > id2, "{new_id} after {id2}");
}

/// Goal: two brokers on one etcd are one registry: a schema registered through one is
/// served by the other (through its watch), and the same new schema registered through
/// both at once gets one id (compare-and-set on the fingerprint).
#[test]
fn brokers_of_a_cluster_share_the_registry() {
    let cluster = common::cluster::Cluster::start(2, "/strato/schema-registry");
    let a = cluster.brokers[&0].schema_registry();
    let b = cluster.brokers[&1].schema_registry();

    let id = registered_id(a, "shared", &user_v1());
    wait_until(
        Duration::from_secs(10),
        "the other broker to see it",
        || get(b, "/subjects/shared/versions/1").0 == 200,
    );
    let (_, seen) = get(b, &format!("/schemas/ids/{id}"));
    assert!(seen["schema"].is_string(), "{seen}");
    assert_eq!(registered_id(b, "shared", &user_v2()), id + 1);
    wait_until(Duration::from_secs(10), "broker a to see version 2", || {
        get(a, "/subjects/shared/versions").1 == json!([1, 2])
    });

    let schema = record("Raced", json!([{"name": "x", "type": "int"}]));
    let racers: Vec<_> = [(a, "race-a"), (b, "race-b")]
        .into_iter()
        .map(|(addr, subject)| {
            let schema = schema.clone();
            std::thread::spawn(move || registered_id(addr, subject, &schema))
        })
        .collect();
    let ids: Vec<u64> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(ids[0], ids[1], "one schema, one id");
}

/// Goal: confluent-kafka's own Schema Registry client and Avro serializers work against the
/// built-in registry end to end: they register and evolve a schema, get 409 for an
/// incompatible one, and typed records produced through Strato come back through the
/// deserializer (old records resolved to the new reader schema).
#[test]
fn confluent_kafka_avro_serializers() {
    let result = serializers_round_trip("schema_registry_avro.py", "users", &[]);
    assert_eq!(result["schema_types"], json!(["AVRO", "AVRO"]), "{result}");
}

/// Goal: confluent-kafka's JSON Schema serializers work against the built-in registry end to
/// end: they register and evolve a schema (a closed content model gaining an optional
/// property), get 409 for an incompatible one (a new required property), and typed records
/// produced through Strato come back through the deserializer, each validated against the
/// new schema.
#[test]
fn confluent_kafka_json_serializers() {
    let result = serializers_round_trip("schema_registry_json.py", "orders", &[]);
    assert_eq!(result["schema_types"], json!(["JSON", "JSON"]), "{result}");
}

/// Goal: confluent-kafka's Protobuf serializers work against the built-in registry end to
/// end: they register an imported file as a reference (its own subject) and leave the
/// well-known Timestamp unregistered, register and evolve a message (a new field), get 409
/// for an incompatible one (registered as .proto text), and messages produced through
/// Strato come back equal through the deserializer, which fetches the writer's schema and
/// its reference in the serialized format.
#[test]
fn confluent_kafka_protobuf_serializers() {
    let result = serializers_round_trip(
        "schema_registry_protobuf.py",
        "people",
        &["strato/test/address.proto"],
    );
    assert_eq!(
        result["schema_types"],
        json!(["PROTOBUF", "PROTOBUF"]),
        "{result}"
    );
}

/// Runs a tests/clients/_serdes.py script against a new broker and checks what every such
/// run must show: two versions, 2 x 200 records produced and consumed, 409 for the
/// incompatible schema, the records carrying the registered ids, and no subjects but the
/// topic's and `reference_subjects` (the serializer's references).
fn serializers_round_trip(script: &str, topic: &str, reference_subjects: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--default-partitions", "2"]);
    let result = common::run_client_script(
        script,
        &[
            "--bootstrap",
            &broker.bootstrap(),
            "--registry",
            &broker.schema_registry_url(),
            "--topic",
            topic,
            "--count",
            "200",
        ],
    );
    assert_eq!(result["versions"], json!([1, 2]), "{result}");
    assert_eq!(result["produced"], 400, "{result}");
    assert_eq!(result["consumed"], 400, "{result}");
    assert_eq!(
        result["incompatible"],
        json!({"status": 409, "error_code": 409}),
        "{result}"
    );
    assert_eq!(result["schema_ids_seen"], result["ids"], "{result}");
    let sr = broker.schema_registry();
    let mut subjects: Vec<String> = reference_subjects.iter().map(|s| s.to_string()).collect();
    subjects.push(format!("{topic}-value"));
    subjects.sort();
    assert_eq!(get(sr, "/subjects"), (200, json!(subjects)));
    result
}

/// Goal: a topic with `confluent.value.schema.validation=true` takes only values framed
/// with a schema id registered under `<topic>-value` (Confluent's wire format), as
/// Confluent Server does: a plain value and an unregistered id are refused with
/// INVALID_RECORD, null values (tombstones) and keys pass, and consumers see only what was
/// accepted. The schema is registered through one broker of a cluster and the records are
/// produced at once to whichever leads, so the leader may have to read the subject again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_schema_validation_refuses_unregistered_ids() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::producer::FutureRecord;

    let cluster = common::cluster::Cluster::start(2, "/strato/schema-validation");
    let bootstrap = cluster.bootstrap();
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("create admin client");
    let topic = NewTopic::new("typed", 2, TopicReplication::Fixed(1))
        .set("confluent.value.schema.validation", "true");
    for result in admin
        .create_topics(&[topic], &AdminOptions::new())
        .await
        .expect("create topics request")
    {
        result.expect("topic created");
    }
    let bad_strategy = NewTopic::new("typed-records", 1, TopicReplication::Fixed(1)).set(
        "confluent.value.subject.name.strategy",
        "io.confluent.kafka.serializers.subject.RecordNameStrategy",
    );
    let refused = admin
        .create_topics(&[bad_strategy], &AdminOptions::new())
        .await
        .expect("create topics request");
    assert!(
        matches!(&refused[0], Err((_, RDKafkaErrorCode::InvalidConfig))),
        "{refused:?}"
    );

    let sr = cluster.brokers[&1].schema_registry();
    let id = u32::try_from(registered_id(sr, "typed-value", &user_v1())).unwrap();
    let framed = |id: u32| {
        let mut value = vec![0u8];
        value.extend_from_slice(&id.to_be_bytes());
        value.extend_from_slice(&[2, 0]);
        value
    };
    let producer = common::kafka::producer(&bootstrap, &[("message.timeout.ms", "30000")]);
    let send = |partition: i32, key: &'static str, value: Option<Vec<u8>>| {
        let producer = &producer;
        async move {
            let mut record = FutureRecord::<str, [u8]>::to("typed")
                .partition(partition)
                .key(key);
            if let Some(value) = value.as_deref() {
                record = record.payload(value);
            }
            producer
                .send(record, Duration::from_secs(30))
                .await
                .map(|_| ())
                .map_err(|(err, _)| err)
        }
    };
    // Both partitions: with two brokers, usually one leads each, and one of them did not
    // take the registration.
    for partition in 0..2 {
        send(partition, "good", Some(framed(id)))
            .await
            .expect("a registered id is accepted");
        send(partition, "tombstone", None)
            .await
            .expect("a null value is accepted");
        for (what, value) in [
            ("plain", b"{\"id\": 1}".to_vec()),
            ("unregistered", framed(id + 1000)),
            ("short", vec![0, 0, 0]),
        ] {
            let err = send(partition, "bad", Some(value)).await.expect_err(what);
            assert!(
                matches!(
                    err,
                    KafkaError::MessageProduction(RDKafkaErrorCode::InvalidRecord)
                ),
                "{what}: {err:?}"
            );
        }
    }
    let keys: Vec<(i32, String)> = tokio::task::block_in_place(|| {
        common::kafka::consume_all(&bootstrap, "typed", 2, 4)
            .into_iter()
            .map(|((partition, _), rec)| (partition, String::from_utf8(rec.key.unwrap()).unwrap()))
            .collect()
    });
    let expected: Vec<(i32, String)> = (0..2)
        .flat_map(|p| [(p, "good".to_string()), (p, "tombstone".to_string())])
        .collect();
    assert_eq!(keys, expected);
}

/// Goal: with `--schema-registry-auth basic`, the registry takes only the SCRAM users'
/// passwords (401 with a `WWW-Authenticate` challenge otherwise) and authorizes subjects
/// through their topics' ACLs: DESCRIBE (implied by READ) reads `<topic>-value`, WRITE
/// registers under it, other subjects and global settings need the cluster; listings and
/// schemas by id show only what the user may read; super users may do everything.
#[test]
fn basic_auth_and_acls_guard_subjects() {
    use common::registry::call_as;
    let dir = tempfile::tempdir().unwrap();
    for (user, password) in [
        ("admin", "admin-pw"),
        ("alice", "alice-pw"),
        ("bob", "bob-pw"),
    ] {
        common::add_user(&dir.path().join("data"), user, password);
    }
    let broker = Broker::start(
        dir.path(),
        &[
            "--schema-registry-auth",
            "basic",
            "--authorizer",
            "true",
            "--super-users",
            "User:admin;User:ANONYMOUS",
        ],
    );
    let sr = broker.schema_registry();
    let admin = Some(("admin", "admin-pw"));
    let alice = Some(("alice", "alice-pw"));
    let bob = Some(("bob", "bob-pw"));

    for credentials in [None, Some(("alice", "wrong")), Some(("nobody", "x"))] {
        let (status, head, body) = call_as(sr, credentials, "GET", "/subjects", None);
        assert_eq!(
            (status, error_code(&body)),
            (401, 401),
            "{credentials:?}: {body}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("www-authenticate: basic"),
            "{head}"
        );
    }
    let (status, _, body) = call_as(
        sr,
        admin,
        "POST",
        "/subjects/orders-value/versions",
        Some(&schema_body(&user_v1())),
    );
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_u64().unwrap();
    let (status, _, _) = call_as(
        sr,
        admin,
        "POST",
        "/subjects/com.example.Other/versions",
        Some(&schema_body(&user_v1())),
    );
    assert_eq!(status, 200);

    // Alice has no ACL yet: she is authenticated, sees nothing and may read nothing.
    assert_eq!(call_as(sr, alice, "GET", "/subjects", None).2, json!([]));
    let (status, _, body) = call_as(sr, alice, "GET", "/subjects/orders-value/versions", None);
    assert_eq!((status, error_code(&body)), (403, 40301), "{body}");
    let (status, _, _) = call_as(sr, alice, "GET", &format!("/schemas/ids/{id}"), None);
    assert_eq!(status, 403);
    assert_eq!(call_as(sr, alice, "GET", "/schemas/types", None).0, 200);

    let bootstrap = broker.bootstrap();
    let grant = |args: &[&str]| {
        let mut all = vec!["acl", "create", "--bootstrap", bootstrap.as_str()];
        all.extend_from_slice(args);
        let out = common::run_with_timeout(
            std::process::Command::new(env!("CARGO_BIN_EXE_strato")).args(&all),
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    grant(&[
        "--allow-principal",
        "User:alice",
        "--operation",
        "Read",
        "--topic",
        "orders",
    ]);
    grant(&[
        "--allow-principal",
        "User:bob",
        "--operation",
        "Write",
        "--topic",
        "orders",
    ]);
    wait_until(Duration::from_secs(10), "alice's ACL to hold", || {
        call_as(sr, alice, "GET", "/subjects/orders-value/versions", None).0 == 200
    });
    assert_eq!(
        call_as(sr, alice, "GET", "/subjects", None).2,
        json!(["orders-value"])
    );
    assert_eq!(
        call_as(
            sr,
            alice,
            "GET",
            &format!("/schemas/ids/{id}/subjects"),
            None
        )
        .2,
        json!(["orders-value"])
    );
    assert_eq!(
        call_as(sr, alice, "GET", &format!("/schemas/ids/{id}"), None).0,
        200
    );
    let (status, _, body) = call_as(
        sr,
        alice,
        "POST",
        "/subjects/orders-value/versions",
        Some(&schema_body(&user_v2())),
    );
    assert_eq!(
        (status, error_code(&body)),
        (403, 40301),
        "reading is not registering"
    );
    let (status, _, _) = call_as(
        sr,
        alice,
        "GET",
        "/subjects/com.example.Other/versions",
        None,
    );
    assert_eq!(status, 403, "a subject of no topic needs the cluster");

    wait_until(Duration::from_secs(10), "bob's ACL to hold", || {
        call_as(
            sr,
            bob,
            "POST",
            "/subjects/orders-value/versions",
            Some(&schema_body(&user_v2())),
        )
        .0 == 200
    });
    let (status, _, _) = call_as(sr, bob, "DELETE", "/subjects/orders-value/versions/1", None);
    assert_eq!(status, 403, "deleting needs ALTER");
    let (status, _, _) = call_as(
        sr,
        bob,
        "PUT",
        "/config",
        Some(&json!({"compatibility": "NONE"})),
    );
    assert_eq!(status, 403, "the global level needs the cluster");
    assert_eq!(
        call_as(sr, admin, "GET", "/subjects/orders-value/versions", None).2,
        json!([1, 2])
    );
}

/// Goal: IMPORT mode migrates schemas with their ids and versions, as Confluent's is used
/// to: entered only on an empty registry (or with `force`), registrations give their id
/// and version and skip compatibility, an id or version taken by another schema is refused
/// (42205), the same import again is answered as registered, and once back in READWRITE new
/// ids start past the imported ones. Outside IMPORT mode an id is refused.
#[test]
fn import_mode_keeps_ids_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let sr = broker.schema_registry();
    let with_id = |schema: &Value, id: u64, version: Option<u64>| {
        let mut body = schema_body(schema);
        body["id"] = json!(id);
        if let Some(version) = version {
            body["version"] = json!(version);
        }
        body
    };
    let post = |subject: &str, body: &Value| {
        call(
            sr,
            "POST",
            &format!("/subjects/{subject}/versions"),
            Some(body),
        )
    };
    let (status, body) = post("orders-value", &with_id(&user_v1(), 100, None));
    assert_eq!((status, error_code(&body)), (422, 42205), "{body}");

    assert_eq!(
        call(sr, "PUT", "/mode", Some(&json!({"mode": "IMPORT"}))),
        (200, json!({"mode": "IMPORT"}))
    );
    let (status, body) = post("orders-value", &schema_body(&user_v1()));
    assert_eq!(
        (status, error_code(&body)),
        (422, 42205),
        "an id is needed: {body}"
    );
    assert_eq!(
        post("orders-value", &with_id(&user_v1(), 100, Some(3))),
        (200, json!({"id": 100}))
    );
    // Incompatible with v3, imported all the same.
    assert_eq!(
        post("orders-value", &with_id(&user_incompatible(), 205, None)),
        (200, json!({"id": 205}))
    );
    assert_eq!(
        post("orders-value", &with_id(&user_v1(), 100, Some(3))),
        (200, json!({"id": 100})),
        "the same import again"
    );
    assert_eq!(
        post("shared-value", &with_id(&user_v1(), 100, Some(1))),
        (200, json!({"id": 100})),
        "one schema, one id, in two subjects"
    );
    for (body, why) in [
        (
            with_id(&user_v2(), 100, None),
            "id 100 holds another schema",
        ),
        (
            with_id(&user_v2(), 300, Some(3)),
            "version 3 holds another schema",
        ),
        (with_id(&user_v1(), 301, None), "the schema has id 100"),
    ] {
        let (status, answer) = post("orders-value", &body);
        assert_eq!(
            (status, error_code(&answer)),
            (422, 42205),
            "{why}: {answer}"
        );
    }
    assert_eq!(
        get(sr, "/subjects/orders-value/versions"),
        (200, json!([3, 4]))
    );
    assert_eq!(get(sr, "/schemas/ids/205").0, 200);

    let (status, body) = call(
        sr,
        "PUT",
        "/mode/other-value",
        Some(&json!({"mode": "IMPORT"})),
    );
    assert_eq!(status, 200, "an empty subject: {body}");
    assert_eq!(
        call(sr, "PUT", "/mode", Some(&json!({"mode": "READWRITE"}))),
        (200, json!({"mode": "READWRITE"}))
    );
    let (status, body) = call(sr, "PUT", "/mode", Some(&json!({"mode": "IMPORT"})));
    assert_eq!(
        (status, error_code(&body)),
        (422, 42205),
        "not empty: {body}"
    );
    assert_eq!(
        call(
            sr,
            "PUT",
            "/mode?force=true",
            Some(&json!({"mode": "IMPORT"}))
        )
        .0,
        200
    );
    call(sr, "PUT", "/mode", Some(&json!({"mode": "READWRITE"})));
    let new_id = registered_id(sr, "fresh-value", &user_v2());
    assert!(
        new_id > 205,
        "new ids start past the imported ones: {new_id}"
    );
}
