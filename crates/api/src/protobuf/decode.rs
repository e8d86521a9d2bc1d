//! Decoding one message into its JSON object, driven by the generated schema.

use base64::Engine;
use serde_json::{Map, Value};

use super::schema::MESSAGES;
use super::table::{Field, Label, Type};
use super::wire::{Records, WireValue, malformed, read_varint};
use crate::error::ApiResult;

/// Deeper than any Kubernetes object nests; bounds the recursion on hostile input.
const MAX_DEPTH: usize = 64;

/// Decodes the message at `index` in [`MESSAGES`] from `bytes`.
pub fn message(index: u16, bytes: &[u8], depth: usize) -> ApiResult<Map<String, Value>> {
    if depth > MAX_DEPTH {
        return Err(malformed("messages nested too deeply"));
    }
    let fields = MESSAGES[usize::from(index)];
    let mut object = Map::new();
    for record in Records::new(bytes) {
        let (tag, wire) = record?;
        // Fields newer than the schema are skipped, as Go's decoder does.
        let Some(field) = fields.iter().find(|f| f.tag == tag) else {
            continue;
        };
        match field.label {
            Label::Optional => {
                let value = value(field.ty, wire, depth)?;
                if is_set(&value) {
                    object.insert(field.json.to_owned(), value);
                }
            }
            Label::Repeated => {
                let Value::Array(list) = object
                    .entry(field.json)
                    .or_insert_with(|| Value::Array(Vec::new()))
                else {
                    return Err(malformed("a list field that is also a single value"));
                };
                push_elements(list, field, wire, depth)?;
            }
            Label::Inline => {
                let Type::Message(embedded) = field.ty else {
                    unreachable!("only messages are inlined")
                };
                let WireValue::Bytes(bytes) = wire else {
                    return Err(malformed(
                        "an embedded message that is not length-delimited",
                    ));
                };
                object.extend(message(embedded, bytes, depth + 1)?);
            }
            Label::Map => {
                let Value::Object(map) = object
                    .entry(field.json)
                    .or_insert_with(|| Value::Object(Map::new()))
                else {
                    return Err(malformed("a map field that is also a single value"));
                };
                let (key, value) = map_entry(field.ty, wire, depth)?;
                map.insert(key, value);
            }
        }
    }
    Ok(object)
}

/// Go's encoder writes non-pointer fields even when empty, so an empty string
/// on the wire is Go's zero value, which JSON leaves out (`omitempty`); a
/// zero Time is the one message Go writes as nothing and JSON as `null`.
/// Numbers and booleans are kept: the wire cannot tell a pointer set to zero
/// (`replicas: 0`, which matters) from a non-pointer zero (`hostPort: 0`,
/// which Go treats as unset either way).
fn is_set(value: &Value) -> bool {
    !matches!(value, Value::Null) && value.as_str() != Some("")
}

/// Appends one record of a repeated field: one element, or for a packed
/// list of numbers, all of them.
fn push_elements(
    list: &mut Vec<Value>,
    field: &Field,
    wire: WireValue,
    depth: usize,
) -> ApiResult<()> {
    match (field.ty, wire) {
        (Type::Int32 | Type::Int64 | Type::Bool, WireValue::Bytes(mut packed)) => {
            while !packed.is_empty() {
                let number = read_varint(&mut packed)?;
                list.push(value(field.ty, WireValue::Varint(number), depth)?);
            }
        }
        _ => list.push(value(field.ty, wire, depth)?),
    }
    Ok(())
}

/// A map entry is a message with the key as field 1 and the value as field 2;
/// either may be left out when it is the zero value.
fn map_entry(ty: Type, wire: WireValue, depth: usize) -> ApiResult<(String, Value)> {
    let mut key = String::new();
    let mut entry_value = None;
    for record in Records::new(bytes(wire)?) {
        match record? {
            (1, wire) => key = string(wire)?,
            (2, wire) => entry_value = Some(value(ty, wire, depth)?),
            _ => {}
        }
    }
    let entry_value = match entry_value {
        Some(v) => v,
        None => value(ty, WireValue::Bytes(&[]), depth)?,
    };
    Ok((key, entry_value))
}

