// SPDX-License-Identifier: MIT OR Apache-2.0
//! A real Triton Inference Server for tests and the remote benchmark: `tests/triton/server.py`
//! (PyPI nvidia-pytriton, serving an ONNX model through onnxruntime) in the venv `make
//! triton-venv` makes. Included by `tests/triton.rs` and `examples/bench_triton.rs` (`#[path]`),
//! so it uses nothing but std and the library.
//!
//! [`Server`] starts it on free loopback ports and stops it when dropped, also when the test
//! fails: SIGTERM to its whole process group (pytriton runs `tritonserver` and backend stubs as
//! children), SIGKILL if it has not ended in time. The server also ends by itself when its
//! standard input closes, so it never outlives a test process killed from outside.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gstiguard::clip::Clip;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The server venv's interpreter; fails with what to run when it is missing.
pub fn python() -> PathBuf {
    let p = std::env::var_os("IGUARD_TRITON_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv-triton/bin/python"));
    assert!(
        p.is_file(),
        "{} is missing: run `make triton-venv` (make test-triton does)",
        p.display()
    );
    p
}

pub fn tiny_model() -> PathBuf {
    let p = root().join("models/tiny-action.onnx");
    assert!(p.is_file(), "{} is missing: run `make models`", p.display());
    p
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Seconds the model function sleeps on every call.
    pub sleep: f64,
    /// Read the sleep from a file at every call, so [`Server::set_sleep`] changes it while the
    /// server runs.
    pub adjustable_sleep: bool,
    /// Model instances: how many calls the server runs at once.
    pub instances: u32,
    pub max_batch: u32,
    /// The gRPC port; `None` = a free one.
    pub grpc_port: Option<u16>,
    /// Serve gRPC over TLS with this PEM certificate and key.
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sleep: 0.0,
            adjustable_sleep: false,
            instances: 1,
            max_batch: 8,
            grpc_port: None,
            tls: None,
        }
    }
}

pub struct Server {
    child: Option<Child>,
    /// The process group: the server's pid.
    group: u32,
    /// Held open: the server ends when it closes.
    stdin: Option<ChildStdin>,
    dir: PathBuf,
    pub grpc_port: u16,
    pub options: Options,
    /// How long the start took, until the model was ready.
    pub started_in: Duration,
}

