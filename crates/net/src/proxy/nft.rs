//! Running `nft`: each batch is one `nft -f -`, which the kernel applies
//! as one transaction (all of it, or none of it).

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// `nft` failed, or could not be run.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error(
        "running nft: {0} (the service proxy needs nftables' `nft` command: apt-get install nftables)"
    )]
    Spawn(std::io::Error),
    /// nft's own words: the line it refused and why.
    #[error("nft refused the batch: {0}")]
    Refused(String),
}

/// Applies `batch`, a file of nft commands.
pub async fn apply(batch: &str) -> Result<(), NftError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(NftError::Spawn)?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let written = stdin.write_all(batch.as_bytes()).await;
    drop(stdin);
    let output = child.wait_with_output().await.map_err(NftError::Spawn)?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    Err(NftError::Refused(match (stderr.is_empty(), written) {
        (false, _) => stderr,
        (true, Err(e)) => format!("writing the batch: {e}"),
        (true, Ok(())) => format!("nft exited with {}", output.status),
    }))
}
