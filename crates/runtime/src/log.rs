//! Container logs in the CRI format the kubelet reads:
//! `2016-10-06T00:17:09.669794202Z stdout F a whole line`, with `P` for the
//! pieces of a line too long to hold (or cut by the container's exit), and
//! rotation by size.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::spec::LogRotation;

/// Longer lines are written in pieces tagged `P`, as containerd does.
const MAX_LINE: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The log file of one container, appended to line by line.
pub(crate) struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: LogRotation,
}

impl LogFile {
    pub(crate) fn open(path: &Path, rotation: LogRotation) -> io::Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_owned(),
            file,
            size,
            rotation,
        })
    }

    fn write_entry(&mut self, stream: Stream, partial: bool, content: &[u8]) -> io::Result<()> {
        let mut entry = format!(
            "{} {} {} ",
            Timestamp::now(),
            stream.as_str(),
            if partial { "P" } else { "F" }
        )
        .into_bytes();
        entry.extend_from_slice(content);
        entry.push(b'\n');
        if self.size > 0 && self.size + entry.len() as u64 > self.rotation.max_size_bytes {
            self.rotate()?;
        }
        self.file.write_all(&entry)?;
        self.size += entry.len() as u64;
        Ok(())
    }

    /// Shifts `<log>.N` to `<log>.N+1` (dropping the oldest), the current
    /// file to `<log>.1`, and starts an empty one.
    fn rotate(&mut self) -> io::Result<()> {
        let kept = self.rotation.max_files.max(1);
        let numbered = |n: u32| {
            let mut name = self.path.clone().into_os_string();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        if kept == 1 {
            self.file.set_len(0)?;
        } else {
            for n in (1..kept - 1).rev() {
                match std::fs::rename(numbered(n), numbered(n + 1)) {
                    Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
                    _ => {}
                }
            }
            std::fs::rename(&self.path, numbered(1))?;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
        }
        self.size = 0;
        Ok(())
    }
}

/// Cuts one stream's bytes into log lines, keeping the unfinished last line
/// until its end arrives.
pub(crate) struct LineSplitter {
    stream: Stream,
    pending: Vec<u8>,
}

impl LineSplitter {
    pub(crate) fn new(stream: Stream) -> Self {
        Self {
            stream,
            pending: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, data: &[u8], log: &mut LogFile) -> io::Result<()> {
        self.pending.extend_from_slice(data);
        let mut start = 0;
        while let Some(end) = self.pending[start..].iter().position(|&b| b == b'\n') {
            log.write_entry(self.stream, false, &self.pending[start..start + end])?;
            start += end + 1;
        }
        while self.pending.len() - start >= MAX_LINE {
            log.write_entry(self.stream, true, &self.pending[start..start + MAX_LINE])?;
            start += MAX_LINE;
        }
        self.pending.drain(..start);
        Ok(())
    }

    /// The stream ended: a last line without its newline is still a line.
    pub(crate) fn finish(&mut self, log: &mut LogFile) -> io::Result<()> {
        if !self.pending.is_empty() {
            log.write_entry(self.stream, false, &self.pending)?;
            self.pending.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(path: &Path) -> Vec<(String, String, String)> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|line| {
                let mut parts = line.splitn(4, ' ');
                let time = parts.next().unwrap();
                assert!(time.parse::<Timestamp>().is_ok(), "{line}");
                let stream = parts.next().unwrap().to_owned();
                let tag = parts.next().unwrap().to_owned();
                (stream, tag, parts.next().unwrap().to_owned())
            })
            .collect()
    }

    #[test]
    fn lines_are_tagged_full_or_partial() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pod/c/0.log");
        let mut log = LogFile::open(&path, LogRotation::default()).unwrap();
        let mut out = LineSplitter::new(Stream::Stdout);
        let mut err = LineSplitter::new(Stream::Stderr);
        out.push(b"hello\nwor", &mut log).unwrap();
        err.push(b"oops\n", &mut log).unwrap();
        out.push(b"ld\n", &mut log).unwrap();
        out.push(&vec![b'x'; MAX_LINE + 3], &mut log).unwrap();
        out.finish(&mut log).unwrap();
        let got = entries(&path);
        let simple: Vec<_> = got
            .iter()
            .map(|(s, t, c)| (s.as_str(), t.as_str(), c.len()))
            .collect();
        assert_eq!(
            simple,
            [
                ("stdout", "F", 5),
                ("stderr", "F", 4),
                ("stdout", "F", 5),
                ("stdout", "P", MAX_LINE),
                ("stdout", "F", 3)
            ]
        );
        assert_eq!(got[2].2, "world");
    }

    #[test]
    fn rotation_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let rotation = LogRotation {
            max_size_bytes: 200,
            max_files: 3,
        };
        let mut log = LogFile::open(&path, rotation).unwrap();
        let mut out = LineSplitter::new(Stream::Stdout);
        for i in 0..40 {
            out.push(format!("line {i}\n").as_bytes(), &mut log)
                .unwrap();
        }
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["0.log", "0.log.1", "0.log.2"]);
        for name in &names {
            assert!(std::fs::metadata(dir.path().join(name)).unwrap().len() <= 200);
        }
        let last = entries(&path);
        assert_eq!(last.last().unwrap().2, "line 39");
        let previous = entries(&dir.path().join("0.log.1"));
        let first_current: usize = last[0].2["line ".len()..].parse().unwrap();
        assert_eq!(
            previous.last().unwrap().2,
            format!("line {}", first_current - 1)
        );
    }
}
