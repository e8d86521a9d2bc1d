//! The garbage collector and `kubectl delete --cascade`: dependents named by
//! `metadata.ownerReferences` go with their owners (background and
//! foreground), stay without them (orphan), and outlive one owner while
//! another lives. Owners and dependents are made by hand from several kinds,
//! namespaced and cluster-scoped, as any client may make them.

mod common;

use common::nodes::node_without_kubelet;
use common::{Server, eventually, nodeless_server};
use serde_json::{Value, json};

/// Creates `obj` (JSON) with kubectl and returns it as the server made it.
fn create(server: &Server, obj: &Value) -> Value {
    let out = server
        .kubectl_stdin(&["create", "-o", "json", "-f", "-"], &obj.to_string())
        .ok();
    serde_json::from_str(&out).expect("kubectl -o json prints JSON")
}

/// A reference to `owner` as its dependents carry it.
fn owned_by(owner: &Value, block_owner_deletion: bool) -> Value {
    json!({
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "blockOwnerDeletion": block_owner_deletion,
    })
}

fn object(kind: &str, api_version: &str, namespace: &str, name: &str, owners: &[Value]) -> Value {
    let mut obj = json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "ownerReferences": owners},
    });
    if !namespace.is_empty() {
        obj["metadata"]["namespace"] = namespace.into();
    }
    obj
}

fn config_map(namespace: &str, name: &str, owners: &[Value]) -> Value {
    object("ConfigMap", "v1", namespace, name, owners)
}

fn secret(namespace: &str, name: &str, owners: &[Value]) -> Value {
    object("Secret", "v1", namespace, name, owners)
}

/// `kubectl get` of one object, or `None` once it is gone.
fn get(server: &Server, namespace: &str, kind: &str, name: &str) -> Option<Value> {
    let mut args = vec!["get", kind, name, "-o", "json", "--ignore-not-found"];
    if !namespace.is_empty() {
        args.extend(["-n", namespace]);
    }
    let out = server.kubectl(&args).ok();
    (!out.trim().is_empty()).then(|| serde_json::from_str(&out).expect("JSON"))
}

fn wait_gone(server: &Server, namespace: &str, kind: &str, name: &str) {
    eventually(
        &format!("{kind} {name} deleted by the garbage collector"),
        || match get(server, namespace, kind, name) {
            None => Ok(()),
            Some(obj) => Err(obj["metadata"].to_string()),
        },
    );
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["uid"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| f.as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn background_deletion_takes_dependents_of_any_kind_and_leaves_others() {
    let server = nodeless_server();
    let ns = server.namespace("gc-background");
    let owner = create(server, &config_map(&ns, "owner", &[]));
    let reference = owned_by(&owner, false);
    create(
        server,
        &secret(&ns, "dependent-secret", std::slice::from_ref(&reference)),
    );
    create(server, &config_map(&ns, "dependent-cm", &[reference]));
    create(server, &config_map(&ns, "bystander", &[]));

    server
        .kubectl(&["delete", "configmap", "owner", "-n", &ns])
        .ok();
    server.assert_absent(&ns, "configmap", "owner");
    wait_gone(server, &ns, "secret", "dependent-secret");
    wait_gone(server, &ns, "configmap", "dependent-cm");
    assert!(get(server, &ns, "configmap", "bystander").is_some());
}

#[test]
fn cluster_scoped_owners_take_cluster_scoped_and_namespaced_dependents() {
    let server = nodeless_server();
    let ns = server.namespace("gc-cluster");
    let class = json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": "gc-owner-class"},
        "provisioner": "example.com/none",
    });
    let owner = create(server, &class);
    let reference = owned_by(&owner, false);
    let ingress_class = object(
        "IngressClass",
        "networking.k8s.io/v1",
        "",
        "gc-dependent-class",
        std::slice::from_ref(&reference),
    );
    create(server, &ingress_class);
    create(server, &config_map(&ns, "owned-by-a-class", &[reference]));

    server
        .kubectl(&["delete", "storageclass", "gc-owner-class"])
        .ok();
    wait_gone(server, "", "ingressclass", "gc-dependent-class");
    wait_gone(server, &ns, "configmap", "owned-by-a-class");
}

