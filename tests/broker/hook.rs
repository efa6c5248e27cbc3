// SPDX-License-Identifier: MIT OR Apache-2.0
//! A real webhook receiver for tests: tests/python/webhook_server.py on a loopback port.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// `tests/python/webhook_server.py` on a loopback port, killed when dropped (a failing test
/// included).
pub struct Hook {
    child: std::process::Child,
    pub port: u16,
    log: PathBuf,
}

impl Hook {
    pub fn start(dir: &Path, secret: &str, fail_s: f64, refuse_mod: u64) -> Hook {
        Hook::start_with(dir, secret, fail_s, refuse_mod, &[])
    }

    /// `tls`: the server's certificate and key files, for HTTPS.
    pub fn start_with(
        dir: &Path,
        secret: &str,
        fail_s: f64,
        refuse_mod: u64,
        tls: &[&Path],
    ) -> Hook {
        Hook::start_scripted(dir, secret, fail_s, refuse_mod, tls, "")
    }

    /// `script`: the answers to the first requests (the server's HOOK_SCRIPT).
    pub fn start_scripted(
        dir: &Path,
        secret: &str,
        fail_s: f64,
        refuse_mod: u64,
        tls: &[&Path],
        answers: &str,
    ) -> Hook {
        use std::io::BufRead;
        let port = super::free_port();
        let log = dir.join("webhook.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/webhook_server.py");
        let mut child = std::process::Command::new("python3")
            .arg(script)
            .args([
                port.to_string(),
                secret.to_string(),
                fail_s.to_string(),
                refuse_mod.to_string(),
                log.display().to_string(),
            ])
            .args(tls)
            .env("HOOK_SCRIPT", answers)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs the webhook server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the webhook server did not start");
        Hook { child, port, log }
    }

    /// Every answer the server gave, in order.
    pub fn answers(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("the server logs JSON lines"))
            .collect()
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
