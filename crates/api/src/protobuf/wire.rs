//! The protobuf wire format: a message is a sequence of (field number, value)
//! records. Only the encodings Kubernetes uses are accepted; anything else,
//! and any truncation, is a bad request.

use crate::error::{ApiError, ApiResult};

/// One record's value, still undecoded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WireValue<'a> {
    Varint(u64),
    /// A 32- or 64-bit number: Kubernetes types have none, so only skipped.
    Fixed,
    /// Strings, bytes, nested messages, packed lists, map entries.
    Bytes(&'a [u8]),
}

/// Reads the records of one message in order.
pub struct Records<'a> {
    buf: &'a [u8],
}

impl<'a> Records<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn varint(&mut self) -> ApiResult<u64> {
        read_varint(&mut self.buf)
    }

    fn take(&mut self, n: usize) -> ApiResult<&'a [u8]> {
        if self.buf.len() < n {
            return Err(malformed("a field runs past the end of its message"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn record(&mut self) -> ApiResult<(u32, WireValue<'a>)> {
        let key = self.varint()?;
        let tag = u32::try_from(key >> 3)
            .ok()
            .filter(|tag| *tag != 0)
            .ok_or_else(|| malformed("a field number out of range"))?;
        let value = match key & 7 {
            0 => WireValue::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                WireValue::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| malformed("a length out of range"))?;
                WireValue::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                WireValue::Fixed
            }
            other => return Err(malformed(&format!("unsupported wire type {other}"))),
        };
        Ok((tag, value))
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = ApiResult<(u32, WireValue<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        Some(self.record())
    }
}

/// Reads one base-128 varint from the front of `buf`.
pub fn read_varint(buf: &mut &[u8]) -> ApiResult<u64> {
    let mut value = 0u64;
    for (i, byte) in buf.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Ok(value);
        }
    }
    Err(malformed("a truncated or overlong varint"))
}

pub fn malformed(what: &str) -> ApiError {
    ApiError::bad_request(format!("malformed protobuf body: {what}"))
}
