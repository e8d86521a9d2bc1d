//! ResourceQuota and LimitRange: a create that would go past a quota's hard
//! limit is refused (403) in kube-apiserver's words, the quota's
//! `status.used` follows what the namespace holds, and a namespace's
//! LimitRange gives pods' containers their default requests and limits and
//! refuses those outside its bounds. Quotas with scopes (BestEffort,
//! Terminating, a PriorityClass selector...) count and limit only the pods
//! they cover, and bad scopes are refused with Kubernetes' messages.

mod common;

use common::{Server, eventually, nodeless_server};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

fn pod(namespace: &str, name: &str, resources: Value) -> String {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [{
            "name": "main",
            "image": "tugboat.test/busybox:latest",
            "resources": resources,
        }]},
    })
    .to_string()
}

fn create(server: &Server, manifest: &str) {
    server.kubectl_stdin(&["create", "-f", "-"], manifest).ok();
}

fn refused(server: &Server, manifest: &str) -> String {
    server
        .kubectl_stdin(&["create", "-f", "-"], manifest)
        .fails()
}

/// Waits until the quota's `status.used[resource]` reads `amount`.
fn wait_used(server: &Server, namespace: &str, quota: &str, resource: &str, amount: &str) {
    eventually(&format!("{quota} used {resource}={amount}"), || {
        let status = server.get_json(namespace, "resourcequota", quota)["status"].clone();
        (status["used"][resource] == amount)
            .then_some(())
            .ok_or(status.to_string())
    });
}

