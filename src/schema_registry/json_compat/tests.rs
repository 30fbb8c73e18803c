//! The rules as a table of old and new schemas, and their reasons and bounds.
use serde_json::json;

use super::super::json_schema::parse;
use super::keywords::upper_snake;
use super::*;

fn reads(reader: &Value, writer: &Value) -> Vec<String> {
    can_read(
        &parse(&reader.to_string()).unwrap(),
        &parse(&writer.to_string()).unwrap(),
    )
}

fn object(properties: Value, extra: Value) -> Value {
    let mut schema = json!({"type": "object", "properties": properties});
    for (k, v) in extra.as_object().unwrap() {
        schema[k] = v.clone();
    }
    schema
}

/// Goal: each documented rule, both directions. A row is (what changes, old schema,
/// new schema, BACKWARD compatible (the new reads the old's data), FORWARD compatible
/// (the old reads the new's data)).
#[test]
#[rustfmt::skip] // One row a line reads as a table.
fn evolution_table() {
    let closed = json!({"additionalProperties": false});
    let open = json!({});
    let a = json!({"a": {"type": "string"}});
    let a_b = json!({"a": {"type": "string"}, "b": {"type": "integer"}});
    let node = |t: &str| {
        json!({"$ref": "#/definitions/Node", "definitions": {"Node": {"type": "object",
            "properties": {"value": {"type": t}, "next": {"$ref": "#/definitions/Node"}}}}})
    };
    let rows: Vec<(&str, Value, Value, bool, bool)> = vec![
        ("identical", object(a.clone(), open.clone()), object(a.clone(), open.clone()), true, true),
        ("integer to number", json!({"type": "integer"}), json!({"type": "number"}), true, false),
        ("string to integer", json!({"type": "string"}), json!({"type": "integer"}), false, false),
        ("null added to the types", json!({"type": "string"}), json!({"type": ["string", "null"]}), true, false),
        ("property added, open model", object(a.clone(), open.clone()), object(a_b.clone(), open.clone()), false, true),
        ("property added, closed model", object(a.clone(), closed.clone()), object(a_b.clone(), closed.clone()), true, false),
        ("required property added, closed model", object(a.clone(), closed.clone()), object( a_b.clone(), json!({"additionalProperties": false, "required": ["b"]}), ), false, false),
        ("property added, covered by a partially open model", object( a.clone(), json!({"additionalProperties": {"type": "integer"}}), ), object( a_b.clone(), json!({"additionalProperties": {"type": "integer"}}), ), true, true),
        ("property added, not covered by a partially open model", object( a.clone(), json!({"additionalProperties": {"type": "boolean"}}), ), object( a_b.clone(), json!({"additionalProperties": {"type": "boolean"}}), ), false, false),
        ("property added, covered by patternProperties", object( a.clone(), json!({"patternProperties": {"^b": {"type": "integer"}}, "additionalProperties": false}), ), object( a_b.clone(), json!({"patternProperties": {"^b": {"type": "integer"}}, "additionalProperties": false}), ), true, true),
        ("open model closed", object(a.clone(), open.clone()), object(a.clone(), closed.clone()), false, true),
        ("required added", object(a_b.clone(), open.clone()), object(a_b.clone(), json!({"required": ["b"]})), false, true),
        ("required added with a default", object(a_b.clone(), open.clone()), object( json!({"a": {"type": "string"}, "b": {"type": "integer", "default": 0}}), json!({"required": ["b"]}), ), true, true),
        ("enum extended", json!({"enum": ["A", "B"]}), json!({"enum": ["A", "B", "C"]}), true, false),
        ("enum added", json!({"type": "string"}), json!({"type": "string", "enum": ["A"]}), false, true),
        ("items widened", json!({"type": "array", "items": {"type": "integer"}}), json!({"type": "array", "items": {"type": "number"}}), true, false),
        ("tuple item added, closed", json!({"type": "array", "items": [{"type": "string"}], "additionalItems": false}), json!({"type": "array", "items": [{"type": "string"}, {"type": "integer"}], "additionalItems": false}), true, false),
        ("prefixItems item changed", json!({"type": "array", "prefixItems": [{"type": "string"}]}), json!({"type": "array", "prefixItems": [{"type": "integer"}]}), false, false),
        ("maxLength increased", json!({"type": "string", "maxLength": 10}), json!({"type": "string", "maxLength": 20}), true, false),
        ("maxLength added", json!({"type": "string"}), json!({"type": "string", "maxLength": 20}), false, true),
        ("minLength increased", json!({"type": "string", "minLength": 1}), json!({"type": "string", "minLength": 2}), false, true),
        ("minimum decreased", json!({"type": "integer", "minimum": 0}), json!({"type": "integer", "minimum": -10}), true, false),
        ("exclusive minimum made inclusive", json!({"type": "number", "exclusiveMinimum": 0}), json!({"type": "number", "minimum": 0}), true, false),
        ("draft 4 exclusive maximum", json!({"type": "number", "maximum": 5, "exclusiveMaximum": true}), json!({"type": "number", "maximum": 5}), true, false),
        ("maxItems decreased", json!({"type": "array", "maxItems": 5}), json!({"type": "array", "maxItems": 3}), false, true),
        ("minProperties added", json!({"type": "object"}), json!({"type": "object", "minProperties": 1}), false, true),
        ("multipleOf reduced", json!({"type": "number", "multipleOf": 10}), json!({"type": "number", "multipleOf": 5}), true, false),
        ("multipleOf 1 on integers", json!({"type": "integer"}), json!({"type": "integer", "multipleOf": 1}), true, true),
        ("pattern added", json!({"type": "string"}), json!({"type": "string", "pattern": "^a"}), false, true),
        ("pattern changed", json!({"type": "string", "pattern": "^a"}), json!({"type": "string", "pattern": "^b"}), false, false),
        ("uniqueItems added", json!({"type": "array"}), json!({"type": "array", "uniqueItems": true}), false, true),
        ("oneOf branch added", json!({"oneOf": [{"type": "string"}, {"type": "integer"}]}), json!({"oneOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]}), true, false),
        ("schema to oneOf", json!({"type": "string"}), json!({"oneOf": [{"type": "string"}, {"type": "null"}]}), true, false),
        ("anyOf branch changed", json!({"anyOf": [{"type": "string"}, {"type": "integer"}]}), json!({"anyOf": [{"type": "string"}, {"type": "boolean"}]}), false, false),
        ("allOf conjunct added", json!({"allOf": [object(a_b.clone(), open.clone())]}), json!({"allOf": [object(a_b.clone(), open.clone()), {"required": ["a"]}]}), false, true),
        ("not added", json!({"type": "string"}), json!({"type": "string", "not": {"enum": ["x"]}}), false, true),
        ("definition behind a $ref widened", json!({"properties": {"n": {"$ref": "#/definitions/T"}}, "definitions": {"T": {"type": "integer"}}}), json!({"properties": {"n": {"$ref": "#/definitions/T"}}, "definitions": {"T": {"type": "number"}}}), true, false),
        ("recursive schema widened", node("integer"), node("number"), true, false),
        ("true to false", json!(true), json!(false), false, true), ( "empty schema to a type", json!({}), json!({"type": "string"}), false, true),
        ("annotations only", json!({"title": "x"}), json!({"description": "y", "$comment": "z"}), true, true),
        ("if added", json!({"type": "object"}), json!({"type": "object", "if": {"required": ["a"]}, "then": {"required": ["b"]}}), false, true),
        ("external $ref kept", json!({"$ref": "other.json"}), json!({"$ref": "other.json", "title": "t"}), true, true),
        ("external $ref changed", json!({"$ref": "other.json"}), json!({"$ref": "another.json"}), false, false),
    ];
    for (what, old, new, backward, forward) in rows {
        let backward_reasons = reads(&new, &old);
        assert_eq!(
            backward_reasons.is_empty(),
            backward,
            "BACKWARD, {what}: {backward_reasons:?}"
        );
        let forward_reasons = reads(&old, &new);
        assert_eq!(
            forward_reasons.is_empty(),
            forward,
            "FORWARD, {what}: {forward_reasons:?}"
        );
    }
}

#[test]
fn reasons_name_the_change_and_the_path() {
    let old = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    let new = json!({"type": "object", "properties": {"a": {"type": "integer"},
                     "b/c": {"type": "string"}}, "required": ["a"]});
    let reasons = reads(&new, &old);
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons[0].starts_with("REQUIRED_ATTRIBUTE_ADDED") && reasons[0].contains("'#/required'"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].starts_with("TYPE_CHANGED") && reasons[1].contains("'#/properties/a'"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].starts_with("PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL")
            && reasons[2].contains("'#/properties/b~1c'"),
        "{reasons:?}"
    );
    let closed = json!({"type": "object", "properties": {}, "additionalProperties": false});
    let reasons = reads(&closed, &old);
    assert!(
        reasons[0].starts_with("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"),
        "{reasons:?}"
    );
    let reasons = reads(&json!({"enum": ["A"]}), &json!({"enum": ["A", "B", 3]}));
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("ENUM_ARRAY_NARROWED") && r.contains("[\"B\", 3]")),
        "{reasons:?}"
    );
}

