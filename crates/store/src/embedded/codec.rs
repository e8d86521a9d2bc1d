//! The byte layout of stored key-values and events.
//!
//! A key-value record is four little-endian i64s (create revision, mod
//! revision, version, lease) followed by the value; the key itself is the table
//! key. An event list holds every event of one revision, each as a kind byte,
//! the key, the new record and the optional previous record.

use crate::{Event, EventKind, KeyValue, StoreError};

const HEADER: usize = 32;

pub fn encode_kv(kv: &KeyValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + kv.value.len());
    put_kv(&mut out, kv);
    out
}

fn put_kv(out: &mut Vec<u8>, kv: &KeyValue) {
    for n in [kv.create_revision, kv.mod_revision, kv.version, kv.lease] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    out.extend_from_slice(&kv.value);
}

pub fn decode_kv(key: &str, bytes: &[u8]) -> Result<KeyValue, StoreError> {
    if bytes.len() < HEADER {
        return Err(corrupt("key-value record"));
    }
    let field = |i: usize| i64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap());
    Ok(KeyValue {
        key: key.to_owned(),
        value: bytes[HEADER..].to_vec(),
        create_revision: field(0),
        mod_revision: field(1),
        version: field(2),
        lease: field(3),
    })
}

pub fn encode_events(events: &[Event]) -> Vec<u8> {
    let mut out = Vec::new();
    for event in events {
        out.push(match event.kind {
            EventKind::Put => 0,
            EventKind::Delete => 1,
        });
        put_chunk(&mut out, event.kv.key.as_bytes());
        put_chunk(&mut out, &encode_kv(&event.kv));
        match &event.prev_kv {
            Some(prev) => {
                out.push(1);
                put_chunk(&mut out, &encode_kv(prev));
            }
            None => out.push(0),
        }
    }
    out
}

pub fn decode_events(mut bytes: &[u8]) -> Result<Vec<Event>, StoreError> {
    let mut events = Vec::new();
    while !bytes.is_empty() {
        let kind = match take_byte(&mut bytes)? {
            0 => EventKind::Put,
            1 => EventKind::Delete,
            _ => return Err(corrupt("event kind")),
        };
        let key = std::str::from_utf8(take_chunk(&mut bytes)?)
            .map_err(|_| corrupt("event key"))?
            .to_owned();
        let kv = decode_kv(&key, take_chunk(&mut bytes)?)?;
        let prev_kv = match take_byte(&mut bytes)? {
            0 => None,
            _ => Some(decode_kv(&key, take_chunk(&mut bytes)?)?),
        };
        events.push(Event { kind, kv, prev_kv });
    }
    Ok(events)
}

fn put_chunk(out: &mut Vec<u8>, chunk: &[u8]) {
    out.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
    out.extend_from_slice(chunk);
}

fn take_byte(bytes: &mut &[u8]) -> Result<u8, StoreError> {
    let (&first, rest) = bytes.split_first().ok_or_else(|| corrupt("event list"))?;
    *bytes = rest;
    Ok(first)
}

fn take_chunk<'a>(bytes: &mut &'a [u8]) -> Result<&'a [u8], StoreError> {
    if bytes.len() < 4 {
        return Err(corrupt("event list"));
    }
    let len = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
    let rest = &bytes[4..];
    if rest.len() < len {
        return Err(corrupt("event list"));
    }
    let (chunk, rest) = rest.split_at(len);
    *bytes = rest;
    Ok(chunk)
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Io(format!("corrupt {what} in the store file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &[u8], rev: i64) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.into(),
            create_revision: 2,
            mod_revision: rev,
            version: rev - 1,
            lease: 7,
        }
    }

    #[test]
    fn events_round_trip() {
        let events = vec![
            Event {
                kind: EventKind::Put,
                kv: kv("/a", b"new", 5),
                prev_kv: Some(kv("/a", b"old", 4)),
            },
            Event {
                kind: EventKind::Delete,
                kv: kv("/b", b"", 5),
                prev_kv: None,
            },
        ];
        assert_eq!(decode_events(&encode_events(&events)).unwrap(), events);
    }

    #[test]
    fn truncated_records_are_errors_not_panics() {
        let bytes = encode_events(&[Event {
            kind: EventKind::Put,
            kv: kv("/a", b"value", 3),
            prev_kv: None,
        }]);
        for len in 1..bytes.len() {
            assert!(decode_events(&bytes[..len]).is_err(), "cut at {len}");
        }
    }
}