#[test]
fn a_quota_refuses_objects_past_its_limit_and_tracks_use() {
    let server = nodeless_server();
    let ns = server.namespace("quota-counts");
    server
        .kubectl(&["create", "quota", "q", "--hard=pods=2,secrets=1", "-n", &ns])
        .ok();
    wait_used(server, &ns, "q", "pods", "0");
    let hard = server.get_json(&ns, "resourcequota", "q")["status"]["hard"].clone();
    assert_eq!(hard, json!({"pods": "2", "secrets": "1"}));

    create(server, &pod(&ns, "one", json!({})));
    create(server, &pod(&ns, "two", json!({})));
    let err = refused(server, &pod(&ns, "three", json!({})));
    assert!(
        err.contains(r#"pods "three" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"#),
        "{err}"
    );
    wait_used(server, &ns, "q", "pods", "2");

    server
        .kubectl(&["create", "secret", "generic", "first", "-n", &ns])
        .ok();
    let err = server
        .kubectl(&["create", "secret", "generic", "second", "-n", &ns])
        .fails();
    assert!(
        err.contains(r#"secrets "second" is forbidden: exceeded quota: q, requested: secrets=1, used: secrets=1, limited: secrets=1"#),
        "{err}"
    );

    // Deleting frees room, and the status follows.
    server.kubectl(&["delete", "pod", "one", "-n", &ns]).ok();
    wait_used(server, &ns, "q", "pods", "1");
    create(server, &pod(&ns, "three", json!({})));
    wait_used(server, &ns, "q", "pods", "2");
}

#[tokio::test]
async fn racing_creates_never_take_a_quota_past_its_limit() {
    let server = nodeless_server();
    let ns = server.namespace("quota-race");
    // The namespace's kube-root-ca.crt counts too: one of the six.
    eventually("kube-root-ca.crt published", || {
        server
            .kubectl(&["get", "configmap", "kube-root-ca.crt", "-n", &ns])
            .status
            .success()
            .then_some(())
            .ok_or_else(|| "not yet".to_owned())
    });
    server
        .kubectl(&["create", "quota", "q", "--hard=configmaps=6", "-n", &ns])
        .ok();
    let configmaps: Api<ConfigMap> = Api::namespaced(server.client().await, &ns);
    let creates = (0..32).map(|i| {
        let configmap = ConfigMap {
            metadata: ObjectMeta {
                name: Some(format!("cm-{i}")),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        };
        let configmaps = configmaps.clone();
        async move { configmaps.create(&PostParams::default(), &configmap).await }
    });
    let results = futures::future::join_all(creates).await;
    for refused in results.iter().filter_map(|result| result.as_ref().err()) {
        let kube::Error::Api(status) = refused else {
            panic!("{refused}");
        };
        assert_eq!(status.code, 403, "{status:?}");
        assert!(
            status.message.contains("exceeded quota: q, requested: configmaps=1, used: configmaps=6, limited: configmaps=6"),
            "{}",
            status.message
        );
    }
    let created = results.iter().filter(|result| result.is_ok()).count();
    assert_eq!(
        created, 5,
        "exactly the five creates the quota has room for succeed"
    );
    let names = server.names(&["get", "configmaps", "-n", &ns]);
    assert_eq!(names.len(), 6, "{names:?}");
    wait_used(server, &ns, "q", "configmaps", "6");
}

#[test]
fn compute_quotas_count_requests_and_limits() {
    let server = nodeless_server();
    let ns = server.namespace("quota-compute");
    server
        .kubectl(&[
            "create",
            "quota",
            "compute",
            "--hard=requests.cpu=1,limits.memory=1Gi",
            "-n",
            &ns,
        ])
        .ok();
    wait_used(server, &ns, "compute", "requests.cpu", "0");
    let resources = json!({"requests": {"cpu": "600m"}, "limits": {"memory": "512Mi"}});
    create(server, &pod(&ns, "first", resources.clone()));
    wait_used(server, &ns, "compute", "requests.cpu", "600m");
    wait_used(server, &ns, "compute", "limits.memory", "512Mi");

    let err = refused(server, &pod(&ns, "second", resources));
    assert!(
        err.contains("exceeded quota: compute, requested: requests.cpu=600m, used: requests.cpu=600m, limited: requests.cpu=1"),
        "{err}"
    );
    let small = json!({"requests": {"cpu": "400m"}, "limits": {"memory": "512Mi"}});
    create(server, &pod(&ns, "small", small));
    wait_used(server, &ns, "compute", "requests.cpu", "1");
    wait_used(server, &ns, "compute", "limits.memory", "1Gi");
}

#[test]
fn a_limit_range_defaults_container_resources_and_bounds_them() {
    let server = nodeless_server();
    let ns = server.namespace("limits");
    let range = json!({
        "apiVersion": "v1", "kind": "LimitRange",
        "metadata": {"name": "bounds", "namespace": ns},
        "spec": {"limits": [{
            "type": "Container",
            "default": {"cpu": "500m", "memory": "256Mi"},
            "defaultRequest": {"cpu": "100m"},
            "max": {"cpu": "1"},
            "min": {"cpu": "50m"},
        }]},
    });
    create(server, &range.to_string());

    create(server, &pod(&ns, "plain", json!({})));
    let resources =
        server.get_json(&ns, "pod", "plain")["spec"]["containers"][0]["resources"].clone();
    assert_eq!(
        resources,
        json!({
            "limits": {"cpu": "500m", "memory": "256Mi"},
            "requests": {"cpu": "100m", "memory": "256Mi"},
        })
    );

    let err = refused(server, &pod(&ns, "greedy", json!({"limits": {"cpu": "2"}})));
    assert!(
        err.contains(
            r#"pods "greedy" is forbidden: maximum cpu usage per Container is 1, but limit is 2"#
        ),
        "{err}"
    );
    let err = refused(
        server,
        &pod(&ns, "tiny", json!({"requests": {"cpu": "10m"}})),
    );
    assert!(
        err.contains(r#"pods "tiny" is forbidden: minimum cpu usage per Container is 50m, but request is 10m"#),
        "{err}"
    );
    server.assert_absent(&ns, "pod", "greedy");
}

/// A pod like [`pod`] with `extra` put into its spec.
fn pod_with(namespace: &str, name: &str, resources: Value, extra: Value) -> String {
    let mut pod: Value = serde_json::from_str(&self::pod(namespace, name, resources)).unwrap();
    pod["spec"]
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    pod.to_string()
}

fn quota(namespace: &str, name: &str, hard: Value, scoping: Value) -> String {
    let mut spec = json!({"hard": hard});
    spec.as_object_mut()
        .unwrap()
        .extend(scoping.as_object().unwrap().clone());
    json!({
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    })
    .to_string()
}

#[test]
fn scoped_quotas_count_and_limit_only_the_pods_they_cover() {
    let server = nodeless_server();
    let ns = server.namespace("quota-scopes");
    create(
        server,
        &quota(
            &ns,
            "best-effort",
            json!({"pods": "1"}),
            json!({"scopes": ["BestEffort"]}),
        ),
    );
    create(
        server,
        &quota(
            &ns,
            "burstable",
            json!({"pods": "2", "requests.cpu": "1"}),
            json!({"scopes": ["NotBestEffort", "NotTerminating"]}),
        ),
    );
    create(
        server,
        &quota(
            &ns,
            "deadlines",
            json!({"pods": "5"}),
            json!({"scopes": ["Terminating"]}),
        ),
    );
    for name in ["best-effort", "burstable", "deadlines"] {
        wait_used(server, &ns, name, "pods", "0");
    }

    create(server, &pod(&ns, "idle", json!({})));
    let err = refused(server, &pod(&ns, "idle-too", json!({})));
    assert!(
        err.contains(r#"pods "idle-too" is forbidden: exceeded quota: best-effort, requested: pods=1, used: pods=1, limited: pods=1"#),
        "{err}"
    );
    // A pod with requests is not best effort: only the other quota counts it.
    let requests = json!({"requests": {"cpu": "600m"}});
    create(server, &pod(&ns, "worker", requests.clone()));
    let err = refused(server, &pod(&ns, "worker-too", requests.clone()));
    assert!(
        err.contains("exceeded quota: burstable, requested: requests.cpu=600m, used: requests.cpu=600m, limited: requests.cpu=1"),
        "{err}"
    );
    // An active deadline makes a pod terminating, which `burstable` leaves out.
    let deadline = json!({"activeDeadlineSeconds": 600});
    create(server, &pod_with(&ns, "batch", requests, deadline));

    wait_used(server, &ns, "best-effort", "pods", "1");
    wait_used(server, &ns, "burstable", "pods", "1");
    wait_used(server, &ns, "burstable", "requests.cpu", "600m");
    wait_used(server, &ns, "deadlines", "pods", "1");

    server.kubectl(&["delete", "pod", "idle", "-n", &ns]).ok();
    wait_used(server, &ns, "best-effort", "pods", "0");
    create(server, &pod(&ns, "idle-too", json!({})));
}

#[test]
fn a_scope_selector_limits_pods_by_priority_class() {
    let server = nodeless_server();
    let ns = server.namespace("quota-priority");
    let class = json!({
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
        "metadata": {"name": "quota-scopes-high"}, "value": 1000,
    });
    create(server, &class.to_string());
    let selector = |operator: &str, values: Value| {
        json!({"scopeSelector": {"matchExpressions": [
            {"scopeName": "PriorityClass", "operator": operator, "values": values}]}})
    };
    create(
        server,
        &quota(
            &ns,
            "high",
            json!({"pods": "1"}),
            selector("In", json!(["quota-scopes-high"])),
        ),
    );
    create(
        server,
        &quota(
            &ns,
            "classless",
            json!({"pods": "2"}),
            selector("DoesNotExist", json!([])),
        ),
    );
    let high = json!({"priorityClassName": "quota-scopes-high"});
    create(server, &pod_with(&ns, "urgent", json!({}), high.clone()));
    let err = refused(server, &pod_with(&ns, "urgent-too", json!({}), high));
    assert!(
        err.contains("exceeded quota: high, requested: pods=1, used: pods=1, limited: pods=1"),
        "{err}"
    );
    create(server, &pod(&ns, "plain", json!({})));
    wait_used(server, &ns, "high", "pods", "1");
    wait_used(server, &ns, "classless", "pods", "1");
}

#[test]
fn scopes_are_validated_as_kubernetes_does() {
    let server = nodeless_server();
    let ns = server.namespace("quota-scope-checks");
    let cases = [
        (
            json!({"pods": "1", "requests.cpu": "1"}),
            json!({"scopes": ["BestEffort"]}),
            vec![
                r#"The ResourceQuota "q" is invalid: spec.scopes: Invalid value: []core.ResourceQuotaScope{"BestEffort"}: unsupported scope applied to resource"#,
            ],
        ),
        (
            json!({"pods": "1"}),
            json!({"scopes": ["Terminating", "NotTerminating"]}),
            vec![
                r#"spec.scopes: Invalid value: []core.ResourceQuotaScope{"Terminating", "NotTerminating"}: conflicting scopes"#,
            ],
        ),
        (
            json!({"pods": "1"}),
            json!({"scopeSelector": {"matchExpressions": [
                {"scopeName": "BestEffort", "operator": "In", "values": ["x"]},
                {"scopeName": "PriorityClass", "operator": "NotIn"}]}}),
            vec![
                r#"spec.scopeSelector.matchExpressions.operator: Invalid value: "In": must be 'Exists' when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or ResourceQuotaScopeCrossNamespacePodAffinity"#,
                "spec.scopeSelector.matchExpressions.values: Required value: must be at least one value when `operator` is 'In' or 'NotIn' for scope selector",
            ],
        ),
    ];
    for (hard, scoping, expected) in cases {
        let err = refused(server, &quota(&ns, "q", hard, scoping));
        for expected in expected {
            assert!(err.contains(expected), "{err}");
        }
    }
}
