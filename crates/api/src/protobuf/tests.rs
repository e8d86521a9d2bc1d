//! Round trips: objects built as k8s-pb (prost) messages, encoded as client-go
//! sends them, must decode to the JSON Kubernetes would accept for the same object.

use std::collections::BTreeMap;

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::batch::v1 as batch;
use k8s_pb::api::coordination::v1 as coordination;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::json;

use super::decode;

/// The body client-go sends: magic, then `runtime.Unknown` around the object.
fn body(api_version: &str, kind: &str, object: &impl Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(object.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = b"k8s\0".to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

fn s(text: &str) -> Option<String> {
    Some(text.into())
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Metadata as Go writes it: non-pointer strings and the zero creation time
/// are on the wire even when empty.
fn metadata(name: &str, namespace: &str) -> Option<meta::ObjectMeta> {
    Some(meta::ObjectMeta {
        name: s(name),
        generate_name: s(""),
        namespace: s(namespace),
        uid: s(""),
        resource_version: s(""),
        generation: None,
        creation_timestamp: Some(meta::Time::default()),
        ..Default::default()
    })
}

fn int(port: i32) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(0),
        int_val: Some(port),
        str_val: s(""),
    })
}

fn string(text: &str) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(1),
        int_val: Some(0),
        str_val: s(text),
    })
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity { string: s(v) }))
        .collect()
}

fn container(name: &str, image: &str) -> core::Container {
    core::Container {
        name: s(name),
        image: s(image),
        termination_message_path: s(""),
        ..Default::default()
    }
}

#[test]
fn namespace() {
    let namespace = core::Namespace {
        metadata: Some(meta::ObjectMeta {
            labels: labels(&[("team", "a")]),
            ..metadata("x", "").unwrap()
        }),
        spec: Some(Default::default()),
        status: Some(Default::default()),
    };
    let decoded = decode(&body("v1", "Namespace", &namespace)).unwrap();
    assert_eq!(
        decoded,
        json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "x", "labels": {"team": "a"}},
            "spec": {}, "status": {},
        })
    );
}

#[test]
fn pod_with_ports_env_resources_and_probes() {
    let pod = core::Pod {
        metadata: Some(meta::ObjectMeta {
            creation_timestamp: Some(meta::Time {
                seconds: Some(1704164645),
                nanos: Some(0),
            }),
            ..metadata("web", "default").unwrap()
        }),
        spec: Some(core::PodSpec {
            containers: vec![core::Container {
                ports: vec![core::ContainerPort {
                    name: s("http"),
                    container_port: Some(8080),
                    protocol: s("TCP"),
                    ..Default::default()
                }],
                env: vec![core::EnvVar {
                    name: s("MODE"),
                    value: s("prod"),
                    value_from: None,
                }],
                resources: Some(core::ResourceRequirements {
                    limits: quantities(&[("cpu", "500m"), ("memory", "128Mi")]),
                    ..Default::default()
                }),
                readiness_probe: Some(core::Probe {
                    handler: Some(core::ProbeHandler {
                        http_get: Some(core::HttpGetAction {
                            path: s("/healthz"),
                            port: int(8080),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    period_seconds: Some(5),
                    ..Default::default()
                }),
                liveness_probe: Some(core::Probe {
                    handler: Some(core::ProbeHandler {
                        tcp_socket: Some(core::TcpSocketAction {
                            port: string("http"),
                            host: s(""),
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..container("web", "nginx:1.27")
            }],
            restart_policy: s("Always"),
            termination_grace_period_seconds: Some(0),
            enable_service_links: Some(false),
            ..Default::default()
        }),
        status: Some(Default::default()),
    };
    let decoded = decode(&body("v1", "Pod", &pod)).unwrap();
    assert_eq!(
        decoded,
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2024-01-02T03:04:05Z"},
            "spec": {
                "containers": [{
                    "name": "web", "image": "nginx:1.27",
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "env": [{"name": "MODE", "value": "prod"}],
                    "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5},
                    "livenessProbe": {"tcpSocket": {"port": "http"}},
                }],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 0,
                "enableServiceLinks": false,
            },
            "status": {},
        })
    );
}

#[test]
fn deployment_with_selector_template_and_strategy() {
    let app = labels(&[("app", "web")]);
    let deployment = apps::Deployment {
        metadata: metadata("web", "default"),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            selector: Some(meta::LabelSelector {
                match_labels: app.clone(),
                match_expressions: vec![],
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels: app,
                    ..metadata("", "").unwrap()
                }),
                spec: Some(core::PodSpec {
                    containers: vec![container("nginx", "nginx")],
                    ..Default::default()
                }),
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_surge: string("25%"),
                    max_unavailable: int(0),
                }),
            }),
            ..Default::default()
        }),
        status: Some(Default::default()),
    };
    let decoded = decode(&body("apps/v1", "Deployment", &deployment)).unwrap();
    assert_eq!(
        decoded,
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx"}]},
                },
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            },
            "status": {},
        })
    );
}

