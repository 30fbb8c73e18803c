//! Protobuf schemas (`schemaType` PROTOBUF): parsing and linking a `.proto` file with its
//! imports, the text the registry stores for a schema, and its identity. Compatibility
//! rules are in `protobuf_compat.rs`.
//!
//! A schema is the text of one `.proto` file, or, as Confluent's serializers send it, a
//! base64-encoded `FileDescriptorProto` (Confluent's "serialized" format). `protox` parses
//! and links it (pure Rust, no `protoc`): each `import` must name a schema reference (the
//! reference's `name` is the import path, its text is read from the registry like an Avro
//! reference's), or one of Google's well-known files (`google/protobuf/*.proto`), which
//! are built in and need no registration. A referenced schema may itself be text or a
//! serialized descriptor.
//!
//! The stored text is the submitted text without surrounding whitespace, so the same
//! submission twice is one schema; spelling inside the text counts. With `normalize=true`
//! it is the parsed file written as a serialized descriptor (base64 of the linked
//! `FileDescriptorProto` under one file name, without source positions and without the
//! `json_name`s the parser derives), so a `.proto` text and the descriptor a serializer
//! sends for it share an id.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use prost_reflect::FileDescriptor;
use prost_reflect::prost::Message;
use prost_reflect::prost_types;
use protox::file::{File, FileResolver, GoogleFileResolver};

/// The file name a registered schema is compiled under (imports name the others).
const SCHEMA_FILE: &str = "__registered_schema__.proto";

/// A parsed and linked schema: its file, in a descriptor pool with everything it imports.
#[derive(Debug)]
pub(super) struct ParsedProtobuf {
    pub file: FileDescriptor,
}

/// Parses and links `text` with `references` ((import path, text) of every schema its
/// imports reach) in scope. Any failure is an invalid schema, described for the client.
pub(super) fn parse(text: &str, references: &[(String, String)]) -> Result<ParsedProtobuf, String> {
    if references.iter().any(|(name, _)| name == SCHEMA_FILE) {
        return Err(format!("a reference may not be named {SCHEMA_FILE}"));
    }
    let files = RegistryFiles {
        files: references
            .iter()
            .cloned()
            .chain([(SCHEMA_FILE.to_string(), text.to_string())])
            .collect(),
        google: GoogleFileResolver::new(),
    };
    // The parser is a third-party library fed client input: a panic in it answers the
    // request with an error instead of ending the connection task.
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let mut compiler = protox::Compiler::with_file_resolver(files);
        compiler.include_source_info(false);
        compiler.open_file(SCHEMA_FILE)?;
        Ok::<_, protox::Error>(compiler.descriptor_pool())
    }));
    let pool = match outcome {
        Ok(Ok(pool)) => pool,
        Ok(Err(err)) => return Err(err.to_string()),
        Err(_) => return Err("the schema could not be parsed".to_string()),
    };
    let file = pool
        .get_file_by_name(SCHEMA_FILE)
        .ok_or_else(|| "the schema did not compile to a file".to_string())?;
    Ok(ParsedProtobuf { file })
}

/// The text stored (and returned) for a schema submitted as `text`.
pub(super) fn stored_text(text: &str, parsed: &ParsedProtobuf, normalize: bool) -> String {
    if normalize {
        canonical(parsed)
    } else {
        text.trim().to_string()
    }
}

/// The schema as Confluent's serialized format: base64 of its `FileDescriptorProto`
/// (`GET ...?format=serialized`, what confluent-kafka's deserializers ask for).
pub(super) fn serialized(parsed: &ParsedProtobuf) -> String {
    let mut file = parsed.file.file_descriptor_proto().clone();
    // Source positions help no reader of the descriptor, and more than double its size.
    file.source_code_info = None;
    STANDARD.encode(file.encode_to_vec())
}

/// The serialized form with what does not change the schema's meaning taken out.
fn canonical(parsed: &ParsedProtobuf) -> String {
    let mut file = parsed.file.file_descriptor_proto().clone();
    file.name = Some(SCHEMA_FILE.to_string());
    file.source_code_info = None;
    let mut pending: Vec<&mut prost_types::DescriptorProto> =
        file.message_type.iter_mut().collect();
    while let Some(message) = pending.pop() {
        for field in message.field.iter_mut().chain(message.extension.iter_mut()) {
            if field.json_name.as_deref() == Some(default_json_name(field.name()).as_str()) {
                field.json_name = None;
            }
        }
        pending.extend(message.nested_type.iter_mut());
    }
    STANDARD.encode(file.encode_to_vec())
}

/// protoc's default JSON name of a field: lowerCamelCase of its name.
fn default_json_name(name: &str) -> String {
    let mut json = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            json.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            json.push(c);
        }
    }
    json
}

/// Whether `text` is written in the base64 alphabet only (a `.proto` text never is: it has
/// spaces or braces).
fn is_base64(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
}

/// The files a schema may import: the schema itself, its references, and the well-known
/// files.
struct RegistryFiles {
    files: HashMap<String, String>,
    google: GoogleFileResolver,
}

