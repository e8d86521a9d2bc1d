use serde_json::{Value, json};

use super::validate;
use crate::FieldError;
use crate::defaults::apply_defaults;
use crate::registry::by_kind;

/// Decodes, defaults and validates `obj` as the API server does on create
/// (or update, with `old`).
fn check(obj: Value, old: Option<&Value>) -> Vec<FieldError> {
    let kind = by_kind(
        obj["apiVersion"].as_str().unwrap(),
        obj["kind"].as_str().unwrap(),
    )
    .unwrap();
    let mut obj = (kind.normalize)(obj).expect("decodes");
    apply_defaults(kind, &mut obj);
    validate(kind, &obj, old)
}

/// The object as stored after a create, to update from.
fn stored(obj: Value) -> Value {
    let kind = by_kind(
        obj["apiVersion"].as_str().unwrap(),
        obj["kind"].as_str().unwrap(),
    )
    .unwrap();
    let mut obj = (kind.normalize)(obj).expect("decodes");
    apply_defaults(kind, &mut obj);
    assert_eq!(validate(kind, &obj, None), vec![]);
    obj
}

fn summaries(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(FieldError::summary).collect()
}

#[test]
fn seed_manifests_are_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/manifests/seeds");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_saphyr::from_multiple::<Value>(&text).unwrap() {
            let mut doc = doc;
            if doc["metadata"].get("namespace").is_none() {
                doc["metadata"]["namespace"] = json!("default");
            }
            if by_kind(
                doc["apiVersion"].as_str().unwrap(),
                doc["kind"].as_str().unwrap(),
            )
            .is_some_and(|k| !k.namespaced)
            {
                doc["metadata"].as_object_mut().unwrap().remove("namespace");
            }
            assert_eq!(
                summaries(&check(doc, None)),
                Vec::<String>::new(),
                "{}",
                path.display()
            );
            count += 1;
        }
    }
    assert_eq!(count, 12, "every seed object was checked");
}

fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
}

fn deployment(selector: Value, template_labels: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx", "namespace": "default"},
        "spec": {
            "selector": selector,
            "template": {
                "metadata": {"labels": template_labels},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}
            }
        }
    })
}

#[test]
fn bad_names_read_as_kubernetes_writes_them() {
    let mut p = pod(json!({"containers": [{"name": "c", "image": "busybox"}]}));
    p["metadata"]["name"] = json!("My_Pod");
    assert_eq!(
        summaries(&check(p, None)),
        vec![
            r#"metadata.name: Invalid value: "My_Pod": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#
        ]
    );

    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "1web", "namespace": "default"},
                     "spec": {"ports": [{"port": 80}]}});
    let errs = check(svc, None);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].message.ends_with("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"));

    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team.a"}});
    assert_eq!(check(ns, None)[0].field, "metadata.name");

    let unnamed =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "default"}});
    assert_eq!(
        summaries(&check(unnamed, None)),
        vec!["metadata.name: Required value: name or generateName is required"]
    );
}

#[test]
fn labels_and_annotations() {
    let mut p = pod(json!({"containers": [{"name": "c", "image": "busybox"}]}));
    p["metadata"]["labels"] = json!({"app": "-web", "bad key": "x"});
    p["metadata"]["annotations"] = json!({"Example.COM/Note": "fine", "a/b/c": "x"});
    let errs = check(p, None);
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        vec!["metadata.labels", "metadata.labels", "metadata.annotations"]
    );
    assert!(
        errs[0]
            .message
            .starts_with(r#"Invalid value: "-web": a valid label must be an empty string"#)
    );
    assert!(
        errs[1]
            .message
            .starts_with(r#"Invalid value: "bad key": name part must consist of"#)
    );
}

#[test]
fn cluster_scoped_and_namespaced() {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "namespace": "b"}});
    assert_eq!(
        summaries(&check(ns, None)),
        vec!["metadata.namespace: Forbidden: not allowed on this type"]
    );
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}});
    assert_eq!(
        summaries(&check(cm, None)),
        vec!["metadata.namespace: Required value"]
    );
}

