//! Acknowledged writes survive `kill -9`.
//!
//! This test binary plays two parts. Run normally, it is the checker: it
//! starts itself again as a writer, kills the writer with SIGKILL at random
//! moments, reopens the store and checks every write the writer reported as
//! acknowledged. Run with `CRASH_WRITER_STORE` set, it is the writer: it puts
//! keys from several tasks at once and prints each key once its put returned.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use tugboat_store::embedded::EmbeddedStore;
use tugboat_store::{Store, conformance};

const WRITER_ENV: &str = "CRASH_WRITER_STORE";
const ROUND_ENV: &str = "CRASH_WRITER_ROUND";
const ROUNDS: usize = 5;
const WRITER_TASKS: usize = 8;

fn main() {
    match std::env::var_os(WRITER_ENV) {
        Some(path) => write_until_killed(Path::new(&path)),
        None => check_kill_nine(),
    }
}

/// The value written under `key`.
fn value_of(key: &str) -> String {
    format!("value of {key}")
}

fn write_until_killed(path: &Path) {
    let round = std::env::var(ROUND_ENV).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store: Arc<dyn Store> = EmbeddedStore::open(path).unwrap();
        let tasks: Vec<_> = (0..WRITER_TASKS)
            .map(|task| {
                let store = store.clone();
                let round = round.clone();
                tokio::spawn(async move {
                    for i in 0.. {
                        let key = format!("/crash/{round}/{task}/{i}");
                        conformance::put(&*store, &key, &value_of(&key)).await;
                        writeln!(std::io::stdout().lock(), "{key}").unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
}

fn check_kill_nine() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let mut acknowledged = Vec::new();
    for round in 0..ROUNDS {
        acknowledged.extend(run_writer_and_kill_it(&path, round));
        check_store(&path, &acknowledged);
    }
    println!(
        "crash: {} acknowledged writes survived {ROUNDS} kills",
        acknowledged.len()
    );
}

/// Starts a writer, kills it at a random moment once it has acknowledged
/// some writes, and returns the keys it acknowledged.
fn run_writer_and_kill_it(path: &Path, round: usize) -> Vec<String> {
    let mut writer = Command::new(std::env::current_exe().unwrap())
        .env(WRITER_ENV, path)
        .env(ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(writer.stdout.take().unwrap());
    let (lines_tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut line = Vec::new();
        // A line the kill cut short has no newline: it is not an acknowledgement.
        while stdout.read_until(b'\n', &mut line).unwrap() > 0 && line.ends_with(b"\n") {
            line.pop();
            let key = String::from_utf8(std::mem::take(&mut line)).unwrap();
            lines_tx.send(key).unwrap();
        }
    });

    let mut acknowledged = Vec::new();
    let warm_up = 20 + fastrand::usize(..200);
    while acknowledged.len() < warm_up {
        let key = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the writer acknowledged nothing");
        acknowledged.push(key);
    }
    std::thread::sleep(Duration::from_millis(fastrand::u64(..300)));
    writer.kill().unwrap();
    writer.wait().unwrap();
    reader.join().unwrap();
    acknowledged.extend(lines.try_iter());
    acknowledged
}

/// Reopens the store and checks that every acknowledged key holds its value.
fn check_store(path: &Path, acknowledged: &[String]) {
    let mut db = redb::Database::open(path).expect("the killed store file opens");
    db.check_integrity().expect("the store file is consistent");
    drop(db);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store: Arc<dyn Store> = EmbeddedStore::open(path).unwrap();
        let stored: HashMap<String, Vec<u8>> =
            conformance::list(&*store, "/crash/", Default::default())
                .await
                .kvs
                .into_iter()
                .map(|kv| (kv.key, kv.value))
                .collect();
        for key in acknowledged {
            assert_eq!(
                stored.get(key).map(Vec::as_slice),
                Some(value_of(key).as_bytes()),
                "acknowledged key {key}"
            );
        }
        assert!(store.current_revision().await.unwrap() > acknowledged.len() as i64);
    });
}
