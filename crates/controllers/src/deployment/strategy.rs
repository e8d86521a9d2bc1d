//! How a Deployment moves its pods from old ReplicaSets to the new one:
//! RollingUpdate (a few at a time, within maxSurge and maxUnavailable),
//! Recreate (all old pods gone before any new one), and, while paused,
//! scaling only. Each step scales at most a few ReplicaSets and returns;
//! their changes bring the next pass.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::sets::{self, Sets, available, replicas, scale, staying_available};
use super::{Context, spec_of};

/// maxSurge and maxUnavailable as pod counts for this Deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fenceposts {
    pub surge: i32,
    pub unavailable: i32,
}

/// maxSurge rounds up and maxUnavailable down, and both zero would let
/// nothing move, so unavailable becomes one then, as Kubernetes resolves
/// them. Only RollingUpdate has them; Recreate has neither.
pub fn fenceposts(deployment: &Deployment) -> Fenceposts {
    let spec = spec_of(deployment);
    let replicas = spec.replicas.unwrap_or(1);
    let rolling = spec.strategy.as_ref().and_then(|s| {
        (s.type_.as_deref() != Some("Recreate")).then_some(s.rolling_update.as_ref())
    });
    let Some(rolling) = rolling else {
        return RECREATE;
    };
    let quarter = IntOrString::String("25%".into());
    let surge_spec = rolling
        .and_then(|r| r.max_surge.as_ref())
        .unwrap_or(&quarter);
    let unavailable_spec = rolling
        .and_then(|r| r.max_unavailable.as_ref())
        .unwrap_or(&quarter);
    let surge = scaled(surge_spec, replicas, true);
    let unavailable = scaled(unavailable_spec, replicas, false);
    Fenceposts {
        surge,
        unavailable: if surge == 0 && unavailable == 0 {
            1
        } else {
            unavailable
        },
    }
}

/// An int, or a percentage of `total` rounded up or down.
fn scaled(value: &IntOrString, total: i32, round_up: bool) -> i32 {
    match value {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => {
            let percent: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let product = percent * i64::from(total);
            let value = if round_up {
                (product + 99) / 100
            } else {
                product / 100
            };
            i32::try_from(value).unwrap_or(i32::MAX)
        }
    }
}

/// One step of a rolling update; true if it scaled something.
pub async fn roll(
    deployment: &Deployment,
    sets: &mut Sets,
    posts: Fenceposts,
    ctx: &Context,
) -> Result<bool, kube::Error> {
    let wanted = spec_of(deployment).replicas.unwrap_or(1);
    if let Some(target) = new_replicas(wanted, sets, posts) {
        let new = sets.new.as_mut().expect("a new ReplicaSet when scaling it");
        if scale(deployment, new, target, posts.surge, ctx).await? {
            return Ok(true);
        }
    }
    scale_down_old(deployment, sets, wanted, posts, ctx).await
}

/// What the new ReplicaSet should be scaled to now: up by as much as
/// maxSurge leaves room for, never past the Deployment's count.
fn new_replicas(wanted: i32, sets: &Sets, posts: Fenceposts) -> Option<i32> {
    let new = sets.new.as_ref()?;
    let current = replicas(new);
    if current >= wanted {
        return Some(wanted);
    }
    let room = wanted + posts.surge - sets.total(replicas);
    if room <= 0 {
        return Some(current);
    }
    Some(current + room.min(wanted - current))
}

/// Scales old ReplicaSets down as far as maxUnavailable allows: first the
/// pods that are not available anyway, then available ones while enough
/// others are.
async fn scale_down_old(
    deployment: &Deployment,
    sets: &mut Sets,
    wanted: i32,
    posts: Fenceposts,
    ctx: &Context,
) -> Result<bool, kube::Error> {
    let old_total: i32 = sets.old.iter().map(replicas).sum();
    if old_total == 0 {
        return Ok(false);
    }
    let min_available = wanted - posts.unavailable;
    let new_unavailable = sets
        .new
        .as_ref()
        .map_or(0, |rs| replicas(rs) - available(rs));
    let all = sets.total(replicas);
    let budget = all - min_available - new_unavailable;
    if budget <= 0 {
        return Ok(false);
    }
    let mut changed = false;
    // Unavailable old pods cost no availability to remove.
    let mut cleaned = 0;
    for rs in &mut sets.old {
        if cleaned >= budget {
            break;
        }
        let unhealthy = replicas(rs) - available(rs);
        if replicas(rs) == 0 || unhealthy <= 0 {
            continue;
        }
        let down = unhealthy.min(budget - cleaned);
        let to = replicas(rs) - down;
        changed |= scale(deployment, rs, to, posts.surge, ctx).await?;
        cleaned += down;
    }
    // Then available ones, as long as enough stay available.
    let available_now = sets.total(staying_available);
    let mut spare = available_now - min_available;
    for rs in &mut sets.old {
        if spare <= 0 {
            break;
        }
        if replicas(rs) == 0 {
            continue;
        }
        let down = replicas(rs).min(spare);
        let to = replicas(rs) - down;
        changed |= scale(deployment, rs, to, posts.surge, ctx).await?;
        spare -= down;
    }
    Ok(changed)
}

