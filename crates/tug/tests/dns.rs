//! The cluster DNS as clients see it: `dig` against the address and port
//! the kube-dns EndpointSlice publishes (Services, headless endpoints, SRV,
//! PTR, ExternalName, NXDOMAIN, names forwarded upstream, TCP); pods'
//! /etc/resolv.conf and /etc/hosts as their dnsPolicy asks; and pods
//! finding Services and headless pods by name through the kube-dns Service.
//!
//! Names outside the cluster go to a real DNS server the test starts
//! (dnsmasq on loopback, answering `upstream.test`), given to the server
//! with `--cluster-dns-upstream`: the host's own resolvers may not answer
//! here.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use common::pods::{BUSYBOX, HTTPD};
use common::{Server, eventually, node_name, node_server};
use serde_json::{Value, json};

/// dnsmasq answering `*.upstream.test` with 192.0.2.77 and `gone.test`
/// with NXDOMAIN; stopped when dropped.
struct Upstream {
    child: Child,
    port: u16,
}

impl Upstream {
    fn start() -> Upstream {
        let port = common::free_port();
        let child = Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--user=root",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                &format!("--port={port}"),
                "--address=/upstream.test/192.0.2.77",
                "--address=/gone.test/",
            ])
            .stdin(Stdio::null())
            .spawn()
            .expect("start dnsmasq (Debian package dnsmasq-base; scripts/test installs it)");
        Upstream { child, port }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One server with its DNS on a free port forwarding to the test's
/// dnsmasq; no node (no pod needs to run for names to exist).
fn dns_server() -> &'static (Upstream, Server) {
    static SERVER: OnceLock<(Upstream, Server)> = OnceLock::new();
    SERVER.get_or_init(|| {
        let upstream = Upstream::start();
        let server = Server::start_with(&[
            "--disable-agent",
            "--cluster-dns-port",
            "0",
            "--cluster-dns-upstream",
            &format!("127.0.0.1:{}", upstream.port),
        ]);
        (upstream, server)
    })
}

/// Where the DNS listens, as the kube-dns EndpointSlice says.
struct Dns {
    ip: String,
    port: String,
}