#[test]
fn pod_containers() {
    assert_eq!(
        summaries(&check(pod(json!({"containers": []})), None)),
        vec!["spec.containers: Required value"]
    );
    let errs = check(
        pod(json!({"containers": [
            {"name": "web", "image": "nginx", "ports": [{"containerPort": 70000, "name": "http"}]},
            {"name": "web", "image": "", "ports": [{"containerPort": 8080, "name": "http", "protocol": "HTTP"}]}
        ]})),
        None,
    );
    assert_eq!(
        summaries(&errs),
        vec![
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.containers[1].image: Required value",
            r#"spec.containers[1].ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP""#,
            r#"spec.containers[1].name: Duplicate value: "web""#,
            r#"spec.containers[1].ports[0].name: Duplicate value: "http""#,
        ]
    );
}

#[test]
fn pod_restart_policy_volumes_and_probes() {
    let errs = check(
        pod(json!({
            "restartPolicy": "Sometimes",
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "data", "emptyDir": {}}],
            "containers": [{
                "name": "c", "image": "busybox",
                "volumeMounts": [{"name": "cache", "mountPath": "/cache"}, {"name": "data", "mountPath": "/data"}],
                "livenessProbe": {"httpGet": {"port": 0}, "successThreshold": 2},
                "readinessProbe": {"periodSeconds": 5}
            }]
        })),
        None,
    );
    assert_eq!(
        summaries(&errs),
        vec![
            r#"spec.volumes[1].name: Duplicate value: "data""#,
            r#"spec.containers[0].volumeMounts[0].name: Not found: "cache""#,
            "spec.containers[0].livenessProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
            "spec.containers[0].readinessProbe: Required value: must specify a handler type",
            r#"spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never""#,
        ]
    );
}

#[test]
fn pod_update_may_change_only_images() {
    let old = stored(pod(
        json!({"containers": [{"name": "c", "image": "nginx:1.24", "ports": [{"containerPort": 80}]}]}),
    ));
    let mut new_image = old.clone();
    new_image["spec"]["containers"][0]["image"] = json!("nginx:1.25");
    new_image["metadata"]["labels"] = json!({"tier": "web"});
    assert_eq!(check(new_image, Some(&old)), vec![]);

    let mut new_port = old.clone();
    new_port["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(8080);
    let errs = check(new_port, Some(&old));
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "spec");
    assert_eq!(errs[0].reason, "FieldValueForbidden");
    assert!(errs[0].message.starts_with(
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`"
    ));

    let mut more = old.clone();
    more["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "d", "image": "busybox"}));
    assert_eq!(
        summaries(&check(more, Some(&old))),
        vec!["spec.containers: Forbidden: pod updates may not add or remove containers"]
    );

    let mut renamed = old.clone();
    renamed["metadata"]["name"] = json!("other");
    assert_eq!(
        summaries(&check(renamed, Some(&old))),
        vec![r#"metadata.name: Invalid value: "other": field is immutable"#]
    );
}

#[test]
fn workload_selector_must_select_template() {
    let errs = check(
        deployment(
            json!({"matchLabels": {"app": "nginx"}}),
            json!({"app": "web"}),
        ),
        None,
    );
    assert_eq!(
        summaries(&errs),
        vec![
            r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`"#
        ]
    );
    let errs = check(deployment(json!({}), json!({"app": "web"})), None);
    assert_eq!(
        summaries(&errs),
        vec![
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"
        ]
    );
    let errs = check(
        deployment(
            json!({"matchExpressions": [{"key": "app", "operator": "In"}]}),
            json!({"app": "web"}),
        ),
        None,
    );
    assert_eq!(
        summaries(&errs),
        vec![
            "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
            r#"spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:"app", Operator:"In", Values:[]string(nil)}}}: invalid label selector"#,
        ]
    );
}

