//! Pods on the server's own node, built and watched through kubectl: a
//! busybox pod from shell scripts, and waits on what its status says.

use serde_json::{Value, json};

use super::{Server, eventually, node_name};

pub const BUSYBOX: &str = "tugboat.test/busybox:latest";
/// The test image with busybox httpd (busybox-static and one small layer).
pub const HTTPD: &str = "tugboat.test/httpd:latest";

/// A pod on this node running `script` in busybox's sh in each container
/// (`name` -> `script`), under `restart_policy`; `extra` is merged into the spec.
pub fn pod(name: &str, restart_policy: &str, containers: &[(&str, &str)], extra: Value) -> Value {
    let containers: Vec<Value> = containers
        .iter()
        .map(|(container, script)| {
            json!({
                "name": container,
                "image": BUSYBOX,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", script],
            })
        })
        .collect();
    let mut spec = json!({
        "nodeName": node_name(),
        "restartPolicy": restart_policy,
        "terminationGracePeriodSeconds": 5,
        "containers": containers,
    });
    merge(&mut spec, extra);
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
}

/// Merges `from` into `into`, objects key by key, anything else replaced.
pub fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (k, v) in from {
                merge(into.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, value) => *slot = value,
    }
}

pub fn create(server: &Server, namespace: &str, pod: &Value) {
    server
        .kubectl_stdin(&["apply", "-n", namespace, "-f", "-"], &pod.to_string())
        .ok();
}

pub fn get_pod(server: &Server, namespace: &str, name: &str) -> Value {
    server.get_json(namespace, "pod", name)
}

/// Waits until the pod's JSON satisfies `check`, which says what it saw.
pub fn wait_pod(
    server: &Server,
    namespace: &str,
    name: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    eventually(&format!("pod {namespace}/{name}: {what}"), || {
        let pod = get_pod(server, namespace, name);
        if check(&pod) {
            Ok(pod)
        } else {
            let log = server.log();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            Err(format!(
                "{}\nserver log, newest first:\n{}",
                pod["status"],
                tail.join("\n")
            ))
        }
    })
}

pub fn wait_ready(server: &Server, namespace: &str, name: &str) -> Value {
    wait_pod(server, namespace, name, "Ready", |p| {
        p["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
    })
}

/// The status of the pod's container `name` (null when it has none yet).
pub fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["name"] == name))
        .unwrap_or(&Value::Null)
}
