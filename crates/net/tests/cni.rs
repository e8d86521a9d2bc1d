//! Pods on the default network with Debian's real CNI plugins, as root:
//! network namespaces made with `ip netns`, traffic from busybox's `ping`
//! and `nc`.
//!
//! The tests share one node (its bridge `tug0` and address leases), so they
//! run one after another: `main` runs them in order (an argument filters
//! them by name) and removes the bridge at the end if it made it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tugboat_net::{Cni, CniConfig, Error, IpNet, PodAddress, PodNetwork, PortMapping, Protocol};

type Test = (&'static str, fn(&Node));

const TESTS: &[Test] = &[
    (
        "a_pod_gets_an_address_in_the_pod_cidr",
        a_pod_gets_an_address_in_the_pod_cidr,
    ),
    (
        "pods_reach_each_other_and_the_host",
        pods_reach_each_other_and_the_host,
    ),
    ("a_host_port_reaches_the_pod", a_host_port_reaches_the_pod),
    (
        "pods_attached_at_once_get_distinct_addresses",
        pods_attached_at_once_get_distinct_addresses,
    ),
    (
        "del_leaves_nothing_and_twice_is_fine",
        del_leaves_nothing_and_twice_is_fine,
    ),
    (
        "del_after_the_namespace_is_gone",
        del_after_the_namespace_is_gone,
    ),
    (
        "a_container_id_is_attached_in_one_namespace",
        a_container_id_is_attached_in_one_namespace,
    ),
    (
        "a_failing_plugin_says_why_and_leaves_nothing",
        a_failing_plugin_says_why_and_leaves_nothing,
    ),
];

fn main() {
    let filter = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    assert!(
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| out.stdout == b"0\n"),
        "these tests make network namespaces, bridges and iptables rules: run them as root"
    );
    let node = Node::new();
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, test) in TESTS {
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        ran += 1;
        println!("test {name} ...");
        match std::panic::catch_unwind(|| test(&node)) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    drop(node);
    println!("\n{} passed, {} failed", ran - failed.len(), failed.len());
    if !failed.is_empty() {
        println!("failed: {failed:?}");
        std::process::exit(1);
    }
}

const BRIDGE: &str = "tug0";

/// The node: a config dir the default network is written into, and the
/// cache with the address leases.
struct Node {
    dir: tempfile::TempDir,
    cni: Cni,
    pod_cidr: IpNet,
    /// Whether `tug0` was made by these tests (and so is removed by them).
    own_bridge: bool,
}

impl Node {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = CniConfig {
            conf_dir: dir.path().join("net.d"),
            cache_dir: dir.path().join("cache"),
            ..CniConfig::default()
        };
        let pod_cidr = config.pod_cidr;
        Self {
            cni: Cni::new(config).unwrap(),
            own_bridge: !Path::new("/sys/class/net").join(BRIDGE).exists(),
            pod_cidr,
            dir,
        }
    }

    /// host-local's record that `ip` is taken.
    fn lease(&self, ip: IpAddr) -> PathBuf {
        self.dir
            .path()
            .join("cache/networks/tugboat")
            .join(ip.to_string())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.own_bridge {
            quietly("ip", &["link", "del", BRIDGE]);
        }
    }
}

/// A pod's network namespace; dropping it detaches the pod and removes the
/// namespace.
struct Pod<'a> {
    node: &'a Node,
    network: PodNetwork,
    servers: Vec<Child>,
}

impl<'a> Pod<'a> {
    fn new(node: &'a Node, port_mappings: Vec<PortMapping>) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = format!("tugnet-{}-{n}", std::process::id());
        run("ip", &["netns", "add", &id]);
        Self {
            node,
            network: PodNetwork {
                netns: Path::new("/run/netns").join(&id),
                container_id: id,
                namespace: "default".into(),
                name: format!("pod-{n}"),
                uid: format!("00000000-0000-4000-8000-{n:012}"),
                port_mappings,
            },
            servers: Vec::new(),
        }
    }

    fn netns_name(&self) -> &str {
        &self.network.container_id
    }

    fn add(&self) -> PodAddress {
        self.node.cni.add(&self.network).unwrap()
    }

    fn del(&self) {
        self.node.cni.del(&self.network).unwrap();
    }

