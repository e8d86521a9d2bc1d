use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::*;
use crate::registry::by_kind;

fn ago(seconds: i64) -> String {
    (Timestamp::now() - SignedDuration::from_secs(seconds)).to_string()
}

fn column_names(t: &Value) -> Vec<&str> {
    t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

fn cells(kind: (&str, &str), obj: Value) -> Vec<Value> {
    let kind = by_kind(kind.0, kind.1).unwrap();
    let t = table(kind, &[obj], IncludeObject::None);
    t["rows"][0]["cells"].as_array().unwrap().clone()
}

fn pod(status: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(200)},
        "spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "redis"}], "nodeName": "n1"},
        "status": status,
    })
}

#[test]
fn pod_table_has_kubectl_columns_and_wide_ones_at_priority_one() {
    let t = table(by_kind("v1", "Pod").unwrap(), &[], IncludeObject::Metadata);
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(
        column_names(&t),
        [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates"
        ]
    );
    let defs = t["columnDefinitions"].as_array().unwrap();
    assert_eq!(defs[0]["format"], "name");
    assert!(
        defs[0]["description"]
            .as_str()
            .unwrap()
            .starts_with("Name must be unique")
    );
    assert_eq!(defs[4]["priority"], 0);
    assert_eq!(defs[5]["priority"], 1);
}

#[test]
fn running_pod_shows_ready_count_status_restarts_and_age() {
    let c = cells(
        ("v1", "Pod"),
        pod(json!({
            "phase": "Running",
            "podIPs": [{"ip": "10.0.0.5"}],
            "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 2, "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(65)}}},
            ],
        })),
    );
    assert_eq!(c[0], "web");
    assert_eq!(c[1], "1/2");
    assert_eq!(c[2], "Running");
    assert_eq!(c[3], "2 (65s ago)");
    assert_eq!(c[4], "3m20s");
    assert_eq!(c[5], "10.0.0.5");
    assert_eq!(c[6], "n1");
    assert_eq!(c[7], "<none>");
    assert_eq!(c[8], "<none>");
}

