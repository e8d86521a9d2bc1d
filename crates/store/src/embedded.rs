//! The embedded backend: one redb file in the data dir.