impl FileResolver for RegistryFiles {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        let Some(text) = self.files.get(name) else {
            return self.google.open_file(name);
        };
        let text = text.trim();
        if !is_base64(text) {
            return File::from_source(name, text);
        }
        let bytes = STANDARD
            .decode(text)
            .map_err(|err| protox::Error::new(format!("{name}: invalid base64: {err}")))?;
        let mut descriptor =
            prost_types::FileDescriptorProto::decode(bytes.as_slice()).map_err(|err| {
                protox::Error::new(format!(
                    "{name}: not a serialized FileDescriptorProto: {err}"
                ))
            })?;
        // Clients name a serialized file as they like; imports name it by the reference.
        descriptor.name = Some(name.to_string());
        Ok(File::from_file_descriptor_proto(descriptor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = r#"
        syntax = "proto3";
        package strato.test;
        import "google/protobuf/timestamp.proto";
        message User {
          int64 id = 1;
          string name = 2;
          optional string email = 3;
          google.protobuf.Timestamp created = 4;
          map<string, int32> counts = 5;
          oneof contact { string phone = 6; string fax = 7; }
        }
    "#;

    fn parse_ok(text: &str, references: &[(String, String)]) -> ParsedProtobuf {
        match parse(text, references) {
            Ok(parsed) => parsed,
            Err(err) => panic!("{text}: {err}"),
        }
    }

    #[test]
    fn text_and_well_known_imports_parse() {
        let parsed = parse_ok(USER, &[]);
        let names: Vec<String> = parsed
            .file
            .messages()
            .map(|m| m.full_name().to_string())
            .collect();
        assert_eq!(names, ["strato.test.User"]);
        assert_eq!(stored_text(USER, &parsed, false), USER.trim());
    }

    #[test]
    fn a_serialized_descriptor_is_the_same_schema() {
        let parsed = parse_ok(USER, &[]);
        let serialized = serialized(&parsed);
        assert!(is_base64(&serialized));
        let bytes = STANDARD.decode(&serialized).unwrap();
        let descriptor = prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap();
        assert_eq!(descriptor.source_code_info, None, "no source positions");
        assert_eq!(descriptor.package(), "strato.test");
        let again = parse_ok(&serialized, &[]);
        assert_eq!(
            stored_text(&serialized, &again, true),
            stored_text(USER, &parsed, true)
        );
        // Spelling counts without normalize, not with it.
        let spaced = USER.replace("int64 id = 1;", "int64   id=1 ;");
        let respaced = parse_ok(&spaced, &[]);
        assert_ne!(
            stored_text(&spaced, &respaced, false),
            stored_text(USER, &parsed, false)
        );
        assert_eq!(
            stored_text(&spaced, &respaced, true),
            stored_text(USER, &parsed, true)
        );
    }

    #[test]
    fn imports_resolve_against_references_by_name() {
        let address = r#"syntax = "proto3"; package acme; message Address { string city = 1; }"#;
        let person = r#"syntax = "proto3"; package acme; import "acme/address.proto";
                        message Person { Address home = 1; }"#;
        assert!(parse(person, &[]).is_err());
        let references = [("acme/address.proto".to_string(), address.to_string())];
        parse_ok(person, &references);
        // A reference may be a serialized descriptor, as confluent-kafka registers them.
        let address_serialized = serialized(&parse_ok(address, &[]));
        parse_ok(
            person,
            &[("acme/address.proto".to_string(), address_serialized)],
        );
        // The reference's name is the import path: another name does not resolve it.
        assert!(
            parse(
                person,
                &[("address.proto".to_string(), address.to_string())]
            )
            .is_err()
        );
    }

    #[test]
    fn bad_schemas_are_errors() {
        let deep = format!(
            "syntax = \"proto3\"; {} {}",
            "message M { ".repeat(1_000),
            "}".repeat(1_000)
        );
        for bad in [
            "message",
            "syntax = \"proto3\"; message A { int32 a = 1; int32 b = 1; }",
            "syntax = \"proto3\"; message A { Missing m = 1; }",
            "syntax = \"proto3\"; message A { int32 a = 0; }",
            "syntax = \"proto4\";",
            "syntax = \"proto3\"; import \"nowhere.proto\";",
            "syntax = \"proto3\"; message A {} message A {}",
            "AAAA",
            "!!notbase64",
            &deep,
        ] {
            assert!(parse(bad, &[]).is_err(), "{bad}");
        }
    }

    /// Goal: a truncated or corrupted schema, as text or serialized, is an error from the
    /// parser or linker itself, never a panic (caught or not) or a hang. Method: every prefix
    /// of a schema's text and of its descriptor's bytes, and every byte of the descriptor
    /// flipped.
    #[test]
    fn damaged_schemas_are_errors_not_panics() {
        let outcome = |text: &str| {
            if let Err(err) = parse(text, &[]) {
                assert_ne!(err, "the schema could not be parsed", "{text}");
            }
        };
        for (idx, _) in USER.char_indices() {
            outcome(&USER[..idx]);
        }
        let bytes = STANDARD.decode(serialized(&parse_ok(USER, &[]))).unwrap();
        for len in 0..bytes.len() {
            outcome(&STANDARD.encode(&bytes[..len]));
        }
        for idx in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[idx] ^= 0xff;
            outcome(&STANDARD.encode(&damaged));
        }
    }

    #[test]
    fn json_names_are_lower_camel_case() {
        assert_eq!(default_json_name("created_at_ms"), "createdAtMs");
        assert_eq!(default_json_name("id"), "id");
    }
}
