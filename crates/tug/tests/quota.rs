//! ResourceQuota and LimitRange: a create that would go past a quota's hard
//! limit is refused (403) in kube-apiserver's words, the quota's
//! `status.used` follows what the namespace holds, and a namespace's
//! LimitRange gives pods' containers their default requests and limits and
//! refuses those outside its bounds.

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
