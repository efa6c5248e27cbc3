// SPDX-License-Identifier: MIT OR Apache-2.0
//! `snapshot-dir`: each verdict's JPEG as `<event_id>.jpg`, bounded by count and bytes (the
//! oldest removed first, files of earlier runs included). Runs on the publishing thread.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotDirConfig {
    pub dir: PathBuf,
    pub max_files: u32,
    pub max_bytes: u64,
}

/// Counts of the folder's writes.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct DirCounts {
    pub written: u64,
    pub failed: u64,
    pub removed: u64,
}

/// Why a snapshot was not written.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteError {
    pub reason: String,
    /// The folder failed (full disk, gone, read-only): an outage, warned once until a write
    /// works again. Otherwise this snapshot alone was refused (too big, odd id).
    pub io: bool,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

fn refused(reason: String) -> WriteError {
    WriteError { reason, io: false }
}

pub struct SnapshotDir {
    config: SnapshotDirConfig,
    /// Our files in the folder, oldest first, with their sizes.
    files: VecDeque<(PathBuf, u64)>,
    bytes: u64,
    pub counts: DirCounts,
}

/// An event id as a file name: ids are `<run>-<request>` in hex and digits, but nothing from
/// upstream reaches the file system unchecked.
fn file_name(event_id: &str) -> Option<String> {
    let ok = !event_id.is_empty()
        && event_id.len() <= 128
        && event_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    ok.then(|| format!("{event_id}.jpg"))
}

impl SnapshotDir {
    /// Opens the folder (made if missing) and takes in the snapshots already there, oldest
    /// first, so the bound holds across restarts.
    pub fn open(config: SnapshotDirConfig) -> Result<SnapshotDir, String> {
        std::fs::create_dir_all(&config.dir)
            .map_err(|e| format!("cannot make snapshot-dir {}: {e}", config.dir.display()))?;
        let mut found = Vec::new();
        let entries = std::fs::read_dir(&config.dir)
            .map_err(|e| format!("cannot read snapshot-dir {}: {e}", config.dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|x| x != "jpg") {
                continue;
            }
            if let Ok(m) = entry.metadata()
                && m.is_file()
            {
                let when = m.modified().unwrap_or(std::time::UNIX_EPOCH);
                found.push((when, path, m.len()));
            }
        }
        found.sort();
        let bytes = found.iter().map(|f| f.2).sum();
        let mut dir = SnapshotDir {
            config,
            files: found.into_iter().map(|(_, p, n)| (p, n)).collect(),
            bytes,
            counts: DirCounts::default(),
        };
        dir.trim(0);
        Ok(dir)
    }

    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// Removes the oldest files until `incoming` more bytes and one more file fit.
    fn trim(&mut self, incoming: u64) {
        let extra = u64::from(incoming > 0);
        while let Some((path, n)) = self.files.front().cloned() {
            let over_count = self.files.len() as u64 + extra > self.config.max_files as u64;
            let over_bytes = self.bytes + incoming > self.config.max_bytes;
            if !over_count && !over_bytes {
                break;
            }
            self.files.pop_front();
            self.bytes -= n;
            if std::fs::remove_file(&path).is_ok() {
                self.counts.removed += 1;
            }
        }
    }

    /// Writes `jpeg` as `<event_id>.jpg` (via a temporary name, so a reader never sees half a
    /// file) and returns the file name. A failed write leaves nothing behind.
    pub fn write(&mut self, event_id: &str, jpeg: &[u8]) -> Result<String, WriteError> {
        let result = self.write_inner(event_id, jpeg);
        match &result {
            Ok(_) => self.counts.written += 1,
            Err(_) => self.counts.failed += 1,
        }
        result
    }

