//! The shape of the generated schema in `schema.rs`: which protobuf field
//! number of which message becomes which JSON field, holding what.

/// One field of a message; a message is a list of them (`schema::MESSAGES`).
pub struct Field {
    pub tag: u32,
    /// The JSON field name, e.g. `podIP`.
    pub json: &'static str,
    pub label: Label,
    pub ty: Type,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Label {
    /// A single value.
    Optional,
    /// A JSON array.
    Repeated,
    /// A JSON object keyed by strings, with values of the field's type.
    Map,
    /// A message whose fields are merged into the enclosing object, as Go's
    /// `json:",inline"` does for embedded structs (`Probe`'s `ProbeHandler`).
    Inline,
}

/// What a field holds. The apimachinery types with a JSON form of their own
/// (a timestamp string, a number-or-string, ...) have their own variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    String,
    /// Base64 in JSON, as Go encodes `[]byte`.
    Bytes,
    Int32,
    Int64,
    Bool,
    /// Index into [`super::schema::MESSAGES`].
    Message(u16),
    Time,
    MicroTime,
    IntOrString,
    Quantity,
    RawExtension,
    FieldsV1,
}

/// Builds a single-valued field; short so the generated table stays readable.
pub const fn one(tag: u32, json: &'static str, ty: Type) -> Field {
    Field {
        tag,
        json,
        label: Label::Optional,
        ty,
    }
}

pub const fn list(tag: u32, json: &'static str, ty: Type) -> Field {
    Field {
        tag,
        json,
        label: Label::Repeated,
        ty,
    }
}

pub const fn map(tag: u32, json: &'static str, ty: Type) -> Field {
    Field {
        tag,
        json,
        label: Label::Map,
        ty,
    }
}

pub const fn inline(tag: u32, ty: Type) -> Field {
    Field {
        tag,
        json: "",
        label: Label::Inline,
        ty,
    }
}
