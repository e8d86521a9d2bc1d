//! Range reads at the current or an older revision.
//!
//! [`tables::KEYS`] holds the latest state. The state at an older revision `r`
//! is the latest state with every change after `r` undone: for each key changed
//! after `r`, the `prev_kv` of its first event after `r` is its value at `r`.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::iter::Peekable;

use redb::{AccessGuard, ReadTransaction};

use super::codec;
use super::tables::{self, Meta, io};
use crate::{KeyRange, KeyValue, RangeOptions, RangeResponse, Revision, StoreError};

/// The keys a [`KeyRange`] covers, as a contiguous run starting at `start`.
pub struct Span {
    start: String,
    prefix: String,
    exact: bool,
}

impl Span {
    pub fn new(range: &KeyRange) -> Span {
        match range {
            KeyRange::Key(key) => Span {
                start: key.clone(),
                prefix: key.clone(),
                exact: true,
            },
            KeyRange::Prefix(prefix) => Span {
                start: prefix.clone(),
                prefix: prefix.clone(),
                exact: false,
            },
            KeyRange::PrefixFrom { prefix, start } => Span {
                start: start.max(prefix).clone(),
                prefix: prefix.clone(),
                exact: false,
            },
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        if self.exact {
            key == self.start
        } else {
            key.starts_with(&self.prefix) && key >= self.start.as_str()
        }
    }
}

pub fn range(
    read: &ReadTransaction,
    range: &KeyRange,
    opts: &RangeOptions,
) -> Result<RangeResponse, StoreError> {
    let meta = read.open_table(tables::META).map_err(io)?;
    let current = Meta::Revision.get(&meta)?;
    let compacted = Meta::Compacted.get(&meta)?;
    let at = if opts.revision == 0 {
        current
    } else {
        opts.revision
    };
    if at > current {
        return Err(StoreError::FutureRevision(at));
    }
    if at < compacted {
        return Err(StoreError::Compacted {
            requested: at,
            compacted,
        });
    }
    let span = Span::new(range);
    let undo = changes_after(read, &span, at, current)?;
    let keys = read.open_table(tables::KEYS).map_err(io)?;
    let latest = keys
        .range(span.start.as_str()..)
        .map_err(io)?
        .map(|entry| {
            let (key, record) = entry.map_err(io)?;
            Ok((key.value().to_owned(), record))
        })
        .take_while(|entry| entry.as_ref().map_or(true, |(key, _)| span.contains(key)));

    let mut resp = RangeResponse {
        kvs: Vec::new(),
        more: false,
        count: 0,
        revision: at,
    };
    for found in merge(latest.peekable(), undo.into_iter().peekable()) {
        let found = found?;
        if let Found::AsOf(None) = found {
            continue;
        }
        resp.count += 1;
        if opts.count_only {
            continue;
        }
        if opts.limit == 0 || resp.kvs.len() < opts.limit {
            resp.kvs.extend(found.into_kv()?);
        } else {
            resp.more = true;
        }
    }
    Ok(resp)
}

/// For every key of `span` changed in `(at, current]`: its value at `at`.
fn changes_after(
    read: &ReadTransaction,
    span: &Span,
    at: Revision,
    current: Revision,
) -> Result<BTreeMap<String, Option<KeyValue>>, StoreError> {
    let mut undo = BTreeMap::new();
    if at == current {
        return Ok(undo);
    }
    let events = read.open_table(tables::EVENTS).map_err(io)?;
    for row in events.range(at + 1..=current).map_err(io)? {
        let (_, bytes) = row.map_err(io)?;
        for event in codec::decode_events(bytes.value())? {
            if span.contains(&event.kv.key) {
                undo.entry(event.kv.key).or_insert(event.prev_kv);
            }
        }
    }
    Ok(undo)
}

type Record = AccessGuard<'static, &'static [u8]>;

/// One key of a range at some revision.
enum Found {
    /// Unchanged since: its latest record, decoded only if it is returned.
    Latest(String, Record),
    /// Changed since: its value at the revision read (`None`: it did not exist).
    AsOf(Option<KeyValue>),
}

impl Found {
    fn into_kv(self) -> Result<Option<KeyValue>, StoreError> {
        match self {
            Found::Latest(key, record) => codec::decode_kv(&key, record.value()).map(Some),
            Found::AsOf(kv) => Ok(kv),
        }
    }
}

/// Merges the latest records with the undone changes, both in key order; an
/// undone change replaces the latest record of the same key.
fn merge<L, U>(
    mut latest: Peekable<L>,
    mut undo: Peekable<U>,
) -> impl Iterator<Item = Result<Found, StoreError>>
where
    L: Iterator<Item = Result<(String, Record), StoreError>>,
    U: Iterator<Item = (String, Option<KeyValue>)>,
{
    let next_latest = |latest: &mut Peekable<L>| {
        latest
            .next()
            .map(|entry| entry.map(|(key, record)| Found::Latest(key, record)))
    };
    std::iter::from_fn(move || {
        let latest_key = match latest.peek() {
            Some(Ok((key, _))) => Some(key.as_str()),
            Some(Err(_)) => return next_latest(&mut latest),
            None => None,
        };
        let ordering = match (latest_key, undo.peek()) {
            (None, None) => return None,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(l), Some((u, _))) => l.cmp(u.as_str()),
        };
        match ordering {
            Ordering::Less => next_latest(&mut latest),
            Ordering::Equal => {
                latest.next();
                undo.next().map(|(_, kv)| Ok(Found::AsOf(kv)))
            }
            Ordering::Greater => undo.next().map(|(_, kv)| Ok(Found::AsOf(kv))),
        }
    })
}
