//! Lease countdowns, kept in memory; the TTLs themselves are in the file.

use std::collections::HashMap;
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable};

use super::EmbeddedStore;
use super::apply::LeaseChange;
use super::tables::{self, io};
use crate::{LeaseId, Store, StoreError};

/// How often expired leases are looked for.
const EXPIRY_CHECK: Duration = Duration::from_millis(500);

struct Countdown {
    ttl: Duration,
    deadline: Instant,
}

pub struct Leases {
    countdowns: Mutex<HashMap<LeaseId, Countdown>>,
}

impl Leases {
    /// Every stored lease, each with its full TTL from now (like etcd after a
    /// restart).
    pub fn load(db: &Database) -> Result<Leases, StoreError> {
        let read = db.begin_read().map_err(io)?;
        let now = Instant::now();
        let mut countdowns = HashMap::new();
        for row in read
            .open_table(tables::LEASES)
            .map_err(io)?
            .iter()
            .map_err(io)?
        {
            let (id, ttl_ms) = row.map_err(io)?;
            let ttl = Duration::from_millis(ttl_ms.value());
            countdowns.insert(
                id.value(),
                Countdown {
                    ttl,
                    deadline: now + ttl,
                },
            );
        }
        Ok(Leases {
            countdowns: Mutex::new(countdowns),
        })
    }

    /// Mirrors a committed grant or revoke.
    pub fn apply(&self, change: LeaseChange) {
        let mut countdowns = self.countdowns.lock().unwrap();
        match change {
            LeaseChange::Granted(id, ttl) => {
                countdowns.insert(
                    id,
                    Countdown {
                        ttl,
                        deadline: Instant::now() + ttl,
                    },
                );
            }
            LeaseChange::Revoked(id) => {
                countdowns.remove(&id);
            }
        }
    }

    /// Restarts the countdown of a lease that has not expired yet.
    pub fn keep_alive(&self, id: LeaseId) -> Result<Duration, StoreError> {
        let mut countdowns = self.countdowns.lock().unwrap();
        let now = Instant::now();
        match countdowns.get_mut(&id) {
            Some(countdown) if countdown.deadline > now => {
                countdown.deadline = now + countdown.ttl;
                Ok(countdown.ttl)
            }
            _ => Err(StoreError::LeaseNotFound(id)),
        }
    }

    fn expired(&self) -> Vec<LeaseId> {
        let now = Instant::now();
        let countdowns = self.countdowns.lock().unwrap();
        countdowns
            .iter()
            .filter(|(_, countdown)| countdown.deadline <= now)
            .map(|(id, _)| *id)
            .collect()
    }
}

/// Revokes expired leases until the store is dropped.
pub fn spawn_expiry(store: Weak<EmbeddedStore>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EXPIRY_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(store) = store.upgrade() else { return };
            for id in store.leases.expired() {
                match store.lease_revoke(id).await {
                    Ok(()) | Err(StoreError::LeaseNotFound(_)) => {}
                    Err(err) => {
                        tracing::warn!(lease = id, error = %err, "revoking an expired lease")
                    }
                }
            }
        }
    });
}
