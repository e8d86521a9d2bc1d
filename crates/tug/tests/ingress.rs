//! The built-in ingress controller, end to end: real kubectl makes pods,
//! Services, EndpointSlices, Secrets and Ingresses, and real curl goes
//! through the ingress's HTTP and HTTPS ports to busybox httpd pods.
//!
//! The server of this file listens for Ingresses on free ports of its own
//! (`--ingress-http-port`, `--ingress-https-port`), so it never competes for
//! 80 and 443 with another server on this machine. Its tests run in
//! parallel, each with hosts of its own.

mod common;

use std::process::Command;
use std::sync::OnceLock;

use common::pods::HTTPD;
use common::{Server, eventually, free_port};
use serde_json::{Value, json};

/// The node server of this file, with the ports its ingress listens on.
struct Node {
    server: Server,
    http: u16,
    https: u16,
}

fn node() -> &'static Node {
    static NODE: OnceLock<Node> = OnceLock::new();
    NODE.get_or_init(|| {
        let (http, https) = (free_port(), free_port());
        let server = Server::start_with(&[
            "--ingress-http-port",
            &http.to_string(),
            "--ingress-https-port",
            &https.to_string(),
        ]);
        server.import_image("httpd.oci.tar");
        Node {
            server,
            http,
            https,
        }
    })
}

/// A busybox httpd pod whose every file in `files` (paths under its web
/// root) says `name`, so an answer tells which backend gave it.
fn backend_pod(name: &str, files: &[&str]) -> Value {
    let mut script = String::new();
    for file in files {
        script.push_str(&format!(
            "mkdir -p $(dirname /www/{file}); echo {name} > /www/{file}; "
        ));
    }
    script.push_str("exec httpd -f -p 8080 -h /www");
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "httpd",
                "image": HTTPD,
                "imagePullPolicy": "Never",
                "command": ["sh", "-c", script],
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
            }],
        },
    })
}

/// Creates `pod` and returns its pod IP once it is ready.
fn run_pod(server: &Server, namespace: &str, pod: &Value) -> String {
    server.apply_json(namespace, pod);
    let name = pod["metadata"]["name"].as_str().expect("a named pod");
    eventually(&format!("pod {name} is ready"), || {
        let pod = server.get_json(namespace, "pod", name);
        let ready = pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        match pod["status"]["podIP"].as_str() {
            Some(ip) if ready => Ok(ip.to_owned()),
            _ => Err(pod["status"].to_string()),
        }
    })
}

/// A running [`backend_pod`]; returns its pod IP.
fn backend(server: &Server, namespace: &str, name: &str, files: &[&str]) -> String {
    run_pod(server, namespace, &backend_pod(name, files))
}

/// A Service without a selector, port 80 (named `http`) to 8080, whose
/// endpoints are `endpoints` (address, port): one EndpointSlice per port,
/// written by hand as a user of a selector-less Service does.
fn service(server: &Server, namespace: &str, name: &str, endpoints: &[(&str, u16)]) {
    server.apply_json(
        namespace,
        &json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        }),
    );
    let mut ports: Vec<u16> = endpoints.iter().map(|(_, port)| *port).collect();
    ports.dedup();
    for port in ports {
        let addresses: Vec<Value> = endpoints
            .iter()
            .filter(|(_, p)| *p == port)
            .map(|(ip, _)| json!({"addresses": [ip], "conditions": {"ready": true}}))
            .collect();
        server.apply_json(
            namespace,
            &json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": format!("{name}-{port}"),
                    "labels": {"kubernetes.io/service-name": name},
                },
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
                "endpoints": addresses,
            }),
        );
    }
}

/// A rule's path sending to `service` port 80.
fn path(path: &str, path_type: &str, service: &str) -> Value {
    json!({
        "path": path,
        "pathType": path_type,
        "backend": {"service": {"name": service, "port": {"number": 80}}},
    })
}

