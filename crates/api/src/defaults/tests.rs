use serde_json::{Value, json};

use super::apply_defaults;
use crate::registry::by_kind;

fn defaulted(mut obj: Value) -> Value {
    let kind = by_kind(
        obj["apiVersion"].as_str().unwrap(),
        obj["kind"].as_str().unwrap(),
    )
    .unwrap();
    apply_defaults(kind, &mut obj);
    obj
}

#[test]
fn pod_gets_what_kubectl_get_shows_on_a_real_cluster() {
    let pod = defaulted(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "kuba-liveness", "namespace": "default"},
        "spec": {"containers": [{
            "image": "luksa/kuba-unhealthy", "name": "kuba",
            "ports": [{"containerPort": 8080}],
            "livenessProbe": {"httpGet": {"path": "/", "port": 8080}}
        }]}
    }));
    assert_eq!(
        pod["spec"],
        json!({
            "containers": [{
                "image": "luksa/kuba-unhealthy", "name": "kuba",
                "imagePullPolicy": "Always",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "livenessProbe": {
                    "httpGet": {"path": "/", "port": 8080, "scheme": "HTTP"},
                    "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3
                },
                "resources": {},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File"
            }],
            "dnsPolicy": "ClusterFirst",
            "enableServiceLinks": true,
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "serviceAccount": "default",
            "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 30,
            "tolerations": [
                {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
                {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300}
            ]
        })
    );
    assert_eq!(
        pod["status"],
        json!({"phase": "Pending", "qosClass": "BestEffort"})
    );
}

#[test]
fn pod_keeps_what_the_client_set() {
    let pod = defaulted(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "serviceAccountName": "builder",
            "tolerations": [{"operator": "Exists"}],
            "containers": [{
                "name": "c", "image": "busybox:1.36", "imagePullPolicy": "Never",
                "resources": {"limits": {"cpu": "1", "memory": "64Mi"}}
            }]
        }
    }));
    let spec = &pod["spec"];
    assert_eq!(spec["restartPolicy"], "Never");
    assert_eq!(spec["terminationGracePeriodSeconds"], 0);
    assert_eq!(spec["serviceAccountName"], "builder");
    assert_eq!(spec["serviceAccount"], "builder");
    // A toleration of every taint already covers not-ready and unreachable.
    assert_eq!(spec["tolerations"], json!([{"operator": "Exists"}]));
    assert_eq!(spec["containers"][0]["imagePullPolicy"], "Never");
    // Requests default to limits, which makes the pod Guaranteed.
    assert_eq!(
        spec["containers"][0]["resources"]["requests"],
        json!({"cpu": "1", "memory": "64Mi"})
    );
    assert_eq!(pod["status"]["qosClass"], "Guaranteed");
}

#[test]
fn pod_volumes_and_host_network() {
    let pod = defaulted(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "hostNetwork": true,
            "containers": [{"name": "c", "image": "nginx:1.25", "ports": [{"containerPort": 80}],
                            "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}],
            "volumes": [
                {"name": "scratch"},
                {"name": "conf", "configMap": {"name": "app"}},
                {"name": "creds", "secret": {"secretName": "app"}},
                {"name": "host", "hostPath": {"path": "/var/log"}}
            ]
        }
    }));
    let spec = &pod["spec"];
    assert_eq!(spec["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(spec["containers"][0]["ports"][0]["hostPort"], 80);
    assert_eq!(
        spec["containers"][0]["env"][0]["valueFrom"]["fieldRef"]["apiVersion"],
        "v1"
    );
    assert_eq!(
        spec["volumes"][0],
        json!({"name": "scratch", "emptyDir": {}})
    );
    assert_eq!(spec["volumes"][1]["configMap"]["defaultMode"], 420);
    assert_eq!(spec["volumes"][2]["secret"]["defaultMode"], 420);
    assert_eq!(spec["volumes"][3]["hostPath"]["type"], "");
}

#[test]
fn deployment_defaults_and_template_without_pod_only_fields() {
    let d = defaulted(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx-deployment", "labels": {"app": "nginx"}},
        "spec": {
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.7.9", "ports": [{"containerPort": 80}]}]}
            }
        }
    }));
    let spec = &d["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    let pod_spec = &spec["template"]["spec"];
    assert_eq!(pod_spec["restartPolicy"], "Always");
    assert_eq!(
        pod_spec["containers"][0]["terminationMessagePolicy"],
        "File"
    );
    for pod_only in ["enableServiceLinks", "serviceAccountName", "tolerations"] {
        assert!(
            pod_spec.get(pod_only).is_none(),
            "{pod_only} is only defaulted on pods"
        );
    }
    assert!(d.get("status").is_none());
}

