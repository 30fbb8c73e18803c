//! JSON Schema schemas (`schemaType` JSON): parsing, the text the registry stores for a
//! schema, and its identity. Compatibility rules are in `json_compat.rs`.
//!
//! A schema is a JSON object or a boolean (drafts 4 to 2020-12). Parsing checks the shape
//! of the keywords the compatibility rules read (`type` names a JSON Schema type,
//! `properties` holds schemas, `required` holds strings, bounds are numbers, ...) and that
//! every `$ref` of the form `#/json/pointer` resolves inside the document, so the rules can
//! rely on them. Other keywords are kept as submitted; unknown ones are annotations.
//! References to other registered schemas (`references`) are stored but not resolved: a
//! `$ref` that does not start with `#` is compared by its text.
//!
//! The stored text is the submitted JSON written compactly with its object keys sorted, as
//! for Avro, so whitespace and key order do not make two schemas different. With
//! `normalize=true` the order-free keywords are put in a canonical order too: `type` lists
//! are sorted and deduplicated (one type is written as a string) and so are `required`
//! lists, so equivalent spellings of one schema share an id.

use serde_json::Value;
use strato_metadata::keys;

/// `$ref` hops followed at most to reach a schema that is not a `$ref` (a longer chain is
/// taken to be a loop).
pub(super) const REF_HOPS_MAX: usize = 32;

/// The types of JSON Schema's `type` keyword.
pub(super) const TYPE_NAMES: [&str; 7] = [
    "null", "boolean", "object", "array", "number", "integer", "string",
];

/// A parsed schema: the document as JSON, checked.
#[derive(Debug)]
pub(super) struct ParsedJson {
    pub root: Value,
}

/// Parses `text` as a JSON Schema. Any failure is an invalid schema, described for the
/// client.
pub(super) fn parse(text: &str) -> Result<ParsedJson, String> {
    let root: Value = serde_json::from_str(text).map_err(|err| format!("invalid JSON: {err}"))?;
    if !matches!(root, Value::Object(_) | Value::Bool(_)) {
        return Err("a JSON Schema is an object or a boolean".into());
    }
    check_schema(&root, &root, "#")?;
    Ok(ParsedJson { root })
}

/// The text stored (and returned) for a schema parsed as `parsed`.
pub(super) fn stored_text(parsed: &ParsedJson, normalize: bool) -> String {
    if !normalize {
        return parsed.root.to_string();
    }
    let mut root = parsed.root.clone();
    normalize_schema(&mut root);
    root.to_string()
}

/// The schema `reference` (a `$ref` value) points to inside `root`: `Ok(None)` for a
/// reference that is not a JSON pointer into the document, an error for a pointer that
/// names nothing.
pub(super) fn resolve_pointer<'a>(
    root: &'a Value,
    reference: &str,
) -> Result<Option<&'a Value>, String> {
    let Some(fragment) = reference.strip_prefix('#') else {
        return Ok(None);
    };
    if !fragment.is_empty() && !fragment.starts_with('/') {
        // A plain-name fragment (`#anchor`) names a `$anchor`, which the registry does not
        // look up.
        return Ok(None);
    }
    // A URI fragment is percent-encoded, like a key segment.
    let pointer = keys::decode_group_id(fragment)
        .ok_or_else(|| format!("$ref {reference:?} is not a valid URI fragment"))?;
    root.pointer(&pointer)
        .map(Some)
        .ok_or_else(|| format!("$ref {reference:?} names nothing in the schema"))
}

/// Keywords whose value is one schema.
const SCHEMA_KEYWORDS: [&str; 11] = [
    "additionalProperties",
    "additionalItems",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "items",
];
/// Keywords whose value is an object of schemas.
const SCHEMA_MAP_KEYWORDS: [&str; 5] = [
    "properties",
    "patternProperties",
    "definitions",
    "$defs",
    "dependentSchemas",
];
/// Keywords whose value is a non-empty array of schemas.
const SCHEMA_LIST_KEYWORDS: [&str; 4] = ["allOf", "anyOf", "oneOf", "prefixItems"];
/// Keywords whose value is a number.
const NUMBER_KEYWORDS: [&str; 3] = ["maximum", "minimum", "multipleOf"];
/// Keywords whose value is a non-negative integer.
const COUNT_KEYWORDS: [&str; 8] = [
    "maxLength",
    "minLength",
    "maxItems",
    "minItems",
    "maxProperties",
    "minProperties",
    "maxContains",
    "minContains",
];

