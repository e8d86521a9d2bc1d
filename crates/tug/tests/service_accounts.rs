//! Service accounts as in-cluster clients use them: tokens from the
//! TokenRequest API (`kubectl create token`) that the API server accepts as
//! bearer tokens, and the credentials every pod finds at
//! /var/run/secrets/kubernetes.io/serviceaccount, which die with the pod.

mod common;

use std::path::PathBuf;

use common::pods::BUSYBOX;
use common::{KUBECTL, Server, eventually, node_name, node_server};
use serde_json::json;

const CREDENTIALS: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// A kubeconfig with the cluster's address and CA but no client
/// certificate: `token` is all it shows the API server.
fn token_kubeconfig(server: &Server, name: &str, token: &str) -> PathBuf {
    let admin = std::fs::read_to_string(server.kubeconfig()).unwrap();
    let field = |key: &str| {
        admin
            .lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .unwrap()
            .trim()
            .to_owned()
    };
    let path = server.data_dir().join(format!("{name}.kubeconfig"));
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n",
        field("server:"),
        field("certificate-authority-data:"),
    );
    std::fs::write(&path, kubeconfig).unwrap();
    path
}

/// kubectl as the holder of `kubeconfig`: (succeeded, stdout + stderr).
fn kubectl_as(kubeconfig: &PathBuf, args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn created_tokens_authenticate_until_their_account_is_deleted() {
    let server = node_server();
    let ns = server.namespace("tokens");
    server
        .kubectl(&["create", "serviceaccount", "robot", "-n", &ns])
        .ok();

    let token = server
        .kubectl(&["create", "token", "robot", "-n", &ns])
        .ok();
    let parts: Vec<&str> = token.trim().split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts: {token}");
    let kubeconfig = token_kubeconfig(server, "robot", token.trim());
    let (ok, out) = kubectl_as(&kubeconfig, &["get", "serviceaccount", "robot", "-n", &ns]);
    assert!(ok, "the token authenticates: {out}");

    let garbage = token_kubeconfig(server, "garbage", &format!("{}x", token.trim()));
    let (ok, out) = kubectl_as(&garbage, &["get", "serviceaccounts", "-n", &ns]);
    assert!(!ok && out.contains("Unauthorized"), "{out}");

    let err = server
        .kubectl(&["create", "token", "robot", "-n", &ns, "--duration=5m"])
        .fails();
    assert!(
        err.contains("spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 10 minutes"),
        "{err}"
    );
    let err = server
        .kubectl(&["create", "token", "nobody", "-n", &ns])
        .fails();
    assert!(
        err.contains(r#"serviceaccounts "nobody" not found"#),
        "{err}"
    );

    server
        .kubectl(&["delete", "serviceaccount", "robot", "-n", &ns])
        .ok();
    let (ok, out) = kubectl_as(&kubeconfig, &["get", "serviceaccounts", "-n", &ns]);
    assert!(
        !ok && out.contains("Unauthorized"),
        "a deleted account's token: {out}"
    );
}

#[test]
fn pods_get_their_account_credentials_which_die_with_them() {
    let server = node_server();
    let ns = server.namespace("mounted");
    let pod = |name: &str, automount: bool| {
        json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {
                "nodeName": node_name(),
                "automountServiceAccountToken": automount,
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "c", "image": BUSYBOX, "imagePullPolicy": "Never",
                                "command": ["sleep", "3600"]}],
            },
        })
        .to_string()
    };
    server
        .kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &pod("with", true))
        .ok();
    server
        .kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &pod("without", false))
        .ok();
    for name in ["with", "without"] {
        server
            .kubectl(&[
                "wait",
                "-n",
                &ns,
                "--for=condition=Ready",
                &format!("pod/{name}"),
                "--timeout=120s",
            ])
            .ok();
    }
    let exec = |pod: &str, file: &str| {
        server.kubectl(&[
            "exec",
            "-n",
            &ns,
            pod,
            "--",
            "cat",
            &format!("{CREDENTIALS}/{file}"),
        ])
    };
    assert_eq!(exec("with", "namespace").ok(), ns);
    let ca = exec("with", "ca.crt").ok();
    let cluster_ca = std::fs::read_to_string(server.data_dir().join("pki/ca.crt")).unwrap();
    assert_eq!(ca, cluster_ca, "ca.crt is the cluster CA");

    let token = exec("with", "token").ok();
    let kubeconfig = token_kubeconfig(server, "pod", &token);
    let (ok, out) = kubectl_as(&kubeconfig, &["get", "pods", "-n", &ns]);
    assert!(
        ok && out.contains("with"),
        "the pod's token reaches the API: {out}"
    );

    let err = exec("without", "token").fails();
    assert!(err.contains("No such file or directory"), "{err}");

    server.kubectl(&["delete", "pod", "with", "-n", &ns]).ok();
    eventually(
        "the deleted pod's token to be refused",
        || match kubectl_as(&kubeconfig, &["get", "pods", "-n", &ns]) {
            (false, out) if out.contains("Unauthorized") => Ok(()),
            (_, out) => Err(out),
        },
    );
}
