//! One scheduling attempt: filter every node, score those left, pick the
//! best; when none is left, see whether evicting lower-priority pods would
//! make room.

use crate::cache::Cache;
use crate::filters;
use crate::messages::FitError;
use crate::pod::PodInfo;
use crate::preemption::{self, Plan};
use crate::scores;
use crate::volumes::Volumes;

pub enum Decision {
    Bind(String),
    /// Evict the plan's victims; the pod waits for the room they leave.
    Preempt(Plan, FitError),
    Unschedulable(FitError),
}

/// What to do with `pod`.
pub fn decide(pod: &PodInfo, cache: &Cache, volumes: &Volumes) -> Decision {
    let prepared = match filters::Prepared::new(pod, cache, volumes) {
        Ok(prepared) => prepared,
        Err(why) => {
            return Decision::Unschedulable(FitError::before_filters(cache.nodes().count(), why));
        }
    };
    let mut refused = Vec::new();
    let mut feasible = Vec::new();
    for node in cache.nodes() {
        match prepared.check(pod, &cache.with_nominated(pod, node)) {
            Ok(()) => feasible.push(node),
            Err(why) => refused.push((node, why)),
        }
    }
    if !feasible.is_empty() {
        return Decision::Bind(scores::best(pod, &feasible, cache).name().to_owned());
    }
    let unfit = || {
        refused
            .iter()
            .map(|(_, why)| why.clone())
            .collect::<Vec<_>>()
    };
    if let Some(why) = preemption::ineligible(pod) {
        return Decision::Unschedulable(FitError::not_preempting(unfit(), why));
    }
    let refused_refs: Vec<_> = refused.iter().map(|(n, why)| (*n, why)).collect();
    match preemption::plan(pod, &prepared, &refused_refs) {
        Some(plan) => Decision::Preempt(plan, FitError::preempting(unfit())),
        None => Decision::Unschedulable(FitError::without_victims(unfit())),
    }
}
