//! The manifests from the project's seed documents (tests/manifests/seeds)
//! are accepted by `kubectl apply` as a real cluster accepts them.

mod common;

use common::{arg, manifest, shared_server};
use serde_json::json;

/// Each seed file and what `kubectl apply` prints for it.
const SEEDS: [(&str, &[&str]); 10] = [
    ("000-my-service.yaml", &["service/my-service created"]),
    ("001-kuba-liveness.yaml", &["pod/kuba-liveness created"]),
    ("001-kuba-manual.yaml", &["pod/kuba-manual created"]),
    (
        "001-kubia-ingress.yaml",
        &["ingress.networking.k8s.io/kubia-ingress created"],
    ),
    ("001-kubia-manual-v2.yaml", &["pod/kubia-manual-v2 created"]),
    (
        "001-kubia-replicaset.yaml",
        &["replicaset.apps/kubia created"],
    ),
    ("001-kubia-service.yaml", &["service/kubia created"]),
    (
        "002-nginx-deployment.yaml",
        &["deployment.apps/nginx-deployment created"],
    ),
    ("002-web-app-service.yaml", &["service/web-app created"]),
    (
        "004-bb.yaml",
        &[
            "deployment.apps/bb-demo created",
            "service/bb-entripoint created",
        ],
    ),
];

/// Refused by strict field validation; see `multi_pod_seed_has_an_unknown_field`.
const MULTI_POD: &str = "000-multi-pod.yaml";

#[test]
fn every_seed_file_is_covered() {
    let mut files: Vec<String> = std::fs::read_dir(manifest("seeds"))
        .expect("seeds dir")
        .map(|entry| {
            entry
                .expect("dir entry")
                .file_name()
                .into_string()
                .expect("utf-8")
        })
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    files.sort();
    let mut covered: Vec<&str> = SEEDS.iter().map(|(file, _)| *file).collect();
    covered.push(MULTI_POD);
    covered.sort();
    assert_eq!(files, covered);
}

#[test]
fn seeds_are_accepted_by_kubectl_apply() {
    let server = shared_server();
    let mut refused = Vec::new();
    for (file, expected) in SEEDS {
        let run = server.kubectl(&["apply", "-f", arg(&manifest(&format!("seeds/{file}")))]);
        let printed: Vec<&str> = run.stdout.lines().collect();
        if !run.status.success() || printed != expected {
            refused.push(format!(
                "{file}: stdout {:?}, stderr {}",
                run.stdout, run.stderr
            ));
        }
    }
    assert!(
        refused.is_empty(),
        "seeds not accepted:\n{}",
        refused.join("\n")
    );

    let names = server.names(&[
        "get",
        "pods,replicasets,deployments,services,ingresses",
        "-n",
        "default",
    ]);
    for wanted in [
        "pod/kuba-liveness",
        "pod/kuba-manual",
        "pod/kubia-manual-v2",
        "replicaset.apps/kubia",
        "deployment.apps/nginx-deployment",
        "deployment.apps/bb-demo",
        "service/my-service",
        "service/kubia",
        "service/web-app",
        "service/bb-entripoint",
        "ingress.networking.k8s.io/kubia-ingress",
    ] {
        assert!(names.contains(&wanted.to_owned()), "{wanted} in {names:?}");
    }

    let bb = server.get_json("default", "service", "bb-entripoint");
    assert_eq!(bb["spec"]["type"], "NodePort");
    assert_eq!(bb["spec"]["ports"][0]["nodePort"], 30001);
    let web_app = server.get_json("default", "service", "web-app");
    assert_eq!(web_app["spec"]["ports"][0]["targetPort"], "web-pod-port");
    let liveness = server.get_json("default", "pod", "kuba-liveness");
    assert_eq!(
        liveness["spec"]["containers"][0]["livenessProbe"]["httpGet"],
        json!({"path": "/", "port": 8080, "scheme": "HTTP"})
    );
    let ingress = server.get_json("default", "ingress", "kubia-ingress");
    assert_eq!(
        ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"],
        json!({"name": "kubia-loadbalancer", "port": {"number": 80}})
    );

    let again = server
        .kubectl(&["apply", "-f", arg(&manifest("seeds/004-bb.yaml"))])
        .ok();
    assert_eq!(
        again.lines().collect::<Vec<_>>(),
        [
            "deployment.apps/bb-demo unchanged",
            "service/bb-entripoint unchanged"
        ]
    );
}

#[test]
fn multi_pod_seed_has_an_unknown_field() {
    let server = shared_server();
    let file = manifest(&format!("seeds/{MULTI_POD}"));

    let err = server.kubectl(&["apply", "-f", arg(&file)]).fails();
    assert!(err.contains(r#"unknown field "metadata.label""#), "{err}");
    server.assert_absent("default", "pod", "multi-pod");

    let out = server
        .kubectl(&["apply", "--validate=false", "-f", arg(&file)])
        .ok();
    assert_eq!(out.trim(), "pod/multi-pod created");
    let pod = server.get_json("default", "pod", "multi-pod");
    let names: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["1st", "2nd"]);
    assert_eq!(
        pod["spec"]["containers"][1]["args"],
        json!(["while true; do date >> /html/index.html; sleep 1; Done"])
    );
}
