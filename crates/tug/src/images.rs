//! `tug images`: the node's image store from the command line, as
//! `crictl images` and `ctr images` serve containerd's.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context;
use clap::{Args, Subcommand};
use tugboat_images::{
    Digest, Image, ImageStore, Progress, ProgressPhase, PullOptions, Reference, RegistryAuth,
    Removed,
};

#[derive(Args)]
pub struct ImagesArgs {
    /// The image store (an agent keeps its own under <data-dir>/images).
    #[arg(long, global = true, default_value = "/var/lib/tugboat/images")]
    root: PathBuf,
    #[command(subcommand)]
    command: ImagesCommand,
}

#[derive(Subcommand)]
enum ImagesCommand {
    /// Imports the images of an OCI archive or a `docker save` archive.
    Import { file: PathBuf },
    /// Lists the images.
    Ls,
    /// Removes images by reference (the tag goes, then the image) or by ID.
    Rm {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Pulls an image from its registry, showing each layer's progress.
    Pull {
        image: String,
        /// A registry (HOST or HOST:PORT) to reach over plain HTTP; loopback
        /// registries always are.
        #[arg(long = "insecure-registry", value_name = "HOST")]
        insecure_registries: Vec<String>,
        /// Credentials for the registry.
        #[arg(long, value_name = "USER:PASSWORD")]
        creds: Option<String>,
    },
}

pub async fn run(args: ImagesArgs) -> anyhow::Result<()> {
    let store = ImageStore::open(&args.root)?;
    match args.command {
        ImagesCommand::Import { file } => {
            let images = tokio::task::spawn_blocking(move || store.import(&file)).await??;
            for image in images {
                println!("imported {} {}", names(&image), image.id);
            }
        }
        ImagesCommand::Ls => print_table(&store.list()?),
        ImagesCommand::Rm { images } => {
            for name in images {
                let store = store.clone();
                for removed in tokio::task::spawn_blocking(move || store.remove(&name)).await?? {
                    match removed {
                        Removed::Untagged(name) => println!("Untagged: {name}"),
                        Removed::Deleted(id) => println!("Deleted: {id}"),
                    }
                }
            }
        }
        ImagesCommand::Pull {
            image,
            insecure_registries,
            creds,
        } => {
            let reference: Reference = image.parse()?;
            let auth = match creds {
                Some(creds) => {
                    let (username, password) = creds
                        .split_once(':')
                        .context("--creds takes USER:PASSWORD")?;
                    RegistryAuth::Basic {
                        username: username.to_string(),
                        password: password.to_string(),
                    }
                }
                None => RegistryAuth::Anonymous,
            };
            let printer = ProgressPrinter::default();
            let show = |progress: &Progress| printer.show(progress);
            let options = PullOptions {
                auth,
                insecure_registries,
                progress: Some(&show),
            };
            let image = store.pull(&reference, &options).await?;
            println!("pulled {reference} {}", image.id);
        }
    }
    Ok(())
}

fn names(image: &Image) -> String {
    if image.repo_tags.is_empty() {
        "<none>".to_string()
    } else {
        image.repo_tags.join(", ")
    }
}

/// `crictl images` columns: one row per tag, `<none>` for untagged images.
fn print_table(images: &[Image]) {
    let mut rows = vec![[
        "IMAGE".to_string(),
        "TAG".into(),
        "IMAGE ID".into(),
        "SIZE".into(),
    ]];
    for image in images {
        let tags: Vec<(String, String)> = match image.repo_tags.is_empty() {
            true => vec![("<none>".into(), "<none>".into())],
            false => image
                .repo_tags
                .iter()
                .map(|tag| match tag.parse::<Reference>() {
                    Ok(reference) => (reference.name(), reference.tag().unwrap_or("<none>").into()),
                    Err(_) => (tag.clone(), "<none>".into()),
                })
                .collect(),
        };
        for (name, tag) in tags {
            rows.push([name, tag, image.id.short().to_string(), bytes(image.size())]);
        }
    }
    let widths: Vec<usize> = (0..4)
        .map(|column| rows.iter().map(|row| row[column].len()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{n} B"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

/// One line on stderr per layer at each phase, and every tenth of a download.
#[derive(Default)]
struct ProgressPrinter {
    shown_tenths: Mutex<HashMap<Digest, u64>>,
}

impl ProgressPrinter {
    fn show(&self, progress: &Progress) {
        let layer = progress.layer.short();
        let size = bytes(progress.size);
        match progress.phase {
            ProgressPhase::Cached => eprintln!("{layer}: already present ({size})"),
            ProgressPhase::Downloading => {
                let tenths = (progress.downloaded * 10)
                    .checked_div(progress.size)
                    .unwrap_or(10);
                let mut shown = self.shown_tenths.lock().unwrap_or_else(|e| e.into_inner());
                if shown.get(&progress.layer) != Some(&tenths) {
                    shown.insert(progress.layer.clone(), tenths);
                    eprintln!(
                        "{layer}: downloading {:>3}% of {size}",
                        (tenths * 10).min(100)
                    );
                }
            }
            ProgressPhase::Unpacking => eprintln!("{layer}: unpacking"),
            ProgressPhase::Done => eprintln!("{layer}: done"),
        }
    }
}