#[test]
fn writer_branches_carry_the_writers_other_keywords() {
    // Each writer branch is read with the writer's `type` and `properties`: without
    // them a branch alone would look like "any type".
    let writer = json!({"type": "object", "properties": {"a": {"type": "string"}},
                        "oneOf": [{"required": ["a"]}, {"required": ["b"]}]});
    let reader = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    assert!(
        reads(&reader, &writer).is_empty(),
        "{:?}",
        reads(&reader, &writer)
    );
    // allOf merged: the reader requires what one conjunct requires.
    let writer = json!({"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}},
                                  {"required": ["a"]}]});
    let reader = json!({"type": "object", "required": ["a"]});
    assert!(
        reads(&reader, &writer).is_empty(),
        "{:?}",
        reads(&reader, &writer)
    );
}

#[test]
fn hostile_schemas_end_in_bounded_time() {
    // Nested oneOfs whose branches each fail make the check try every combination:
    // the step limit ends it, and the answer is "incompatible".
    // Each level refers to the one below twice, so the schema stays small.
    let mut definitions = json!({"L0": {"type": "integer"}});
    let mut writer = json!({"type": "string"});
    for level in 1..=30 {
        let below = json!({"$ref": format!("#/definitions/L{}", level - 1)});
        definitions[format!("L{level}")] =
            json!({"oneOf": [below.clone(), {"type": "array", "items": below}]});
        writer = json!({"type": "array", "items": writer});
    }
    let reader = json!({"definitions": definitions, "$ref": "#/definitions/L30"});
    let reasons = reads(&reader, &writer);
    assert!(
        reasons.iter().any(|r| r.starts_with("TOO_COMPLEX")),
        "{reasons:?}"
    );
    // A schema recursive on both sides through different paths terminates.
    let a = json!({"definitions": {"A": {"properties": {"x": {"$ref": "#/definitions/A"}}}},
                   "$ref": "#/definitions/A"});
    let b = json!({"definitions": {"B": {"properties": {"x": {"properties": {"x": {"$ref": "#/definitions/B"}}}}}},
                   "$ref": "#/definitions/B"});
    assert!(reads(&a, &b).is_empty());
    assert!(reads(&b, &a).is_empty());
}

#[test]
fn patterns_the_engine_does_not_take_count_as_maybe_matching() {
    // A lookahead is valid ECMA-262 and not taken by regex-lite: a removed property
    // might be matched by it, so the reader's pattern schema must read it as well.
    let old = json!({"type": "object", "properties": {"a": {"type": "string"}},
                     "additionalProperties": false});
    let new = json!({"type": "object", "patternProperties": {"^(?!z)": {"type": "integer"}}});
    assert!(!reads(&new, &old).is_empty());
    let new = json!({"type": "object", "patternProperties": {"^(?!z)": {"type": "string"}}});
    assert!(reads(&new, &old).is_empty(), "{:?}", reads(&new, &old));
}

#[test]
fn labels_are_upper_snake() {
    assert_eq!(upper_snake("maxLength"), "MAX_LENGTH");
    assert_eq!(upper_snake("pattern"), "PATTERN");
}