#[test]
fn zero_replicas_stay_zero_and_recreate_strategy_gets_no_rolling_update() {
    let d = defaulted(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"replicas": 0, "strategy": {"type": "Recreate"}}
    }));
    assert_eq!(d["spec"]["replicas"], 0);
    assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn statefulset_daemonset_and_replicaset() {
    let sts = defaulted(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {"serviceName": "db", "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}]}
    }));
    let spec = &sts["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["podManagementPolicy"], "OrderedReady");
    assert_eq!(
        spec["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    );
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(
        spec["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    assert_eq!(
        spec["volumeClaimTemplates"][0]["spec"]["volumeMode"],
        "Filesystem"
    );
    assert_eq!(
        spec["volumeClaimTemplates"][0]["status"]["phase"],
        "Pending"
    );

    let ds = defaulted(
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"}, "spec": {}}),
    );
    assert_eq!(
        ds["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}})
    );
    assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);

    let rs = defaulted(
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"}, "spec": {}}),
    );
    assert_eq!(rs["spec"]["replicas"], 1);
}

#[test]
fn job_and_cronjob() {
    let job = defaulted(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "pi", "uid": "0b9f6c5e-1111-2222-3333-444455556666"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl:5.34"}]}}}
    }));
    let spec = &job["spec"];
    assert_eq!(spec["completions"], 1);
    assert_eq!(spec["parallelism"], 1);
    assert_eq!(spec["backoffLimit"], 6);
    assert_eq!(spec["completionMode"], "NonIndexed");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
    assert_eq!(
        spec["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "0b9f6c5e-1111-2222-3333-444455556666"}})
    );
    assert_eq!(spec["template"]["metadata"]["labels"]["job-name"], "pi");
    assert_eq!(
        spec["template"]["metadata"]["labels"]["batch.kubernetes.io/job-name"],
        "pi"
    );

    let parallel = defaulted(
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "w"}, "spec": {"parallelism": 3}}),
    );
    assert!(
        parallel["spec"].get("completions").is_none(),
        "a work queue job has no completion count"
    );

    let cj = defaulted(json!({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "hello"},
        "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}}
    }));
    let spec = &cj["spec"];
    assert_eq!(spec["concurrencyPolicy"], "Allow");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["successfulJobsHistoryLimit"], 3);
    assert_eq!(spec["failedJobsHistoryLimit"], 1);
    assert_eq!(
        spec["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"],
        "ClusterFirst"
    );
}

#[test]
fn service_defaults() {
    let svc = defaulted(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "kubia"},
        "spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}], "selector": {"app": "kubia"}}
    }));
    assert_eq!(
        svc["spec"],
        json!({
            "ports": [
                {"port": 80, "targetPort": 8080, "protocol": "TCP"},
                {"port": 443, "targetPort": 443, "protocol": "TCP"}
            ],
            "selector": {"app": "kubia"},
            "type": "ClusterIP",
            "sessionAffinity": "None",
            "internalTrafficPolicy": "Cluster",
            "ipFamilyPolicy": "SingleStack",
            "ipFamilies": ["IPv4"]
        })
    );
    let node_port = defaulted(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "bb"},
        "spec": {"type": "NodePort", "sessionAffinity": "ClientIP", "ports": [{"port": 8080, "nodePort": 30001}]}
    }));
    assert_eq!(node_port["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(
        node_port["spec"]["sessionAffinityConfig"],
        json!({"clientIP": {"timeoutSeconds": 10800}})
    );
    let external = defaulted(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
        "spec": {"type": "ExternalName", "externalName": "db.example.com"}
    }));
    assert!(external["spec"].get("ipFamilies").is_none());
    assert!(external["spec"].get("internalTrafficPolicy").is_none());
    let headless = defaulted(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "h"}, "spec": {"clusterIP": "None"}
    }));
    assert_eq!(headless["spec"]["ipFamilyPolicy"], "RequireDualStack");
}

#[test]
fn namespace_secret_and_claims() {
    let ns =
        defaulted(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}));
    assert_eq!(
        ns["metadata"]["labels"],
        json!({"kubernetes.io/metadata.name": "team-a"})
    );
    assert_eq!(ns["spec"], json!({"finalizers": ["kubernetes"]}));
    assert_eq!(ns["status"], json!({"phase": "Active"}));

    let secret =
        defaulted(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}));
    assert_eq!(secret["type"], "Opaque");
    let with_plain = defaulted(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                                      "data": {"a": "eA==", "b": "eA=="}, "stringData": {"b": "hello"}}),
    );
    assert_eq!(with_plain["data"], json!({"a": "eA==", "b": "aGVsbG8="}));
    assert!(with_plain.get("stringData").is_none());
    let tls = defaulted(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "kubernetes.io/tls"}),
    );
    assert_eq!(tls["type"], "kubernetes.io/tls");

    let pvc = defaulted(
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c"},
                               "spec": {"accessModes": ["ReadWriteOnce"]}}),
    );
    assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
    assert_eq!(pvc["status"]["phase"], "Pending");
    let pv = defaulted(
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "v"}, "spec": {}}),
    );
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
}

#[test]
fn replication_controller_takes_selector_and_labels_from_template() {
    let rc = defaulted(json!({
        "apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "kubia"},
        "spec": {"template": {"metadata": {"labels": {"app": "kubia"}}, "spec": {"containers": [{"name": "c", "image": "luksa/kubia"}]}}}
    }));
    assert_eq!(rc["spec"]["selector"], json!({"app": "kubia"}));
    assert_eq!(rc["metadata"]["labels"], json!({"app": "kubia"}));
    assert_eq!(rc["spec"]["replicas"], 1);
}

#[test]
fn network_policy_storage_class_and_limit_range() {
    let np = defaulted(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "np"},
        "spec": {"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}
    }));
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(np["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");

    let sc = defaulted(
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "local"},
                              "provisioner": "tugboat.io/local"}),
    );
    assert_eq!(sc["reclaimPolicy"], "Delete");
    assert_eq!(sc["volumeBindingMode"], "Immediate");

    let lr = defaulted(json!({
        "apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "lr"},
        "spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "16Mi"}}]}
    }));
    assert_eq!(lr["spec"]["limits"][0]["default"], json!({"cpu": "2"}));
    assert_eq!(
        lr["spec"]["limits"][0]["defaultRequest"],
        json!({"cpu": "2", "memory": "16Mi"})
    );
}