#[test]
fn a_dependent_lives_while_one_of_its_owners_does() {
    let server = nodeless_server();
    let ns = server.namespace("gc-two-owners");
    let first = create(server, &config_map(&ns, "first", &[]));
    let second = create(server, &config_map(&ns, "second", &[]));
    let second_uid = second["metadata"]["uid"].as_str().unwrap().to_owned();
    let owners = [owned_by(&first, false), owned_by(&second, false)];
    create(server, &secret(&ns, "shared", &owners));

    server
        .kubectl(&["delete", "configmap", "first", "-n", &ns])
        .ok();
    // The reference to the gone owner is dropped; the dependent stays.
    eventually("the reference to the deleted owner dropped", || {
        let shared = get(server, &ns, "secret", "shared").ok_or("shared is gone")?;
        let uids = owner_uids(&shared);
        (uids == [second_uid.clone()])
            .then_some(())
            .ok_or(format!("{uids:?}"))
    });
    assert!(get(server, &ns, "secret", "shared").is_some());

    server
        .kubectl(&["delete", "configmap", "second", "-n", &ns])
        .ok();
    wait_gone(server, &ns, "secret", "shared");
}

#[test]
fn an_owner_reference_whose_uid_no_longer_matches_counts_as_gone() {
    let server = nodeless_server();
    let ns = server.namespace("gc-stale-uid");
    let mut owner = create(server, &config_map(&ns, "reborn", &[]));
    // The owner's name now belongs to another object.
    server
        .kubectl(&["delete", "configmap", "reborn", "-n", &ns])
        .ok();
    create(server, &config_map(&ns, "reborn", &[]));
    owner["metadata"]["uid"] = "00000000-0000-0000-0000-000000000001".into();
    create(server, &secret(&ns, "stale", &[owned_by(&owner, false)]));

    wait_gone(server, &ns, "secret", "stale");
    assert!(get(server, &ns, "configmap", "reborn").is_some());
}

#[test]
fn foreground_deletion_waits_for_blocking_dependents() {
    let server = nodeless_server();
    let ns = server.namespace("gc-foreground");
    let owner = create(server, &config_map(&ns, "owner", &[]));
    // A blocking dependent that a finalizer of its own keeps around.
    let mut blocker = secret(&ns, "blocker", &[owned_by(&owner, true)]);
    blocker["metadata"]["finalizers"] = json!(["example.com/hold"]);
    create(server, &blocker);
    create(
        server,
        &config_map(&ns, "plain", &[owned_by(&owner, false)]),
    );

    server
        .kubectl(&[
            "delete",
            "configmap",
            "owner",
            "-n",
            &ns,
            "--cascade=foreground",
            "--wait=false",
        ])
        .ok();
    let marked = get(server, &ns, "configmap", "owner").expect("the owner waits");
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{marked}"
    );
    assert_eq!(finalizers(&marked), ["foregroundDeletion"]);
    wait_gone(server, &ns, "configmap", "plain");
    eventually("the blocking dependent marked for deletion", || {
        let blocker = get(server, &ns, "secret", "blocker").ok_or("blocker is gone")?;
        blocker["metadata"]["deletionTimestamp"]
            .is_string()
            .then_some(())
            .ok_or(blocker.to_string())
    });
    assert!(
        get(server, &ns, "configmap", "owner").is_some(),
        "the owner went before its blocking dependent"
    );

    server
        .kubectl(&[
            "patch",
            "secret",
            "blocker",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ])
        .ok();
    wait_gone(server, &ns, "secret", "blocker");
    wait_gone(server, &ns, "configmap", "owner");
}

#[test]
fn kubectl_waits_for_a_foreground_deletion_to_finish() {
    let server = nodeless_server();
    let ns = server.namespace("gc-foreground-wait");
    let owner = create(server, &config_map(&ns, "owner", &[]));
    let middle = create(
        server,
        &config_map(&ns, "middle", &[owned_by(&owner, true)]),
    );
    create(server, &secret(&ns, "leaf", &[owned_by(&middle, true)]));

    server
        .kubectl(&[
            "delete",
            "configmap",
            "owner",
            "-n",
            &ns,
            "--cascade=foreground",
        ])
        .ok();
    // The whole tree is gone once kubectl sees the owner gone.
    assert!(get(server, &ns, "configmap", "middle").is_none());
    assert!(get(server, &ns, "secret", "leaf").is_none());
}

