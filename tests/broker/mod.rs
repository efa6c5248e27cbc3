// SPDX-License-Identifier: MIT OR Apache-2.0
//! A real MQTT broker for tests: Debian's `mosquitto` on a loopback port, in a folder of its
//! own, killed when the guard is dropped (also when a test fails). Persistence is on, so a
//! stop (SIGTERM) and start keeps the subscriber's session and its queued messages, as a
//! broker restart in the field does.
#![allow(dead_code)]

pub mod hook;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

pub fn installed() -> bool {
    std::path::Path::new(MOSQUITTO).exists()
}

pub struct Broker {
    pub port: u16,
    pub dir: PathBuf,
    /// More configuration (e.g. a TLS listener), appended.
    extra: String,
    child: Option<Child>,
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Broker {
    pub fn start(name: &str) -> Broker {
        Broker::start_with(name, |_| String::new())
    }

    /// A broker whose configuration ends with `extra(folder)`.
    pub fn start_with(name: &str, extra: impl FnOnce(&std::path::Path) -> String) -> Broker {
        assert!(
            installed(),
            "{MOSQUITTO} is missing: `make mqtt-deps` installs Debian's mosquitto"
        );
        let dir = std::env::temp_dir().join(format!(
            "iguard-broker-{name}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let extra = extra(&dir);
        let mut b = Broker {
            port: free_port(),
            dir,
            extra,
            child: None,
        };
        // A free port can be taken by another test between `free_port` and mosquitto's bind:
        // then another port, a few times.
        for _ in 0..5 {
            match b.try_resume() {
                Ok(()) => return b,
                Err(e) if e.contains("Address already in use") => b.port = free_port(),
                Err(e) => panic!("{e}"),
            }
        }
        panic!("mosquitto found no free port in 5 tries: {}", b.log())
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Starts the broker (again) on the same port and folder; waits until it accepts.
    pub fn resume(&mut self) {
        if let Err(e) = self.try_resume() {
            panic!("{e}");
        }
    }

    /// Starts mosquitto and waits until it says it runs: a connection alone could reach
    /// another program that took the port, while this broker failed to bind and left.
    fn try_resume(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "already running");
        let conf = self.dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {} 127.0.0.1\nallow_anonymous true\npersistence true\n\
                 persistence_location {}/\nuser root\nmax_queued_messages 1000000\n\
                 max_inflight_messages 100\n{}",
                self.port,
                self.dir.display(),
                self.extra
            ),
        )
        .unwrap();
        let runs = |log: &str| log.lines().filter(|l| l.ends_with(" running")).count();
        let before = runs(&self.log());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("mosquitto.log"))
            .unwrap();
        let mut child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start mosquitto");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "mosquitto on port {} left ({status}): {}",
                    self.port,
                    self.log()
                ));
            }
            if runs(&self.log()) > before && TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "mosquitto did not listen on {}: {}",
                    self.port,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the broker cleanly (SIGTERM: it saves its sessions) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One message a subscriber got.
#[derive(Debug, Clone)]
pub struct Received {
    pub topic: String,
    pub retain: bool,
    /// The broker sent it again (a delivery to us it was not sure of, e.g. across its restart).
    pub dup: bool,
    pub payload: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap_or(serde_json::Value::Null)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// A subscriber on its own thread, collecting everything under `filter` at QoS 1. With
/// `persistent`, its session (and what the broker queues for it while it is away) survives
/// broker restarts and reconnects.
pub struct Subscriber {
    pub got: Arc<Mutex<Vec<Received>>>,
    pub subscribed: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    client: Client,
    thread: Option<JoinHandle<()>>,
}

impl Subscriber {
    pub fn start(port: u16, id: &str, filter: &str, persistent: bool) -> Subscriber {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(5));
        o.set_clean_session(!persistent);
        // Snapshots of a few MiB come through.
        o.set_max_packet_size(8 << 20, 1 << 20);
        let (client, mut conn) = Client::new(o, 100);
        let got = Arc::new(Mutex::new(Vec::new()));
        let subscribed = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s, st, c, f) = (
            got.clone(),
            subscribed.clone(),
            stop.clone(),
            client.clone(),
            filter.to_string(),
        );
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match conn.recv_timeout(Duration::from_millis(100)) {
                    Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                        if !ack.session_present {
                            let _ = c.try_subscribe(f.clone(), QoS::AtLeastOnce);
                        }
                    }
                    Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => s.store(true, Ordering::Relaxed),
                    Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                        g.lock().unwrap().push(Received {
                            topic: p.topic.clone(),
                            retain: p.retain,
                            dup: p.dup,
                            payload: p.payload.to_vec(),
                            at: Instant::now(),
                        })
                    }
                    Ok(Ok(_)) => {}
                    // Broker away: rumqttc reconnects on the next poll.
                    Ok(Err(_)) => std::thread::sleep(Duration::from_millis(100)),
                    Err(rumqttc::RecvTimeoutError::Timeout) => {}
                    Err(rumqttc::RecvTimeoutError::Disconnected) => break,
                }
            }
        });
        let sub = Subscriber {
            got,
            subscribed,
            stop,
            client,
            thread: Some(thread),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !sub.subscribed.load(Ordering::Relaxed) {
            assert!(Instant::now() < deadline, "the subscriber never subscribed");
            std::thread::sleep(Duration::from_millis(10));
        }
        sub
    }

    pub fn messages(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `f` holds for the messages so far (failing after `limit`).
    pub fn wait(&self, what: &str, limit: Duration, f: impl Fn(&[Received]) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            if f(&self.got.lock().unwrap()) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.try_disconnect();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
