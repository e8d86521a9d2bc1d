//! The agent's image garbage collection: with thresholds so low that the
//! disk is always past them, an unused image is removed from the node and
//! an image a pod uses stays.

mod common;

use std::process::Command;

use common::{Server, eventually, node_name};
use serde_json::json;

/// `tug images ls` of the server's node.
fn images(server: &Server) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_tug"))
        .args(["images", "ls", "--root"])
        .arg(server.data_dir().join("agent/images"))
        .output()
        .expect("run tug images ls");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn unused_images_are_collected_once_the_disk_passes_the_threshold() {
    let server = Server::start_with(&[
        "--image-gc-high-threshold",
        "1",
        "--image-gc-low-threshold",
        "0",
        "--disable-ingress",
        "--disable-proxy",
        "--disable-dns",
    ]);
    // The pod names its image before the image is on the node: from the
    // moment it is imported, it is in use.
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "user"},
        "spec": {
            "nodeName": node_name(),
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main",
                "image": "tugboat.test/busybox:latest",
                "imagePullPolicy": "Never",
                "command": ["sleep", "3600"],
            }],
        },
    });
    server.apply_json("default", &pod);
    server.import_image("busybox.oci.tar");
    eventually("the pod running", || {
        let pod = server.get_json("default", "pod", "user");
        match pod["status"]["phase"].as_str() {
            Some("Running") => Ok(()),
            _ => Err(pod["status"].to_string()),
        }
    });

    server.import_image("httpd.oci.tar");
    eventually("the unused httpd image collected", || {
        let listed = images(&server);
        if listed.contains("tugboat.test/httpd") {
            Err(listed)
        } else {
            Ok(())
        }
    });
    let listed = images(&server);
    assert!(listed.contains("tugboat.test/busybox"), "{listed}");
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.contains("image garbage collection") && l.contains("tugboat.test/httpd")),
        "no log line tells what was removed:\n{log}"
    );
    let pod = server.get_json("default", "pod", "user");
    assert_eq!(pod["status"]["phase"], "Running", "{}", pod["status"]);
}
