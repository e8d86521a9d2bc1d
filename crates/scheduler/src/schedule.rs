//! One scheduling attempt: filter every node, score those left, pick the best.

use crate::cache::Cache;
use crate::filters;
use crate::messages::FitError;
use crate::pod::PodInfo;
use crate::scores;
use crate::volumes::Volumes;

/// The node `pod` should go to, or why there is none.
pub fn find_node(pod: &PodInfo, cache: &Cache, volumes: &Volumes) -> Result<String, FitError> {
    let prepared = filters::Prepared::new(pod, cache, volumes)
        .map_err(|why| FitError::before_filters(cache.nodes().count(), why))?;
    let mut unfit = Vec::new();
    let mut feasible = Vec::new();
    for node in cache.nodes() {
        match prepared.check(pod, node) {
            Ok(()) => feasible.push(node),
            Err(why) => unfit.push(why),
        }
    }
    if feasible.is_empty() {
        return Err(FitError::without_victims(unfit));
    }
    Ok(scores::best(pod, &feasible, cache).name().to_owned())
}