    fn write_inner(&mut self, event_id: &str, jpeg: &[u8]) -> Result<String, WriteError> {
        let name = file_name(event_id)
            .ok_or_else(|| refused(format!("event id {event_id:?} is no file name")))?;
        let n = jpeg.len() as u64;
        if n > self.config.max_bytes || self.config.max_files == 0 {
            return Err(refused(format!(
                "a snapshot of {n} bytes does not fit snapshot-dir-max-bytes={} / \
                 snapshot-dir-max-files={}",
                self.config.max_bytes, self.config.max_files
            )));
        }
        self.trim(n);
        let path = self.config.dir.join(&name);
        let tmp = self.config.dir.join(format!(".{name}.tmp"));
        let written = std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(jpeg))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            // A full disk keeps what fit of the temporary file: give the space back.
            let _ = std::fs::remove_file(&tmp);
            return Err(WriteError {
                reason: format!("cannot write {}: {e}", path.display()),
                io: true,
            });
        }
        self.files.push_back((path, n));
        self.bytes += n;
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("iguard-snapdir-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn listing(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_named_files_and_keeps_the_newest_within_the_count() {
        let d = tmp("count");
        let mut s = SnapshotDir::open(SnapshotDirConfig {
            dir: d.clone(),
            max_files: 2,
            max_bytes: 1 << 20,
        })
        .unwrap();
        for i in 1..=3 {
            assert_eq!(
                s.write(&format!("r-{i}"), &[i as u8; 10]).unwrap(),
                format!("r-{i}.jpg")
            );
        }
        assert_eq!(listing(&d), vec!["r-2.jpg", "r-3.jpg"]);
        assert_eq!(std::fs::read(d.join("r-3.jpg")).unwrap(), vec![3u8; 10]);
        assert_eq!(
            s.counts,
            DirCounts {
                written: 3,
                failed: 0,
                removed: 1
            }
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_byte_bound_removes_the_oldest_and_holds_across_a_restart() {
        let d = tmp("bytes");
        let config = SnapshotDirConfig {
            dir: d.clone(),
            max_files: 100,
            max_bytes: 250,
        };
        let mut s = SnapshotDir::open(config.clone()).unwrap();
        for i in 1..=2 {
            s.write(&format!("a-{i}"), &[0; 100]).unwrap();
            // Distinct modification times for the restart's ordering.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        drop(s);
        let mut s = SnapshotDir::open(config).unwrap();
        s.write("b-1", &[0; 100]).unwrap();
        assert_eq!(listing(&d), vec!["a-2.jpg", "b-1.jpg"]);
        let e = s.write("b-2", &[0; 300]).unwrap_err();
        assert!(e.reason.contains("snapshot-dir-max-bytes=250"), "{e}");
        assert!(!e.io, "one refused snapshot is no outage");
        assert_eq!(s.counts.failed, 1);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_folder_that_fails_is_an_io_error_naming_the_file_and_leaves_no_temporary() {
        let d = tmp("gone");
        let mut s = SnapshotDir::open(SnapshotDirConfig {
            dir: d.clone(),
            max_files: 10,
            max_bytes: 1000,
        })
        .unwrap();
        std::fs::remove_dir_all(&d).unwrap();
        let e = s.write("r-1", &[1; 10]).unwrap_err();
        assert!(e.io, "{e}");
        assert!(
            e.reason.contains(&d.join("r-1.jpg").display().to_string()),
            "{e}"
        );
        std::fs::create_dir_all(&d).unwrap();
        assert_eq!(s.write("r-2", &[2; 10]).unwrap(), "r-2.jpg", "works again");
        assert_eq!(listing(&d), vec!["r-2.jpg"]);
        assert_eq!((s.counts.written, s.counts.failed), (1, 1));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn an_odd_event_id_reaches_no_file() {
        let d = tmp("odd");
        let mut s = SnapshotDir::open(SnapshotDirConfig {
            dir: d.clone(),
            max_files: 10,
            max_bytes: 1000,
        })
        .unwrap();
        assert!(s.write("../x", &[1]).unwrap_err().reason.contains("../x"));
        assert!(listing(&d).is_empty());
        let _ = std::fs::remove_dir_all(&d);
    }
}