impl Server {
    /// Starts a server and waits until its model is ready. pytriton gives its model processes
    /// fixed one-second handshakes, which a busy machine can miss: a start that fails is tried
    /// again, twice.
    pub fn start(options: Options) -> Server {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Server::try_start(options.clone()) {
                Ok(server) => return server,
                Err(e) => failures.push(e),
            }
        }
        panic!(
            "the Triton test server did not start:\n{}",
            failures.join("\n\n")
        );
    }

    fn try_start(options: Options) -> Result<Server, String> {
        let python = python();
        let model = tiny_model();
        let grpc_port = options.grpc_port.unwrap_or_else(free_port);
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "iguard-triton-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("server folder");
        let log = std::fs::File::create(dir.join("server.log")).expect("server log");
        let t0 = Instant::now();
        let mut command = Command::new(&python);
        command.arg(root().join("tests/triton/server.py"));
        if options.adjustable_sleep {
            std::fs::write(dir.join("sleep"), options.sleep.to_string()).expect("sleep file");
            command.arg("--sleep-file").arg(dir.join("sleep"));
        }
        if let Some((cert, key)) = &options.tls {
            command
                .arg("--tls-cert")
                .arg(cert)
                .arg("--tls-key")
                .arg(key);
        }
        let mut child = command
            .arg("--model")
            .arg(&model)
            .args(["--grpc-port", &grpc_port.to_string()])
            .args(["--http-port", &free_port().to_string()])
            .args(["--metrics-port", &free_port().to_string()])
            .arg("--workspace")
            .arg(dir.join("workspace"))
            .args(["--sleep", &options.sleep.to_string()])
            .args(["--instances", &options.instances.to_string()])
            .args(["--max-batch", &options.max_batch.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            // Its own process group, so stopping it reaches tritonserver and the stubs too.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("triton-stdout".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })
            .expect("stdout reader");
        let mut server = Server {
            group: child.id(),
            child: Some(child),
            stdin,
            dir,
            grpc_port,
            options,
            started_in: Duration::ZERO,
        };
        let limit = Duration::from_secs(120);
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) if line.starts_with("READY") => break,
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(server.failed("exited before it was ready"));
                }
            }
            if t0.elapsed() > limit {
                return Err(server.failed(&format!("was not ready within {limit:?}")));
            }
        }
        server.started_in = t0.elapsed();
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("127.0.0.1:{}", self.grpc_port)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// What went wrong, with the end of the log. The server is cleaned up when dropped.
    fn failed(&mut self, what: &str) -> String {
        format!("it {what}; its log ends:\n{}", self.log_tail())
    }

    /// Sends `sig` to the whole process group and waits up to `wait` for the server to end.
    /// Returns whether it did.
    fn signal(&mut self, sig: &str, wait: Duration) -> bool {
        let Some(child) = self.child.as_mut() else {
            return true;
        };
        kill_group(sig, self.group);
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Kills the inference server process (`tritonserver`) at once, as a crash would. Its
    /// Python parent (pytriton) stays, to release its shared memory when the server is dropped.
    pub fn kill(&mut self) {
        let parent = self.child.as_ref().expect("a running server").id();
        let servers: Vec<u32> = children(parent)
            .into_iter()
            .filter(|(_, name)| name == "tritonserver")
            .map(|(pid, _)| pid)
            .collect();
        assert!(!servers.is_empty(), "no tritonserver under pid {parent}");
        for pid in &servers {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while children(parent)
            .iter()
            .any(|(pid, _)| servers.contains(pid))
        {
            assert!(Instant::now() < deadline, "tritonserver did not die");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server cleanly (SIGKILL after 20 s); returns how long it took.
    pub fn stop(&mut self) -> Duration {
        let t0 = Instant::now();
        if !self.signal("TERM", Duration::from_secs(20)) {
            self.signal("KILL", Duration::from_secs(10));
        }
        let took = t0.elapsed();
        // Whatever stayed in the group goes too (a group id is not reused while it has members).
        kill_group("KILL", self.group);
        self.stdin = None;
        took
    }

    /// Seconds the model sleeps from its next call on; needs `adjustable_sleep`.
    pub fn set_sleep(&self, seconds: f64) {
        assert!(self.options.adjustable_sleep, "start with adjustable_sleep");
        // Written aside and renamed over, so the model never reads half a number.
        let next = self.dir.join("sleep.next");
        std::fs::write(&next, seconds.to_string()).expect("sleep file");
        std::fs::rename(&next, self.dir.join("sleep")).expect("sleep file");
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
        // Triton's Python backend names its shared memory after pytriton's pid (our child's);
        // a killed tritonserver cannot remove it.
        let prefix = format!("pytrtion{}-", self.group);
        for e in std::fs::read_dir("/dev/shm")
            .into_iter()
            .flatten()
            .flatten()
        {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

fn kill_group(sig: &str, group: u32) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), "--", &format!("-{group}")])
        .stderr(Stdio::null())
        .status();
}

/// A clip of seeded noise, 16 frames of 112×112 (the tiny model's input): different seeds
/// score differently.
pub fn noise_clip(seed: u64) -> Clip {
    let (t, h, w) = (16u32, 112u32, 112u32);
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let pixels = (0..t * h * w * 3)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    Clip {
        request_id: seed,
        source: Default::default(),
        width: w,
        height: h,
        frames: t,
        real_frames: t,
        pixels,
        frame_labels: gstiguard::clip::FrameLabels::empty(t as usize),
        region: gstiguard::geometry::PixelRect::full(w, h),
        trigger_label: String::new(),
        trigger_confidence: 1.0,
        start_pts: None,
        end_pts: None,
    }
}

/// A certificate authority and a server certificate it signed, for `localhost` and 127.0.0.1,
/// made with the openssl command in `dir`. Returns (CA certificate, server certificate, key).
pub fn make_certificates(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let path = |suffix: &str| dir.join(format!("{name}-{suffix}"));
    let (ca_key, ca, key, csr, cert, ext) = (
        path("ca.key"),
        path("ca.pem"),
        path("server.key"),
        path("server.csr"),
        path("server.pem"),
        path("server.ext"),
    );
    std::fs::write(&ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    let s = |p: &PathBuf| p.to_str().expect("a UTF-8 temp path").to_string();
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    let steps = [
        format!(
            "req -x509 -days 2 {ec} -keyout {} -out {}",
            s(&ca_key),
            s(&ca)
        ),
        format!("req {ec} -keyout {} -out {}", s(&key), s(&csr)),
        format!(
            "x509 -req -days 2 -in {} -CA {} -CAkey {} -CAcreateserial -extfile {} -out {}",
            s(&csr),
            s(&ca),
            s(&ca_key),
            s(&ext),
            s(&cert)
        ),
    ];
    let subjects = ["/CN=iguard test authority", "/CN=localhost", ""];
    for (step, subject) in steps.iter().zip(subjects) {
        let mut cmd = Command::new("openssl");
        cmd.args(step.split_whitespace());
        if !subject.is_empty() {
            cmd.args(["-subj", subject]);
        }
        let out = cmd.output().expect("run openssl (apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl {step}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (ca, cert, key)
}

/// The children of `parent`, with their command names, from /proc.
fn children(parent: u32) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // "pid (comm) state ppid ...": comm may hold spaces, so split at the last ')'.
            let (head, tail) = stat.rsplit_once(')')?;
            let name = head.split_once('(')?.1.to_string();
            let ppid: u32 = tail.split_whitespace().nth(1)?.parse().ok()?;
            let alive = !tail.trim_start().starts_with('Z');
            (ppid == parent && alive).then_some((pid, name))
        })
        .collect()
}
