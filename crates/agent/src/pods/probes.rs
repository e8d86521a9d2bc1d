//! Liveness, readiness and startup probes: when each is due, how its
//! results add up to thresholds, and the checks themselves (exec, httpGet
//! over HTTP or HTTPS in `http`, tcpSocket, grpc in `grpc`) as the kubelet
//! runs them; lifecycle hooks run the same way.
//!
//! Network checks run from inside the pod's network namespace, on a thread
//! of their own that enters it, so that they reach the pod's ports whether or
//! not the pod has an address reachable from the host.

mod grpc;
mod http;

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    Container, ExecAction, HTTPGetAction, LifecycleHandler, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tugboat_runtime::ContainerId;

use super::Node;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }

    pub fn of(self, c: &Container) -> Option<&Probe> {
        match self {
            Kind::Startup => c.startup_probe.as_ref(),
            Kind::Liveness => c.liveness_probe.as_ref(),
            Kind::Readiness => c.readiness_probe.as_ref(),
        }
    }
}

/// One probe of one container (for one container id: a restarted container
/// starts over).
pub struct Tracker {
    next: Instant,
    successes: i32,
    failures: i32,
    /// The probe's verdict once a threshold was reached; `None` before.
    pub verdict: Option<bool>,
}

/// What one due check concluded.
pub struct Outcome {
    /// The verdict changed to this.
    pub changed_to: Option<bool>,
    /// Why the check failed, for the Unhealthy event.
    pub failure: Option<String>,
}

impl Tracker {
    pub fn new(probe: &Probe, started: Instant) -> Tracker {
        let delay = probe.initial_delay_seconds.unwrap_or(0).max(0) as u64;
        Tracker {
            next: started + Duration::from_secs(delay),
            successes: 0,
            failures: 0,
            verdict: None,
        }
    }

    pub fn due(&self) -> bool {
        Instant::now() >= self.next
    }

    /// Counts one check's result against the probe's thresholds.
    pub fn record(&mut self, probe: &Probe, result: Result<(), String>) -> Outcome {
        let period = probe.period_seconds.unwrap_or(10).max(1) as u64;
        self.next = Instant::now() + Duration::from_secs(period);
        let before = self.verdict;
        let failure = match result {
            Ok(()) => {
                self.failures = 0;
                self.successes += 1;
                if self.successes >= probe.success_threshold.unwrap_or(1).max(1) {
                    self.verdict = Some(true);
                }
                None
            }
            Err(why) => {
                self.successes = 0;
                self.failures += 1;
                if self.failures >= probe.failure_threshold.unwrap_or(3).max(1) {
                    self.verdict = Some(false);
                }
                Some(why)
            }
        };
        Outcome {
            changed_to: (self.verdict != before).then_some(self.verdict).flatten(),
            failure,
        }
    }
}

/// Where a container's probes connect and run.
#[derive(Clone)]
pub struct Target {
    pub node: Arc<Node>,
    pub container: ContainerId,
    /// The pod's network namespace; `None` for host-network pods.
    pub netns: Option<PathBuf>,
    /// The pod's address when it has one; loopback inside the namespace else.
    pub pod_ip: Option<IpAddr>,
}

/// What a probe or a lifecycle hook does: the handler shapes both share.
pub struct Action<'a> {
    pub exec: Option<&'a ExecAction>,
    pub http_get: Option<&'a HTTPGetAction>,
    pub tcp_socket: Option<&'a TCPSocketAction>,
}

impl<'a> From<&'a Probe> for Action<'a> {
    fn from(probe: &'a Probe) -> Self {
        Action {
            exec: probe.exec.as_ref(),
            http_get: probe.http_get.as_ref(),
            tcp_socket: probe.tcp_socket.as_ref(),
        }
    }
}

impl<'a> From<&'a LifecycleHandler> for Action<'a> {
    fn from(hook: &'a LifecycleHandler) -> Self {
        Action {
            exec: hook.exec.as_ref(),
            http_get: hook.http_get.as_ref(),
            tcp_socket: hook.tcp_socket.as_ref(),
        }
    }
}

/// Runs one probe's check; `Err` says why it failed, in the kubelet's words.
pub fn check(probe: &Probe, c: &Container, target: &Target) -> Result<(), String> {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(action) = &probe.grpc {
        let port =
            u16::try_from(action.port).map_err(|_| format!("invalid port {}", action.port))?;
        let addr = SocketAddr::new(pod_address(target), port);
        let service = action.service.clone().unwrap_or_default();
        return in_network(target.netns.as_deref(), timeout, move || {
            grpc::check(addr, &service, timeout)
        });
    }
    run(&probe.into(), c, target, timeout)
}

/// Runs a lifecycle hook (postStart, preStop) within `timeout`; a `sleep`
/// hook just waits.
pub fn run_hook(
    hook: &LifecycleHandler,
    c: &Container,
    target: &Target,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(sleep) = &hook.sleep {
        std::thread::sleep(Duration::from_secs(sleep.seconds.max(0) as u64).min(timeout));
        return Ok(());
    }
    run(&hook.into(), c, target, timeout)
}