fn ingress(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// What curl gets for `scheme://host:port/path` with `host` resolved to
/// loopback: the status code and the body; extra curl flags in `flags`.
fn curl(scheme: &str, host: &str, port: u16, path: &str, flags: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
            "--resolve",
        ])
        .arg(format!("{host}:{port}:127.0.0.1"))
        .args(flags)
        .arg(format!("{scheme}://{host}:{port}{path}"))
        .output()
        .expect("run curl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let code = code.trim().parse().unwrap_or_else(|_| {
        panic!(
            "curl {host}{path}: no status ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, body.trim().to_owned())
}

/// Waits until `host` and `path` answer `code` with `body` over HTTP: the
/// ingress picks up changes through its watches, a moment after kubectl.
fn answers(host: &str, path: &str, code: u16, body: &str) {
    let port = node().http;
    eventually(
        &format!("http://{host}{path} answers {code} {body}"),
        || {
            let got = curl("http", host, port, path, &[]);
            if got == (code, body.to_owned()) {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        },
    );
}

#[test]
fn hosts_and_paths_route_to_their_services() {
    let server = &node().server;
    let ns = server.namespace("ingress-routes");
    let alpha = backend(
        server,
        &ns,
        "alpha",
        &["app/x", "exact", "index.html", "exact/index.html"],
    );
    let beta = backend(
        server,
        &ns,
        "beta",
        &["api/x", "exactly", "exact/index.html", "index.html"],
    );
    service(server, &ns, "alpha", &[(&alpha, 8080)]);
    service(server, &ns, "beta", &[(&beta, 8080)]);
    service(server, &ns, "both", &[(&alpha, 8080), (&beta, 8080)]);
    // TLS on one of the hosts.
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = self_signed(dir.path(), "b.routes.test");
    server
        .kubectl(&[
            "create", "secret", "tls", "b-tls", "--cert", &cert, "--key", &key, "-n", &ns,
        ])
        .ok();
    let mut by_name = path("/api", "Prefix", "beta");
    by_name["backend"]["service"]["port"] = json!({"name": "http"});
    let routes = ingress(
        "routes",
        json!({
          "tls": [{"hosts": ["b.routes.test"], "secretName": "b-tls"}],
          "rules": [
            {"host": "a.routes.test", "http": {"paths": [
                path("/app", "Prefix", "alpha"),
                by_name,
            ]}},
            {"host": "b.routes.test", "http": {"paths": [
                path("/", "ImplementationSpecific", "beta"),
                path("/exact", "Exact", "alpha"),
            ]}},
            {"host": "*.wild.routes.test", "http": {"paths": [path("/", "Prefix", "both")]}},
        ]}),
    );
    server.apply_json(&ns, &routes);

    answers("a.routes.test", "/app/x", 200, "alpha");
    answers("a.routes.test", "/api/x", 200, "beta");
    answers("b.routes.test", "/exact", 200, "alpha");
    // Exact takes only `/exact` itself; the rest falls to beta's `/`.
    answers("b.routes.test", "/exact/", 200, "beta");
    answers("b.routes.test", "/exactly", 200, "beta");
    let trusted = ["--cacert", cert.as_str()];
    let https = node().https;
    eventually(
        "https://b.routes.test answers with its certificate",
        || match curl("https", "b.routes.test", https, "/exact", &trusted) {
            (200, body) if body == "alpha" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    assert_eq!(
        curl("https", "b.routes.test", https, "/exactly", &trusted),
        (200, "beta".to_owned())
    );
    // The other host has no certificate of its own: curl refuses the default.
    assert_eq!(
        curl("https", "a.routes.test", https, "/app/x", &trusted).0,
        0
    );
    // Prefixes match whole path elements: `/apix` is not under `/api`.
    let (code, body) = curl("http", "a.routes.test", node().http, "/apix", &[]);
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("no Ingress rule matches"), "{body}");
    let (code, _) = curl("http", "unknown.routes.test", node().http, "/app/x", &[]);
    assert_eq!(code, 404);

    // Requests take turns over the Service's endpoints.
    answers("x.wild.routes.test", "/", 200, "alpha");
    let seen: Vec<String> = (0..4)
        .map(|_| curl("http", "x.wild.routes.test", node().http, "/", &[]).1)
        .collect();
    assert!(
        seen.contains(&"alpha".to_owned()) && seen.contains(&"beta".to_owned()),
        "{seen:?}"
    );
    // A wildcard covers one label only.
    let (code, _) = curl("http", "y.x.wild.routes.test", node().http, "/", &[]);
    assert_eq!(code, 404);

    // A default backend takes what no rule matches.
    server.apply_json(
        &ns,
        &ingress(
            "fallback",
            json!({"defaultBackend": {"service": {"name": "alpha", "port": {"number": 80}}}}),
        ),
    );
    answers("unknown.routes.test", "/app/x", 200, "alpha");
    answers("a.routes.test", "/index.html", 200, "alpha");
    server
        .kubectl(&["delete", "ingress", "fallback", "-n", &ns])
        .ok();
    eventually("the default backend is gone", || {
        match curl("http", "unknown.routes.test", node().http, "/app/x", &[]) {
            (404, _) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
}

#[test]
fn tls_hosts_get_their_secrets_certificate_by_sni() {
    let node = node();
    let server = &node.server;
    let ns = server.namespace("ingress-tls");
    let ip = backend(server, &ns, "secure", &["index.html"]);
    service(server, &ns, "secure", &[(&ip, 8080)]);
    let first = tempfile::tempdir().expect("temp dir");
    let (cert, key) = self_signed(first.path(), "secure.tls.test");
    server
        .kubectl(&[
            "create",
            "secret",
            "tls",
            "secure-tls",
            "--cert",
            &cert,
            "--key",
            &key,
            "-n",
            &ns,
        ])
        .ok();
    let rule =
        |host: &str| json!({"host": host, "http": {"paths": [path("/", "Prefix", "secure")]}});
    server.apply_json(
        &ns,
        &ingress(
            "secure",
            json!({
                "tls": [{"hosts": ["secure.tls.test"], "secretName": "secure-tls"}],
                "rules": [rule("secure.tls.test"), rule("plain.tls.test")],
            }),
        ),
    );

    let trusted = ["--cacert", cert.as_str()];
    eventually(
        "https://secure.tls.test answers with its certificate",
        || match curl("https", "secure.tls.test", node.https, "/", &trusted) {
            (200, body) if body == "secure" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    // HTTP/2 is offered over TLS, as browsers expect.
    let version = Command::new("curl")
        .args(["-sS", "--http2", "-o", "/dev/null", "-w", "%{http_version}"])
        .args(["--cacert", &cert, "--resolve"])
        .arg(format!("secure.tls.test:{}:127.0.0.1", node.https))
        .arg(format!("https://secure.tls.test:{}/", node.https))
        .output()
        .expect("run curl");
    assert_eq!(String::from_utf8_lossy(&version.stdout), "2");

    // Another name gets the ingress's own certificate, which the Secret's
    // CA does not vouch for.
    let (code, _) = curl("https", "plain.tls.test", node.https, "/", &trusted);
    assert_eq!(
        code, 0,
        "curl should refuse the certificate of plain.tls.test"
    );
    let shown = Command::new("curl")
        .args(["-sS", "-k", "-v", "-o", "/dev/null", "--resolve"])
        .arg(format!("plain.tls.test:{}:127.0.0.1", node.https))
        .arg(format!("https://plain.tls.test:{}/", node.https))
        .output()
        .expect("run curl");
    let verbose = String::from_utf8_lossy(&shown.stderr);
    assert!(
        verbose.contains("CN=Tugboat Ingress Controller Default Certificate"),
        "{verbose}"
    );
    let (code, body) = curl("https", "plain.tls.test", node.https, "/", &["-k"]);
    assert_eq!((code, body.as_str()), (200, "secure"));

    // A renewed certificate in the same Secret is served from then on.
    let second = tempfile::tempdir().expect("temp dir");
    let (renewed, renewed_key) = self_signed(second.path(), "secure.tls.test");
    let secret = server
        .kubectl(&[
            "create",
            "secret",
            "tls",
            "secure-tls",
            "--cert",
            &renewed,
            "--key",
            &renewed_key,
            "-n",
            &ns,
            "--dry-run=client",
            "-o",
            "json",
        ])
        .ok();
    server
        .kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &secret)
        .ok();
    eventually("the renewed certificate is served", || {
        match curl(
            "https",
            "secure.tls.test",
            node.https,
            "/",
            &["--cacert", &renewed],
        ) {
            (200, body) if body == "secure" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
}

/// Makes a self-signed certificate for `host` in `dir` with openssl;
/// returns the paths of the certificate and its key.
fn self_signed(dir: &std::path::Path, host: &str) -> (String, String) {
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", &format!("/CN={host}")])
        .args(["-addext", &format!("subjectAltName=DNS:{host}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    (common::arg(&cert).to_owned(), common::arg(&key).to_owned())
}

#[test]
fn ingresses_of_the_default_tug_class_are_served_and_get_the_nodes_address() {
    let server = &node().server;
    let ns = server.namespace("ingress-class");
    let class = server.get_json("", "ingressclass", "tug");
    assert_eq!(class["spec"]["controller"], "tugboat.io/ingress");
    assert_eq!(
        class["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"],
        "true"
    );
    let ip = backend(server, &ns, "mine", &["index.html"]);
    service(server, &ns, "mine", &[(&ip, 8080)]);
    let rule = |host: &str| json!({"rules": [{"host": host, "http": {"paths": [path("/", "Prefix", "mine")]}}]});
    server.apply_json(&ns, &ingress("mine", rule("mine.class.test")));
    let mut theirs = ingress("theirs", rule("theirs.class.test"));
    theirs["spec"]["ingressClassName"] = json!("other");
    server.apply_json(&ns, &theirs);
    // The API server gave the Ingress without a class the default one.
    assert_eq!(
        server.get_json(&ns, "ingress", "mine")["spec"]["ingressClassName"],
        "tug"
    );

    let node_json = server.get_json("", "node", &common::node_name());
    let address = node_json["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .expect("the node has an InternalIP")
        .to_owned();
    let columns = |name: &str| {
        let table = server.kubectl(&["get", "ingress", "-n", &ns]).ok();
        common::row(&common::table(&table), name).to_vec()
    };
    eventually("kubectl get ingress shows the node's address", || {
        let row = columns("mine");
        if row[..5] == ["mine", "tug", "mine.class.test", address.as_str(), "80"] {
            Ok(())
        } else {
            Err(format!("{row:?}"))
        }
    });
    answers("mine.class.test", "/", 200, "mine");
    // Another class's Ingress is not ours: no address, and its host goes
    // nowhere (or to a default backend another test set, never to `mine`).
    assert_eq!(
        columns("theirs")[..4],
        ["theirs", "other", "theirs.class.test", "80"]
    );
    let (_, body) = curl("http", "theirs.class.test", node().http, "/", &[]);
    assert_ne!(body, "mine");

    server
        .kubectl(&[
            "patch",
            "ingress",
            "theirs",
            "-n",
            &ns,
            "--type",
            "merge",
            "-p",
            r#"{"spec": {"ingressClassName": "tug"}}"#,
        ])
        .ok();
    answers("theirs.class.test", "/", 200, "mine");
    eventually("the Ingress now ours shows the node's address", || {
        let row = columns("theirs");
        if row[..4] == ["theirs", "tug", "theirs.class.test", address.as_str()] {
            Ok(())
        } else {
            Err(format!("{row:?}"))
        }
    });
}

#[test]
fn a_refusing_endpoint_is_passed_over_and_failures_say_why() {
    let server = &node().server;
    let ns = server.namespace("ingress-retry");
    let ip = backend(server, &ns, "steady", &["index.html"]);
    // Nothing listens on 8081: connecting there is refused.
    service(server, &ns, "flaky", &[(&ip, 8080), (&ip, 8081)]);
    service(server, &ns, "dead", &[(&ip, 8081)]);
    service(server, &ns, "empty", &[]);
    let rule = |host: &str, service: &str| json!({"host": host, "http": {"paths": [path("/", "Prefix", service)]}});
    server.apply_json(
        &ns,
        &ingress(
            "retry",
            json!({"rules": [
                rule("flaky.retry.test", "flaky"),
                rule("dead.retry.test", "dead"),
                rule("empty.retry.test", "empty"),
            ]}),
        ),
    );
    answers("flaky.retry.test", "/", 200, "steady");
    // Every other request starts at the refusing endpoint; each gets through.
    for _ in 0..6 {
        let got = curl("http", "flaky.retry.test", node().http, "/", &[]);
        assert_eq!(got, (200, "steady".to_owned()));
    }
    let (code, body) = curl("http", "dead.retry.test", node().http, "/", &[]);
    assert_eq!(code, 502, "{body}");
    assert!(
        body.contains("no endpoint of service ingress-retry/dead:80 accepted a connection")
            && body.contains("Connection refused"),
        "{body}"
    );
    let (code, body) = curl("http", "empty.retry.test", node().http, "/", &[]);
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("no ready endpoints for service ingress-retry/empty:80"),
        "{body}"
    );
}

/// A CGI program that takes the request and never answers.
const SILENT_CGI: &str = "#!/bin/sh
exec sleep 3600
";

#[test]
fn an_endpoint_silent_past_the_ingress_read_timeout_gets_504() {
    let node = node();
    let server = &node.server;
    let ns = server.namespace("ingress-timeout");
    let ip = cgi_backend(server, &ns, "silent", SILENT_CGI);
    service(server, &ns, "silent", &[(&ip, 8080)]);
    let mut timeout = ingress(
        "timeout",
        json!({"rules": [{"host": "slow.timeout.test", "http": {"paths": [path("/", "Prefix", "silent")]}}]}),
    );
    timeout["metadata"]["annotations"] =
        json!({"nginx.ingress.kubernetes.io/proxy-read-timeout": "2"});
    server.apply_json(&ns, &timeout);
    answers("slow.timeout.test", "/index.html", 200, "silent");

    let (code, body) = curl(
        "http",
        "slow.timeout.test",
        node.http,
        "/cgi-bin/silent",
        &[],
    );
    assert_eq!(code, 504, "{body}");
    assert!(
        body.contains(&format!(
            "endpoint {ip}:8080 of service ingress-timeout/silent:80 sent no answer within 2 s"
        )),
        "{body}"
    );
    // The endpoint's other requests are answered as before.
    answers("slow.timeout.test", "/index.html", 200, "silent");
}

/// A CGI program for busybox httpd: prints the request's headers as the
/// server hands them over (`HTTP_*`), and its body.
const ECHO_CGI: &str = "#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
env | grep '^HTTP_' | sort
if [ -n \"$CONTENT_LENGTH\" ]; then echo \"BODY=$(head -c \"$CONTENT_LENGTH\")\"; fi
";

/// A running [`backend_pod`] that also serves `script` as
/// `/cgi-bin/<name>`; returns its pod IP.
fn cgi_backend(server: &Server, namespace: &str, name: &str, script: &str) -> String {
    server.apply_json(
        namespace,
        &json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": format!("{name}-cgi")},
            "data": {name: script},
        }),
    );
    let mut pod = backend_pod(name, &["index.html"]);
    pod["spec"]["volumes"] = json!([{
        "name": "cgi",
        "configMap": {"name": format!("{name}-cgi"), "defaultMode": 0o755},
    }]);
    pod["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "cgi", "mountPath": "/www/cgi-bin"}]);
    run_pod(server, namespace, &pod)
}

#[test]
fn backends_see_who_asked_for_which_host_over_what_and_the_body() {
    let node = node();
    let server = &node.server;
    let ns = server.namespace("ingress-headers");
    let ip = cgi_backend(server, &ns, "echo", ECHO_CGI);
    // One endpoint refuses: requests that try it first go on to the other,
    // their bodies with them.
    service(server, &ns, "echo", &[(&ip, 8080), (&ip, 8081)]);
    server.apply_json(&ns,
        &ingress(
            "echo",
            json!({"rules": [{"host": "who.headers.test", "http": {"paths": [path("/", "Prefix", "echo")]}}]}),
        ),
    );
    answers("who.headers.test", "/index.html", 200, "echo");

    let claimed = ["-H", "X-Forwarded-For: 192.0.2.66"];
    let (code, seen) = curl(
        "http",
        "who.headers.test",
        node.http,
        "/cgi-bin/echo",
        &claimed,
    );
    assert_eq!(code, 200, "{seen}");
    let host = format!("who.headers.test:{}", node.http);
    for line in [
        format!("HTTP_HOST={host}"),
        format!("HTTP_X_FORWARDED_HOST={host}"),
        "HTTP_X_FORWARDED_FOR=127.0.0.1".to_owned(),
        "HTTP_X_FORWARDED_PROTO=http".to_owned(),
    ] {
        assert!(seen.lines().any(|l| l == line), "{line} in:\n{seen}");
    }
    let (_, seen) = curl(
        "https",
        "who.headers.test",
        node.https,
        "/cgi-bin/echo",
        &["-k"],
    );
    assert!(
        seen.lines().any(|l| l == "HTTP_X_FORWARDED_PROTO=https"),
        "{seen}"
    );

    for n in 0..4 {
        let body = format!("payload-{n}");
        let (code, seen) = curl(
            "http",
            "who.headers.test",
            node.http,
            "/cgi-bin/echo",
            &["--data-binary", &body],
        );
        assert_eq!(code, 200, "{seen}");
        assert!(seen.lines().any(|l| l == format!("BODY={body}")), "{seen}");
    }
}

#[test]
fn a_deployments_ready_pods_take_the_requests_and_none_gives_503() {
    let server = &node().server;
    let ns = server.namespace("ingress-deployment");
    let serve = "mkdir -p /www; hostname > /www/index.html; touch /www/healthy; \
                 exec httpd -f -p 8080 -h /www";
    server.apply_json(
        &ns,
        &json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "terminationGracePeriodSeconds": 1,
                        "containers": [{
                            "name": "httpd",
                            "image": HTTPD,
                            "imagePullPolicy": "Never",
                            "command": ["sh", "-c", serve],
                            "ports": [{"name": "web", "containerPort": 8080}],
                            "readinessProbe": {
                                "httpGet": {"path": "/healthy", "port": "web"},
                                "periodSeconds": 1,
                                "failureThreshold": 1,
                            },
                        }],
                    },
                },
            },
        }),
    );
    server.apply_json(
        &ns,
        &json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": "web"}],
            },
        }),
    );
    server.apply_json(&ns,
        &ingress(
            "web",
            json!({"rules": [{"host": "web.deploy.test", "http": {"paths": [path("/", "Prefix", "web")]}}]}),
        ),
    );
    let pods: Vec<String> = eventually("two web pods", || {
        let names = server.names(&["get", "pods", "-n", &ns, "-l", "app=web"]);
        if names.len() == 2 {
            Ok(names
                .iter()
                .map(|n| n.trim_start_matches("pod/").to_owned())
                .collect())
        } else {
            Err(format!("{names:?}"))
        }
    });
    let answered = || -> Vec<String> {
        (0..6)
            .map(|_| curl("http", "web.deploy.test", node().http, "/", &[]).1)
            .collect()
    };
    eventually("both pods answer through the Ingress", || {
        let seen = answered();
        if pods.iter().all(|p| seen.contains(p)) {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    });

    // A pod that fails its readiness probe gets no more requests.
    server
        .kubectl(&["exec", &pods[0], "-n", &ns, "--", "rm", "/www/healthy"])
        .ok();
    eventually("only the ready pod answers", || {
        let seen = answered();
        if seen.iter().all(|s| *s == pods[1]) {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    });

    server
        .kubectl(&["scale", "deployment", "web", "--replicas", "0", "-n", &ns])
        .ok();
    eventually("no pod left: 503", || {
        match curl("http", "web.deploy.test", node().http, "/", &[]) {
            (503, body)
                if body.contains("no ready endpoints for service ingress-deployment/web:80") =>
            {
                Ok(())
            }
            other => Err(format!("{other:?}")),
        }
    });
}

#[test]
fn a_taken_ingress_port_is_reported_and_the_server_runs_on() {
    // Held for the whole test: the second server's ingress cannot have it.
    let taken = std::net::TcpListener::bind("0.0.0.0:0").expect("bind a port");
    let port = taken.local_addr().expect("its address").port().to_string();
    let https = free_port().to_string();
    let other = Server::start_with(&[
        "--ingress-http-port",
        &port,
        "--ingress-https-port",
        &https,
        "--disable-proxy",
    ]);
    eventually("the server says which flag to change", || {
        let log = other.log();
        if log.contains(&format!("the ingress cannot serve HTTP on 0.0.0.0:{port}"))
            && log.contains("choose another with --ingress-http-port")
        {
            Ok(())
        } else {
            Err(log)
        }
    });
    // The rest of the server runs: the API answers, the node registers, and
    // the ingress still serves HTTPS.
    eventually("the node is registered and the IngressClass made", || {
        let found = other.names(&["get", "nodes,ingressclasses"]);
        if found.len() == 2 {
            Ok(())
        } else {
            Err(format!("{found:?}"))
        }
    });
    let (code, body) = curl(
        "https",
        "anything.test",
        https.parse().unwrap(),
        "/",
        &["-k"],
    );
    assert_eq!(code, 404, "{body}");
}
