//! One pod's worker: makes the runtime match the pod's spec, over and over.
//!
//! Each pass (on every change to the pod and every second) looks at what the
//! runtime has and takes the next step: the sandbox and volumes, the init
//! containers one by one in order, then the app containers, restarting those
//! that ended as the restart policy says with the kubelet's back-off, and
//! posts the status when it changed. A pod marked for deletion is stopped
//! gracefully, its sandbox removed, and the pod object deleted for good.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Resource};
use serde_json::{Value, json};
use tokio::sync::watch;
use tugboat_images::{Image, PullOptions, Reference, RegistryAuth};
use tugboat_net::{PodNetwork, PortMapping, Protocol};
use tugboat_runtime::{ContainerId, ContainerState, ContainerStatus, Sandbox, SandboxSpec};

use super::Node;
use super::claims::Claims;
use super::eviction;
use super::probes::{Kind, Target, Tracker, check, run_hook};
use super::spec::{ConfigError, Placement, References, container_spec};
use super::status::{Observed, Phase, PodView, by_name, pod_status};
use super::tokens::{PodTokens, Tokens};
use super::volumes::PodDir;
use tugboat_events::Type;

/// How often the ConfigMaps and Secrets a pod uses are read again.
const REFERENCES_REFRESH: Duration = Duration::from_secs(10);
/// The longest a postStart hook may run before it counts as failed.
const HOOK_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a pod's containers are looked at when nothing else happens.
const POLL: Duration = Duration::from_secs(1);
/// The kubelet's back-off for restarts and pulls: 10 s doubling to 5 min.
const BACKOFF_START: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// How long a failed pull shows as ErrImagePull before ImagePullBackOff:
/// the kubelet's next sync would come about this much later, while this
/// worker is woken at once by its own status update.
const ERR_IMAGE_PULL_SHOWN: Duration = Duration::from_secs(5);

