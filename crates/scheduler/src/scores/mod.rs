//! Scores: among the nodes that can take the pod, which suits it best.
//! Each scorer gives every feasible node 0 to 100 (some after normalizing
//! across the nodes, as kube-scheduler does); their sum, weighted as
//! kube-scheduler's default profile weighs them, decides, and ties are
//! broken at random so that equal nodes share the load.
//!
//! - `resources`: least allocated (weight 1) and balanced allocation (1);
//! - `images`: image locality (1);
//! - `affinity`: preferred node affinity (2) and preferred pod affinity
//!   and anti-affinity (2);
//! - `taints`: untolerated PreferNoSchedule taints (3);
//! - `spread`: spreading by topology, a controller's pods by default (2).

mod affinity;
mod images;
mod resources;
mod spread;
mod taints;

use crate::cache::{Cache, NodeInfo};
use crate::pod::PodInfo;

pub use images::node_images;

const MAX_SCORE: i64 = 100;

/// The best of `feasible` (which is not empty) for `pod`.
pub fn best<'a>(pod: &PodInfo, feasible: &[&'a NodeInfo], cache: &Cache) -> &'a NodeInfo {
    let totals = totals(pod, feasible, cache);
    let mut best = 0;
    let mut ties = 0;
    for (i, total) in totals.iter().enumerate() {
        if *total > totals[best] {
            (best, ties) = (i, 1);
        } else if *total == totals[best] {
            ties += 1;
            if fastrand::usize(..ties) == 0 {
                best = i;
            }
        }
    }
    feasible[best]
}

/// Each feasible node's weighted sum of scores.
fn totals(pod: &PodInfo, feasible: &[&NodeInfo], cache: &Cache) -> Vec<i64> {
    let mut totals: Vec<i64> = feasible
        .iter()
        .map(|n| resources::least_allocated(pod, n) + resources::balanced_allocation(pod, n))
        .collect();
    let mut add = |weight: i64, scores: Vec<i64>| {
        for (total, score) in totals.iter_mut().zip(scores) {
            *total += weight * score;
        }
    };

    let images = images::ImageSpread::count(pod, cache);
    add(1, feasible.iter().map(|n| images.score(pod, n)).collect());

    let preferred = feasible
        .iter()
        .map(|n| affinity::preferred_nodes(pod, n))
        .collect();
    add(2, scale_to_max(preferred));

    let company = affinity::Company::count(pod, cache);
    add(
        2,
        scale_min_max(feasible.iter().map(|n| company.score(n)).collect()),
    );

    let intolerable = feasible
        .iter()
        .map(|n| taints::intolerable(pod, n))
        .collect();
    add(3, reverse_scale_to_max(intolerable));

    let spreading = spread::Spreading::count(pod, cache);
    if !spreading.is_empty() {
        add(2, spreading.scores(pod, feasible));
    }
    totals
}

/// `raw * 100 / max`; all 0 when the max is 0.
fn scale_to_max(raw: Vec<i64>) -> Vec<i64> {
    let max = raw.iter().copied().max().unwrap_or(0);
    raw.into_iter()
        .map(|s| if max > 0 { s * MAX_SCORE / max } else { 0 })
        .collect()
}

/// As [`scale_to_max`], then reversed: the lowest raw scores best.
fn reverse_scale_to_max(raw: Vec<i64>) -> Vec<i64> {
    scale_to_max(raw)
        .into_iter()
        .map(|s| MAX_SCORE - s)
        .collect()
}

/// The range of the raw scores onto 0..100; all 0 when they are equal.
fn scale_min_max(raw: Vec<i64>) -> Vec<i64> {
    let max = raw.iter().copied().max().unwrap_or(0);
    let min = raw.iter().copied().min().unwrap_or(0);
    raw.into_iter()
        .map(|s| {
            if max > min {
                MAX_SCORE * (s - min) / (max - min)
            } else {
                0
            }
        })
        .collect()
}
