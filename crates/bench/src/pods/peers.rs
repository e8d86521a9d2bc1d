//! The runtimes the pod start is measured beside, on the same image and
//! command: runc and crun (`run -d`) on an OCI bundle that umoci unpacked
//! from the same OCI archive, and containerd (Debian's, started here on a
//! socket and directories of its own) through `ctr run -d` with the same
//! archive imported. None of them sets up a pod network: each container gets
//! an empty network namespace of its own.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::future::join_all;

use super::{COMMAND, IMAGE, Memory, Starts, processes};
use crate::node::which;
use crate::report::{Samples, rss_kib};

/// containerd's namespace for the benchmark's images and containers.
const CTR_NAMESPACE: &str = "tug-bench";

/// One peer's figures, or why it could not be measured.
pub struct Measured {
    pub label: String,
    pub figures: anyhow::Result<(Starts, Option<Memory>)>,
}

/// Measures runc, crun and containerd one after the other in `run`.
pub async fn measure(run: &Path, archive: &Path, runs: usize, batch: usize) -> Vec<Measured> {
    let dir = run.join("peers");
    let bundle = std::fs::create_dir_all(&dir)
        .map_err(anyhow::Error::from)
        .and_then(|()| unpack_bundle(archive, &dir));
    let mut measured = Vec::new();
    for binary in ["runc", "crun"] {
        let label = format!(
            "{} run -d: bundle unpacked beforehand, empty network namespace, no shim",
            version(binary)
        );
        let figures = match &bundle {
            Ok(bundle) => {
                let peer = Peer::Oci {
                    binary,
                    root: dir.join(format!("{binary}-state")),
                    bundle: bundle.clone(),
                    log: dir.join(format!("{binary}.log")),
                };
                starts(&peer, runs, batch, || Ok(()))
                    .await
                    .map(|(s, ())| (s, None))
            }
            Err(e) => Err(anyhow::anyhow!("unpacking the bundle: {e:#}")),
        };
        measured.push(Measured { label, figures });
    }
    measured.push(Measured {
        label: format!(
            "{} ctr run -d: snapshot, shim, runc, empty network namespace",
            version("containerd")
        ),
        figures: containerd(&dir.join("containerd"), archive, runs, batch).await,
    });
    measured
}

/// "runc 1.1.5+ds1", from the first version-like word `--version` prints.
fn version(binary: &str) -> String {
    let out = Command::new(binary).arg("--version").output();
    let version = out.ok().and_then(|out| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()?
            .split_whitespace()
            .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
            .map(str::to_owned)
    });
    match version {
        Some(v) => format!("{binary} {v}"),
        None => binary.to_owned(),
    }
}

/// How one peer starts and removes a container.
enum Peer {
    /// runc or crun on a bundle; every container shares its (never
    /// written) root filesystem.
    Oci {
        binary: &'static str,
        root: PathBuf,
        bundle: PathBuf,
        /// The runtime's stderr: `run -d` hands its stdio to the container,
        /// so a pipe would never close.
        log: PathBuf,
    },
    Ctr {
        containerd: Containerd,
        log: PathBuf,
    },
}

impl Peer {
    fn start_command(&self, id: &str) -> Command {
        match self {
            Peer::Oci {
                binary,
                root,
                bundle,
                ..
            } => {
                let mut command = Command::new(binary);
                command
                    .arg("--root")
                    .arg(root)
                    .args(["run", "-d", "--bundle"])
                    .arg(bundle)
                    .arg(id);
                command
            }
            Peer::Ctr { containerd, .. } => {
                let mut command = containerd.ctr();
                command
                    .args(["run", "-d", "--log-uri"])
                    .arg(format!("file://{}/{id}.log", containerd.dir.display()))
                    .args([IMAGE, id])
                    .args(COMMAND);
                command
            }
        }
    }

    fn remove_commands(&self, id: &str) -> Vec<Command> {
        match self {
            Peer::Oci { binary, root, .. } => {
                let mut command = Command::new(binary);
                command.arg("--root").arg(root).args(["delete", "-f", id]);
                vec![command]
            }
            Peer::Ctr { containerd, .. } => {
                let mut task = containerd.ctr();
                task.args(["task", "delete", "-f", id]);
                let mut container = containerd.ctr();
                container.args(["container", "delete", id]);
                vec![task, container]
            }
        }
    }

    fn log(&self) -> &Path {
        match self {
            Peer::Oci { log, .. } | Peer::Ctr { log, .. } => log,
        }
    }