#[test]
fn workload_template_restart_policy_and_replicas() {
    let mut d = deployment(
        json!({"matchLabels": {"app": "web"}}),
        json!({"app": "web"}),
    );
    d["spec"]["replicas"] = json!(-1);
    d["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
    assert_eq!(
        summaries(&check(d, None)),
        vec![
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            r#"spec.template.spec.restartPolicy: Unsupported value: "OnFailure": supported values: "Always""#,
        ]
    );
}

#[test]
fn deployment_selector_is_immutable() {
    let old = stored(deployment(
        json!({"matchLabels": {"app": "nginx"}}),
        json!({"app": "nginx"}),
    ));
    let mut new = old.clone();
    new["spec"]["selector"] = json!({"matchLabels": {"app": "nginx2"}});
    new["spec"]["template"]["metadata"]["labels"] = json!({"app": "nginx2"});
    assert_eq!(
        summaries(&check(new, Some(&old))),
        vec![
            r#"spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"nginx2"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"#
        ]
    );
    let mut scaled = old.clone();
    scaled["spec"]["replicas"] = json!(5);
    assert_eq!(check(scaled, Some(&old)), vec![]);
}

#[test]
fn deployment_strategy() {
    let mut d = deployment(
        json!({"matchLabels": {"app": "web"}}),
        json!({"app": "web"}),
    );
    d["spec"]["strategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "0%"}});
    assert_eq!(
        summaries(&check(d.clone(), None)),
        vec![
            r#"spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:""}: may not be 0 when `maxSurge` is 0"#
        ]
    );
    d["spec"]["strategy"] = json!({"type": "Recreate", "rollingUpdate": {}});
    assert_eq!(
        summaries(&check(d, None)),
        vec![
            "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"
        ]
    );
}

#[test]
fn statefulset_update_is_limited() {
    let sts = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "default"},
        "spec": {
            "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}}
        }
    });
    let old = stored(sts);
    let mut scaled = old.clone();
    scaled["spec"]["replicas"] = json!(3);
    scaled["spec"]["template"]["spec"]["containers"][0]["image"] = json!("postgres:17");
    assert_eq!(check(scaled, Some(&old)), vec![]);
    let mut renamed = old.clone();
    renamed["spec"]["serviceName"] = json!("other");
    let errs = check(renamed, Some(&old));
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "spec");
    assert!(
        errs[0]
            .message
            .starts_with("Forbidden: updates to statefulset spec for fields other than 'replicas'")
    );
}

#[test]
fn daemonset_and_replication_controller() {
    let ds = json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
                 "template": {"metadata": {"labels": {"app": "other"}}, "spec": {"containers": [{"name": "a", "image": "agent"}]}}}
    });
    assert_eq!(check(ds, None)[0].field, "spec.template.metadata.labels");

    let rc = json!({
        "apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "kubia", "namespace": "default"},
        "spec": {"replicas": 3, "selector": {"app": "kubia"},
                 "template": {"metadata": {"labels": {"app": "kubia"}}, "spec": {"containers": [{"name": "kubia", "image": "luksa/kubia"}]}}}
    });
    assert_eq!(check(rc.clone(), None), vec![]);
    let mut mismatched = rc;
    mismatched["spec"]["template"]["metadata"]["labels"] = json!({"app": "x"});
    assert_eq!(
        summaries(&check(mismatched, None)),
        vec![
            r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"x"}: `selector` does not match template `labels`"#
        ]
    );
}

#[test]
fn daemonset_rolling_update_surges_or_takes_away_never_both() {
    let ds = |rolling: Value| {
        json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": rolling},
                     "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "a", "image": "agent"}]}}}
        })
    };
    assert_eq!(
        check(ds(json!({"maxSurge": "25%", "maxUnavailable": 0})), None),
        vec![]
    );
    assert_eq!(
        check(ds(json!({"maxSurge": 0, "maxUnavailable": "10%"})), None),
        vec![]
    );
    assert_eq!(
        summaries(&check(
            ds(json!({"maxSurge": 0, "maxUnavailable": "0%"})),
            None
        )),
        vec![
            "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"
        ]
    );
    // maxUnavailable defaults to 1, so a surge alone must say 0 for it.
    assert_eq!(
        summaries(&check(ds(json!({"maxSurge": 1})), None)),
        vec![
            r#"spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:0, IntVal:1, StrVal:""}: may not be set when maxUnavailable is non-zero"#
        ]
    );
    assert_eq!(
        summaries(&check(
            ds(json!({"maxSurge": "150%", "maxUnavailable": 0})),
            None
        )),
        vec![
            r#"spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: "150%": must not be greater than 100%"#
        ]
    );
}

fn job(restart_policy: Option<&str>) -> Value {
    let mut spec = json!({"containers": [{"name": "pi", "image": "perl:5.34", "command": ["perl", "-e", "print 1"]}]});
    if let Some(policy) = restart_policy {
        spec["restartPolicy"] = json!(policy);
    }
    json!({"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": "pi", "namespace": "default", "uid": "5f0c5b7e-0000-4000-8000-000000000001"},
           "spec": {"template": {"spec": spec}}})
}

#[test]
fn job_needs_a_restart_policy_that_ends() {
    assert_eq!(check(job(Some("Never")), None), vec![]);
    assert_eq!(
        summaries(&check(job(None), None)),
        vec![
            r#"spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never""#
        ]
    );
}

