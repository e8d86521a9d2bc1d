//! How lists merge, per field: the knowledge Kubernetes keeps in Go struct tags
//! (`patchStrategy`, `patchMergeKey`) and in `x-kubernetes-list-type` /
//! `x-kubernetes-list-map-keys`. Strategic merge patch and server-side apply
//! both read it from here.

/// How a list field is merged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListStrategy {
    /// Replaced whole.
    Atomic,
    /// A list of objects identified by these keys (`patchMergeKey` /
    /// `x-kubernetes-list-map-keys`).
    Map(&'static [&'static str]),
    /// A list of scalars merged as a set (`patchStrategy: merge` on a scalar list).
    Set,
}

/// The strategy of the list at `path`: field names from the object's root,
/// list indices left out (`["spec", "template", "spec", "containers", "ports"]`).
///
/// Kubernetes types reuse the same structs in many places (a PodSpec inside a
/// Deployment, a Job, a CronJob's job template), so the match is on the tail
/// of the path: the list's own name and, where that is ambiguous, its parent.
pub fn list_strategy(path: &[&str]) -> ListStrategy {
    use ListStrategy::*;
    let [.., parent, field] = path else {
        return Atomic;
    };
    match (*parent, *field) {
        ("metadata", "finalizers") => Set,
        ("metadata", "ownerReferences") => Map(&["uid"]),
        ("metadata", "managedFields") => Atomic,
        (_, "containers" | "initContainers" | "ephemeralContainers") => Map(&["name"]),
        (_, "env") => Map(&["name"]),
        (_, "volumes") => Map(&["name"]),
        (_, "volumeMounts") => Map(&["mountPath"]),
        (_, "volumeDevices") => Map(&["devicePath"]),
        (_, "imagePullSecrets") => Map(&["name"]),
        (_, "hostAliases") => Map(&["ip"]),
        (_, "resizePolicy") => Map(&["resourceName"]),
        (_, "conditions") => Map(&["type"]),
        ("status", "addresses") => Map(&["type"]),
        (_, "topologySpreadConstraints") => Map(&["topologyKey", "whenUnsatisfiable"]),
        (_, "schedulingGates") => Map(&["name"]),
        (_, "resourceClaims") => Map(&["name"]),
        (_, "ports") => ports_strategy(path),
        (_, "taints") => Map(&["key", "effect"]),
        _ => Atomic,
    }
}

/// `ports` means three different things: a container's ports (keyed by
/// `containerPort`), a Service's ports (keyed by `port`) and an
/// EndpointSlice's or NetworkPolicy's ports (atomic).
fn ports_strategy(path: &[&str]) -> ListStrategy {
    let parent_list = path.iter().rev().nth(1).copied().unwrap_or_default();
    match parent_list {
        "containers" | "initContainers" | "ephemeralContainers" => {
            ListStrategy::Map(&["containerPort", "protocol"])
        }
        "spec" => ListStrategy::Map(&["port", "protocol"]),
        _ => ListStrategy::Atomic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_template_lists_in_any_workload_merge_by_their_keys() {
        let deploy = ["spec", "template", "spec", "containers"];
        assert_eq!(list_strategy(&deploy), ListStrategy::Map(&["name"]));
        let cron = [
            "spec",
            "jobTemplate",
            "spec",
            "template",
            "spec",
            "containers",
            "env",
        ];
        assert_eq!(list_strategy(&cron), ListStrategy::Map(&["name"]));
    }

    #[test]
    fn ports_are_keyed_by_what_they_belong_to() {
        assert_eq!(
            list_strategy(&["spec", "containers", "ports"]),
            ListStrategy::Map(&["containerPort", "protocol"])
        );
        assert_eq!(
            list_strategy(&["spec", "ports"]),
            ListStrategy::Map(&["port", "protocol"])
        );
        assert_eq!(
            list_strategy(&["spec", "ingress", "ports"]),
            ListStrategy::Atomic
        );
    }

    #[test]
    fn finalizers_merge_as_a_set_and_args_are_atomic() {
        assert_eq!(
            list_strategy(&["metadata", "finalizers"]),
            ListStrategy::Set
        );
        assert_eq!(
            list_strategy(&["spec", "containers", "args"]),
            ListStrategy::Atomic
        );
    }
}