fn cluster_dns(server: &Server) -> Dns {
    eventually("the kube-dns EndpointSlice publishes the DNS", || {
        let out = server.kubectl(&[
            "get",
            "endpointslice",
            "kube-dns",
            "-n",
            "kube-system",
            "-o",
            "json",
        ]);
        if !out.status.success() {
            return Err(out.stderr);
        }
        let slice: Value = serde_json::from_str(&out.stdout).map_err(|e| e.to_string())?;
        let ip = slice["endpoints"][0]["addresses"][0].as_str();
        let port = slice["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == "dns" && p["protocol"] == "UDP")
            .and_then(|p| p["port"].as_i64());
        match (ip, port) {
            (Some(ip), Some(port)) => Ok(Dns {
                ip: ip.to_owned(),
                port: port.to_string(),
            }),
            _ => Err(slice.to_string()),
        }
    })
}

impl Dns {
    /// `dig @DNS -p PORT ARGS...`'s output.
    fn dig(&self, args: &[&str]) -> String {
        let output = Command::new("dig")
            .arg(format!("@{}", self.ip))
            .args(["-p", &self.port, "+time=2", "+tries=2"])
            .args(args)
            .output()
            .expect("run dig (Debian package dnsutils; scripts/test installs it)");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The answer section's data (`+short`), sorted.
    fn short(&self, name: &str, rtype: &str) -> Vec<String> {
        let mut lines: Vec<String> = self
            .dig(&[name, rtype, "+short"])
            .lines()
            .filter(|l| !l.starts_with(';'))
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    }

    /// The response code (`NOERROR`, `NXDOMAIN`...).
    fn status(&self, name: &str, rtype: &str) -> String {
        let out = self.dig(&[name, rtype]);
        out.split("status: ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .unwrap_or("no answer")
            .to_owned()
    }

    /// Waits until `name`/`rtype` answers `wanted` (sorted).
    fn expect(&self, name: &str, rtype: &str, wanted: &[&str]) {
        let mut wanted: Vec<String> = wanted.iter().map(|w| (*w).to_owned()).collect();
        wanted.sort();
        eventually(&format!("{name} {rtype} answers {wanted:?}"), || {
            let seen = self.short(name, rtype);
            if seen == wanted {
                Ok(())
            } else {
                Err(format!("{seen:?}"))
            }
        });
    }

    fn expect_status(&self, name: &str, rtype: &str, wanted: &str) {
        eventually(&format!("{name} {rtype} is {wanted}"), || {
            let seen = self.status(name, rtype);
            if seen == wanted { Ok(()) } else { Err(seen) }
        });
    }
}

fn cluster_ip(server: &Server, namespace: &str, name: &str) -> String {
    eventually(&format!("Service {name} has a cluster IP"), || {
        let svc = server.get_json(namespace, "service", name);
        svc["spec"]["clusterIP"]
            .as_str()
            .filter(|ip| *ip != "None")
            .map(str::to_owned)
            .ok_or_else(|| svc["spec"].to_string())
    })
}

/// `a.b.c.d` as its reverse name `d.c.b.a.in-addr.arpa`.
fn reverse_name(ip: &str) -> String {
    let mut parts: Vec<&str> = ip.split('.').collect();
    parts.reverse();
    format!("{}.in-addr.arpa", parts.join("."))
}

#[test]
fn a_service_has_a_name_an_srv_record_and_a_reverse_name() {
    let (_, server) = dns_server();
    let ns = server.namespace("dns-clusterip");
    server.apply_json(
        &ns,
        &json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                {"name": "stats", "port": 9000, "protocol": "UDP"}
            ]}
        }),
    );
    let ip = cluster_ip(server, &ns, "web");
    let dns = cluster_dns(server);
    let fqdn = format!("web.{ns}.svc.cluster.local");
    dns.expect(&fqdn, "A", &[&ip]);
    // Names are case-insensitive; the TTL is CoreDNS' 5 s; the answer is
    // authoritative.
    let full = dns.dig(&[&fqdn.to_uppercase(), "A", "+noall", "+answer", "+comments"]);
    assert!(full.contains(" aa "), "{full}");
    let record = full
        .lines()
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>())
        .find(|fields| fields.get(2) == Some(&"A"));
    assert_eq!(record, Some(vec!["5", "IN", "A", &ip]), "{full}");
    // An IPv4 Service has no AAAA record, and the name still exists.
    assert_eq!(dns.status(&fqdn, "AAAA"), "NOERROR");
    assert!(dns.short(&fqdn, "AAAA").is_empty());
    // SRV by port name and protocol, with the Service's port.
    dns.expect(
        &format!("_http._tcp.{fqdn}"),
        "SRV",
        &[&format!("0 100 80 {fqdn}.")],
    );
    dns.expect(
        &format!("_stats._udp.{fqdn}"),
        "SRV",
        &[&format!("0 100 9000 {fqdn}.")],
    );
    assert_eq!(dns.status(&format!("_http._udp.{fqdn}"), "SRV"), "NXDOMAIN");
    // The cluster IP points back at the Service.
    assert_eq!(dns.short(&reverse_name(&ip), "PTR"), [format!("{fqdn}.")]);
    // Over TCP too.
    let tcp = dns.dig(&["+tcp", &fqdn, "A", "+short"]);
    assert_eq!(tcp.trim(), ip);

    server
        .kubectl(&["delete", "service", "web", "-n", &ns])
        .ok();
    dns.expect_status(&fqdn, "A", "NXDOMAIN");
}