#[test]
fn job_template_is_immutable() {
    let old = stored(job(Some("Never")));
    let mut new = old.clone();
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:5.36");
    let errs = check(new, Some(&old));
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "spec.template");
    assert!(errs[0].message.ends_with(": field is immutable"));
    let mut suspended = old.clone();
    suspended["spec"]["suspend"] = json!(true);
    assert_eq!(check(suspended, Some(&old)), vec![]);
}

#[test]
fn cron_job() {
    let cj = |schedule: &str| {
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "hello", "namespace": "default"},
               "spec": {"schedule": schedule, "jobTemplate": {"spec": {"template": {"spec": {
                   "restartPolicy": "OnFailure", "containers": [{"name": "hello", "image": "busybox:1.28"}]}}}}}})
    };
    assert_eq!(check(cj("*/1 * * * *"), None), vec![]);
    assert_eq!(check(cj("@hourly"), None), vec![]);
    assert_eq!(
        summaries(&check(cj("* * *"), None)),
        vec![
            r#"spec.schedule: Invalid value: "* * *": expected exactly 5 fields, found 3: [* * *]"#
        ]
    );
    let mut long = cj("@daily");
    long["metadata"]["name"] = json!("a".repeat(53));
    assert_eq!(
        check(long, None)[0].message,
        format!(
            "Invalid value: {:?}: must be no more than 52 characters",
            "a".repeat(53)
        )
    );
}

fn service(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
}

#[test]
fn service_ports() {
    assert_eq!(
        summaries(&check(service(json!({"selector": {"app": "web"}})), None)),
        vec!["spec.ports: Required value"]
    );
    assert_eq!(
        check(
            service(json!({"clusterIP": "None", "selector": {"app": "web"}})),
            None
        ),
        vec![]
    );
    assert_eq!(
        check(
            service(json!({"type": "ExternalName", "externalName": "db.example.com."})),
            None
        ),
        vec![]
    );
    let errs = check(
        service(json!({"ports": [
            {"port": 80, "targetPort": "web-pod-port"},
            {"name": "http", "port": 80, "targetPort": "Not_A_Port", "nodePort": 30080}
        ]})),
        None,
    );
    assert_eq!(
        summaries(&errs),
        vec![
            "spec.ports[0].name: Required value",
            r#"spec.ports[1].targetPort: Invalid value: "Not_A_Port": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"#,
            r#"spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}"#,
            "spec.ports[1].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
        ]
    );
    assert_eq!(
        summaries(&check(
            service(json!({"type": "Magic", "ports": [{"port": 0}]})),
            None
        )),
        vec![
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            // targetPort defaults to the port, so it is wrong too.
            "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
            r#"spec.type: Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort""#,
        ]
    );
}

#[test]
fn service_cluster_ip_is_immutable() {
    let old = stored(service(
        json!({"clusterIP": "10.96.0.10", "ports": [{"port": 53}]}),
    ));
    let mut kept = old.clone();
    kept["spec"].as_object_mut().unwrap().remove("clusterIP");
    assert_eq!(check(kept, Some(&old)), vec![]);
    let mut changed = old.clone();
    changed["spec"]["clusterIP"] = json!("10.96.0.11");
    assert_eq!(
        summaries(&check(changed, Some(&old))),
        vec![
            r#"spec.clusterIPs[0]: Invalid value: []string{"10.96.0.11"}: may not change once set"#
        ]
    );
}

#[test]
fn config_map_and_secret_keys() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app", "namespace": "default"},
                    "data": {"app.properties": "a=b", "bad/key": "x"}});
    assert_eq!(
        summaries(&check(cm, None)),
        vec![
            r#"data[bad/key]: Invalid value: "bad/key": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"#
        ]
    );
    let tls = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls", "namespace": "default"},
                     "type": "kubernetes.io/tls", "data": {"tls.crt": "Y2VydA=="}});
    assert_eq!(
        summaries(&check(tls, None)),
        vec!["data[tls.key]: Required value"]
    );
    let docker = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pull", "namespace": "default"},
                        "type": "kubernetes.io/dockerconfigjson", "stringData": {".dockerconfigjson": "{\"auths\": {}}"}});
    assert_eq!(check(docker, None), vec![]);
}