/// Runs the worker of one pod until the pod is gone. `updates` carries the
/// pod as the API has it; `None` once it is deleted.
pub async fn run(node: Arc<Node>, uid: String, mut updates: watch::Receiver<Option<Pod>>) {
    let mut worker = Worker::new(node, uid);
    loop {
        let pod = updates.borrow_and_update().clone();
        match pod {
            None => {
                worker.tear_down(None, Duration::ZERO).await;
                return;
            }
            Some(pod) if pod.metadata.deletion_timestamp.is_some() => {
                worker.terminate(&pod).await;
                return;
            }
            Some(pod) => worker.sync(&pod).await,
        }
        tokio::select! {
            changed = updates.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// The kubelet's back-off for one container (or one image pull): free the
/// first time, then 10 s doubling to 5 min.
#[derive(Default)]
struct Backoff {
    delay: Option<Duration>,
    /// When the last attempt (restart or pull) was made.
    since: Option<Instant>,
}

impl Backoff {
    /// Whether another attempt may be made now.
    fn ready(&self) -> bool {
        match (self.delay, self.since) {
            (Some(delay), Some(since)) => since.elapsed() >= delay,
            _ => true,
        }
    }

    fn attempted(&mut self) {
        self.delay = Some(match self.delay {
            None => BACKOFF_START,
            Some(d) => (d * 2).min(BACKOFF_MAX),
        });
        self.since = Some(Instant::now());
    }

    fn remaining_or_delay(&self) -> Duration {
        self.delay.unwrap_or(BACKOFF_START)
    }
}

struct Worker {
    node: Arc<Node>,
    uid: String,
    restarts: HashMap<String, Backoff>,
    pulls: HashMap<String, Backoff>,
    /// Why a container is not running, when the runtime cannot say.
    waiting: HashMap<String, (String, String)>,
    image_ids: HashMap<String, String>,
    last_status: Option<Value>,
    start_time: Option<Timestamp>,
    /// Each running container's probes, by container id.
    probes: HashMap<(ContainerId, Kind), Tracker>,
    /// The pod's address on the pod network, once CNI gave it one.
    pod_ip: Option<IpAddr>,
    /// The pod's PersistentVolumeClaims, linked once bound.
    claims: Claims,
    /// The ConfigMaps and Secrets the pod uses, and when they were fetched.
    referenced: Option<(Instant, Referenced)>,
    /// Service account tokens for the pod's projected volumes.
    tokens: PodTokens,
    /// What the pod's volumes and files were last written from.
    prepared: Option<(Referenced, Tokens, Option<IpAddr>)>,
    /// Why the pod was evicted; an evicted pod runs nothing again.
    evicted: Option<String>,
    /// When the pod's emptyDirs are measured against their limits next.
    measure: eviction::Schedule,
}

/// ConfigMap and Secret data by object name: (config maps, secrets).
type Referenced = (
    BTreeMap<String, BTreeMap<String, String>>,
    BTreeMap<String, BTreeMap<String, String>>,
);

/// Whether a container is done for good, may be restarted, or must wait.
enum Next {
    Start(u32),
    Wait,
    Done,
}

impl Worker {
    fn new(node: Arc<Node>, uid: String) -> Worker {
        Worker {
            node,
            uid,
            restarts: HashMap::new(),
            pulls: HashMap::new(),
            waiting: HashMap::new(),
            image_ids: HashMap::new(),
            last_status: None,
            start_time: None,
            probes: HashMap::new(),
            pod_ip: None,
            claims: Claims::default(),
            referenced: None,
            tokens: PodTokens::default(),
            prepared: None,
            evicted: None,
            measure: eviction::Schedule::default(),
        }
    }

    async fn sync(&mut self, pod: &Pod) {
        let uid = self.uid.clone();
        let start_time = *self.start_time.get_or_insert_with(|| {
            pod.status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map_or_else(Timestamp::now, |t| t.0)
        });
        self.evict_if_volumes_full(pod).await;
        // Fetched again now and then, not on every pass: volumes follow
        // changes to their objects, as the kubelet's periodic sync does.
        if self
            .referenced
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= REFERENCES_REFRESH)
        {
            let fetched = self.referenced_data(pod).await;
            self.referenced = Some((Instant::now(), fetched));
        }
        let (config_maps, secrets) = self
            .referenced
            .as_ref()
            .map(|(_, data)| data.clone())
            .unwrap_or_default();
        self.tokens.refresh(&self.node.client, pod).await;
        let tokens = self.tokens.tokens();
        let node = self.node.clone();
        let refs = References {
            pod,
            config_maps: &config_maps,
            secrets: &secrets,
            tokens: &tokens,
            host_ip: &node.host_ip,
        };
        let pod_dir = PodDir::new(&self.node.pods_dir, &uid);
        let sandbox = if self.evicted.is_some() {
            // An evicted pod runs nothing again.
            None
        } else {
            match self.sandbox(pod).await {
                Ok(sandbox) => Some(sandbox),
                Err(message) => {
                    self.node
                        .events
                        .record(
                            pod,
                            Type::Warning,
                            "FailedCreatePodSandBox",
                            format!("Failed to create pod sandbox: {message}"),
                        )
                        .await;
                    None
                }
            }
        };
        let inputs = (
            (config_maps.clone(), secrets.clone()),
            tokens.clone(),
            self.pod_ip,
        );
        let prepared = match &sandbox {
            Some(_) if self.prepared.as_ref() != Some(&inputs) => pod_dir
                .prepare(&refs, self.pod_ip, &self.node.dns)
                .map(|()| self.prepared = Some(inputs)),
            _ => Ok(()),
        };
        let sandbox = match prepared {
            Ok(()) => sandbox,
            Err(ConfigError(message)) => {
                let message = match &self.tokens.error {
                    Some(why) => format!("{message}: {why}"),
                    None => message,
                };
                for c in all_containers(pod) {
                    self.waiting.insert(
                        c.name.clone(),
                        ("CreateContainerConfigError".to_owned(), message.clone()),
                    );
                }
                None
            }
        };
        // Containers wait (ContainerCreating) until every claim is bound.
        let sandbox = match sandbox {
            Some(sandbox) if self.claims.mount(&self.node, pod, &pod_dir).await => Some(sandbox),
            _ => None,
        };
        let containers = self.containers_of(&uid).await;
        let observed = by_name(&containers);
        let policy = restart_policy(pod);
        let inits = pod
            .spec
            .as_ref()
            .and_then(|s| s.init_containers.clone())
            .unwrap_or_default();
        let mut initialized = true;
        let mut init_failed = false;
        if let Some(sandbox) = &sandbox {
            for c in &inits {
                let latest = observed
                    .get(c.name.as_str())
                    .and_then(|l| l.first().copied());
                // An init container must succeed: OnFailure and Always both
                // run it again after a failure.
                let init_policy = if policy == "Never" {
                    "Never"
                } else {
                    "OnFailure"
                };
                match self.next_step(pod, c, latest, init_policy).await {
                    Next::Done if exit_code(latest) == Some(0) => continue,
                    Next::Done => init_failed = true,
                    Next::Start(attempt) => {
                        self.start(pod, c, attempt, sandbox, &pod_dir, &refs).await;
                    }
                    Next::Wait => {}
                }
                initialized = false;
                break;
            }
            if initialized {
                for c in &pod
                    .spec
                    .as_ref()
                    .map(|s| s.containers.clone())
                    .unwrap_or_default()
                {
                    let latest = observed
                        .get(c.name.as_str())
                        .and_then(|l| l.first().copied());
                    if let Next::Start(attempt) = self.next_step(pod, c, latest, policy).await {
                        self.start(pod, c, attempt, sandbox, &pod_dir, &refs).await;
                    }
                }
            }
        } else {
            initialized = inits.is_empty();
        }
        if let Some(sandbox) = &sandbox
            && initialized
        {
            self.probe(pod, sandbox, &observed).await;
        }
        // Look again: the steps above may have started or stopped containers.
        let containers = self.containers_of(&uid).await;
        let observed = by_name(&containers);
        let view_of = |c: &Container| Observed {
            ready: self.passes(&observed, c, Kind::Readiness),
            started: self.passes(&observed, c, Kind::Startup),
            latest: observed
                .get(c.name.as_str())
                .and_then(|l| l.first().copied()),
            previous: observed
                .get(c.name.as_str())
                .and_then(|l| l.get(1).copied()),
            waiting: self.waiting.get(&c.name).cloned(),
            image_id: self
                .image_ids
                .get(&c.name)
                .cloned()
                .unwrap_or_else(|| reported_image_id(pod, &c.name)),
        };
        let apps: Vec<Container> = pod
            .spec
            .as_ref()
            .map(|s| s.containers.clone())
            .unwrap_or_default();
        let app: Vec<Observed> = apps.iter().map(view_of).collect();
        let phase = if init_failed || self.evicted.is_some() {
            Phase::Failed
        } else if !initialized {
            Phase::Pending
        } else {
            phase(&app, policy)
        };
        let view = PodView {
            pod,
            init: inits.iter().map(view_of).collect(),
            app,
            initialized: initialized && !init_failed,
            sandbox_ready: sandbox.is_some(),
            phase,
            host_ip: &self.node.host_ip,
            pod_ip: self.pod_ip,
            start_time,
        };
        let mut status = pod_status(&view, Timestamp::now());
        if let Some(message) = &self.evicted {
            eviction::mark(&mut status, message, Timestamp::now());
        }
        self.post_status(pod, status).await;
    }

    /// Evicts the pod, as the kubelet's eviction manager does, when one of
    /// its disk emptyDirs grew past its sizeLimit: an Evicted event, every
    /// container killed without grace, the emptyDirs removed.
    async fn evict_if_volumes_full(&mut self, pod: &Pod) {
        if self.evicted.is_none() {
            self.evicted = eviction::earlier(pod);
        }
        // As the kubelet, only pods still running are measured.
        let finished = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        if self.evicted.is_some() || finished || !self.measure.due() {
            return;
        }
        let began = Instant::now();
        let dir = PodDir::new(&self.node.pods_dir, &self.uid);
        let measured = pod.clone();
        let over = tokio::task::spawn_blocking(move || eviction::over_limit(&measured, &dir))
            .await
            .expect("the volume task does not panic");
        self.measure.measured(began.elapsed());
        let Some(message) = over else {
            return;
        };
        tracing::info!(pod = %pod_label(pod), "evicting the pod: {message}");
        self.node
            .events
            .record(pod, Type::Warning, eviction::REASON, message.clone())
            .await;
        self.evicted = Some(message);
        for c in self.containers_of(&self.uid).await {
            if !matches!(c.state, ContainerState::Running { .. }) {
                continue;
            }
            if let Some(spec) = all_containers(pod).find(|s| s.name == c.name) {
                let message = format!("Stopping container {}", c.name);
                self.container_event(pod, spec, Type::Normal, "Killing", message)
                    .await;
            }
            let node = self.node.clone();
            let stopped = tokio::task::spawn_blocking(move || {
                node.runtime.stop_container(&c.id, Duration::ZERO)
            })
            .await
            .expect("the runtime task does not panic");
            if let Err(e) = stopped {
                tracing::warn!("stopping a container of an evicted pod: {e}");
            }
        }
        let dir = PodDir::new(&self.node.pods_dir, &self.uid);
        let removed = tokio::task::spawn_blocking(move || dir.remove_empty_dirs())
            .await
            .expect("the volume task does not panic");
        if let Err(e) = removed {
            tracing::warn!("removing the emptyDirs of an evicted pod: {e}");
        }
    }

    /// Runs the probes that are due for the running app containers: a
    /// failed startup or liveness probe stops the container, which the
    /// restart policy then restarts; readiness only changes the status.
    async fn probe(
        &mut self,
        pod: &Pod,
        sandbox: &Sandbox,
        observed: &BTreeMap<&str, Vec<&ContainerStatus>>,
    ) {
        let running: Vec<ContainerId> = observed
            .values()
            .filter_map(|l| l.first())
            .filter(|c| matches!(c.state, ContainerState::Running { .. }))
            .map(|c| c.id.clone())
            .collect();
        self.probes.retain(|(id, _), _| running.contains(id));
        let apps = pod
            .spec
            .as_ref()
            .map(|s| s.containers.clone())
            .unwrap_or_default();
        for c in &apps {
            let Some(latest) = observed.get(c.name.as_str()).and_then(|l| l.first()) else {
                continue;
            };
            if !running.contains(&latest.id) {
                continue;
            }
            let target = Target {
                node: self.node.clone(),
                container: latest.id.clone(),
                netns: sandbox.netns_path.clone(),
                pod_ip: self.pod_ip,
            };
            let startup_passed = self.passes(observed, c, Kind::Startup);
            for kind in [Kind::Startup, Kind::Liveness, Kind::Readiness] {
                let Some(probe) = kind.of(c) else {
                    continue;
                };
                // Until the startup probe passes, it is the only one.
                if (kind == Kind::Startup) == startup_passed {
                    continue;
                }
                let tracker = self
                    .probes
                    .entry((latest.id.clone(), kind))
                    .or_insert_with(|| Tracker::new(probe, Instant::now()));
                if !tracker.due() {
                    continue;
                }
                let (probe_owned, container, target) = (probe.clone(), c.clone(), target.clone());
                let result =
                    tokio::task::spawn_blocking(move || check(&probe_owned, &container, &target))
                        .await
                        .expect("the probe task does not panic");
                let tracker = self
                    .probes
                    .get_mut(&(latest.id.clone(), kind))
                    .expect("tracker");
                let outcome = tracker.record(probe, result);
                if let Some(why) = outcome.failure {
                    self.container_event(
                        pod,
                        c,
                        Type::Warning,
                        "Unhealthy",
                        format!("{} probe failed: {why}", kind.name()),
                    )
                    .await;
                }
                if outcome.changed_to == Some(false) && kind != Kind::Readiness {
                    let message = format!(
                        "Container {} failed {} probe, will be restarted",
                        c.name,
                        kind.name().to_lowercase()
                    );
                    self.container_event(pod, c, Type::Normal, "Killing", message)
                        .await;
                    let grace = termination_grace(pod, probe.termination_grace_period_seconds);
                    self.stop(pod, c, latest.id.clone(), sandbox, grace).await;
                    break;
                }
            }
        }
    }

    /// Whether a container's probe of `kind` lets it count as started (or
    /// ready): it runs, and it has no such probe or the probe passed.
    fn passes(
        &self,
        observed: &BTreeMap<&str, Vec<&ContainerStatus>>,
        c: &Container,
        kind: Kind,
    ) -> bool {
        let Some(latest) = observed.get(c.name.as_str()).and_then(|l| l.first()) else {
            return false;
        };
        if !matches!(latest.state, ContainerState::Running { .. }) {
            return false;
        }
        kind.of(c).is_none()
            || self
                .probes
                .get(&(latest.id.clone(), kind))
                .is_some_and(|t| t.verdict == Some(true))
    }

    /// What to do about one container: start it (which attempt), wait for
    /// it, or nothing more ever.
    async fn next_step(
        &mut self,
        pod: &Pod,
        c: &Container,
        latest: Option<&ContainerStatus>,
        policy: &str,
    ) -> Next {
        let Some(latest) = latest else {
            return Next::Start(0);
        };
        let ContainerState::Exited { exit_code, .. } = latest.state else {
            return Next::Wait;
        };
        let restart = match policy {
            "Always" => true,
            "OnFailure" => exit_code != 0,
            _ => false,
        };
        if !restart {
            return Next::Done;
        }
        let backoff = self.restarts.entry(c.name.clone()).or_default();
        if backoff.ready() {
            backoff.attempted();
            return Next::Start(latest.attempt + 1);
        }
        let delay = backoff.remaining_or_delay();
        let pod_name = pod_label(pod);
        let message = format!(
            "back-off {} restarting failed container={} pod={pod_name}",
            go_duration(delay),
            c.name
        );
        let fresh = self
            .waiting
            .get(&c.name)
            .is_none_or(|(r, _)| r != "CrashLoopBackOff");
        self.waiting
            .insert(c.name.clone(), ("CrashLoopBackOff".to_owned(), message));
        if fresh {
            self.container_event(
                pod,
                c,
                Type::Warning,
                "BackOff",
                format!(
                    "Back-off restarting failed container {} in pod {pod_name}",
                    c.name
                ),
            )
            .await;
        }
        Next::Wait
    }

    /// Pulls the image if needed, makes the container and starts it.
    async fn start(
        &mut self,
        pod: &Pod,
        c: &Container,
        attempt: u32,
        sandbox: &Sandbox,
        pod_dir: &PodDir,
        refs: &References<'_>,
    ) {
        let image = match self.ensure_image(pod, c).await {
            Ok(image) => image,
            Err((reason, message)) => {
                self.waiting.insert(c.name.clone(), (reason, message));
                return;
            }
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let log_dir = self.node.logs_dir.join(format!(
            "{}_{}_{uid}",
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref().unwrap_or_default()
        ));
        let log_path = log_dir.join(&c.name).join(format!("{attempt}.log"));
        let spec = pod_dir.mounts(pod, c).and_then(|mounts| {
            container_spec(
                c,
                &image.config,
                refs,
                Placement {
                    attempt,
                    rootfs_lowers: self.node.images.layer_dirs(&image),
                    mounts,
                    log_path: &log_path,
                },
            )
        });
        let spec = match spec {
            Ok(spec) => spec,
            Err(ConfigError(message)) => {
                self.fail(pod, c, "CreateContainerConfigError", message)
                    .await;
                return;
            }
        };
        let in_sandbox = sandbox.clone();
        let node = self.node.clone();
        let name = c.name.clone();
        let created = tokio::task::spawn_blocking(move || {
            // Keep the newest dead container (for `logs --previous`), no older.
            for old in node.runtime.list_containers()? {
                if old.pod_uid == spec.pod_uid && old.name == name && old.attempt + 1 < attempt {
                    node.runtime.remove_container(&old.id)?;
                }
            }
            node.runtime.create_container(&in_sandbox, &spec)
        })
        .await
        .expect("the runtime task does not panic");
        let id = match created {
            Ok(id) => id,
            Err(e) => {
                self.fail(pod, c, "CreateContainerError", e.to_string())
                    .await;
                return;
            }
        };
        self.container_event(
            pod,
            c,
            Type::Normal,
            "Created",
            format!("Created container: {}", c.name),
        )
        .await;
        let node = self.node.clone();
        let started_id = id.clone();
        let started =
            tokio::task::spawn_blocking(move || node.runtime.start_container(&started_id))
                .await
                .expect("the runtime task does not panic");
        match started {
            Ok(()) => {
                self.waiting.remove(&c.name);
                self.container_event(
                    pod,
                    c,
                    Type::Normal,
                    "Started",
                    format!("Started container {}", c.name),
                )
                .await;
            }
            Err(e) => return self.fail(pod, c, "RunContainerError", e.to_string()).await,
        }
        let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.post_start.clone()) else {
            return;
        };
        // As the kubelet: a container whose postStart hook fails is killed,
        // and its restart policy decides what comes next.
        let target = self.probe_target(sandbox, &id);
        let container = c.clone();
        let ran =
            tokio::task::spawn_blocking(move || run_hook(&hook, &container, &target, HOOK_TIMEOUT))
                .await
                .expect("the hook task does not panic");
        if let Err(why) = ran {
            self.container_event(
                pod,
                c,
                Type::Warning,
                "FailedPostStartHook",
                format!("PostStartHook failed: {why}"),
            )
            .await;
            let grace = termination_grace(pod, None);
            self.stop(pod, c, id, sandbox, grace).await;
        }
    }

    /// Records an event about one of the pod's containers.
    async fn container_event(
        &self,
        pod: &Pod,
        c: &Container,
        kind: Type,
        reason: &str,
        message: String,
    ) {
        let mut regarding = pod.object_ref(&());
        regarding.field_path = Some(field_path(pod, c));
        self.node
            .events
            .record_about(regarding, kind, reason, message)
            .await;
    }

    fn probe_target(&self, sandbox: &Sandbox, id: &ContainerId) -> Target {
        Target {
            node: self.node.clone(),
            container: id.clone(),
            netns: sandbox.netns_path.clone(),
            pod_ip: self.pod_ip,
        }
    }

    /// Stops one container: its preStop hook first, then SIGTERM, the rest
    /// of `grace`, SIGKILL.
    async fn stop(
        &self,
        pod: &Pod,
        c: &Container,
        id: ContainerId,
        sandbox: &Sandbox,
        grace: Duration,
    ) {
        let hook = c.lifecycle.as_ref().and_then(|l| l.pre_stop.clone());
        let target = self.probe_target(sandbox, &id);
        let container = c.clone();
        let node = self.node.clone();
        let stopped = tokio::task::spawn_blocking(move || {
            let began = Instant::now();
            let hook_failed =
                hook.and_then(|hook| run_hook(&hook, &container, &target, grace).err());
            let left = grace.saturating_sub(began.elapsed());
            node.runtime.stop_container(&id, left).map(|()| hook_failed)
        })
        .await
        .expect("the runtime task does not panic");
        match stopped {
            Ok(Some(why)) => {
                self.container_event(
                    pod,
                    c,
                    Type::Warning,
                    "FailedPreStopHook",
                    format!("PreStopHook failed: {why}"),
                )
                .await;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("stopping container {}: {e}", c.name),
        }
    }

    async fn fail(&mut self, pod: &Pod, c: &Container, reason: &str, message: String) {
        self.container_event(pod, c, Type::Warning, "Failed", format!("Error: {message}"))
            .await;
        self.waiting
            .insert(c.name.clone(), (reason.to_owned(), message));
    }

    /// The container's image, pulled as its `imagePullPolicy` says, with
    /// the kubelet's events and back-off. Errors are (reason, message).
    async fn ensure_image(&mut self, pod: &Pod, c: &Container) -> Result<Image, (String, String)> {
        let name = c.image.clone().unwrap_or_default();
        let reference: Reference = name.parse().map_err(|e| {
            (
                "InvalidImageName".to_owned(),
                format!("Failed to apply default image tag {name:?}: {e}"),
            )
        })?;
        let policy = c.image_pull_policy.as_deref().unwrap_or("IfNotPresent");
        let node = self.node.clone();
        let lookup = reference.to_string();
        let present = tokio::task::spawn_blocking(move || node.images.resolve(&lookup))
            .await
            .expect("the image task does not panic")
            .ok()
            .flatten();
        if let Some(image) = present.filter(|_| policy != "Always") {
            self.image_ids
                .insert(c.name.clone(), image.image_ref().to_owned());
            self.container_event(
                pod,
                c,
                Type::Normal,
                "Pulled",
                format!("Container image {name:?} already present on machine"),
            )
            .await;
            return Ok(image);
        }
        if policy == "Never" {
            let message =
                format!("Container image {name:?} is not present with pull policy of Never");
            self.container_event(pod, c, Type::Warning, "ErrImageNeverPull", message.clone())
                .await;
            return Err(("ErrImageNeverPull".to_owned(), message));
        }
        let backoff = self.pulls.entry(name.clone()).or_default();
        if let Some(failed) = self.waiting.get(&c.name)
            && failed.0 == "ErrImagePull"
            && backoff
                .since
                .is_some_and(|at| at.elapsed() < ERR_IMAGE_PULL_SHOWN)
        {
            return Err(failed.clone());
        }
        if !backoff.ready() {
            let message = format!("Back-off pulling image {name:?}");
            if self
                .waiting
                .get(&c.name)
                .is_none_or(|(r, _)| r != "ImagePullBackOff")
            {
                self.container_event(pod, c, Type::Normal, "BackOff", message.clone())
                    .await;
            }
            return Err(("ImagePullBackOff".to_owned(), message));
        }
        backoff.attempted();
        self.container_event(
            pod,
            c,
            Type::Normal,
            "Pulling",
            format!("Pulling image {name:?}"),
        )
        .await;
        let began = Instant::now();
        let options = PullOptions {
            auth: self.pull_auth(pod, &reference).await,
            insecure_registries: self.node.insecure_registries.clone(),
            progress: None,
        };
        match self.node.images.pull(&reference, &options).await {
            Ok(image) => {
                self.pulls.remove(&name);
                let took = go_duration(began.elapsed());
                let size = image.size();
                self.container_event(pod, c,
                        Type::Normal,
                        "Pulled",
                        format!("Successfully pulled image {name:?} in {took} ({took} including waiting). Image size: {size} bytes."),
                    )
                    .await;
                self.image_ids
                    .insert(c.name.clone(), image.image_ref().to_owned());
                Ok(image)
            }
            Err(e) => {
                let message = format!("Failed to pull image {name:?}: {e}");
                self.container_event(pod, c, Type::Warning, "Failed", message.clone())
                    .await;
                self.container_event(
                    pod,
                    c,
                    Type::Warning,
                    "Failed",
                    "Error: ErrImagePull".to_owned(),
                )
                .await;
                Err(("ErrImagePull".to_owned(), message))
            }
        }
    }

    /// Credentials for the image's registry from the pod's imagePullSecrets.
    async fn pull_auth(&self, pod: &Pod, reference: &Reference) -> RegistryAuth {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let secrets: Api<Secret> = Api::namespaced(self.node.client.clone(), namespace);
        let names = pod
            .spec
            .iter()
            .flat_map(|s| s.image_pull_secrets.iter().flatten());
        for name in names {
            let Ok(Some(secret)) = secrets.get_opt(&name.name).await else {
                continue;
            };
            let data = secret.data.unwrap_or_default();
            let config = data
                .get(".dockerconfigjson")
                .or_else(|| data.get(".dockercfg"));
            if let Some(config) = config
                && let Ok(Some(auth)) =
                    RegistryAuth::from_docker_config(&config.0, reference.registry())
            {
                return auth;
            }
        }
        RegistryAuth::Anonymous
    }

    /// The ConfigMaps and Secrets the pod's env and volumes name, by name;
    /// ones that do not exist are left out (their users report it).
    async fn referenced_data(&self, pod: &Pod) -> Referenced {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let (cm_names, secret_names) = referenced_names(pod);
        let config_maps: Api<ConfigMap> = Api::namespaced(self.node.client.clone(), namespace);
        let secrets: Api<Secret> = Api::namespaced(self.node.client.clone(), namespace);
        let mut cms = BTreeMap::new();
        for name in cm_names {
            if let Ok(Some(cm)) = config_maps.get_opt(&name).await {
                let mut data = cm.data.unwrap_or_default();
                for (k, v) in cm.binary_data.unwrap_or_default() {
                    data.insert(k, String::from_utf8_lossy(&v.0).into_owned());
                }
                cms.insert(name, data);
            }
        }
        let mut secs = BTreeMap::new();
        for name in secret_names {
            if let Ok(Some(secret)) = secrets.get_opt(&name).await {
                let mut data: BTreeMap<String, String> = secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect();
                data.extend(secret.string_data.unwrap_or_default());
                secs.insert(name, data);
            }
        }
        (cms, secs)
    }

    /// The pod's sandbox, made on first need, and attached to the pod
    /// network (once per worker: attaching again gives the same address).
    async fn sandbox(&mut self, pod: &Pod) -> Result<Sandbox, String> {
        let spec = pod.spec.as_ref();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let sandbox_spec = SandboxSpec {
            pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            hostname: spec
                .and_then(|s| s.hostname.clone())
                .unwrap_or_else(|| name.clone()),
            name,
            host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
            share_process_namespace: spec
                .and_then(|s| s.share_process_namespace)
                .unwrap_or(false),
        };
        let node = self.node.clone();
        let sandbox = tokio::task::spawn_blocking(move || {
            node.runtime
                .sandbox(&sandbox_spec.pod_uid)
                .or_else(|_| node.runtime.create_sandbox(&sandbox_spec))
        })
        .await
        .expect("the runtime task does not panic")
        .map_err(|e| e.to_string())?;
        if let (None, Some(netns)) = (self.pod_ip, &sandbox.netns_path) {
            let network = pod_network(pod, netns.clone());
            let node = self.node.clone();
            let address = tokio::task::spawn_blocking(move || node.cni.add(&network))
                .await
                .expect("the network task does not panic")
                .map_err(|e| {
                    format!("plugin type=\"bridge\" name=\"tugboat\" failed (add): {e}")
                })?;
            self.pod_ip = Some(address.ip);
        }
        Ok(sandbox)
    }

    async fn containers_of(&self, uid: &str) -> Vec<ContainerStatus> {
        let node = self.node.clone();
        let uid = uid.to_owned();
        tokio::task::spawn_blocking(move || node.runtime.list_containers())
            .await
            .expect("the runtime task does not panic")
            .unwrap_or_else(|e| {
                tracing::warn!("listing containers: {e}");
                Vec::new()
            })
            .into_iter()
            .filter(|c| c.pod_uid == uid)
            .collect()
    }

    async fn post_status(&mut self, pod: &Pod, status: Value) {
        if self.last_status.as_ref() == Some(&status) {
            return;
        }
        let api: Api<Pod> = Api::namespaced(
            self.node.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let patch = Patch::Merge(json!({"status": status}));
        match api
            .patch_status(name, &PatchParams::default(), &patch)
            .await
        {
            Ok(_) => self.last_status = Some(status),
            Err(e) => tracing::warn!(pod = name, "posting the pod's status: {e}"),
        }
    }

    /// Stops the pod gracefully, removes everything it had on the node, and
    /// deletes the pod object: the kubelet's half of a graceful deletion.
    async fn terminate(&mut self, pod: &Pod) {
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                pod.spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30)
            .max(0) as u64;
        self.tear_down(Some(pod), Duration::from_secs(grace)).await;
        let api: Api<Pod> = Api::namespaced(
            self.node.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        if let Err(e) = api.delete(name, &params).await {
            tracing::debug!(pod = name, "deleting the terminated pod: {e}");
        }
    }

    /// Stops every container of the pod (SIGTERM, `grace`, SIGKILL), all at
    /// once, then removes the sandbox, the pod's directory and its logs.
    async fn tear_down(&mut self, pod: Option<&Pod>, grace: Duration) {
        let running: Vec<ContainerStatus> = self
            .containers_of(&self.uid)
            .await
            .into_iter()
            .filter(|c| matches!(c.state, ContainerState::Running { .. }))
            .collect();
        let sandbox = {
            let node = self.node.clone();
            let uid = self.uid.clone();
            tokio::task::spawn_blocking(move || node.runtime.sandbox(&uid))
                .await
                .expect("the runtime task does not panic")
                .ok()
        };
        let mut stops = Vec::new();
        for c in running {
            let spec = pod.and_then(|pod| {
                all_containers(pod)
                    .find(|s| s.name == c.name)
                    .map(|s| (pod, s))
            });
            match (spec, &sandbox) {
                (Some((pod, spec)), Some(sandbox)) => {
                    self.container_event(
                        pod,
                        spec,
                        Type::Normal,
                        "Killing",
                        format!("Stopping container {}", c.name),
                    )
                    .await;
                    stops.push(self.stop(pod, spec, c.id.clone(), sandbox, grace));
                }
                _ => {
                    let node = self.node.clone();
                    let stopped = tokio::task::spawn_blocking(move || {
                        node.runtime.stop_container(&c.id, grace)
                    })
                    .await
                    .expect("the runtime task does not panic");
                    if let Err(e) = stopped {
                        tracing::warn!("stopping a container: {e}");
                    }
                }
            }
        }
        // All at once, as the kubelet stops a pod's containers.
        futures::future::join_all(stops).await;
        self.node.forget_pod(&self.uid).await;
    }
}

/// The grace a container gets to stop: the probe's own, else the pod's.
fn termination_grace(pod: &Pod, probe_grace: Option<i64>) -> Duration {
    let seconds = probe_grace
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30)
        .max(0);
    Duration::from_secs(seconds as u64)
}

/// Who the pod is to the CNI plugins, and its `hostPort`s. The sandbox is
/// named by the pod's uid: one sandbox per pod, never reused.
pub fn pod_network(pod: &Pod, netns: PathBuf) -> PodNetwork {
    let port_mappings = all_containers(pod)
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let host_port = u16::try_from(p.host_port?).ok().filter(|port| *port > 0)?;
            Some(PortMapping {
                host_port,
                container_port: u16::try_from(p.container_port).ok()?,
                protocol: match p.protocol.as_deref() {
                    Some("UDP") => Protocol::Udp,
                    Some("SCTP") => Protocol::Sctp,
                    _ => Protocol::Tcp,
                },
                host_ip: p.host_ip.as_deref().and_then(|ip| ip.parse().ok()),
            })
        })
        .collect();
    PodNetwork {
        netns,
        container_id: pod.metadata.uid.clone().unwrap_or_default(),
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        port_mappings,
    }
}

/// The kubelet's phase rule (`getPhase`): waiting containers that never ran
/// keep a pod Pending; once all have stopped, the restart policy decides.
fn phase(app: &[Observed], policy: &str) -> Phase {
    let mut running = 0;
    let mut stopped = 0;
    let mut succeeded = 0;
    let mut waiting = 0;
    for o in app {
        match o.latest.map(|s| &s.state) {
            Some(ContainerState::Running { .. }) => running += 1,
            Some(ContainerState::Exited { exit_code, .. }) => {
                stopped += 1;
                if *exit_code == 0 {
                    succeeded += 1;
                }
            }
            _ => waiting += 1,
        }
    }
    match () {
        _ if waiting > 0 => Phase::Pending,
        _ if running > 0 => Phase::Running,
        _ if stopped == 0 => Phase::Pending,
        _ if policy == "Always" => Phase::Running,
        _ if stopped == succeeded => Phase::Succeeded,
        _ if policy == "Never" => Phase::Failed,
        _ => Phase::Running,
    }
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

fn exit_code(latest: Option<&ContainerStatus>) -> Option<i32> {
    match latest?.state {
        ContainerState::Exited { exit_code, .. } => Some(exit_code),
        _ => None,
    }
}

fn all_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    pod.spec.iter().flat_map(|s| {
        s.init_containers
            .iter()
            .flatten()
            .chain(s.containers.iter())
    })
}

/// Names of the ConfigMaps and Secrets the pod's containers and volumes use.
fn referenced_names(pod: &Pod) -> (Vec<String>, Vec<String>) {
    let mut cms = Vec::new();
    let mut secrets = Vec::new();
    for c in all_containers(pod) {
        for from in c.env_from.iter().flatten() {
            cms.extend(from.config_map_ref.as_ref().map(|r| r.name.clone()));
            secrets.extend(from.secret_ref.as_ref().map(|r| r.name.clone()));
        }
        for var in c.env.iter().flatten() {
            if let Some(from) = &var.value_from {
                cms.extend(from.config_map_key_ref.as_ref().map(|r| r.name.clone()));
                secrets.extend(from.secret_key_ref.as_ref().map(|r| r.name.clone()));
            }
        }
    }
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        cms.extend(v.config_map.as_ref().map(|c| c.name.clone()));
        secrets.extend(v.secret.as_ref().and_then(|s| s.secret_name.clone()));
        for source in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            cms.extend(source.config_map.as_ref().map(|c| c.name.clone()));
            secrets.extend(source.secret.as_ref().map(|s| s.name.clone()));
        }
    }
    cms.sort();
    cms.dedup();
    secrets.sort();
    secrets.dedup();
    (cms, secrets)
}

/// `spec.containers{name}` or `spec.initContainers{name}`: the event's
/// fieldPath naming the container.
fn field_path(pod: &Pod, c: &Container) -> String {
    let is_init = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|inits| inits.iter().any(|i| i.name == c.name));
    let list = if is_init {
        "initContainers"
    } else {
        "containers"
    };
    format!("spec.{list}{{{}}}", c.name)
}

/// `name_namespace(uid)`, as the kubelet names a pod in messages.
fn pod_label(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

/// Go's duration format for the figures in kubelet messages: `10s`, `1m20s`,
/// `1.234s`.
fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_millis() != 0 && secs < 60 {
        return format!("{:.3}s", d.as_secs_f64());
    }
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s}s"),
        (m, s) => format!("{m}m{s}s"),
    }
}

/// The imageID the pod's status last gave `container`: what a container
/// adopted after an agent restart still runs, though this worker never
/// resolved its image.
fn reported_image_id(pod: &Pod, container: &str) -> String {
    let status = pod.status.as_ref();
    status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .chain(status.and_then(|s| s.init_container_statuses.as_ref()))
        .flatten()
        .find(|c| c.name == container)
        .map(|c| c.image_id.clone())
        .unwrap_or_default()
}