#[test]
fn a_headless_service_answers_with_its_ready_endpoints() {
    let (_, server) = dns_server();
    let ns = server.namespace("dns-headless");
    server.apply_json(
        &ns,
        &json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "db"},
            "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}
        }),
    );
    let dns = cluster_dns(server);
    let fqdn = format!("db.{ns}.svc.cluster.local");
    // No ready endpoint yet: the name does not exist.
    dns.expect_status(&fqdn, "A", "NXDOMAIN");
    let slice = |endpoints: Value| {
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "db-1", "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "ports": [{"name": "pg", "port": 15432, "protocol": "TCP"}],
            "endpoints": endpoints
        })
    };
    server.apply_json(
        &ns,
        &slice(json!([
            {"addresses": ["10.42.7.1"], "hostname": "db-0", "conditions": {"ready": true}},
            {"addresses": ["10.42.7.2"], "hostname": "db-1", "conditions": {"ready": true}},
            {"addresses": ["10.42.7.3"], "conditions": {"ready": true}},
            {"addresses": ["10.42.7.4"], "hostname": "db-3", "conditions": {"ready": false}}
        ])),
    );
    dns.expect(&fqdn, "A", &["10.42.7.1", "10.42.7.2", "10.42.7.3"]);
    dns.expect(&format!("db-1.{fqdn}"), "A", &["10.42.7.2"]);
    assert_eq!(dns.status(&format!("db-3.{fqdn}"), "A"), "NXDOMAIN");
    // One SRV record per ready endpoint, with the endpoints' port; the
    // one without a hostname is named by its address.
    assert_eq!(
        dns.short(&format!("_pg._tcp.{fqdn}"), "SRV"),
        [
            format!("0 33 15432 10-42-7-3.{fqdn}."),
            format!("0 33 15432 db-0.{fqdn}."),
            format!("0 33 15432 db-1.{fqdn}."),
        ]
    );
    assert_eq!(
        dns.short(&reverse_name("10.42.7.1"), "PTR"),
        [format!("db-0.{fqdn}.")]
    );

    // Endpoints come and go with the slice.
    server.apply_json(
        &ns,
        &slice(json!([
            {"addresses": ["10.42.7.2"], "hostname": "db-1", "conditions": {"ready": true}}
        ])),
    );
    dns.expect(&fqdn, "A", &["10.42.7.2"]);
    dns.expect_status(&format!("db-0.{fqdn}"), "A", "NXDOMAIN");
}

#[test]
fn external_names_other_names_and_missing_names() {
    let (_, server) = dns_server();
    let ns = server.namespace("dns-external");
    server.apply_json(
        &ns,
        &json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "out"},
            "spec": {"type": "ExternalName", "externalName": "www.upstream.test"}
        }),
    );
    let dns = cluster_dns(server);
    let fqdn = format!("out.{ns}.svc.cluster.local");
    // The CNAME, and its target's address from upstream.
    dns.expect(&fqdn, "A", &["192.0.2.77", "www.upstream.test."]);
    // Names outside the cluster go upstream, with upstream's answers.
    assert_eq!(dns.short("api.upstream.test", "A"), ["192.0.2.77"]);
    assert_eq!(dns.status("gone.test", "A"), "NXDOMAIN");
    // Names in the cluster domain that do not exist, including the ones a
    // pod's search path makes of outside names.
    for missing in [
        format!("nothing.{ns}.svc.cluster.local"),
        "www.upstream.test.default.svc.cluster.local".to_owned(),
        "nowhere.cluster.local".to_owned(),
    ] {
        let out = dns.dig(&[&missing, "A"]);
        assert!(out.contains("status: NXDOMAIN"), "{missing}: {out}");
        assert!(
            out.contains("IN\tSOA\tns.dns.cluster.local."),
            "{missing}: {out}"
        );
    }
    // Pod names spell their address; the schema version is published.
    assert_eq!(
        dns.short(&format!("10-42-0-9.{ns}.pod.cluster.local"), "A"),
        ["10.42.0.9"]
    );
    assert_eq!(dns.short("dns-version.cluster.local", "TXT"), ["\"1.1.0\""]);
}