#[test]
fn immutable_config_map_and_secret_type() {
    let old = stored(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app", "namespace": "default"},
                            "data": {"k": "v"}, "immutable": true}),
    );
    let mut new = old.clone();
    new["data"]["k"] = json!("w");
    assert_eq!(
        summaries(&check(new, Some(&old))),
        vec!["data: Forbidden: field is immutable when `immutable` is set"]
    );
    let old = stored(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"}}),
    );
    let mut new = old.clone();
    new["type"] = json!("kubernetes.io/basic-auth");
    new["data"] = json!({"username": "dQ=="});
    assert_eq!(
        summaries(&check(new, Some(&old))),
        vec![r#"type: Invalid value: "kubernetes.io/basic-auth": field is immutable"#]
    );
}

#[test]
fn ingress_paths_and_backends() {
    let ingress = |path: Value| {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": "default"},
               "spec": {"rules": [{"host": "kubia.example.com", "http": {"paths": [path]}}]}})
    };
    let errs = check(
        ingress(
            json!({"path": "foo", "pathType": "Prefix", "backend": {"service": {"name": "kubia", "port": {}}}}),
        ),
        None,
    );
    assert_eq!(
        summaries(&errs),
        vec![
            r#"spec.rules[0].http.paths[0].path: Invalid value: "foo": must be an absolute path"#,
            "spec.rules[0].http.paths[0].backend.service.port: Required value: port name or number is required",
        ]
    );
    let errs = check(
        ingress(
            json!({"path": "/", "backend": {"service": {"name": "kubia", "port": {"number": 80}}}}),
        ),
        None,
    );
    assert_eq!(
        summaries(&errs),
        vec!["spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified"]
    );
}

#[test]
fn claims_need_access_modes_and_size_and_keep_their_spec() {
    let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "default"},
                       "spec": {}});
    assert_eq!(
        summaries(&check(claim, None)),
        vec![
            "spec.accessModes: Required value: at least 1 access mode is required",
            "spec.resources[storage]: Required value",
        ]
    );
    let old = stored(
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "default"},
                            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
    );
    let mut bound = old.clone();
    bound["spec"]["volumeName"] = json!("pv-1");
    bound["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
    assert_eq!(check(bound, Some(&old)), vec![]);
    let mut changed = old.clone();
    changed["spec"]["accessModes"] = json!(["ReadWriteMany"]);
    assert_eq!(check(changed, Some(&old))[0].field, "spec");
}

#[test]
fn namespace_finalizers() {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}, "spec": {"finalizers": ["kubernetes", "custom"]}});
    assert_eq!(
        summaries(&check(ns, None)),
        vec![
            r#"spec.finalizers: Invalid value: "custom": name is neither a standard finalizer name nor is it fully qualified"#
        ]
    );
}

#[test]
fn container_resources() {
    let errs = check(
        pod(
            json!({"containers": [{"name": "c", "image": "busybox", "resources": {
                "limits": {"cpu": "500m", "memory": "lots"},
                "requests": {"cpu": "1", "memory": "64Mi"}
            }}]}),
        ),
        None,
    );
    assert_eq!(
        summaries(&errs),
        vec![
            r#"spec.containers[0].resources.limits[memory]: Invalid value: "lots": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"#,
            r#"spec.containers[0].resources.requests: Invalid value: "1": must be less than or equal to cpu limit of 500m"#,
        ]
    );
}

#[test]
fn service_cluster_ip_values() {
    assert_eq!(
        summaries(&check(
            service(json!({"clusterIP": "10.0.0.300", "ports": [{"port": 80}]})),
            None
        )),
        vec![
            r#"spec.clusterIPs[0]: Invalid value: "10.0.0.300": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"#
        ]
    );
    assert_eq!(
        summaries(&check(
            service(json!({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]})),
            None
        )),
        vec![
            r#"spec.clusterIPs[0]: Invalid value: "None": may not be set to 'None' for NodePort services"#
        ]
    );
}

#[test]
fn sidecars_are_init_containers_that_restart() {
    let errs = check(
        pod(json!({
            "initContainers": [{"name": "proxy", "image": "envoy", "restartPolicy": "Always",
                                "readinessProbe": {"tcpSocket": {"port": 15000}}}],
            "containers": [{"name": "app", "image": "app", "restartPolicy": "Always"}]
        })),
        None,
    );
    assert_eq!(
        summaries(&errs),
        vec!["spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers"]
    );
}
