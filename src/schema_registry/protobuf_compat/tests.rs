//! The rules as a table of old and new schemas, and their reasons and bounds.
use super::super::protobuf::parse;
use super::*;

fn parsed(text: &str) -> ParsedProtobuf {
    parse(text, &[]).unwrap_or_else(|err| panic!("{text}: {err}"))
}

fn reads(reader: &str, writer: &str) -> Vec<String> {
    can_read(&parsed(reader), &parsed(writer))
}

/// A proto3 file of package `test` with `body` as its content.
fn proto3(body: &str) -> String {
    format!("syntax = \"proto3\"; package test; {body}")
}

/// A proto3 file with one message `M` of `fields`.
fn m(fields: &str) -> String {
    proto3(&format!("message M {{ {fields} }}"))
}

/// A proto2 file with one message `M` of `fields`.
fn m2(fields: &str) -> String {
    format!("syntax = \"proto2\"; package test; message M {{ {fields} }}")
}

/// Goal: each documented rule, both directions. A row is (what changes, old schema, new
/// schema, BACKWARD compatible (the new reads the old's data), FORWARD compatible (the old
/// reads the new's data), the name of the difference when one direction is refused).
#[test]
#[rustfmt::skip] // One row a line reads as a table.
fn evolution_table() {
    let e = |values: &str| proto3(&format!("enum E {{ {values} }} message M {{ E e = 1; }}"));
    let rows: Vec<(&str, String, String, bool, bool, &str)> = vec![
        ("identical", m("int32 a = 1;"), m("int32 a = 1;"), true, true, ""),
        ("field added", m("int32 a = 1;"), m("int32 a = 1; string b = 2;"), true, true, ""),
        ("field removed", m("int32 a = 1; string b = 2;"), m("int32 a = 1;"), true, true, ""),
        ("field renamed", m("int32 a = 1;"), m("int32 renamed = 1;"), true, true, ""),
        ("field renumbered: a removal and an addition", m("int32 a = 1;"), m("int32 a = 2;"), true, true, ""),
        ("number reused with another kind", m("int32 a = 1;"), m("string a = 1;"), false, false, "FIELD_SCALAR_KIND_CHANGED"),
        ("int32 to int64", m("int32 a = 1;"), m("int64 a = 1;"), true, true, ""),
        ("uint64 to bool", m("uint64 a = 1;"), m("bool a = 1;"), true, true, ""),
        ("sint32 to sint64", m("sint32 a = 1;"), m("sint64 a = 1;"), true, true, ""),
        ("sint32 to int32", m("sint32 a = 1;"), m("int32 a = 1;"), false, false, "FIELD_SCALAR_KIND_CHANGED"),
        ("fixed32 to sfixed32", m("fixed32 a = 1;"), m("sfixed32 a = 1;"), true, true, ""),
        ("fixed64 to sfixed64", m("fixed64 a = 1;"), m("sfixed64 a = 1;"), true, true, ""),
        ("fixed32 to fixed64", m("fixed32 a = 1;"), m("fixed64 a = 1;"), false, false, "FIELD_SCALAR_KIND_CHANGED"),
        ("string to bytes", m("string a = 1;"), m("bytes a = 1;"), true, true, ""),
        ("float to double", m("float a = 1;"), m("double a = 1;"), false, false, "FIELD_SCALAR_KIND_CHANGED"),
        ("int32 to string", m("int32 a = 1;"), m("string a = 1;"), false, false, "FIELD_SCALAR_KIND_CHANGED"),
        ("scalar to message", m("int32 a = 1;"), proto3("message N {} message M { N a = 1; }"), false, false, "FIELD_KIND_CHANGED"),
        ("enum to int32", e("A = 0;"), proto3("enum E { A = 0; } message M { int32 e = 1; }"), false, false, "FIELD_KIND_CHANGED"),
        ("message type renamed", proto3("message N {} message M { N a = 1; }"), proto3("message N {} message O {} message M { O a = 1; }"), false, false, "FIELD_NAMED_TYPE_CHANGED"),
        ("nested message field changed", proto3("message M { message N { int32 x = 1; } N n = 1; }"), proto3("message M { message N { string x = 1; } N n = 1; }"), false, false, "FIELD_SCALAR_KIND_CHANGED"),
        ("message added", m("int32 a = 1;"), proto3("message M { int32 a = 1; } message Other {}"), true, false, "MESSAGE_REMOVED"),
        ("message removed", proto3("message M { int32 a = 1; } message Other {}"), m("int32 a = 1;"), false, true, "MESSAGE_REMOVED"),
        ("message renamed", m("int32 a = 1;"), proto3("message Renamed { int32 a = 1; }"), false, false, "MESSAGE_REMOVED"),
        ("package changed", m("int32 a = 1;"), "syntax = \"proto3\"; package other; message M { int32 a = 1; }".into(), false, false, "PACKAGE_CHANGED"),
        ("syntax changed", m("optional int32 a = 1;"), m2("optional int32 a = 1;"), false, false, "SYNTAX_CHANGED"),
        ("string made repeated", m("string a = 1;"), m("repeated string a = 1;"), true, true, ""),
        ("message made repeated", proto3("message N {} message M { N a = 1; }"), proto3("message N {} message M { repeated N a = 1; }"), true, true, ""),
        ("int32 made repeated", m("int32 a = 1;"), m("repeated int32 a = 1;"), false, false, "FIELD_NUMERIC_LABEL_CHANGED"),
        ("repeated enum made singular", proto3("enum E { A = 0; } message M { repeated E a = 1; }"), proto3("enum E { A = 0; } message M { E a = 1; }"), false, false, "FIELD_NUMERIC_LABEL_CHANGED"),
        ("proto3 optional added", m("int32 a = 1;"), m("optional int32 a = 1;"), true, true, ""),
        ("map value widened", m("map<string, int32> a = 1;"), m("map<string, int64> a = 1;"), true, true, ""),
        ("map value kind changed", m("map<string, int32> a = 1;"), m("map<string, string> a = 1;"), false, false, "FIELD_SCALAR_KIND_CHANGED"),
        ("required field added", m2("optional int32 a = 1;"), m2("optional int32 a = 1; required int32 b = 2;"), false, false, "REQUIRED_FIELD_ADDED"),
        ("optional field added (proto2)", m2("optional int32 a = 1;"), m2("optional int32 a = 1; optional int32 b = 2;"), true, true, ""),
        ("group made a message field", m2("optional group G = 1 { optional int32 x = 2; }"), m2("message G { optional int32 x = 2; } optional G g = 1;"), false, false, "FIELD_KIND_CHANGED"),
        ("optional made required", m2("optional int32 a = 1;"), m2("required int32 a = 1;"), false, true, "REQUIRED_FIELD_ADDED"),
        ("oneof added with new fields", m("int32 a = 1;"), m("int32 a = 1; oneof o { string b = 2; string c = 3; }"), true, true, ""),
        ("one field moved into a new oneof", m("int32 a = 1; string b = 2;"), m("int32 a = 1; oneof o { string b = 2; }"), true, true, ""),
        ("two fields moved into a new oneof", m("int32 a = 1; string b = 2;"), m("oneof o { int32 a = 1; string b = 2; }"), false, true, "MULTIPLE_FIELDS_MOVED_TO_ONEOF"),
        ("field moved into an existing oneof", m("int32 a = 1; oneof o { string b = 2; }"), m("oneof o { int32 a = 1; string b = 2; }"), false, false, "FIELD_MOVED_TO_EXISTING_ONEOF"),
        ("new field added to an existing oneof", m("oneof o { string b = 2; }"), m("oneof o { string b = 2; int32 c = 3; }"), true, false, "ONEOF_FIELD_REMOVED"),
        ("oneof removed with its fields", m("int32 a = 1; oneof o { string b = 2; }"), m("int32 a = 1;"), true, true, ""),
        ("enum value added", e("A = 0;"), e("A = 0; B = 1;"), true, true, ""),
        ("enum value removed", e("A = 0; B = 1;"), e("A = 0;"), true, true, ""),
        ("enum value renamed", e("A = 0; B = 1;"), e("A = 0; C = 1;"), true, true, ""),
        ("enum renamed under its field", e("A = 0;"), proto3("enum F { A = 0; } message M { F e = 1; }"), false, false, "FIELD_NAMED_TYPE_CHANGED"),
    ];
    let mut failures = Vec::new();
    for (what, old, new, backward, forward, label) in &rows {
        let backward_reasons = reads(new, old);
        let forward_reasons = reads(old, new);
        if backward_reasons.is_empty() != *backward || forward_reasons.is_empty() != *forward {
            failures.push(format!(
                "{what}: BACKWARD {backward_reasons:?} (expected compatible: {backward}), FORWARD {forward_reasons:?} (expected compatible: {forward})"
            ));
            continue;
        }
        let reasons: Vec<&String> = backward_reasons.iter().chain(&forward_reasons).collect();
        if !label.is_empty() && !reasons.iter().any(|r| r.starts_with(label)) {
            failures.push(format!("{what}: expected {label}, got {reasons:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Goal: a reason names where the difference is, so a client can find it.
#[test]
fn reasons_name_the_message_and_field() {
    let reasons = reads(
        &proto3("message M { message N { string x = 1; } N n = 1; }"),
        &proto3("message M { message N { int32 x = 1; } N n = 1; }"),
    );
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].contains("'M.N.x'"), "{reasons:?}");
}

/// Goal: a check that runs past its step limit answers TOO_COMPLEX (incompatible), even
/// when every field it visited matched, never compatible by running out of steps.
#[test]
fn a_check_past_its_step_limit_is_incompatible() {
    let schema = parsed(&m("int32 a = 1; int32 b = 2; int32 c = 3;"));
    // The message and its three fields take four steps.
    assert!(can_read_bounded(&schema, &schema, 4).is_empty());
    let reasons = can_read_bounded(&schema, &schema, 3);
    assert!(
        reasons.iter().any(|r| r.starts_with("TOO_COMPLEX")),
        "{reasons:?}"
    );
}
