//! Protobuf compatibility: can data written with the writer's schema be read with the
//! reader's schema? The answer is the list of reasons it may not be (empty: it can). The
//! rules are Confluent Schema Registry's for Protobuf: the registry lists the differences
//! from the writer's file (the original) to the reader's (the update) and refuses the
//! kinds Confluent counts as incompatible. Each reason starts with Confluent's name for the
//! difference:
//!
//! - The file: PACKAGE_CHANGED; a change of `syntax` (proto2/proto3: field presence and
//!   enum semantics differ) is refused too (SYNTAX_CHANGED).
//! - Messages, top-level and nested, are matched by name within the package. A message of
//!   the writer the reader lacks is MESSAGE_REMOVED (a renamed or moved message counts as
//!   removed); one only the reader has is compatible (so under FORWARD, where the roles
//!   swap, adding a message is not).
//! - Fields are matched by number, since the number is what the wire carries. A field
//!   added or removed is compatible (protobuf readers skip unknown fields and default
//!   missing ones), a renamed one too, and so a renumbered field is a removal plus an
//!   addition. A `required` field (proto2) may not be added or removed
//!   (REQUIRED_FIELD_ADDED, REQUIRED_FIELD_REMOVED), nor may an optional field become
//!   required.
//! - A field's kind: scalar, message or enum may not change into another, nor a group
//!   (proto2) into a message field (FIELD_KIND_CHANGED);
//!   a message or enum field must keep its type's name (FIELD_NAMED_TYPE_CHANGED); a scalar
//!   may change only within the groups protobuf keeps wire-compatible (int32, uint32,
//!   int64, uint64 and bool; sint32 and sint64; fixed32 and sfixed32; fixed64 and
//!   sfixed64; string and bytes), else FIELD_SCALAR_KIND_CHANGED.
//! - A field's label: optional and repeated may swap for string, bytes and message fields
//!   (a reader of one takes the last, or the merge, of many), not for numeric ones
//!   (FIELD_NUMERIC_LABEL_CHANGED: packed repeated numbers do not parse as one value).
//! - Oneofs, matched by name: adding or removing a whole oneof is compatible, and so is
//!   moving one field into a new oneof; moving several existing fields into a new oneof
//!   (MULTIPLE_FIELDS_MOVED_TO_ONEOF) or any field into an existing oneof
//!   (FIELD_MOVED_TO_EXISTING_ONEOF) is not, nor is taking a field out of a oneof that
//!   stays (ONEOF_FIELD_REMOVED). proto3 `optional` (a synthetic oneof) is a plain field.
//! - Enums and their values may be added, removed or renamed, as in Confluent: proto3
//!   readers keep unknown values, and a field whose enum type changes is caught above.
//!
//! Only the schema's own file is compared: imported files are compared when their own
//! subjects evolve, and a field naming an imported type is compared by the type's name. A
//! check visits at most [`CHECK_STEPS_MAX`] fields and messages and answers TOO_COMPLEX
//! past that.

use std::collections::{BTreeMap, HashMap};

use prost_reflect::{Cardinality, FieldDescriptor, Kind, MessageDescriptor, OneofDescriptor};

use super::protobuf::ParsedProtobuf;

/// Fields and messages one check visits at most.
const CHECK_STEPS_MAX: usize = 100_000;
/// Reasons reported at most (the first ones; a long list helps nobody).
const MESSAGES_MAX: usize = 20;
const TOO_COMPLEX: &str = "TOO_COMPLEX: the schemas are too large to compare";

/// The reasons data written with `writer` may not be read with `reader` (empty: it can).
pub(super) fn can_read(reader: &ParsedProtobuf, writer: &ParsedProtobuf) -> Vec<String> {
    can_read_bounded(reader, writer, CHECK_STEPS_MAX)
}