#[test]
fn pod_status_shows_waiting_reasons_completion_and_deletion() {
    let waiting = |reason: &str| {
        json!({"phase": "Pending", "containerStatuses": [
            {"name": "a", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": reason}}}]})
    };
    assert_eq!(
        cells(("v1", "Pod"), pod(waiting("ContainerCreating")))[2],
        "ContainerCreating"
    );
    assert_eq!(
        cells(("v1", "Pod"), pod(waiting("CrashLoopBackOff")))[2],
        "CrashLoopBackOff"
    );
    assert_eq!(
        cells(("v1", "Pod"), pod(json!({"phase": "Pending"})))[2],
        "Pending"
    );

    let done = json!({"phase": "Succeeded", "containerStatuses": [
        {"name": "a", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]});
    assert_eq!(cells(("v1", "Pod"), pod(done))[2], "Completed");

    let mut deleting = pod(json!({"phase": "Running"}));
    deleting["metadata"]["deletionTimestamp"] = json!(ago(1));
    assert_eq!(cells(("v1", "Pod"), deleting)[2], "Terminating");
}

#[test]
fn failing_init_container_shows_init_status() {
    let mut p = pod(json!({"phase": "Pending", "initContainerStatuses": [
        {"name": "init", "ready": false, "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}));
    p["spec"]["initContainers"] = json!([{"name": "init", "image": "busybox"}]);
    let c = cells(("v1", "Pod"), p);
    assert_eq!(c[2], "Init:CrashLoopBackOff");
    assert_eq!(c[3], "3");
}

#[test]
fn deployment_row_has_ready_ratio_and_wide_template_columns() {
    let t = table(
        by_kind("apps/v1", "Deployment").unwrap(),
        &[json!({
            "metadata": {"name": "web", "creationTimestamp": ago(600)},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
        })],
        IncludeObject::None,
    );
    assert_eq!(
        column_names(&t),
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    assert_eq!(
        t["rows"][0]["cells"],
        json!(["web", "2/3", 3, 2, "10m", "nginx", "nginx:1.25", "app=web"])
    );
    assert!(t["rows"][0].get("object").is_none());
}

#[test]
fn service_row_shows_ips_ports_and_selector() {
    let c = cells(
        ("v1", "Service"),
        json!({
            "metadata": {"name": "web", "creationTimestamp": ago(2 * 86400 + 3 * 3600)},
            "spec": {"type": "NodePort", "clusterIPs": ["10.96.0.10"],
                     "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 53, "protocol": "UDP"}],
                     "selector": {"app": "web"}},
        }),
    );
    assert_eq!(
        c,
        json!([
            "web",
            "NodePort",
            "10.96.0.10",
            "<none>",
            "80:30080/TCP,53/UDP",
            "2d3h",
            "app=web"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let lb = cells(
        ("v1", "Service"),
        json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer"}}),
    );
    assert_eq!(lb[3], "<pending>");
}

#[test]
fn namespace_row_and_metadata_object() {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "dev", "uid": "u1", "creationTimestamp": ago(5)},
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
    let kind = by_kind("v1", "Namespace").unwrap();
    let t = table(kind, std::slice::from_ref(&ns), IncludeObject::Metadata);
    assert_eq!(column_names(&t), ["Name", "Status", "Age"]);
    assert_eq!(t["rows"][0]["cells"], json!(["dev", "Active", "5s"]));
    let object = &t["rows"][0]["object"];
    assert_eq!(object["kind"], "PartialObjectMetadata");
    assert_eq!(object["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(object["metadata"]["uid"], "u1");
    assert!(object.get("spec").is_none());

    let full = table(kind, std::slice::from_ref(&ns), IncludeObject::Object);
    assert_eq!(full["rows"][0]["object"], ns);
}

#[test]
fn include_object_parses_kubernetes_values_and_rejects_others() {
    assert_eq!(IncludeObject::parse(None).unwrap(), IncludeObject::Metadata);
    assert_eq!(
        IncludeObject::parse(Some("None")).unwrap(),
        IncludeObject::None
    );
    assert_eq!(
        IncludeObject::parse(Some("Object")).unwrap(),
        IncludeObject::Object
    );
    let err = IncludeObject::parse(Some("all")).unwrap_err();
    assert_eq!(err.to_status().code, Some(400));
}

#[test]
fn every_kind_prints_one_cell_per_column_with_descriptions() {
    for kind in KINDS {
        let obj = json!({"metadata": {"name": "x", "creationTimestamp": ago(30)}});
        let t = table(kind, &[obj], IncludeObject::None);
        let columns = t["columnDefinitions"].as_array().unwrap();
        let row = t["rows"][0]["cells"].as_array().unwrap();
        assert_eq!(columns.len(), row.len(), "{}", kind.kind);
        for c in columns {
            assert!(
                !c["description"].as_str().unwrap().is_empty(),
                "{} {}",
                kind.kind,
                c["name"]
            );
        }
    }
}

#[test]
fn events_from_both_apis_print_alike() {
    let core = cells(
        ("v1", "Event"),
        json!({
            "metadata": {"name": "e1"}, "type": "Warning", "reason": "BackOff", "message": " restarting ",
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{a}"},
            "source": {"component": "kubelet", "host": "n1"},
            "firstTimestamp": ago(300), "lastTimestamp": ago(30), "count": 4,
        }),
    );
    assert_eq!(
        core,
        json!([
            "30s",
            "Warning",
            "BackOff",
            "pod/web",
            "spec.containers{a}",
            "kubelet, n1",
            "restarting",
            "5m",
            4,
            "e1"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let new = cells(
        ("events.k8s.io/v1", "Event"),
        json!({
            "metadata": {"name": "e2"}, "type": "Normal", "reason": "Scheduled", "note": "assigned",
            "regarding": {"kind": "Pod", "name": "web"}, "eventTime": ago(10), "reportingController": "scheduler",
        }),
    );
    assert_eq!(
        new,
        json!([
            "10s",
            "Normal",
            "Scheduled",
            "pod/web",
            "",
            "scheduler",
            "assigned",
            "10s",
            1,
            "e2"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
}