    /// Starts one container and returns how long its start command took.
    async fn start(&self, id: &str) -> anyhow::Result<Duration> {
        let mut command = tokio::process::Command::from(self.start_command(id));
        let began = Instant::now();
        let status = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::options().create(true).append(true).open(self.log())?)
            .status()
            .await
            .with_context(|| format!("running {:?}", self.start_command(id)))?;
        let took = began.elapsed();
        if !status.success() {
            let log = std::fs::read_to_string(self.log()).unwrap_or_default();
            let last = log.lines().last().unwrap_or_default();
            bail!(
                "{:?}: {status}: {last}{}",
                self.start_command(id),
                hint(last)
            );
        }
        Ok(took)
    }

    fn remove(&self, id: &str) -> anyhow::Result<()> {
        for mut command in self.remove_commands(id) {
            let out = command.stdin(Stdio::null()).output()?;
            anyhow::ensure!(
                out.status.success(),
                "{command:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

/// What to do about an error the peers are known to give on this machine.
fn hint(error: &str) -> &'static str {
    if error.contains("hybrid mode") {
        " (crun needs no controller left on the cgroup v2 hierarchy: mkdir -p /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb)"
    } else {
        ""
    }
}

/// A first container (not counted), `runs` one after the other, then
/// `batch` at once; `during` runs while the batch does.
async fn starts<T>(
    peer: &Peer,
    runs: usize,
    batch: usize,
    during: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<(Starts, T)> {
    let first = peer.start("first").await;
    peer.remove("first")?;
    first?;
    let mut one = Samples::default();
    for i in 0..runs {
        let id = format!("one-{i}");
        let took = peer.start(&id).await;
        peer.remove(&id)?;
        one.push(took?);
    }
    let ids: Vec<String> = (0..batch).map(|i| format!("batch-{i}")).collect();
    let began = Instant::now();
    let started = join_all(ids.iter().map(|id| peer.start(id))).await;
    let batch_wall = began.elapsed();
    let during = during();
    // Every container goes, whatever failed.
    let removed: Vec<anyhow::Result<()>> = ids.iter().map(|id| peer.remove(id)).collect();
    let mut samples = Samples::default();
    for took in started {
        samples.push(took?);
    }
    removed.into_iter().collect::<anyhow::Result<()>>()?;
    let starts = Starts {
        one,
        batch: samples,
        batch_wall,
    };
    Ok((starts, during?))
}

/// Extracts the OCI archive and has umoci unpack it into a bundle whose
/// process is `COMMAND` without a terminal; returns the bundle.
fn unpack_bundle(archive: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    which("umoci", "apt-get install umoci")?;
    let layout = dir.join("layout");
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(&layout)?;
    run_tool(
        Command::new("tar")
            .arg("-xf")
            .arg(archive)
            .arg("-C")
            .arg(&layout),
    )?;
    let tag = IMAGE.rsplit(':').next().unwrap_or("latest");
    run_tool(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:{tag}", layout.display()))
            .arg(&bundle),
    )?;
    let config = bundle.join("config.json");
    let mut spec: serde_json::Value = serde_json::from_slice(&std::fs::read(&config)?)?;
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = COMMAND.into();
    std::fs::write(&config, serde_json::to_vec_pretty(&spec)?)?;
    Ok(bundle)
}

fn run_tool(command: &mut Command) -> anyhow::Result<()> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {command:?}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// containerd on a socket and root and state directories of its own.
struct Containerd {
    child: Child,
    dir: PathBuf,
    address: PathBuf,
}

impl Containerd {
    async fn start(dir: &Path) -> anyhow::Result<Containerd> {
        which("containerd", "apt-get install containerd")?;
        std::fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        let address = dir.join("containerd.sock");
        // The CRI plugin is Kubernetes' way in, not ctr's: left out.
        let config = format!(
            "version = 2\nroot = {root:?}\nstate = {state:?}\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = {address:?}\n\
             [ttrpc]\n  address = {ttrpc:?}\n",
            root = dir.join("root"),
            state = dir.join("state"),
            ttrpc = dir.join("containerd.sock.ttrpc"),
        );
        std::fs::write(dir.join("config.toml"), config)?;
        let log = File::create(dir.join("containerd.log"))?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting containerd")?;
        let containerd = Containerd {
            child,
            dir,
            address,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !containerd.ctr().arg("version").output()?.status.success() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "containerd did not answer within 30 s; see {}",
                containerd.dir.join("containerd.log").display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(containerd)
    }

    fn ctr(&self) -> Command {
        let mut command = Command::new("ctr");
        command
            .arg("--address")
            .arg(&self.address)
            .args(["--namespace", CTR_NAMESPACE]);
        command
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// containerd's figures: starts, and the daemon's and its shims' memory.
async fn containerd(
    dir: &Path,
    archive: &Path,
    runs: usize,
    batch: usize,
) -> anyhow::Result<(Starts, Option<Memory>)> {
    let containerd = Containerd::start(dir).await?;
    run_tool(containerd.ctr().args(["images", "import"]).arg(archive))?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = containerd.pid();
    let daemon_idle = rss_kib(pid)?;
    // The shims are told containerd's address on their command line.
    let address = containerd.address.display().to_string();
    let peer = Peer::Ctr {
        log: containerd.dir.join("ctr.log"),
        containerd,
    };
    let (starts, memory) = starts(&peer, runs, batch, || {
        let shims = processes(|argv| {
            argv.first()
                .is_some_and(|a| a.ends_with("containerd-shim-runc-v2"))
                && argv.contains(&address)
        });
        Memory::read(
            &format!(
                "{} + a containerd-shim-runc-v2 per container",
                version("containerd")
            ),
            pid,
            daemon_idle,
            &shims,
        )
    })
    .await?;
    Ok((starts, Some(memory)))
}