#[test]
fn the_kube_dns_service_points_at_the_dns() {
    let (_, server) = dns_server();
    let svc = server.get_json("kube-system", "service", "kube-dns");
    assert_eq!(svc["spec"]["clusterIP"], "10.43.0.10");
    assert_eq!(svc["metadata"]["labels"]["k8s-app"], "kube-dns");
    let ports: Vec<(String, String, i64)> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["protocol"].as_str().unwrap().to_owned(),
                p["port"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("dns".to_owned(), "UDP".to_owned(), 53),
            ("dns-tcp".to_owned(), "TCP".to_owned(), 53)
        ]
    );
    // The DNS answers for its own Service at the published address.
    let dns = cluster_dns(server);
    dns.expect(
        "kube-dns.kube-system.svc.cluster.local",
        "A",
        &["10.43.0.10"],
    );
}

/// A busybox pod on the node server running `sleep`, with `spec` merged in.
fn sleeper(name: &str, spec: Value) -> Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node_name(),
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"]
            }]
        }
    });
    if let (Some(into), Value::Object(from)) = (pod["spec"].as_object_mut(), spec) {
        into.extend(from);
    }
    pod
}

/// A file of a running pod's container.
fn file_in(server: &Server, ns: &str, pod: &str, path: &str) -> String {
    eventually(&format!("{path} of pod {pod} can be read"), || {
        let out = server.kubectl(&["exec", "-n", ns, pod, "--", "cat", path]);
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(out.stderr)
        }
    })
}

#[test]
fn pods_get_the_resolv_conf_their_dns_policy_asks_for() {
    let server = node_server();
    let ns = server.namespace("dns-policy");
    server.apply_json(&ns, &sleeper("cluster-first", json!({})));
    server.apply_json(&ns, &sleeper("host", json!({"dnsPolicy": "Default"})));
    server.apply_json(
        &ns,
        &sleeper(
            "none",
            json!({
                "dnsPolicy": "None",
                "dnsConfig": {
                    "nameservers": ["192.0.2.53"],
                    "searches": ["corp.example"],
                    "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]
                }
            }),
        ),
    );
    server.apply_json(
        &ns,
        &sleeper(
            "merged",
            json!({"dnsConfig": {"options": [{"name": "ndots", "value": "1"}]}}),
        ),
    );
    server.apply_json(
        &ns,
        &sleeper("pet", json!({"hostname": "pet-0", "subdomain": "pets"})),
    );

    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap();
    let host_search: Vec<&str> = host
        .lines()
        .filter_map(|l| l.strip_prefix("search "))
        .flat_map(str::split_whitespace)
        .collect();
    let mut search = vec![
        format!("{ns}.svc.cluster.local"),
        "svc.cluster.local".to_owned(),
        "cluster.local".to_owned(),
    ];
    search.extend(host_search.iter().map(|s| (*s).to_owned()));
    let lines = |text: String| -> Vec<String> { text.lines().map(str::to_owned).collect() };

    assert_eq!(
        lines(file_in(server, &ns, "cluster-first", "/etc/resolv.conf")),
        [
            format!("search {}", search.join(" ")),
            "nameserver 10.43.0.10".to_owned(),
            "options ndots:5".to_owned(),
        ]
    );
    let host_servers: Vec<&str> = host
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .map(str::trim)
        .collect();
    let default = file_in(server, &ns, "host", "/etc/resolv.conf");
    let servers: Vec<&str> = default
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .collect();
    assert_eq!(servers, host_servers);
    assert!(!default.contains("cluster.local"), "{default}");
    assert_eq!(
        lines(file_in(server, &ns, "none", "/etc/resolv.conf")),
        [
            "search corp.example",
            "nameserver 192.0.2.53",
            "options ndots:2 edns0"
        ]
    );
    assert!(
        file_in(server, &ns, "merged", "/etc/resolv.conf").contains("options ndots:1\n"),
        "dnsConfig options replace the cluster's"
    );
    let hosts = file_in(server, &ns, "pet", "/etc/hosts");
    assert!(
        hosts
            .lines()
            .any(|l| l.ends_with(&format!("\tpet-0.pets.{ns}.svc.cluster.local\tpet-0"))),
        "{hosts}"
    );
    server
        .kubectl(&["delete", "namespace", &ns, "--wait=false"])
        .ok();
}