/// `can_read` with at most `steps_max` visits. (A schema within
/// `--schema-registry-max-schema-bytes` rarely comes near [`CHECK_STEPS_MAX`]: the work is
/// linear in the schemas' size, and the bound is there so that it stays so.)
fn can_read_bounded(
    reader: &ParsedProtobuf,
    writer: &ParsedProtobuf,
    steps_max: usize,
) -> Vec<String> {
    let mut checker = Checker {
        messages: Vec::new(),
        steps: 0,
        steps_max,
    };
    checker.check_file(reader, writer);
    if checker.steps > steps_max && !checker.messages.iter().any(|m| m.starts_with(TOO_COMPLEX)) {
        checker.messages.push(TOO_COMPLEX.to_string());
    }
    checker.messages
}

/// The messages of a file, nested ones included, by name within the package.
fn messages_by_name(parsed: &ParsedProtobuf) -> BTreeMap<String, MessageDescriptor> {
    let package = parsed.file.package_name();
    let mut found = BTreeMap::new();
    let mut pending: Vec<MessageDescriptor> = parsed.file.messages().collect();
    while let Some(message) = pending.pop() {
        pending.extend(message.child_messages());
        found.insert(local_name(package, message.full_name()), message);
    }
    found
}

/// A full name without its package (types of other packages keep their full name).
fn local_name(package: &str, full_name: &str) -> String {
    if package.is_empty() {
        return full_name.to_string();
    }
    full_name
        .strip_prefix(package)
        .and_then(|rest| rest.strip_prefix('.'))
        .unwrap_or(full_name)
        .to_string()
}

/// A field's kind as the rules see it.
#[derive(Debug, PartialEq, Eq)]
enum FieldKind {
    Scalar(Kind),
    Message(String),
    Enum(String),
}

impl FieldKind {
    fn of(field: &FieldDescriptor) -> FieldKind {
        let package = field.parent_message().package_name().to_string();
        match field.kind() {
            Kind::Message(message) => FieldKind::Message(local_name(&package, message.full_name())),
            Kind::Enum(enumeration) => {
                FieldKind::Enum(local_name(&package, enumeration.full_name()))
            }
            scalar => FieldKind::Scalar(scalar),
        }
    }

    fn category(&self) -> &'static str {
        match self {
            FieldKind::Scalar(_) => "a scalar",
            FieldKind::Message(_) => "a message",
            FieldKind::Enum(_) => "an enum",
        }
    }

    /// Whether optional and repeated may swap: a length-delimited value read as one or many.
    fn is_length_delimited(&self) -> bool {
        matches!(
            self,
            FieldKind::Message(_) | FieldKind::Scalar(Kind::String | Kind::Bytes)
        )
    }
}

/// The group of scalar kinds that read each other's values (`None`: only itself).
fn scalar_group(kind: &Kind) -> Option<u8> {
    match kind {
        Kind::Int32 | Kind::Uint32 | Kind::Int64 | Kind::Uint64 | Kind::Bool => Some(0),
        Kind::Sint32 | Kind::Sint64 => Some(1),
        Kind::Fixed32 | Kind::Sfixed32 => Some(2),
        Kind::Fixed64 | Kind::Sfixed64 => Some(3),
        Kind::String | Kind::Bytes => Some(4),
        _ => None,
    }
}

fn scalar_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Double => "double",
        Kind::Float => "float",
        Kind::Int32 => "int32",
        Kind::Int64 => "int64",
        Kind::Uint32 => "uint32",
        Kind::Uint64 => "uint64",
        Kind::Sint32 => "sint32",
        Kind::Sint64 => "sint64",
        Kind::Fixed32 => "fixed32",
        Kind::Fixed64 => "fixed64",
        Kind::Sfixed32 => "sfixed32",
        Kind::Sfixed64 => "sfixed64",
        Kind::Bool => "bool",
        Kind::String => "string",
        Kind::Bytes => "bytes",
        Kind::Message(_) | Kind::Enum(_) => "a named type",
    }
}

