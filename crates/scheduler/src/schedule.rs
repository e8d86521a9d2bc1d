//! One scheduling attempt: filter every node, score those left, pick the best.

use crate::cache::Cache;
use crate::filters;
use crate::messages::FitError;
use crate::pod::PodInfo;
use crate::scores;

/// The node `pod` should go to, or why there is none.
pub fn find_node(pod: &PodInfo, cache: &Cache) -> Result<String, FitError> {
    let mut unfit = Vec::new();
    let mut feasible = Vec::new();
    for node in cache.nodes() {
        match filters::check(pod, node) {
            Ok(()) => feasible.push(node),
            Err(why) => unfit.push(why),
        }
    }
    if feasible.is_empty() {
        return Err(FitError::without_victims(unfit));
    }
    Ok(scores::best(pod, &feasible).name().to_owned())
}
