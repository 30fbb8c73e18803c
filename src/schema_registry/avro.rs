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