#[test]
fn secret_bytes_are_base64() {
    let secret = core::Secret {
        metadata: metadata("creds", "default"),
        data: [("password".to_string(), b"s3cr\xffet".to_vec())].into(),
        r#type: s("Opaque"),
        ..Default::default()
    };
    let decoded = decode(&body("v1", "Secret", &secret)).unwrap();
    assert_eq!(
        decoded,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "creds", "namespace": "default"},
            "data": {"password": "czNjcv9ldA=="},
            "type": "Opaque",
        })
    );
}

#[test]
fn config_map_keeps_empty_values() {
    let config_map = core::ConfigMap {
        metadata: metadata("settings", "default"),
        data: labels(&[("mode", "fast"), ("empty", "")]),
        binary_data: [("blob".to_string(), vec![0, 1, 2])].into(),
        ..Default::default()
    };
    let decoded = decode(&body("v1", "ConfigMap", &config_map)).unwrap();
    assert_eq!(
        decoded,
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "default"},
            "data": {"mode": "fast", "empty": ""},
            "binaryData": {"blob": "AAEC"},
        })
    );
}

#[test]
fn service() {
    let service = core::Service {
        metadata: metadata("web", "default"),
        spec: Some(core::ServiceSpec {
            ports: vec![core::ServicePort {
                name: s("80-8080"),
                protocol: s("TCP"),
                port: Some(80),
                target_port: int(8080),
                node_port: Some(0),
                ..Default::default()
            }],
            selector: labels(&[("app", "web")]),
            r#type: s("ClusterIP"),
            cluster_ips: vec!["10.0.0.7".into()],
            ..Default::default()
        }),
        status: Some(Default::default()),
    };
    let decoded = decode(&body("v1", "Service", &service)).unwrap();
    assert_eq!(
        decoded,
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 0}],
                "selector": {"app": "web"},
                "type": "ClusterIP",
                "clusterIPs": ["10.0.0.7"],
            },
            "status": {},
        })
    );
}