/// The oneof a field belongs to, proto3 `optional` (a synthetic oneof) not counted.
fn real_oneof(field: &FieldDescriptor) -> Option<OneofDescriptor> {
    field
        .containing_oneof()
        .filter(|oneof| !oneof.is_synthetic())
}

struct Checker {
    messages: Vec<String>,
    steps: usize,
    steps_max: usize,
}

impl Checker {
    fn report(&mut self, path: &str, message: String) {
        if self.messages.len() < MESSAGES_MAX {
            self.messages.push(format!("{message} at '{path}'"));
        }
    }

    /// Counts one visit; `false` once past the limit (reported once).
    fn step(&mut self, path: &str) -> bool {
        self.steps += 1;
        if self.steps == self.steps_max + 1 {
            self.report(path, TOO_COMPLEX.into());
        }
        self.steps <= self.steps_max
    }

    fn check_file(&mut self, reader: &ParsedProtobuf, writer: &ParsedProtobuf) {
        let (r_package, w_package) = (reader.file.package_name(), writer.file.package_name());
        if r_package != w_package {
            self.report(
                "#",
                format!(
                    "PACKAGE_CHANGED: the reader's package is '{r_package}', the writer's '{w_package}'"
                ),
            );
        }
        let (r_syntax, w_syntax) = (reader.file.syntax(), writer.file.syntax());
        if r_syntax != w_syntax {
            self.report(
                "#",
                format!(
                    "SYNTAX_CHANGED: the reader's syntax is {r_syntax:?}, the writer's {w_syntax:?}"
                ),
            );
        }
        let r_messages = messages_by_name(reader);
        for (name, w_message) in messages_by_name(writer) {
            if !self.step(&name) {
                return;
            }
            match r_messages.get(&name) {
                Some(r_message) => self.check_message(r_message, &w_message, &name),
                None => self.report(
                    &name,
                    "MESSAGE_REMOVED: the reader has no message of this name".into(),
                ),
            }
        }
    }

    fn check_message(
        &mut self,
        reader: &MessageDescriptor,
        writer: &MessageDescriptor,
        path: &str,
    ) {
        let r_fields: HashMap<u32, FieldDescriptor> =
            reader.fields().map(|f| (f.number(), f)).collect();
        let w_fields: HashMap<u32, FieldDescriptor> =
            writer.fields().map(|f| (f.number(), f)).collect();
        for w_field in writer.fields() {
            let at = format!("{path}.{}", w_field.name());
            if !self.step(&at) {
                return;
            }
            match r_fields.get(&w_field.number()) {
                Some(r_field) => self.check_field(r_field, &w_field, &at),
                None if w_field.cardinality() == Cardinality::Required => self.report(
                    &at,
                    format!(
                        "REQUIRED_FIELD_REMOVED: the reader has no field {} and the writer's is required",
                        w_field.number()
                    ),
                ),
                None => {}
            }
        }
        for r_field in reader.fields() {
            if r_field.cardinality() == Cardinality::Required
                && !w_fields.contains_key(&r_field.number())
            {
                self.report(
                    &format!("{path}.{}", r_field.name()),
                    format!(
                        "REQUIRED_FIELD_ADDED: the reader requires field {}, which the writer does not have",
                        r_field.number()
                    ),
                );
            }
        }
        self.check_oneofs(reader, writer, &w_fields, path);
    }