fn run(action: &Action, c: &Container, target: &Target, timeout: Duration) -> Result<(), String> {
    if let Some(exec) = action.exec {
        let command = exec.command.clone().unwrap_or_default();
        return exec_check(target, command, timeout);
    }
    let host_of = |host: &Option<String>| -> Result<IpAddr, String> {
        match host.as_deref().filter(|h| !h.is_empty()) {
            Some(h) => (h, 0)
                .to_socket_addrs()
                .map_err(|e| format!("resolving {h}: {e}"))?
                .next()
                .map(|a| a.ip())
                .ok_or_else(|| format!("no address for {h}")),
            None => Ok(pod_address(target)),
        }
    };
    if let Some(http) = action.http_get {
        let request = http::HttpGet {
            addr: SocketAddr::new(host_of(&http.host)?, port_number(&http.port, c)?),
            host: http.host.clone().filter(|h| !h.is_empty()),
            https: http.scheme.as_deref() == Some("HTTPS"),
            path: http.path.clone().unwrap_or_else(|| "/".to_owned()),
            headers: http
                .http_headers
                .iter()
                .flatten()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
        };
        return in_network(target.netns.as_deref(), timeout, move || {
            request.check(timeout)
        });
    }
    if let Some(tcp) = action.tcp_socket {
        let port = port_number(&tcp.port, c)?;
        let addr = SocketAddr::new(host_of(&tcp.host)?, port);
        return in_network(target.netns.as_deref(), timeout, move || {
            TcpStream::connect_timeout(&addr, timeout)
                .map(drop)
                .map_err(|e| format!("dial tcp {addr}: connect: {e}"))
        });
    }
    Err("the handler has no action".to_owned())
}

/// Where probes without a host connect: the pod's address, or loopback
/// inside its network namespace (the host's, for host-network pods).
fn pod_address(target: &Target) -> IpAddr {
    target.pod_ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// A port number, or the name of one of the container's ports.
fn port_number(port: &IntOrString, c: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("couldn't find port {name:?} in container {:?}", c.name)),
    }
}

fn exec_check(target: &Target, command: Vec<String>, timeout: Duration) -> Result<(), String> {
    let node = target.node.clone();
    let id = target.container.clone();
    let shown = command.join(" ");
    run_with_timeout(timeout, move || {
        let mut session = node
            .runtime
            .exec(&id, command, false)
            .map_err(|e| e.to_string())?;
        drop(session.stdin.take());
        let mut output = String::new();
        for stream in [session.stdout.take(), session.stderr.take()]
            .into_iter()
            .flatten()
        {
            let mut stream = stream;
            let _ = stream.read_to_string(&mut output);
        }
        match session.wait().map_err(|e| e.to_string())? {
            0 => Ok(()),
            code => Err(format!(
                "command {shown:?} exited with {code}: {}",
                output.trim_end()
            )),
        }
    })
    .unwrap_or_else(|| Err(format!("command timed out after {}s", timeout.as_secs())))
}

/// Runs `check` on a fresh thread inside the network namespace at `netns`
/// (the thread's own namespace changes, never the agent's other threads').
fn in_network(
    netns: Option<&Path>,
    timeout: Duration,
    check: impl FnOnce() -> Result<(), String> + Send + 'static,
) -> Result<(), String> {
    let netns = netns.map(Path::to_owned);
    run_with_timeout(timeout + Duration::from_secs(1), move || {
        if let Some(path) = netns {
            let file = std::fs::File::open(&path)
                .map_err(|e| format!("opening the pod's network namespace: {e}"))?;
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&file),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .map_err(|e| format!("entering the pod's network namespace: {e}"))?;
        }
        check()
    })
    .unwrap_or_else(|| Err(format!("probe timed out after {}s", timeout.as_secs())))
}

/// `None` if `work` did not finish within `timeout`; it is left to end on
/// its own thread.
fn run_with_timeout<T: Send + 'static>(
    timeout: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(work());
    });
    result.recv_timeout(timeout).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(json: serde_json::Value) -> Probe {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn thresholds_decide_the_verdict() {
        let p = probe(serde_json::json!({"exec": {"command": ["true"]},
            "failureThreshold": 2, "successThreshold": 2, "periodSeconds": 1}));
        let mut t = Tracker::new(&p, Instant::now());
        assert!(t.due());
        assert_eq!(t.record(&p, Ok(())).changed_to, None);
        assert_eq!(t.record(&p, Ok(())).changed_to, Some(true));
        assert!(!t.due(), "the next check waits a period");
        let failed = t.record(&p, Err("no".into()));
        assert_eq!(failed.changed_to, None);
        assert_eq!(failed.failure.as_deref(), Some("no"));
        assert_eq!(t.record(&p, Err("no".into())).changed_to, Some(false));
        assert_eq!(t.verdict, Some(false));
    }

    #[test]
    fn the_first_check_waits_for_the_initial_delay() {
        let p = probe(serde_json::json!({"tcpSocket": {"port": 80}, "initialDelaySeconds": 30}));
        assert!(!Tracker::new(&p, Instant::now()).due());
    }
}
