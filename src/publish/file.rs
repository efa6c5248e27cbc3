// SPDX-License-Identifier: MIT OR Apache-2.0
//! The event log: one JSON object per line, appended, rotated by size.
//!
//! When the next line would take the file past `max_bytes`, `log.jsonl` becomes `log.jsonl.1`,
//! `.1` becomes `.2`, and so on; files past `max_files` are deleted. A line is never split
//! across files.
//!
//! A write that fails part-way (a full disk: the kernel takes what fits, then `ENOSPC`) would
//! leave half a line that the next line is glued to, spoiling both. So a failed write is cut
//! back to the last full line; when even that fails (or a previous run crashed mid-line), the
//! next write starts on a new line, so only the torn line is lost.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct FileConfig {
    pub path: PathBuf,
    /// Rotate before a line would take the file past this size; 0 = never rotate.
    pub max_bytes: u64,
    /// Rotated files kept beside the current one (`path.1` … `path.N`).
    pub max_files: u32,
}

pub struct JsonlFile {
    config: FileConfig,
    file: Option<File>,
    size: u64,
    /// The file does not end with a newline (a torn line): the next write starts with one.
    torn: bool,
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl JsonlFile {
    pub fn new(config: FileConfig) -> JsonlFile {
        JsonlFile {
            config,
            file: None,
            size: 0,
            torn: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.config.path
    }

    fn open(&mut self) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(&self.config.path)?;
            self.size = f.metadata()?.len();
            self.torn = false;
            if self.size > 0 {
                let mut last = [0u8; 1];
                f.read_exact_at(&mut last, self.size - 1)?;
                self.torn = last[0] != b'\n';
            }
            self.file = Some(f);
        }
        Ok(self.file.as_mut().expect("opened above"))
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        let path = self.config.path.clone();
        let n = self.config.max_files;
        if n == 0 {
            std::fs::remove_file(&path)?;
        } else {
            // The oldest goes first, so every rename has a free target.
            let _ = std::fs::remove_file(rotated(&path, n));
            for i in (1..n).rev() {
                let from = rotated(&path, i);
                if from.exists() {
                    std::fs::rename(&from, rotated(&path, i + 1))?;
                }
            }
            std::fs::rename(&path, rotated(&path, 1))?;
        }
        self.size = 0;
        Ok(())
    }

    /// Appends one line (a newline is added). On an error the file is reopened next time, and
    /// what the failed write left is cut back to the last full line.
    pub fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        let result = (|| {
            self.open()?;
            let len = line.len() as u64 + 1 + u64::from(self.torn);
            if self.config.max_bytes > 0 && self.size > 0 && self.size + len > self.config.max_bytes
            {
                self.rotate()?;
                self.open()?;
            }
            let before = self.size;
            let torn = self.torn;
            let f = self.file.as_mut().expect("opened above");
            let mut buf = Vec::with_capacity(line.len() + 2);
            if torn {
                buf.push(b'\n');
            }
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
            // One write per line: with O_APPEND a line is never interleaved or cut by a reader.
            if let Err(e) = f.write_all(&buf) {
                // Freeing the tail needs no space, so this works on a full disk too; if it
                // does not, the next open sees the torn line and starts on a new one.
                let _ = f.set_len(before);
                return Err(e);
            }
            self.size += buf.len() as u64;
            self.torn = false;
            Ok(())
        })();
        if result.is_err() {
            self.file = None;
        }
        result
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "iguard-file-{name}-{}-{}",
            std::process::id(),
            crate::publish::schema::now_us()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn lines(p: &Path) -> Vec<String> {
        std::fs::read_to_string(p)
            .map(|s| s.lines().map(String::from).collect())
            .unwrap_or_default()
    }

    #[test]
    fn appends_and_rotates_by_size_keeping_max_files() {
        let d = tmpdir("rotate");
        let path = d.join("log.jsonl");
        let mut f = JsonlFile::new(FileConfig {
            path: path.clone(),
            max_bytes: 25,
            max_files: 2,
        });
        // 10-byte lines (9 + newline): two fit in 25 bytes, the third rotates.
        for i in 0..7 {
            f.write_line(&format!("{{\"n\":{i:03}}}")).unwrap();
        }
        assert_eq!(lines(&path), ["{\"n\":006}"]);
        assert_eq!(lines(&rotated(&path, 1)), ["{\"n\":004}", "{\"n\":005}"]);
        assert_eq!(lines(&rotated(&path, 2)), ["{\"n\":002}", "{\"n\":003}"]);
        assert!(!rotated(&path, 3).exists(), "max-files bounds the count");
        for p in [path.clone(), rotated(&path, 1), rotated(&path, 2)] {
            assert!(std::fs::metadata(&p).unwrap().len() <= 25);
        }
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn continues_an_existing_file_and_never_rotates_at_zero() {
        let d = tmpdir("append");
        let path = d.join("log.jsonl");
        std::fs::write(&path, "old\n").unwrap();
        let mut f = JsonlFile::new(FileConfig {
            path: path.clone(),
            max_bytes: 0,
            max_files: 1,
        });
        for _ in 0..100 {
            f.write_line("x").unwrap();
        }
        let l = lines(&path);
        assert_eq!(l.len(), 101);
        assert_eq!(l[0], "old");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_torn_last_line_does_not_spoil_the_next() {
        let d = tmpdir("torn");
        let path = d.join("log.jsonl");
        // What a crash or a full disk in the middle of a write leaves.
        std::fs::write(&path, "{\"n\":1}\n{\"n\":").unwrap();
        let mut f = JsonlFile::new(FileConfig {
            path: path.clone(),
            max_bytes: 0,
            max_files: 0,
        });
        f.write_line("{\"n\":3}").unwrap();
        f.write_line("{\"n\":4}").unwrap();
        assert_eq!(
            lines(&path),
            ["{\"n\":1}", "{\"n\":", "{\"n\":3}", "{\"n\":4}"]
        );
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_full_device_is_an_error_each_time_not_a_panic() {
        // /dev/full answers every write with ENOSPC, as a full disk does.
        let mut f = JsonlFile::new(FileConfig {
            path: "/dev/full".into(),
            max_bytes: 0,
            max_files: 0,
        });
        for _ in 0..2 {
            let e = f.write_line("x").unwrap_err();
            assert_eq!(e.raw_os_error(), Some(28), "{e}");
        }
    }

    #[test]
    fn an_unwritable_path_is_an_error_not_a_panic() {
        let mut f = JsonlFile::new(FileConfig {
            path: "/nonexistent-dir/x.jsonl".into(),
            max_bytes: 0,
            max_files: 0,
        });
        assert!(f.write_line("x").is_err());
        assert!(f.write_line("x").is_err());
    }
}