#[test]
fn job() {
    let job = batch::Job {
        metadata: metadata("once", "default"),
        spec: Some(batch::JobSpec {
            backoff_limit: Some(0),
            template: Some(core::PodTemplateSpec {
                metadata: metadata("", ""),
                spec: Some(core::PodSpec {
                    containers: vec![core::Container {
                        command: vec!["sh".into(), "-c".into(), "".into()],
                        ..container("once", "busybox")
                    }],
                    restart_policy: s("Never"),
                    security_context: Some(core::PodSecurityContext {
                        supplemental_groups: vec![1000, 2000],
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        status: Some(Default::default()),
    };
    let decoded = decode(&body("batch/v1", "Job", &job)).unwrap();
    assert_eq!(
        decoded,
        json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "once", "namespace": "default"},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "metadata": {},
                    "spec": {
                        "containers": [{"name": "once", "image": "busybox", "command": ["sh", "-c", ""]}],
                        "restartPolicy": "Never",
                        "securityContext": {"supplementalGroups": [1000, 2000]},
                    },
                },
            },
            "status": {},
        })
    );
}

#[test]
fn micro_time_has_microseconds() {
    let lease = coordination::Lease {
        metadata: metadata("leader", "kube-system"),
        spec: Some(coordination::LeaseSpec {
            holder_identity: s("node-1"),
            renew_time: Some(meta::MicroTime {
                seconds: Some(1704164645),
                nanos: Some(123_456_789),
            }),
            ..Default::default()
        }),
    };
    let decoded = decode(&body("coordination.k8s.io/v1", "Lease", &lease)).unwrap();
    assert_eq!(
        decoded["spec"],
        json!({"holderIdentity": "node-1", "renewTime": "2024-01-02T03:04:05.123456Z"})
    );
}

#[test]
fn delete_options_under_any_group_version() {
    let options = meta::DeleteOptions {
        grace_period_seconds: Some(0),
        propagation_policy: s("Foreground"),
        ..Default::default()
    };
    let decoded = decode(&body("apps/v1", "DeleteOptions", &options)).unwrap();
    assert_eq!(
        decoded,
        json!({"apiVersion": "apps/v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "propagationPolicy": "Foreground"})
    );
}

/// Go writes repeated numbers one record each, but the protobuf spec lets
/// encoders pack them into one length-delimited record.
#[test]
fn packed_numbers() {
    // PodSecurityContext.supplementalGroups (4) packed: 1000, 2000.
    let context = [0x22, 0x04, 0xe8, 0x07, 0xd0, 0x0f];
    // PodSpec.securityContext = 14, Pod.spec = 2.
    let spec = [&[0x72, context.len() as u8][..], &context].concat();
    let pod = [&[0x12, spec.len() as u8][..], &spec].concat();
    let decoded = decode(&body("v1", "Pod", &RawObject(pod))).unwrap();
    assert_eq!(
        decoded["spec"]["securityContext"]["supplementalGroups"],
        json!([1000, 2000])
    );
}

/// An already-encoded object, for bodies prost would not produce.
struct RawObject(Vec<u8>);

impl std::fmt::Debug for RawObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl Message for RawObject {
    fn encode_raw(&self, buf: &mut impl prost::bytes::BufMut) {
        buf.put_slice(&self.0);
    }
    fn merge_field(
        &mut self,
        _: u32,
        _: prost::encoding::WireType,
        _: &mut impl prost::bytes::Buf,
        _: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        unreachable!("tests only encode")
    }
    fn encoded_len(&self) -> usize {
        self.0.len()
    }
    fn clear(&mut self) {
        self.0.clear();
    }
}

fn bad_request(body: &[u8]) -> String {
    let error = decode(body).expect_err("a bad body");
    assert_eq!(error.code, 400, "{error}");
    error.message
}

#[test]
fn body_without_magic_is_a_bad_request() {
    bad_request(b"{\"kind\":\"Pod\"}");
    bad_request(b"");
}

#[test]
fn unknown_kind_is_a_bad_request_naming_it() {
    let message = bad_request(&body(
        "example.com/v1",
        "Widget",
        &core::Namespace::default(),
    ));
    assert!(
        message.contains("example.com/v1") && message.contains("Widget"),
        "{message}"
    );
}

#[test]
fn truncated_bodies_are_bad_requests_never_panics() {
    let pod = core::Pod {
        metadata: metadata("web", "default"),
        spec: Some(core::PodSpec {
            containers: vec![container("web", "nginx")],
            ..Default::default()
        }),
        status: None,
    };
    let full = body("v1", "Pod", &pod);
    for end in 4..full.len() {
        // A cut at a record boundary of the envelope is a shorter valid body.
        if let Err(error) = decode(&full[..end]) {
            assert_eq!(error.code, 400);
        }
    }
    bad_request(&full[..full.len() - 1]);
}

#[test]
fn wrong_wire_type_is_a_bad_request() {
    // Pod.metadata (1) as a varint instead of a message.
    bad_request(&body("v1", "Pod", &RawObject(vec![0x08, 0x01])));
    // A string that is not UTF-8: ObjectMeta.name = 0xff inside Pod.metadata.
    bad_request(&body(
        "v1",
        "Pod",
        &RawObject(vec![0x0a, 0x03, 0x0a, 0x01, 0xff]),
    ));
}

#[test]
fn corrupt_bytes_never_panic() {
    let pod = core::Pod {
        metadata: metadata("web", "default"),
        ..Default::default()
    };
    let full = body("v1", "Pod", &pod);
    for at in 4..full.len() {
        for byte in [0x00, 0x7f, 0x80, 0xff] {
            let mut corrupt = full.clone();
            corrupt[at] = byte;
            if let Err(error) = decode(&corrupt) {
                assert_eq!(error.code, 400);
            }
        }
    }
}

/// Go embeds `VolumeSource` in `Volume` and `LocalObjectReference` in
/// `ConfigMapKeySelector` with `json:",inline"`; protobuf nests them.
#[test]
fn embedded_structs_are_inlined() {
    let spec = core::PodSpec {
        volumes: vec![core::Volume {
            name: s("config"),
            volume_source: Some(core::VolumeSource {
                config_map: Some(core::ConfigMapVolumeSource {
                    local_object_reference: Some(core::LocalObjectReference {
                        name: s("settings"),
                    }),
                    default_mode: Some(0o644),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }],
        containers: vec![core::Container {
            env: vec![core::EnvVar {
                name: s("MODE"),
                value: s(""),
                value_from: Some(core::EnvVarSource {
                    config_map_key_ref: Some(core::ConfigMapKeySelector {
                        local_object_reference: Some(core::LocalObjectReference {
                            name: s("settings"),
                        }),
                        key: s("mode"),
                        optional: None,
                    }),
                    ..Default::default()
                }),
            }],
            ..container("web", "nginx")
        }],
        ..Default::default()
    };
    let pod = core::Pod {
        metadata: metadata("web", "default"),
        spec: Some(spec),
        status: None,
    };
    let decoded = decode(&body("v1", "Pod", &pod)).unwrap();
    assert_eq!(
        decoded["spec"],
        json!({
            "volumes": [{"name": "config", "configMap": {"name": "settings", "defaultMode": 420}}],
            "containers": [{
                "name": "web", "image": "nginx",
                "env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}}],
            }],
        })
    );
}

/// Bodies real kubectl 1.33 sent for `kubectl create namespace x`,
/// `create deployment web --image=nginx --replicas=0 --port=80`,
/// `create configmap cm --from-literal=a=b`, `create secret generic s
/// --from-literal=p=q`, `create service clusterip svc --tcp=80:8080` and
/// `create job j --image=busybox -- echo hi`.
#[test]
fn kubectl_bodies() {
    let namespace = decode(include_bytes!("testdata/namespace.bin")).unwrap();
    assert_eq!(namespace["kind"], "Namespace");
    assert_eq!(namespace["metadata"]["name"], "x");

    let deployment = decode(include_bytes!("testdata/deployment.bin")).unwrap();
    assert_eq!(deployment["apiVersion"], "apps/v1");
    assert_eq!(deployment["spec"]["replicas"], 0);
    assert_eq!(
        deployment["spec"]["selector"],
        json!({"matchLabels": {"app": "web"}})
    );
    let template = &deployment["spec"]["template"];
    assert_eq!(template["metadata"]["labels"], json!({"app": "web"}));
    let container = &template["spec"]["containers"][0];
    assert_eq!(
        (&container["name"], &container["image"]),
        (&json!("nginx"), &json!("nginx"))
    );
    assert_eq!(container["ports"][0]["containerPort"], 80);

    let config_map = decode(include_bytes!("testdata/configmap.bin")).unwrap();
    assert_eq!(config_map["data"], json!({"a": "b"}));

    let secret = decode(include_bytes!("testdata/secret.bin")).unwrap();
    assert_eq!(secret["data"], json!({"p": "cQ=="}));

    let service = decode(include_bytes!("testdata/service.bin")).unwrap();
    let spec = &service["spec"];
    assert_eq!(spec["type"], "ClusterIP");
    assert_eq!(spec["selector"], json!({"app": "svc"}));
    let port = &spec["ports"][0];
    assert_eq!(
        (&port["port"], &port["targetPort"], &port["protocol"]),
        (&json!(80), &json!(8080), &json!("TCP"))
    );

    let job = decode(include_bytes!("testdata/job.bin")).unwrap();
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["containers"][0]["command"], json!(["echo", "hi"]));
}
