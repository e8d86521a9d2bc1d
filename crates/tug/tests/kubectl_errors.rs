//! Bad input gets a clear refusal and changes nothing.

mod common;

use common::{arg, manifest, shared_server, temp_manifest};
use serde_json::json;

#[test]
fn malformed_yaml_is_refused() {
    let server = shared_server();
    let ns = server.namespace("bad-yaml");
    let err = server
        .kubectl(&[
            "apply",
            "-n",
            &ns,
            "-f",
            arg(&manifest("bad/malformed.yaml")),
        ])
        .fails();
    assert!(err.contains("yaml"), "{err}");
    server.assert_absent(&ns, "configmap", "malformed");
}

#[test]
fn invalid_name_is_a_422_naming_the_field() {
    let server = shared_server();
    let ns = server.namespace("bad-name");
    let file = manifest("bad/invalid-name.yaml");

    let err = server
        .kubectl(&["apply", "-n", &ns, "-f", arg(&file), "-v=6"])
        .fails();
    assert!(err.contains("422 Unprocessable Entity"), "{err}");
    assert!(
        err.contains(
            r#"The ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name""#
        ),
        "{err}"
    );
    assert!(err.contains("RFC 1123 subdomain"), "{err}");

    let err = server
        .kubectl(&["create", "-n", &ns, "-f", arg(&file)])
        .fails();
    assert!(err.contains("metadata.name: Invalid value"), "{err}");
    assert_eq!(
        server.names(&[
            "get",
            "configmaps",
            "-n",
            &ns,
            "--field-selector",
            "metadata.name=Bad_Name"
        ]),
        Vec::<String>::new()
    );
}

#[test]
fn invalid_spec_names_every_bad_field() {
    let server = shared_server();
    let ns = server.namespace("bad-spec");
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "broken"},
        "spec": {"containers": [{"name": "Not_A_Label"}]},
    });
    let err = server
        .kubectl_stdin(&["create", "-n", &ns, "-f", "-"], &pod.to_string())
        .fails();
    assert!(err.contains(r#"The Pod "broken" is invalid"#), "{err}");
    assert!(err.contains("spec.containers[0].name"), "{err}");
    assert!(
        err.contains("spec.containers[0].image: Required value"),
        "{err}"
    );
    server.assert_absent(&ns, "pod", "broken");
}

#[test]
fn object_in_a_missing_namespace_is_not_found() {
    let server = shared_server();
    let err = server
        .kubectl(&["apply", "-f", arg(&manifest("bad/missing-namespace.yaml"))])
        .fails();
    assert!(err.contains("NotFound"), "{err}");
    assert!(
        err.contains(r#"namespaces "no-such-namespace" not found"#),
        "{err}"
    );
    assert_eq!(
        server.names(&[
            "get",
            "configmaps",
            "-A",
            "--field-selector",
            "metadata.name=lost"
        ]),
        Vec::<String>::new()
    );
    server.assert_absent("default", "namespace", "no-such-namespace");
}

#[test]
fn unknown_kind_is_refused() {
    let server = shared_server();
    let ns = server.namespace("bad-kind");
    let err = server
        .kubectl(&[
            "apply",
            "-n",
            &ns,
            "-f",
            arg(&manifest("bad/unknown-kind.yaml")),
        ])
        .fails();
    assert!(
        err.contains(r#"no matches for kind "Frobnicator" in version "v1""#),
        "{err}"
    );
}

#[test]
fn unknown_field_is_refused_by_strict_validation() {
    let server = shared_server();
    let ns = server.namespace("bad-field");
    let config =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\ndata:\n  a: b\ndatta:\n  c: d\n";

    let err = server
        .kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], config)
        .fails();
    assert!(err.contains(r#"unknown field "datta""#), "{err}");
    server.assert_absent(&ns, "configmap", "typo");

    let warned = server.kubectl_stdin(&["apply", "-n", &ns, "--validate=warn", "-f", "-"], config);
    assert!(
        warned.stderr.contains(r#"unknown field "datta""#),
        "{}",
        warned.stderr
    );
    assert_eq!(warned.ok().trim(), "configmap/typo created");
    let stored = server.get_json(&ns, "configmap", "typo");
    assert_eq!(stored["data"], json!({"a": "b"}));
    assert!(stored.get("datta").is_none(), "{stored}");
}

/// A ConfigMap JSON whose `data` holds `bytes` bytes.
fn configmap_of_size(name: &str, bytes: usize) -> String {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"blob": "x".repeat(bytes)},
    })
    .to_string()
}

#[test]
fn configmap_over_one_mebibyte_is_too_long() {
    let server = shared_server();
    let ns = server.namespace("bad-big-configmap");
    let (_dir, file) = temp_manifest("big.json", &configmap_of_size("big", 1_600_000));

    let err = server
        .kubectl(&[
            "create",
            "--raw",
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            "-f",
            arg(&file),
            "-v=6",
        ])
        .fails();
    assert!(err.contains("422 Unprocessable Entity"), "{err}");
    assert!(err.contains("Too long"), "{err}");
    server.assert_absent(&ns, "configmap", "big");
}

#[test]
fn request_body_over_the_limit_is_413() {
    let server = shared_server();
    let ns = server.namespace("bad-huge-body");
    let (_dir, file) = temp_manifest("huge.json", &configmap_of_size("huge", 3_500_000));

    let err = server
        .kubectl(&[
            "create",
            "--raw",
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            "-f",
            arg(&file),
            "-v=6",
        ])
        .fails();
    assert!(err.contains("413 Request Entity Too Large"), "{err}");
    server.assert_absent(&ns, "configmap", "huge");
}