    /// busybox, in the pod's namespace.
    fn busybox(&self, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", self.netns_name(), "busybox"])
            .args(args);
        command
    }

    /// Answers the first TCP connection to `port` with `reply`.
    fn serve(&mut self, port: u16, reply: &str) {
        self.servers.push(serve(self.busybox(&[
            "nc",
            "-l",
            "-p",
            &port.to_string(),
            "-e",
            "echo",
            reply,
        ])));
    }

    /// The host end of the pod's veth.
    fn host_veth(&self) -> String {
        let output = self
            .busybox(&["cat", "/sys/class/net/eth0/iflink"])
            .output()
            .unwrap();
        let index = String::from_utf8(output.stdout).unwrap();
        for link in std::fs::read_dir("/sys/class/net").unwrap() {
            let link = link.unwrap().path();
            let link_index = std::fs::read_to_string(link.join("ifindex")).unwrap();
            if link_index.trim() == index.trim() {
                return link.file_name().unwrap().to_string_lossy().into_owned();
            }
        }
        panic!("no host link has index {index}");
    }
}

impl Drop for Pod<'_> {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
        let detached = self.node.cni.del(&self.network);
        quietly("ip", &["netns", "del", self.netns_name()]);
        if !std::thread::panicking() {
            detached.unwrap();
        }
    }
}

fn a_pod_gets_an_address_in_the_pod_cidr(node: &Node) {
    let conflist = node.dir.path().join("net.d/10-tugboat.conflist");
    assert!(conflist.exists(), "the default network was not written");

    let pod = Pod::new(node, Vec::new());
    let address = pod.add();
    assert!(node.pod_cidr.contains(&address.ip), "{address:?}");
    assert_eq!(address.gateway, Some("10.42.0.1".parse().unwrap()));
    assert_eq!(address.interface, "eth0");
    let shown = pod
        .busybox(&["ip", "-4", "addr", "show", "eth0"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&shown.stdout).contains(&format!("inet {}/24", address.ip)));
    assert!(node.lease(address.ip).exists());
    // The loopback plugin brought lo up.
    assert!(pings(Some(&pod), "127.0.0.1"));

    // Asked again, the attached pod keeps its address.
    assert_eq!(pod.add(), address);
    node.cni.check(&pod.network).unwrap();
}

fn pods_reach_each_other_and_the_host(node: &Node) {
    let mut a = Pod::new(node, Vec::new());
    let b = Pod::new(node, Vec::new());
    let a_ip = a.add().ip.to_string();
    let b_address = b.add();
    let b_ip = b_address.ip.to_string();
    assert_ne!(a_ip, b_ip);

    assert!(pings(Some(&a), &b_ip));
    assert!(pings(Some(&b), &a_ip));
    a.serve(7001, "from-a");
    assert_eq!(fetch(Some(&b), &a_ip, 7001), "from-a");

    assert!(pings(None, &a_ip));
    a.serve(7002, "a-to-host");
    assert_eq!(fetch(None, &a_ip, 7002), "a-to-host");

    let gateway = b_address.gateway.unwrap().to_string();
    let _host = ServerGuard(serve(host_busybox(&[
        "nc", "-l", "-p", "7003", "-e", "echo", "host",
    ])));
    assert_eq!(fetch(Some(&b), &gateway, 7003), "host");
}

fn a_host_port_reaches_the_pod(node: &Node) {
    let mapping = PortMapping {
        host_port: 18080,
        container_port: 8080,
        protocol: Protocol::Tcp,
        host_ip: None,
    };
    let mut pod = Pod::new(node, vec![mapping]);
    pod.add();
    pod.serve(8080, "through-the-node");
    assert_eq!(fetch(None, &node_ip(), 18080), "through-the-node");
    pod.serve(8080, "through-localhost");
    assert_eq!(fetch(None, "127.0.0.1", 18080), "through-localhost");

    let other = Pod::new(node, Vec::new());
    other.add();
    pod.serve(8080, "to-another-pod");
    assert_eq!(fetch(Some(&other), &node_ip(), 18080), "to-another-pod");
    // Hairpin: the pod reaches itself through the node.
    pod.serve(8080, "to-itself");
    assert_eq!(fetch(Some(&pod), &node_ip(), 18080), "to-itself");
}