/// The JSON form of one value of type `ty`.
fn value(ty: Type, wire: WireValue, depth: usize) -> ApiResult<Value> {
    Ok(match ty {
        Type::String => Value::String(string(wire)?),
        Type::Bytes => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes(wire)?))
        }
        Type::Int32 => Value::from(varint(wire)? as i32),
        Type::Int64 => Value::from(varint(wire)? as i64),
        Type::Bool => Value::Bool(varint(wire)? != 0),
        Type::Message(index) => Value::Object(message(index, bytes(wire)?, depth + 1)?),
        Type::Time => time(wire, false)?,
        Type::MicroTime => time(wire, true)?,
        Type::IntOrString => int_or_string(wire)?,
        Type::Quantity => {
            let quantity = field(wire, 1)?.map(string).transpose()?;
            Value::String(quantity.unwrap_or_default())
        }
        Type::RawExtension | Type::FieldsV1 => match field(wire, 1)? {
            Some(raw) if !bytes(raw)?.is_empty() => serde_json::from_slice(bytes(raw)?)
                .map_err(|e| malformed(&format!("embedded JSON: {e}")))?,
            _ => Value::Null,
        },
    })
}

fn varint(wire: WireValue) -> ApiResult<u64> {
    match wire {
        WireValue::Varint(n) => Ok(n),
        _ => Err(malformed("a number that is not a varint")),
    }
}

fn bytes(wire: WireValue<'_>) -> ApiResult<&[u8]> {
    match wire {
        WireValue::Bytes(b) => Ok(b),
        _ => Err(malformed(
            "a string, bytes or message that is not length-delimited",
        )),
    }
}

pub fn string(wire: WireValue) -> ApiResult<String> {
    let text =
        std::str::from_utf8(bytes(wire)?).map_err(|_| malformed("a string that is not UTF-8"))?;
    Ok(text.to_owned())
}

/// The last record numbered `tag` of the message in `wire`: the small
/// apimachinery messages read their few fields this way.
fn field(wire: WireValue, tag: u32) -> ApiResult<Option<WireValue>> {
    let mut found = None;
    for record in Records::new(bytes(wire)?) {
        let (number, value) = record?;
        if number == tag {
            found = Some(value);
        }
    }
    Ok(found)
}

/// `metav1.Time` (`seconds` = 1, `nanos` = 2) as RFC 3339 in UTC: whole
/// seconds for Time, microseconds for MicroTime. Go writes the zero Time as an
/// empty message and JSON as `null`.
fn time(wire: WireValue, micro: bool) -> ApiResult<Value> {
    let seconds = field(wire, 1)?.map(varint).transpose()?;
    let nanos = field(wire, 2)?.map(varint).transpose()?;
    if seconds.is_none() && nanos.is_none() {
        return Ok(Value::Null);
    }
    let seconds = seconds.unwrap_or(0) as i64;
    let nanos = nanos.unwrap_or(0) as i32;
    let timestamp =
        jiff::Timestamp::new(seconds, nanos).map_err(|_| malformed("a time out of range"))?;
    let whole = timestamp.strftime("%Y-%m-%dT%H:%M:%S");
    Ok(Value::String(if micro {
        format!("{whole}.{:06}Z", timestamp.subsec_microsecond())
    } else {
        format!("{whole}Z")
    }))
}

/// `intstr.IntOrString` (`type` = 1: 0 for int, 1 for string; `intVal` = 2;
/// `strVal` = 3) as a JSON number or string.
fn int_or_string(wire: WireValue) -> ApiResult<Value> {
    if field(wire, 1)?.map(varint).transpose()? == Some(1) {
        let text = field(wire, 3)?.map(string).transpose()?;
        Ok(Value::String(text.unwrap_or_default()))
    } else {
        let number = field(wire, 2)?.map(varint).transpose()?;
        Ok(Value::from(number.unwrap_or(0) as i32))
    }
}
