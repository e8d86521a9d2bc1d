//! The tables of the store file and the bookkeeping kept in them.

use redb::{MultimapTableDefinition, ReadableTable, TableDefinition};

use crate::{Revision, StoreError};

/// Every live key and its latest value (a [`super::codec`] record).
pub const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("keys");
/// Revision -> every event of that revision, kept until compaction. Together
/// with [`KEYS`] this is the MVCC history: an older revision is read by undoing
/// the events after it.
pub const EVENTS: TableDefinition<i64, &[u8]> = TableDefinition::new("events");
/// Lease id -> TTL in milliseconds.
pub const LEASES: TableDefinition<i64, u64> = TableDefinition::new("leases");
/// Lease id -> the keys attached to it.
pub const LEASE_KEYS: MultimapTableDefinition<i64, &str> =
    MultimapTableDefinition::new("lease_keys");
/// Named counters, see [`Meta`].
pub const META: TableDefinition<&str, i64> = TableDefinition::new("meta");

/// The store-wide counters kept in [`META`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Meta {
    Revision,
    Compacted,
    NextLease,
}

impl Meta {
    fn name(self) -> &'static str {
        match self {
            Meta::Revision => "revision",
            Meta::Compacted => "compacted",
            Meta::NextLease => "next_lease",
        }
    }

    /// Every counter starts at 1: the empty store is at revision 1, like etcd.
    pub fn get(self, table: &impl ReadableTable<&'static str, i64>) -> Result<i64, StoreError> {
        Ok(table.get(self.name()).map_err(io)?.map_or(1, |v| v.value()))
    }

    pub fn set(
        self,
        table: &mut redb::Table<&str, i64>,
        value: Revision,
    ) -> Result<(), StoreError> {
        table.insert(self.name(), value).map_err(io)?;
        Ok(())
    }
}

/// Any storage failure becomes [`StoreError::Io`].
pub fn io(err: impl Into<redb::Error>) -> StoreError {
    StoreError::Io(err.into().to_string())
}

/// Creates every table so that read transactions can open them.
pub fn create_all(db: &redb::Database) -> Result<(), StoreError> {
    let write = db.begin_write().map_err(io)?;
    write.open_table(KEYS).map_err(io)?;
    write.open_table(EVENTS).map_err(io)?;
    write.open_table(LEASES).map_err(io)?;
    write.open_multimap_table(LEASE_KEYS).map_err(io)?;
    write.open_table(META).map_err(io)?;
    write.commit().map_err(io)
}