fn pods_attached_at_once_get_distinct_addresses(node: &Node) {
    let pods: Vec<Pod> = (0..8).map(|_| Pod::new(node, Vec::new())).collect();
    let mut ips: Vec<IpAddr> = std::thread::scope(|scope| {
        let adding: Vec<_> = pods
            .iter()
            .map(|pod| scope.spawn(|| pod.add().ip))
            .collect();
        adding.into_iter().map(|add| add.join().unwrap()).collect()
    });
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), pods.len(), "{ips:?}");
    std::thread::scope(|scope| {
        for pod in &pods {
            scope.spawn(|| pod.del());
        }
    });
    assert!(ips.iter().all(|ip| !node.lease(*ip).exists()));
}

fn del_leaves_nothing_and_twice_is_fine(node: &Node) {
    let mapping = PortMapping {
        host_port: 18081,
        container_port: 8080,
        protocol: Protocol::Tcp,
        host_ip: None,
    };
    let pod = Pod::new(node, vec![mapping]);
    let ip = pod.add().ip;
    let veth = pod.host_veth();
    let rules = host_rules();
    assert!(rules.contains(&pod.network.container_id) && mentions(&rules, ip));

    pod.del();
    assert!(
        !Path::new("/sys/class/net").join(&veth).exists(),
        "{veth} is left"
    );
    assert!(!node.lease(ip).exists(), "the lease of {ip} is left");
    let rules = host_rules();
    assert!(
        !rules.contains(&pod.network.container_id),
        "rules are left:\n{rules}"
    );
    assert!(!mentions(&rules, ip), "rules are left:\n{rules}");
    let links = pod.busybox(&["ip", "-o", "link"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains("eth0"));

    pod.del();
    assert!(matches!(
        node.cni.check(&pod.network),
        Err(Error::NotAttached(_))
    ));
}

fn del_after_the_namespace_is_gone(node: &Node) {
    let mapping = PortMapping {
        host_port: 18082,
        container_port: 8080,
        protocol: Protocol::Tcp,
        host_ip: None,
    };
    let pod = Pod::new(node, vec![mapping]);
    let ip = pod.add().ip;
    let veth = pod.host_veth();
    run("ip", &["netns", "del", pod.netns_name()]);

    pod.del();
    assert!(
        !Path::new("/sys/class/net").join(&veth).exists(),
        "{veth} is left"
    );
    assert!(!node.lease(ip).exists(), "the lease of {ip} is left");
    let dnat = format!("{ip}:8080");
    assert!(!host_rules().contains(&dnat), "the hostPort's DNAT is left");
    pod.del();

    // The bridge plugin reads the pod's address for its masquerade rule
    // inside the namespace, so without one it leaves that rule
    // (containernetworking/plugins#810): removed here by hand.
    remove_nat_rules_of(&pod.network.container_id);
}

fn a_container_id_is_attached_in_one_namespace(node: &Node) {
    let pod = Pod::new(node, Vec::new());
    let ip = pod.add().ip;
    run("ip", &["netns", "del", pod.netns_name()]);
    run("ip", &["netns", "add", pod.netns_name()]);

    match node.cni.add(&pod.network) {
        Err(Error::AttachedElsewhere(id)) => assert_eq!(id, pod.network.container_id),
        other => panic!("expected the pod to be refused, got {other:?}"),
    }
    pod.del();
    assert!(!node.lease(ip).exists(), "the lease of {ip} is left");
    // As in del_after_the_namespace_is_gone.
    remove_nat_rules_of(&pod.network.container_id);
}

fn a_failing_plugin_says_why_and_leaves_nothing(node: &Node) {
    // The bridge attaches the pod, then tuning fails on a sysctl that does
    // not exist: the whole ADD must be undone.
    let conf_dir = node.dir.path().join("failing.d");
    let leases = node.dir.path().join("failing-leases");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let list = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "failing",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "tugfail0",
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": "10.43.0.0/24"}]],
                    "dataDir": leases,
                },
            },
            {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.no_such_setting": "1"}},
        ],
    });
    std::fs::write(conf_dir.join("10-failing.conflist"), list.to_string()).unwrap();
    let _bridge = BridgeGuard("tugfail0");
    let cni = Cni::new(CniConfig {
        conf_dir,
        cache_dir: node.dir.path().join("failing-cache"),
        ..CniConfig::default()
    })
    .unwrap();

    let pod = Pod::new(node, Vec::new());
    match cni.add(&pod.network) {
        Err(Error::Plugin {
            plugin,
            command,
            msg,
            ..
        }) => {
            assert_eq!((plugin.as_str(), command), ("tuning", "ADD"));
            assert!(msg.contains("no_such_setting"), "{msg}");
        }
        other => panic!("expected the tuning plugin's error, got {other:?}"),
    }
    let links = pod.busybox(&["ip", "-o", "link"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains("eth0"));
    let leased: Vec<_> = std::fs::read_dir(leases.join("failing"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("10.43."))
        .collect();
    assert!(leased.is_empty(), "leases are left: {leased:?}");
    cni.del(&pod.network).unwrap();
}

/// Removes a bridge the test made, however it ends.
struct BridgeGuard(&'static str);

impl Drop for BridgeGuard {
    fn drop(&mut self) {
        quietly("ip", &["link", "del", self.0]);
    }
}

/// Ends a server process, however the test ends.
struct ServerGuard(Child);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn host_busybox(args: &[&str]) -> Command {
    let mut command = Command::new("busybox");
    command.args(args);
    command
}

fn serve(mut command: Command) -> Child {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// What a server at `host:port` says, from a pod or (`None`) the host.
/// The server may not be listening yet: connections are retried for a while.
fn fetch(from: Option<&Pod>, host: &str, port: u16) -> String {
    let port = port.to_string();
    let args = ["nc", "-w", "3", host, &port];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut command = from.map_or_else(|| host_busybox(&args), |pod| pod.busybox(&args));
        let output = command.stdin(Stdio::null()).output().unwrap();
        let reply = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if output.status.success() && !reply.is_empty() {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "no answer from {host}:{port}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether `ip` answers a ping from a pod or (`None`) the host, within a
/// few tries.
fn pings(from: Option<&Pod>, ip: &str) -> bool {
    let args = ["ping", "-c", "1", "-W", "2", ip];
    (0..5).any(|_| {
        let mut command = from.map_or_else(|| host_busybox(&args), |pod| pod.busybox(&args));
        command.output().unwrap().status.success()
    })
}

/// The node's own address, as a pod's host port is reached from outside.
fn node_ip() -> String {
    let output = run("ip", &["-4", "-o", "addr", "show", "scope", "global"]);
    output
        .lines()
        .filter(|line| !line.contains(BRIDGE))
        .find_map(|line| {
            let cidr = line
                .split_whitespace()
                .skip_while(|word| *word != "inet")
                .nth(1)?;
            Some(cidr.split('/').next()?.to_owned())
        })
        .expect("the node has a global IPv4 address")
}

/// Every packet filter rule of the host, as iptables and nftables list them.
fn host_rules() -> String {
    run("iptables-save", &[]) + &run("nft", &["list", "ruleset"])
}

/// Whether `text` names `ip` (and not merely an address it begins).
fn mentions(text: &str, ip: IpAddr) -> bool {
    let ip = ip.to_string();
    text.match_indices(&ip).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + ip.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit() || c == '.')
            && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

/// Deletes the nat rules whose comment names `container_id`, then the
/// chains they jumped to.
fn remove_nat_rules_of(container_id: &str) {
    let saved = run("iptables-save", &["-t", "nat"]);
    let mut chains = Vec::new();
    for rule in saved.lines().filter(|line| line.contains(container_id)) {
        let rule = rule.strip_prefix("-A ").unwrap();
        run("sh", &["-c", &format!("iptables -t nat -D {rule}")]);
        if let Some(target) = rule.split(" -j ").nth(1).filter(|t| t.starts_with("CNI-")) {
            chains.push(target.to_owned());
        }
    }
    chains.dedup();
    for chain in chains {
        run("iptables", &["-t", "nat", "-X", &chain]);
    }
}

/// Runs a cleanup command, which may find nothing to clean.
fn quietly(program: &str, args: &[&str]) {
    let _ = Command::new(program)
        .args(args)
        .stderr(Stdio::null())
        .status();
}

/// Runs a command that must succeed; its stdout.
fn run(program: &str, args: &[&str]) -> String {
    let output: Output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}