/// One step of a Recreate rollout: old ReplicaSets to zero, then, once no
/// old pod is left (`old_pods_left`, terminating ones included), the new
/// one to the Deployment's count; true if it scaled something or is
/// waiting for old pods to go.
pub async fn recreate(
    deployment: &Deployment,
    sets: &mut Sets,
    old_pods_left: bool,
    ctx: &Context,
) -> Result<bool, kube::Error> {
    let mut changed = false;
    for rs in &mut sets.old {
        changed |= scale(deployment, rs, 0, 0, ctx).await?;
    }
    if changed || old_pods_left {
        return Ok(true);
    }
    let wanted = spec_of(deployment).replicas.unwrap_or(1);
    match sets.new.as_mut() {
        Some(new) => scale(deployment, new, wanted, 0, ctx).await,
        None => Ok(false),
    }
}

/// While paused, or when only the count changed, as Kubernetes' scale():
/// the one active ReplicaSet (or the newest, when none is) follows the
/// Deployment's count; a new one that is full lets the old ones go; and
/// in the middle of a rolling update every active ReplicaSet grows or
/// shrinks in proportion to its share.
pub async fn follow_count(
    deployment: &Deployment,
    sets: &mut Sets,
    posts: Fenceposts,
    ctx: &Context,
) -> Result<bool, kube::Error> {
    let wanted = spec_of(deployment).replicas.unwrap_or(1);
    let active: Vec<String> = sets
        .all()
        .filter(|rs| replicas(rs) > 0)
        .map(ResourceExt::name_any)
        .collect();
    let follower = match active.as_slice() {
        [only] => Some(only.clone()),
        [] => sets
            .all()
            .max_by_key(|rs| sets::revision(rs))
            .map(ResourceExt::name_any),
        _ => None,
    };
    if let Some(name) = follower {
        let rs = sets
            .all_mut()
            .find(|rs| rs.name_any() == name)
            .expect("a ReplicaSet just seen");
        return scale(deployment, rs, wanted, posts.surge, ctx).await;
    }
    let new_full = sets
        .new
        .as_ref()
        .is_some_and(|rs| replicas(rs) == wanted && available(rs) == wanted);
    let mut changed = false;
    if new_full {
        for rs in &mut sets.old {
            changed |= scale(deployment, rs, 0, posts.surge, ctx).await?;
        }
        return Ok(changed);
    }
    if posts == RECREATE {
        return Ok(false);
    }
    let sizes = proportions(deployment, sets, posts);
    for rs in sets.all_mut() {
        if let Some(size) = sizes.get(&rs.name_any()) {
            changed |= scale(deployment, rs, *size, posts.surge, ctx).await?;
        }
    }
    Ok(changed)
}

/// What Recreate's fenceposts are: it has no surge and no unavailability.
const RECREATE: Fenceposts = Fenceposts {
    surge: 0,
    unavailable: 0,
};

/// The new size of each active ReplicaSet when the Deployment's count
/// changes mid-rollout: each gets its share of the change, by the size it
/// had against the count it was last scaled for (its max-replicas
/// annotation), and the largest takes what rounding leaves over.
fn proportions(deployment: &Deployment, sets: &Sets, posts: Fenceposts) -> BTreeMap<String, i32> {
    let wanted = spec_of(deployment).replicas.unwrap_or(1);
    let allowed = if wanted > 0 { wanted + posts.surge } else { 0 };
    let mut active: Vec<&ReplicaSet> = sets.all().filter(|rs| replicas(rs) > 0).collect();
    let to_add = allowed - active.iter().map(|rs| replicas(rs)).sum::<i32>();
    // Growing favours the larger and newer, shrinking the larger and older.
    active.sort_by(|a, b| {
        let by_size = replicas(b).cmp(&replicas(a));
        let by_age = a.creation_timestamp().cmp(&b.creation_timestamp());
        by_size.then(if to_add > 0 { by_age.reverse() } else { by_age })
    });
    let fallback = deployment
        .status
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(0);
    let mut added = 0;
    let mut sizes: Vec<(String, i32)> = Vec::new();
    for rs in &active {
        let share = if to_add == 0 || to_add == added {
            0
        } else {
            let fraction = if wanted == 0 {
                -replicas(rs)
            } else {
                let noted = sets::max_replicas(rs).unwrap_or(fallback);
                let scaled = f64::from(replicas(rs)) * f64::from(allowed) / f64::from(noted.max(1));
                scaled.round() as i32 - replicas(rs)
            };
            let left = to_add - added;
            if to_add > 0 {
                fraction.min(left)
            } else {
                fraction.max(left)
            }
        };
        added += share;
        sizes.push((rs.name_any(), replicas(rs) + share));
    }
    if let Some((_, largest)) = sizes.first_mut() {
        *largest = (*largest + to_add - added).max(0);
    }
    sizes.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_as_kubernetes_rounds() {
        let quarter = IntOrString::String("25%".into());
        assert_eq!(scaled(&quarter, 3, true), 1);
        assert_eq!(scaled(&quarter, 3, false), 0);
        assert_eq!(scaled(&quarter, 10, true), 3);
        assert_eq!(scaled(&quarter, 10, false), 2);
        assert_eq!(scaled(&IntOrString::Int(2), 10, false), 2);
    }

    fn deployment(strategy: serde_json::Value) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}},
                "strategy": strategy,
            },
        }))
        .unwrap()
    }

    #[test]
    fn fenceposts_never_both_zero() {
        let zero = deployment(serde_json::json!({
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "10%"},
        }));
        assert_eq!(
            fenceposts(&zero),
            Fenceposts {
                surge: 0,
                unavailable: 1
            }
        );
        let default = deployment(serde_json::json!({"type": "RollingUpdate"}));
        assert_eq!(
            fenceposts(&default),
            Fenceposts {
                surge: 1,
                unavailable: 0
            }
        );
    }
}