/// Checks the keywords of the schema `schema` (at `path` in `root`) and of its subschemas.
fn check_schema(root: &Value, schema: &Value, path: &str) -> Result<(), String> {
    let object = match schema {
        Value::Bool(_) => return Ok(()),
        Value::Object(object) => object,
        _ => return Err(format!("{path} is not a schema (an object or a boolean)")),
    };
    for (keyword, value) in object {
        let at = format!("{path}/{keyword}");
        let keyword = keyword.as_str();
        if keyword == "items" && value.is_array() {
            check_schema_list(root, value, &at, true)?;
        } else if SCHEMA_KEYWORDS.contains(&keyword) {
            check_schema(root, value, &at)?;
        } else if SCHEMA_MAP_KEYWORDS.contains(&keyword) {
            let map = value
                .as_object()
                .ok_or_else(|| format!("{at} is not an object"))?;
            for (name, subschema) in map {
                check_schema(root, subschema, &format!("{at}/{name}"))?;
            }
        } else if SCHEMA_LIST_KEYWORDS.contains(&keyword) {
            check_schema_list(root, value, &at, false)?;
        } else if NUMBER_KEYWORDS.contains(&keyword) {
            let number = value
                .as_f64()
                .ok_or_else(|| format!("{at} is not a number"))?;
            if keyword == "multipleOf" && number <= 0.0 {
                return Err(format!("{at} is not greater than 0"));
            }
        } else if COUNT_KEYWORDS.contains(&keyword) {
            value
                .as_u64()
                .ok_or_else(|| format!("{at} is not a non-negative integer"))?;
        } else {
            check_keyword(root, keyword, value, &at)?;
        }
    }
    Ok(())
}

fn check_schema_list(
    root: &Value,
    value: &Value,
    at: &str,
    may_be_empty: bool,
) -> Result<(), String> {
    let list = value
        .as_array()
        .filter(|list| may_be_empty || !list.is_empty())
        .ok_or_else(|| format!("{at} is not a non-empty array of schemas"))?;
    for (idx, subschema) in list.iter().enumerate() {
        check_schema(root, subschema, &format!("{at}/{idx}"))?;
    }
    Ok(())
}

/// The keywords with a shape of their own.
fn check_keyword(root: &Value, keyword: &str, value: &Value, at: &str) -> Result<(), String> {
    let (fits, expected) = match keyword {
        "type" => return check_type(value, at),
        "$ref" => {
            return match value.as_str() {
                Some(reference) => check_reference(root, reference),
                None => Err(format!("{at} is not a string")),
            };
        }
        "required" => (
            value
                .as_array()
                .is_some_and(|names| names.iter().all(Value::is_string)),
            "an array of property names",
        ),
        "enum" => (value.is_array(), "an array"),
        // A number since draft 6, a flag on maximum/minimum in draft 4.
        "exclusiveMaximum" | "exclusiveMinimum" => {
            (value.is_number() || value.is_boolean(), "a number")
        }
        "uniqueItems" => (value.is_boolean(), "a boolean"),
        "pattern" | "format" => (value.is_string(), "a string"),
        _ => (true, ""),
    };
    if fits {
        Ok(())
    } else {
        Err(format!("{at} is not {expected}"))
    }
}

/// `type` is a type name or a non-empty list of them.
fn check_type(value: &Value, at: &str) -> Result<(), String> {
    let names: Vec<&Value> = match value {
        Value::Array(names) if !names.is_empty() => names.iter().collect(),
        Value::String(_) => vec![value],
        _ => return Err(format!("{at} is not a type name or a list of them")),
    };
    match names
        .into_iter()
        .find(|name| !name.as_str().is_some_and(|n| TYPE_NAMES.contains(&n)))
    {
        Some(name) => Err(format!(
            "{at}: {name} is not a JSON Schema type (one of {})",
            TYPE_NAMES.join(", ")
        )),
        None => Ok(()),
    }
}