    fn check_field(&mut self, reader: &FieldDescriptor, writer: &FieldDescriptor, path: &str) {
        let (r_kind, w_kind) = (FieldKind::of(reader), FieldKind::of(writer));
        match (&r_kind, &w_kind) {
            (FieldKind::Scalar(r), FieldKind::Scalar(w)) => {
                if r != w && (scalar_group(r).is_none() || scalar_group(r) != scalar_group(w)) {
                    self.report(
                        path,
                        format!(
                            "FIELD_SCALAR_KIND_CHANGED: the reader's {} does not read the writer's {}",
                            scalar_name(r),
                            scalar_name(w)
                        ),
                    );
                }
            }
            (FieldKind::Message(r), FieldKind::Message(w))
            | (FieldKind::Enum(r), FieldKind::Enum(w)) => {
                if r != w {
                    self.report(
                        path,
                        format!(
                            "FIELD_NAMED_TYPE_CHANGED: the reader's type is '{r}', the writer's '{w}'"
                        ),
                    );
                }
            }
            _ => self.report(
                path,
                format!(
                    "FIELD_KIND_CHANGED: the reader's field is {}, the writer's {}",
                    r_kind.category(),
                    w_kind.category()
                ),
            ),
        }
        // A group (proto2) is delimited by start and end tags, a message field by its length:
        // one does not parse as the other, whatever the message type.
        if reader.is_group() != writer.is_group() {
            self.report(
                path,
                "FIELD_KIND_CHANGED: a group became a message field, or the reverse".into(),
            );
        }
        let (r_repeated, w_repeated) = (
            reader.is_list() || reader.is_map(),
            writer.is_list() || writer.is_map(),
        );
        if r_repeated != w_repeated
            && !(r_kind.is_length_delimited() && w_kind.is_length_delimited())
        {
            self.report(
                path,
                "FIELD_NUMERIC_LABEL_CHANGED: a numeric field changed between optional and repeated"
                    .into(),
            );
        }
        if reader.cardinality() == Cardinality::Required
            && writer.cardinality() != Cardinality::Required
        {
            self.report(
                path,
                "REQUIRED_FIELD_ADDED: the reader requires a field the writer may leave out".into(),
            );
        }
    }

    /// Oneofs by name: fields moved into one, and fields taken out of one that stays.
    fn check_oneofs(
        &mut self,
        reader: &MessageDescriptor,
        writer: &MessageDescriptor,
        w_fields: &HashMap<u32, FieldDescriptor>,
        path: &str,
    ) {
        let w_oneofs: HashMap<String, OneofDescriptor> = writer
            .oneofs()
            .filter(|o| !o.is_synthetic())
            .map(|o| (o.name().to_string(), o))
            .collect();
        let r_oneofs: HashMap<String, OneofDescriptor> = reader
            .oneofs()
            .filter(|o| !o.is_synthetic())
            .map(|o| (o.name().to_string(), o))
            .collect();
        for (name, r_oneof) in &r_oneofs {
            let at = format!("{path}.{name}");
            let w_oneof = w_oneofs.get(name);
            let moved: Vec<u32> = r_oneof
                .fields()
                .filter_map(|r_field| {
                    let w_field = w_fields.get(&r_field.number())?;
                    let w_home = real_oneof(w_field).map(|o| o.name().to_string());
                    (w_home.as_deref() != Some(name.as_str())).then_some(r_field.number())
                })
                .collect();
            match (w_oneof, moved.len()) {
                (_, 0) => {}
                (Some(_), _) => self.report(
                    &at,
                    format!(
                        "FIELD_MOVED_TO_EXISTING_ONEOF: field(s) {moved:?} of the writer moved into the reader's oneof"
                    ),
                ),
                // One field into a new oneof: its readers see it set or not, as before.
                (None, 1) => {}
                (None, _) => self.report(
                    &at,
                    format!(
                        "MULTIPLE_FIELDS_MOVED_TO_ONEOF: fields {moved:?} of the writer moved into a new oneof"
                    ),
                ),
            }
        }
        for (name, w_oneof) in &w_oneofs {
            let Some(r_oneof) = r_oneofs.get(name) else {
                continue;
            };
            let kept: Vec<u32> = r_oneof.fields().map(|f| f.number()).collect();
            let removed: Vec<u32> = w_oneof
                .fields()
                .map(|f| f.number())
                .filter(|n| !kept.contains(n))
                .collect();
            if !removed.is_empty() {
                self.report(
                    &format!("{path}.{name}"),
                    format!(
                        "ONEOF_FIELD_REMOVED: field(s) {removed:?} of the writer's oneof are not in the reader's"
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