#[test]
fn orphan_deletion_frees_dependents() {
    let server = nodeless_server();
    let ns = server.namespace("gc-orphan");
    let owner = create(server, &config_map(&ns, "owner", &[]));
    let other = create(server, &config_map(&ns, "other", &[]));
    let other_uid = other["metadata"]["uid"].as_str().unwrap().to_owned();
    create(server, &secret(&ns, "freed", &[owned_by(&owner, true)]));
    create(
        server,
        &config_map(
            &ns,
            "still-owned",
            &[owned_by(&owner, false), owned_by(&other, false)],
        ),
    );

    server
        .kubectl(&[
            "delete",
            "configmap",
            "owner",
            "-n",
            &ns,
            "--cascade=orphan",
        ])
        .ok();
    server.assert_absent(&ns, "configmap", "owner");
    let freed = get(server, &ns, "secret", "freed").expect("the orphan stays");
    assert!(owner_uids(&freed).is_empty(), "{freed}");
    let still_owned = get(server, &ns, "configmap", "still-owned").expect("stays");
    assert_eq!(owner_uids(&still_owned), [other_uid]);
}

/// Waits until `kubectl get kind -n ns -o name` lists `count` objects.
fn wait_count(server: &Server, namespace: &str, kind: &str, count: usize) -> Vec<String> {
    eventually(&format!("{count} {kind} in {namespace}"), || {
        let names = server.names(&["get", kind, "-n", namespace]);
        (names.len() == count)
            .then_some(names.clone())
            .ok_or(format!("{names:?}"))
    })
}

#[test]
fn deleting_a_deployment_deletes_its_replicasets_and_their_pods() {
    let server = nodeless_server();
    let ns = server.namespace("gc-deployment");
    server
        .kubectl(&[
            "create",
            "deployment",
            "web",
            "--image=tugboat.test/busybox:latest",
            "--replicas=2",
            "-n",
            &ns,
        ])
        .ok();
    wait_count(server, &ns, "replicasets", 1);
    wait_count(server, &ns, "pods", 2);

    server
        .kubectl(&["delete", "deployment", "web", "-n", &ns])
        .ok();
    wait_count(server, &ns, "replicasets", 0);
    wait_count(server, &ns, "pods", 0);
}

#[test]
fn orphaning_a_deployment_leaves_its_replicaset_and_pods_running() {
    let server = nodeless_server();
    let ns = server.namespace("gc-deployment-orphan");
    server
        .kubectl(&[
            "create",
            "deployment",
            "web",
            "--image=tugboat.test/busybox:latest",
            "--replicas=2",
            "-n",
            &ns,
        ])
        .ok();
    let replica_sets = wait_count(server, &ns, "replicasets", 1);
    wait_count(server, &ns, "pods", 2);

    server
        .kubectl(&["delete", "deployment", "web", "-n", &ns, "--cascade=orphan"])
        .ok();
    let replica_set = replica_sets[0].trim_start_matches("replicaset.apps/");
    let freed = get(server, &ns, "replicaset", replica_set).expect("the ReplicaSet stays");
    assert!(owner_uids(&freed).is_empty(), "{freed}");
    assert_eq!(server.names(&["get", "pods", "-n", &ns]).len(), 2);
}

#[test]
fn a_terminating_pod_outlives_its_last_finalizer_until_its_grace_is_cut() {
    let server = nodeless_server();
    let ns = server.namespace("gc-graceful");
    node_without_kubelet(server, "a-node-without-kubelet");
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "held", "namespace": ns, "finalizers": ["example.com/hold"]},
        "spec": {
            "nodeName": "a-node-without-kubelet",
            "containers": [{"name": "main", "image": "tugboat.test/busybox:latest"}],
        },
    });
    create(server, &pod);
    server
        .kubectl(&["delete", "pod", "held", "-n", &ns, "--wait=false"])
        .ok();
    server
        .kubectl(&[
            "patch",
            "pod",
            "held",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ])
        .ok();
    // Its node has not said the containers stopped: the pod stays Terminating.
    let held = get(server, &ns, "pod", "held").expect("the pod waits for its node");
    assert_eq!(held["metadata"]["deletionGracePeriodSeconds"], 30, "{held}");

    server
        .kubectl(&[
            "delete",
            "pod",
            "held",
            "-n",
            &ns,
            "--grace-period=0",
            "--force",
        ])
        .ok();
    wait_gone(server, &ns, "pod", "held");
}