/// A `#/pointer` reference must name a schema, and a chain of references must end.
fn check_reference(root: &Value, reference: &str) -> Result<(), String> {
    let mut next = reference.to_string();
    for _ in 0..REF_HOPS_MAX {
        let Some(target) = resolve_pointer(root, &next)? else {
            return Ok(());
        };
        match target.get("$ref").and_then(Value::as_str) {
            Some(further) => next = further.to_string(),
            None => return Ok(()),
        }
    }
    Err(format!(
        "$ref {reference:?} starts a chain of more than {REF_HOPS_MAX} references (a loop?)"
    ))
}

/// Puts the order-free keywords of `schema` and its subschemas in canonical order.
fn normalize_schema(schema: &mut Value) {
    let Value::Object(object) = schema else {
        return;
    };
    for (keyword, value) in object.iter_mut() {
        let keyword = keyword.as_str();
        match value {
            Value::Array(list) if keyword == "type" || keyword == "required" => {
                list.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
                list.dedup();
                if keyword == "type" && list.len() == 1 {
                    *value = list.remove(0);
                }
            }
            Value::Array(list) if keyword == "items" || SCHEMA_LIST_KEYWORDS.contains(&keyword) => {
                list.iter_mut().for_each(normalize_schema);
            }
            Value::Object(map) if SCHEMA_MAP_KEYWORDS.contains(&keyword) => {
                map.values_mut().for_each(normalize_schema);
            }
            _ if SCHEMA_KEYWORDS.contains(&keyword) => normalize_schema(value),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(text: &str, normalize: bool) -> String {
        stored_text(&parse(text).unwrap(), normalize)
    }

    #[test]
    fn spelling_does_not_change_the_stored_text() {
        let a = r#"{"type": "object", "properties": {"a": {"type": "integer"}}}"#;
        let b = r#"{"properties":{"a":{"type":"integer"}},
                    "type":"object"}"#;
        assert_eq!(stored(a, false), stored(b, false));
        assert_eq!(
            stored(a, false),
            r#"{"properties":{"a":{"type":"integer"}},"type":"object"}"#
        );
        assert_eq!(stored("true", false), "true");
    }

    #[test]
    fn normalize_orders_type_and_required_lists() {
        let a = r#"{"type":"object","required":["b","a"],
                    "properties":{"a":{"type":["string","null"]},"b":{"type":["integer"]}}}"#;
        let b = r#"{"type":["object"],"required":["a","b","a"],
                    "properties":{"a":{"type":["null","string"]},"b":{"type":"integer"}}}"#;
        assert_ne!(stored(a, false), stored(b, false));
        assert_eq!(stored(a, true), stored(b, true));
        // A property named like a keyword is a name, not a keyword.
        let named = r#"{"properties":{"required":{"type":["string","null"]}}}"#;
        assert_eq!(
            stored(named, true),
            r#"{"properties":{"required":{"type":["null","string"]}}}"#
        );
    }

    #[test]
    fn bad_schemas_are_errors() {
        for bad in [
            "",
            "{",
            "1",
            r#""string""#,
            "[]",
            r#"{"type":"strin"}"#,
            r#"{"type":[]}"#,
            r#"{"properties":{"a":1}}"#,
            r#"{"properties":[]}"#,
            r#"{"required":"a"}"#,
            r#"{"required":[1]}"#,
            r#"{"maxLength":-1}"#,
            r#"{"maximum":"3"}"#,
            r#"{"multipleOf":0}"#,
            r#"{"anyOf":[]}"#,
            r#"{"items":[1]}"#,
            r#"{"enum":"a"}"#,
            r##"{"$ref":"#/definitions/missing"}"##,
            r##"{"definitions":{"a":{"$ref":"#/definitions/b"},"b":{"$ref":"#/definitions/a"}},
                 "$ref":"#/definitions/a"}"##,
            &"[".repeat(10_000),
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn good_schemas_parse() {
        for good in [
            "true",
            "false",
            "{}",
            r#"{"type":["string","null"],"maxLength":3}"#,
            r##"{"definitions":{"a b":{"type":"string"}},"properties":{"x":{"$ref":"#/definitions/a%20b"}}}"##,
            r##"{"properties":{"next":{"$ref":"#"}}}"##,
            r#"{"$ref":"other.json"}"#,
            r#"{"exclusiveMaximum":true,"maximum":3}"#,
            r#"{"items":[{"type":"string"}],"additionalItems":false}"#,
            r#"{"x-custom":{"anything":[1,2]}}"#,
        ] {
            assert!(parse(good).is_ok(), "{good}: {:?}", parse(good).err());
        }
    }
}