/// `CMD...` run in `pod` until it succeeds: its output.
fn exec_in(server: &Server, ns: &str, pod: &str, command: &[&str]) -> String {
    let mut args = vec!["exec", "-n", ns, pod, "--"];
    args.extend_from_slice(command);
    eventually(
        &format!("`{}` succeeds in {pod}", command.join(" ")),
        || {
            let out = server.kubectl(&args);
            if out.status.success() {
                Ok(out.stdout)
            } else {
                Err(format!("{}{}", out.stdout, out.stderr))
            }
        },
    )
}

/// Waits until busybox's `nslookup NAME` in the client pod answers `ip`.
/// It asks every search domain and reports the ones that do not exist
/// (exiting non-zero), as with any Kubernetes DNS: the answer is what counts.
fn nslookup_finds(server: &Server, ns: &str, name: &str, ip: &str) {
    eventually(
        &format!("nslookup {name} in the client pod finds {ip}"),
        || {
            let out = server.kubectl(&["exec", "-n", ns, "client", "--", "nslookup", name]);
            let answers: Vec<&str> = out
                .stdout
                .lines()
                .filter_map(|l| l.strip_prefix("Address: "))
                .collect();
            if answers.contains(&ip) {
                Ok(())
            } else {
                Err(format!("{}{}", out.stdout, out.stderr))
            }
        },
    );
}

#[test]
fn pods_reach_services_and_headless_pods_by_name() {
    let server = node_server();
    let ns = server.namespace("dns-pods");
    server.apply_json(&ns,
        &json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "nodeName": node_name(),
                "hostname": "web-0",
                "subdomain": "pets",
                "terminationGracePeriodSeconds": 1,
                "containers": [{
                    "name": "httpd", "image": HTTPD, "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", "mkdir -p /www; echo hello > /www/index.html; exec httpd -f -p 8080 -h /www"],
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}
                }]
            }
        }),
    );
    server.apply_json(
        &ns,
        &json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
        }),
    );
    server.apply_json(&ns,
        &json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "pets"},
            "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"name": "http", "port": 8080}]}
        }),
    );
    server.apply_json(&ns, &sleeper("client", json!({})));
    let ip = cluster_ip(server, &ns, "web");

    // The short name, through the search path, from the cluster DNS the
    // pod reaches at 10.43.0.10 through the service proxy.
    nslookup_finds(server, &ns, "web", &ip);
    for url in [
        "http://web".to_owned(),
        format!("http://web.{ns}"),
        format!("http://web.{ns}.svc.cluster.local"),
    ] {
        let page = exec_in(
            server,
            &ns,
            "client",
            &["timeout", "10", "wget", "-qO-", &url],
        );
        assert_eq!(page, "hello\n", "{url}");
    }
    // The pod behind the headless Service named by its subdomain.
    let pod_ip = eventually("the web pod has an address", || {
        let pod = server.get_json(&ns, "pod", "web");
        pod["status"]["podIP"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| pod["status"].to_string())
    });
    // (busybox nslookup searches only for names without a dot.)
    nslookup_finds(
        server,
        &ns,
        &format!("web-0.pets.{ns}.svc.cluster.local"),
        &pod_ip,
    );
    server
        .kubectl(&["delete", "namespace", &ns, "--wait=false"])
        .ok();
}
