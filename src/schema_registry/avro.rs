//! Avro schemas: parsing with the `apache-avro` crate (the named types of referenced
//! schemas resolvable by name), the text the registry stores for a schema, and its identity.
//!
//! The stored text is the submitted JSON written compactly with its object keys sorted, so
//! whitespace and key order do not make two schemas different; with `normalize=true` it is
//! the parsed schema written back by `apache-avro` (names fully qualified, the library's
//! layout), so equivalent spellings of one schema share an id too.

use std::panic::AssertUnwindSafe;

use apache_avro::Schema;

/// A parsed schema with the named schemas its references brought in.
#[derive(Debug)]
pub(super) struct ParsedAvro {
    pub schema: Schema,
    pub referenced: Vec<Schema>,
}

/// Parses `text` with `references` (the texts of the referenced schemas, each a named type)
/// in scope. Any failure is an invalid schema, described for the client.
pub(super) fn parse(text: &str, references: &[String]) -> Result<ParsedAvro, String> {
    for text in std::iter::once(text).chain(references.iter().map(String::as_str)) {
        check_names(text)?;
    }
    // The parser is a third-party library fed client input: a panic in it answers the
    // request with an error instead of ending the connection task.
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        if references.is_empty() {
            Schema::parse_str(text).map(|schema| (schema, Vec::new()))
        } else {
            Schema::parse_str_with_list(text, references)
        }
    }));
    match outcome {
        Ok(Ok((schema, referenced))) => Ok(ParsedAvro { schema, referenced }),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("the schema could not be parsed".to_string()),
    }
}

/// Refuses a named type (record, error, enum, fixed) whose `name` the Avro specification
/// does not allow: `apache-avro` 0.21 panics on one (an `unwrap` in `Name::parse`; found
/// by cargo-fuzz, docs/FUZZING.md) where it should return an error. Text that is not JSON is
/// left to the parser's own error.
fn check_names(text: &str) -> Result<(), String> {
    fn identifier(part: &str) -> bool {
        let mut chars = part.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    }
    // A full name: dot-separated identifiers, optionally after a leading dot (the null
    // namespace), as apache-avro's own pattern reads it.
    fn full_name(name: &str) -> bool {
        let name = name.strip_prefix('.').unwrap_or(name);
        name.split('.').all(identifier)
    }
    fn walk(value: &serde_json::Value, depth: usize) -> Result<(), String> {
        // Deeper than any real schema: the parser refuses it (serde_json's own recursion
        // limit is 128).
        if depth > 256 {
            return Ok(());
        }
        match value {
            serde_json::Value::Object(map) => {
                let named = map
                    .get("type")
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|t| matches!(t, "record" | "error" | "enum" | "fixed"));
                if named
                    && let Some(serde_json::Value::String(name)) = map.get("name")
                    && !full_name(name)
                {
                    return Err(format!(
                        "invalid name {name:?}: an Avro name is letters, digits and underscores, \
                         not starting with a digit (dots separate a namespace)"
                    ));
                }
                map.values().try_for_each(|v| walk(v, depth + 1))
            }
            serde_json::Value::Array(items) => items.iter().try_for_each(|v| walk(v, depth + 1)),
            _ => Ok(()),
        }
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => walk(&value, 0),
        Err(_) => Ok(()),
    }
}

/// The text stored (and returned) for a schema submitted as `text`.
pub(super) fn stored_text(
    text: &str,
    parsed: &ParsedAvro,
    normalize: bool,
) -> Result<String, String> {
    if normalize {
        return serde_json::to_string(&parsed.schema).map_err(|err| err.to_string());
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|err| err.to_string())?;
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelling_does_not_change_the_stored_text() {
        let a = r#"{"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}"#;
        let b = r#"{"name":"R","fields":[{"type":"int","name":"a"}],
                    "type":"record"}"#;
        let text_a = stored_text(a, &parse(a, &[]).unwrap(), false).unwrap();
        let text_b = stored_text(b, &parse(b, &[]).unwrap(), false).unwrap();
        assert_eq!(text_a, text_b);
        let normalized = stored_text(a, &parse(a, &[]).unwrap(), true).unwrap();
        assert!(parse(&normalized, &[]).is_ok(), "{normalized}");
    }

    #[test]
    fn bad_schemas_are_errors() {
        for bad in [
            "",
            "{",
            r#"{"type":"record"}"#,
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"nope"}]}"#,
            r#""no-such-type""#,
            &"[".repeat(10_000),
        ] {
            assert!(parse(bad, &[]).is_err(), "{bad}");
        }
    }

    #[test]
    fn invalid_names_are_errors_not_panics() {
        // apache-avro 0.21 panics on these (cargo-fuzz, schema target); each is refused
        // before it reaches the parser, naming the name.
        for (bad, name) in [
            (r#"{"type":"record","name":"O-der","fields":[]}"#, "O-der"),
            (r#"{"type":"enum","name":"1st","symbols":["A"]}"#, "1st"),
            (
                r#"{"type":"record","name":"R","fields":[{"name":"f","type":{"type":"fixed","name":"a..b","size":2}}]}"#,
                "a..b",
            ),
        ] {
            let err = parse(bad, &[]).unwrap_err();
            assert!(err.contains(name), "{err}");
        }
        // Valid full names pass through.
        for good in [
            r#"{"type":"record","name":"shop.Order_2","fields":[]}"#,
            r#"{"type":"record","name":".Order","fields":[]}"#,
        ] {
            assert!(parse(good, &[]).is_ok(), "{good}");
        }
    }

    #[test]
    fn references_bring_named_types_into_scope() {
        let address = r#"{"type":"record","name":"Address","namespace":"acme",
                          "fields":[{"name":"city","type":"string"}]}"#;
        let person = r#"{"type":"record","name":"Person","namespace":"acme",
                         "fields":[{"name":"home","type":"acme.Address"}]}"#;
        assert!(parse(person, &[]).is_err());
        let parsed = parse(person, &[address.to_string()]).unwrap();
        assert_eq!(parsed.referenced.len(), 1);
    }
}
