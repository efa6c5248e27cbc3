// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `iguardpublish` benchmark (`make bench-publish`; also run by `make bench` and, with
//! `--quick`, by `make bench-quick`). Not a test: it measures and prints, it asserts nothing
//! about speed.
//!
//! ```text
//! cargo run --release --features testing --example bench_publish -- [--quick] [--out PATH]
//!     [--rates 100,1000,...] [--step-s S] [--fps N] [--outputs none,file,mqtt,file+mqtt]
//!     [--broker-tcp-nodelay]
//! ```
//!
//! `iguardpublish` alone in a `gst_check::Harness`: small buffers at a fixed pace (`--fps`,
//! default 100/s), and in front of each buffer the `iguard-verdict` events due since the last
//! one, built by the crate's own [`wire::verdict_event`] from [`Verdict`]s, as `iguardverify`
//! pushes its outbox before each outgoing buffer. For each output (none, the JSON Lines file,
//! MQTT QoS 1 to a mosquitto this program starts on a loopback port, file and MQTT) the event
//! rate steps up; at each rate the outputs run one after the other, the no-output baseline
//! first, each in a fresh element. Per step: events offered, delivered (`file-written`,
//! `mqtt-delivered`; both for file+MQTT) by the end of the EOS flush, `queue-dropped`,
//! `spool-dropped`, the EOS flush's wait, delivered/s, and the streaming thread's time inside
//! `iguardpublish` per buffer and per event (probes on its own sink and src pads, wall time and
//! the thread's CPU time, p50/p99), with MQTT the element's own verdict → PUBACK latency.
//!
//! The headline, per output: the highest rate of the ladder at which the step *kept up*: every
//! event delivered, no queue or spool drop, the EOS flush done within [`DRAIN_MAX_MS`] (the
//! outputs were not falling behind), and the streaming thread's p50 per buffer (wall and CPU)
//! and per event (CPU) at most [`NOISE_RATIO`] x the no-output baseline at the same rate in
//! the same run. The baseline runs twice at each rate, before the outputs (`none`) and after
//! them (`none-again`); the outputs are held to the slower of the two, and `none-again` to
//! `none`: that control is the rule's verdict on noise alone.
//!
//! Every figure is printed as a `name: value` line, then in a table, and written as JSON
//! (`--out`, default `bench-results/bench-publish.json`, or `bench-publish-quick.json`).
//! Run it with `GST_PLUGIN_PATH` unset: the plugin is registered statically.

#[path = "common/clock.rs"]
mod clock;
#[path = "common/report.rs"]
mod report;

use std::fmt::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clock::{cores, load_average, now_ns, percentile, sleep_until, thread_cpu_ns};
use gst::prelude::*;
use gstiguard::geometry::PixelRect;
use gstiguard::publish::wire;
use gstiguard::verdict::{Status, Verdict};
use report::{json_num, json_str, show};

/// The headline's noise rule: a step's p50 may be this many times the baseline's, for the
/// buffers' wall and CPU time and the events' CPU time. The events' wall time is reported and
/// not judged: at low rates each event wakes the output threads (and, here, the broker), and
/// on a 2-core machine the streaming thread then waits for a core without doing more work.
const NOISE_RATIO: f64 = 1.5;
/// A step kept up when its EOS flush took at most this long: what was still waiting when the
/// last event went in was under a quarter of a second of work. (A share of the step let an
/// output that was falling behind pass, with seconds of latency.)
const DRAIN_MAX_MS: f64 = 250.0;
/// A ladder stops after this many steps in a row that did not keep up.
const FAILS_TO_STOP: usize = 2;
const MOSQUITTO: &str = "/usr/sbin/mosquitto";
/// Sources the verdicts cycle through (each has its own `last`/`verified` topics).
const SOURCES: u32 = 4;
/// Every this-many-th verdict is `verified` (one more MQTT publish), the rest `rejected`.
const VERIFIED_EVERY: u64 = 4;

// ---------------------------------------------------------------------------------------------
// Clocks and percentiles (as in bench.rs)

// ---------------------------------------------------------------------------------------------
// The broker

/// Debian's mosquitto on a free loopback port, in a folder of its own; killed when dropped.
struct Broker {
    port: u16,
    dir: PathBuf,
    child: Child,
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no port: {e}"))
}

impl Broker {
    /// `nodelay`: the broker's `set_tcp_nodelay` (Debian's default is off: Nagle's algorithm
    /// on the broker's side of each connection).
    fn start(root: &Path, nodelay: bool) -> Result<Broker, String> {
        if !Path::new(MOSQUITTO).exists() {
            return Err(format!(
                "{MOSQUITTO} is missing: `make mqtt-deps` installs Debian's mosquitto"
            ));
        }
        let dir = root.join("broker");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let port = free_port()?;
        let conf = dir.join("mosquitto.conf");
        // No persistence: a benchmark broker needs no sessions across restarts. `user root`
        // keeps it from switching to a `mosquitto` user that cannot write the folder.
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nuser root\n\
                 set_tcp_nodelay {nodelay}\n"
            ),
        )
        .map_err(|e| format!("{}: {e}", conf.display()))?;
        let log_path = dir.join("mosquitto.log");
        let log =
            std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let log2 = log
            .try_clone()
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("cannot start {MOSQUITTO}: {e}"))?;
        let b = Broker { port, dir, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!(
                    "mosquitto did not listen on {port}: {}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(b)
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    fn version(&self) -> String {
        std::fs::read_to_string(self.dir.join("mosquitto.log"))
            .ok()
            .and_then(|l| {
                l.lines()
                    .find(|l| l.contains("mosquitto version"))
                    .and_then(|l| l.split("mosquitto version ").nth(1))
                    .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
            })
            .unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Probes

/// The streaming thread's time inside one element, per buffer and per verdict event: a probe
/// on its sink pad stores the entry times, one on its src pad takes the difference (a
/// passthrough transform pushes on the thread that called it, events included).
#[derive(Default)]
struct Timing {
    entry: AtomicU64,
    entry_cpu: AtomicU64,
    record: AtomicBool,
    buf_wall: Mutex<Vec<u64>>,
    buf_cpu: Mutex<Vec<u64>>,
    ev_wall: Mutex<Vec<u64>>,
    ev_cpu: Mutex<Vec<u64>>,
}

fn is_verdict(info: &gst::PadProbeInfo) -> Option<bool> {
    match &info.data {
        Some(gst::PadProbeData::Buffer(_)) => Some(false),
        Some(gst::PadProbeData::Event(e)) => wire::verdict_structure(e).map(|_| true),
        _ => None,
    }
}

impl Timing {
    fn attach(element: &gst::Element) -> Result<Arc<Timing>, String> {
        let t = Arc::new(Timing::default());
        let kinds = gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM;
        let entry = t.clone();
        element
            .static_pad("sink")
            .ok_or("iguardpublish has no sink pad")?
            .add_probe(kinds, move |_, info| {
                if is_verdict(info).is_some() {
                    entry.entry_cpu.store(thread_cpu_ns(), Ordering::Relaxed);
                    // Wall clock read last on entry and first on exit: it excludes the CPU
                    // clock's own cost.
                    entry.entry.store(now_ns(), Ordering::Relaxed);
                }
                gst::PadProbeReturn::Ok
            });
        let exit = t.clone();
        element
            .static_pad("src")
            .ok_or("iguardpublish has no src pad")?
            .add_probe(kinds, move |_, info| {
                let now = now_ns();
                let Some(event) = is_verdict(info) else {
                    return gst::PadProbeReturn::Ok;
                };
                if exit.record.load(Ordering::Relaxed) {
                    let wall = now.saturating_sub(exit.entry.load(Ordering::Relaxed));
                    let cpu =
                        thread_cpu_ns().saturating_sub(exit.entry_cpu.load(Ordering::Relaxed));
                    let (w, c) = if event {
                        (&exit.ev_wall, &exit.ev_cpu)
                    } else {
                        (&exit.buf_wall, &exit.buf_cpu)
                    };
                    w.lock().unwrap_or_else(|e| e.into_inner()).push(wall);
                    c.lock().unwrap_or_else(|e| e.into_inner()).push(cpu);
                }
                gst::PadProbeReturn::Ok
            });
        Ok(t)
    }

    fn take(&self) -> [Vec<u64>; 4] {
        self.record.store(false, Ordering::Relaxed);
        [&self.buf_wall, &self.buf_cpu, &self.ev_wall, &self.ev_cpu].map(|m| {
            let mut v = std::mem::take(&mut *m.lock().unwrap_or_else(|e| e.into_inner()));
            v.sort_unstable();
            v
        })
    }
}

// ---------------------------------------------------------------------------------------------
// One step

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    None,
    File,
    Mqtt,
    FileMqtt,
    /// The baseline once more, after the outputs, judged like them: what the rule makes of
    /// noise alone.
    NoneAgain,
}

impl Output {
    const ALL: [Output; 5] = [
        Output::None,
        Output::File,
        Output::Mqtt,
        Output::FileMqtt,
        Output::NoneAgain,
    ];

    fn name(self) -> &'static str {
        match self {
            Output::None => "none",
            Output::File => "file",
            Output::Mqtt => "mqtt",
            Output::FileMqtt => "file+mqtt",
            Output::NoneAgain => "none-again",
        }
    }

    /// The name in figure names.
    fn key(self) -> &'static str {
        match self {
            Output::FileMqtt => "file_mqtt",
            Output::NoneAgain => "none_again",
            o => o.name(),
        }
    }

    fn baseline(self) -> bool {
        matches!(self, Output::None | Output::NoneAgain)
    }

    fn file(self) -> bool {
        matches!(self, Output::File | Output::FileMqtt)
    }

    fn mqtt(self) -> bool {
        matches!(self, Output::Mqtt | Output::FileMqtt)
    }
}

#[derive(Debug, Clone)]
struct Step {
    output: Output,
    rate: u64,
    push_s: f64,
    buffers: u64,
    offered: u64,
    received: u64,
    delivered: u64,
    /// Delivered when the last event had been pushed, before EOS.
    delivered_at_end: u64,
    queue_dropped: u64,
    spool_dropped: u64,
    invalid: u64,
    drain_ms: f64,
    delivered_per_s: f64,
    buf_wall: [f64; 2],
    buf_cpu: [f64; 2],
    ev_wall: [f64; 2],
    ev_cpu: [f64; 2],
    /// Share of the pushing time the streaming thread spent inside the element (wall; CPU).
    busy_pct: f64,
    busy_cpu_pct: f64,
    latency_ms: [f64; 2],
    warnings: Vec<String>,
    /// Filled in against the baseline at the same rate.
    ratios: Option<Ratios>,
    kept_up: bool,
    why_not: String,
}

/// A step's p50s ÷ the baseline's at the same rate.
#[derive(Debug, Clone, Copy)]
struct Ratios {
    buf_wall: f64,
    buf_cpu: f64,
    ev_wall: f64,
    ev_cpu: f64,
    buf_wall_p99: f64,
    ev_wall_p99: f64,
}

fn stat(element: &gst::Element, field: &str) -> u64 {
    let s = element.property::<gst::Structure>("stats");
    s.get::<u64>(field).unwrap_or(0)
}

fn stats_f64(element: &gst::Element, field: &str) -> f64 {
    let s = element.property::<gst::Structure>("stats");
    s.get::<f64>(field).unwrap_or(f64::NAN)
}

fn delivered(element: &gst::Element, output: Output) -> u64 {
    let file = stat(element, "file-written");
    let mqtt = stat(element, "mqtt-delivered");
    match output {
        // Handed to the (absent) outputs: neither dropped nor still queued.
        Output::None | Output::NoneAgain => stat(element, "received")
            .saturating_sub(stat(element, "queue-dropped") + stat(element, "queued")),
        Output::File => file,
        Output::Mqtt => mqtt,
        Output::FileMqtt => file.min(mqtt),
    }
}

/// A verdict like `iguardverify`'s: a tracked object, a crop, scored by the ONNX scorer.
fn verdict(request_id: u64) -> Verdict {
    let verified = request_id.is_multiple_of(VERIFIED_EVERY);
    Verdict {
        request_id,
        source_id: (request_id % SOURCES as u64) as u32,
        pad_index: 0,
        status: if verified {
            Status::Verified
        } else {
            Status::Rejected
        },
        score: if verified { 0.91 } else { 0.12 },
        threshold: 0.7,
        label: "shooting".into(),
        trigger_label: "person".into(),
        trigger_confidence: 0.87,
        clip_start_pts: Some(request_id * 33_333_333),
        clip_end_pts: Some(request_id * 33_333_333 + 533_333_328),
        frames: 16,
        queue_ms: 0.4,
        processing_ms: 41.5,
        scorer: "onnx".into(),
        reason: String::new(),
        object_id: Some(request_id % 97),
        crop: Some(PixelRect {
            x: 720,
            y: 220,
            width: 480,
            height: 640,
        }),
        snapshot: None,
        zones: Vec::new(),
    }
}

struct StepConfig<'a> {
    output: Output,
    rate: u64,
    step_s: f64,
    fps: u64,
    flush_timeout_ms: u32,
    broker: Option<&'a Broker>,
    dir: &'a Path,
    /// Request ids continue across steps, so no event id repeats at the broker.
    next_id: &'a mut u64,
}

fn run_step(c: StepConfig) -> Result<Step, String> {
    let name = format!("pub-{}-{}", c.output.key(), c.rate);
    let element = gst::ElementFactory::make("iguardpublish")
        .name(&name)
        .property("flush-timeout", c.flush_timeout_ms)
        .build()
        .map_err(|e| format!("cannot make iguardpublish: {e}"))?;
    let dir = c.dir.join(&name);
    if c.output.file() {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        element.set_property(
            "file-path",
            dir.join("events.jsonl").to_string_lossy().as_ref(),
        );
    }
    if c.output.mqtt() {
        let broker = c.broker.ok_or("no broker")?;
        element.set_property("mqtt-url", broker.url());
        element.set_property("topic-prefix", "bench");
    }
    // The element's warnings, on a bus of its own that keeps nothing.
    let warnings = Arc::new(Mutex::new(Vec::<String>::new()));
    let w = warnings.clone();
    let bus = gst::Bus::new();
    bus.set_sync_handler(move |_, msg| {
        if let gst::MessageView::Warning(m) = msg.view() {
            w.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(m.error().to_string());
        }
        gst::BusSyncReply::Drop
    });
    element.set_bus(Some(&bus));
    let timing = Timing::attach(&element)?;
    let mut h = gst_check::Harness::with_element(&element, Some("sink"), Some("src"));
    h.set_drop_buffers(true);
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "GRAY8")
        .field("width", 64)
        .field("height", 48)
        .field("framerate", gst::Fraction::new(c.fps as i32, 1))
        .build();
    h.set_src_caps(caps);
    let frame = gst::Buffer::from_mut_slice(vec![16u8; 64 * 48]);
    let period = 1_000_000_000 / c.fps;
    let mut pts = 0u64;
    let mut push_buffer = |h: &mut gst_check::Harness| -> Result<(), String> {
        let mut b = frame.copy();
        {
            let b = b.get_mut().ok_or("a fresh copy is writable")?;
            b.set_pts(gst::ClockTime::from_nseconds(pts * period));
            b.set_duration(gst::ClockTime::from_nseconds(period));
        }
        pts += 1;
        h.push(b)
            .map(|_| ())
            .map_err(|e| format!("push refused: {e:?}"))
    };
    if c.output.mqtt() {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !element
            .property::<gst::Structure>("stats")
            .get::<bool>("mqtt-connected")
            .unwrap_or(false)
        {
            if Instant::now() > deadline {
                return Err(format!("{name} never connected to the broker"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // Warm-up: a few buffers, not recorded.
    for _ in 0..c.fps / 10 {
        push_buffer(&mut h)?;
        while h.try_pull_event().is_some() {}
    }
    let run_id = wire::run_id();
    let frames = ((c.step_s * c.fps as f64).round() as u64).max(1);
    let offered_total = (c.rate as f64 * frames as f64 / c.fps as f64).round() as u64;
    timing.record.store(true, Ordering::Relaxed);
    let t0 = now_ns() + period;
    let mut offered = 0u64;
    for i in 0..frames {
        sleep_until(t0 + i * period);
        // The events due by the end of this frame interval, then the frame, as iguardverify
        // pushes its outbox before each outgoing buffer.
        let due = offered_total * (i + 1) / frames;
        while offered < due {
            let ev = wire::verdict_event(&verdict(*c.next_id), &run_id, "verify0");
            *c.next_id += 1;
            offered += 1;
            if !h.push_event(ev) {
                return Err(format!("{name} refused a verdict event"));
            }
        }
        push_buffer(&mut h)?;
        // The harness keeps what reaches its sink pad; nothing reads it here.
        while h.try_pull_event().is_some() {}
    }
    let push_s = (now_ns() - t0) as f64 / 1e9;
    let [buf_wall, buf_cpu, ev_wall, ev_cpu] = timing.take();
    let delivered_at_end = delivered(&element, c.output);
    let t = Instant::now();
    h.push_event(gst::event::Eos::new());
    let drain_ms = t.elapsed().as_secs_f64() * 1000.0;
    while h.try_pull_event().is_some() {}
    let got = delivered(&element, c.output);
    let sum = |v: &[u64]| v.iter().sum::<u64>() as f64;
    let busy_pct = 100.0 * (sum(&buf_wall) + sum(&ev_wall)) / 1e9 / push_s;
    let busy_cpu_pct = 100.0 * (sum(&buf_cpu) + sum(&ev_cpu)) / 1e9 / push_s;
    let p = |v: &[u64]| [percentile(v, 50.0) / 1000.0, percentile(v, 99.0) / 1000.0];
    let step = Step {
        output: c.output,
        rate: c.rate,
        push_s,
        buffers: buf_wall.len() as u64,
        offered,
        received: stat(&element, "received"),
        delivered: got,
        delivered_at_end,
        queue_dropped: stat(&element, "queue-dropped"),
        spool_dropped: stat(&element, "spool-dropped"),
        invalid: stat(&element, "invalid"),
        drain_ms,
        delivered_per_s: got as f64 / (push_s + drain_ms / 1000.0),
        buf_wall: p(&buf_wall),
        buf_cpu: p(&buf_cpu),
        ev_wall: p(&ev_wall),
        ev_cpu: p(&ev_cpu),
        busy_pct,
        busy_cpu_pct,
        latency_ms: if c.output.mqtt() {
            [
                stats_f64(&element, "latency-p50-ms"),
                stats_f64(&element, "latency-p99-ms"),
            ]
        } else {
            [f64::NAN; 2]
        },
        warnings: warnings.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        ratios: None,
        kept_up: false,
        why_not: String::new(),
    };
    drop(h);
    let _ = element.set_state(gst::State::Null);
    if c.output.file() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(step)
}

/// `a` with each p50 the larger of `a`'s and `b`'s.
fn slower(a: &Step, b: &Step) -> Step {
    let mut s = a.clone();
    for (x, y) in [
        (&mut s.buf_wall, b.buf_wall),
        (&mut s.buf_cpu, b.buf_cpu),
        (&mut s.ev_wall, b.ev_wall),
        (&mut s.ev_cpu, b.ev_cpu),
    ] {
        x[0] = x[0].max(y[0]);
        x[1] = x[1].max(y[1]);
    }
    s
}

/// Judges `s` against the baseline at its rate.
fn judge(s: &mut Step, base: Option<&Step>) {
    let mut why = Vec::new();
    if s.delivered < s.offered {
        why.push(format!("{} of {} delivered", s.delivered, s.offered));
    }
    if s.queue_dropped > 0 {
        why.push(format!("{} queue-dropped", s.queue_dropped));
    }
    if s.spool_dropped > 0 {
        why.push(format!("{} spool-dropped", s.spool_dropped));
    }
    if s.drain_ms > DRAIN_MAX_MS {
        why.push(format!("EOS flush {:.0} ms", s.drain_ms));
    }
    if s.output != Output::None {
        match base {
            None => why.push("no baseline".into()),
            Some(b) => {
                let r = Ratios {
                    buf_wall: s.buf_wall[0] / b.buf_wall[0],
                    buf_cpu: s.buf_cpu[0] / b.buf_cpu[0],
                    ev_wall: s.ev_wall[0] / b.ev_wall[0],
                    ev_cpu: s.ev_cpu[0] / b.ev_cpu[0],
                    buf_wall_p99: s.buf_wall[1] / b.buf_wall[1],
                    ev_wall_p99: s.ev_wall[1] / b.ev_wall[1],
                };
                // The events' wall time is not judged: see NOISE_RATIO.
                for (what, v) in [
                    ("buffer wall p50", r.buf_wall),
                    ("buffer CPU p50", r.buf_cpu),
                    ("event CPU p50", r.ev_cpu),
                ] {
                    // NaN (no events at all) does not count against it.
                    if v > NOISE_RATIO {
                        why.push(format!("{what} {v:.2}x the baseline"));
                    }
                }
                s.ratios = Some(r);
            }
        }
    }
    s.kept_up = why.is_empty();
    s.why_not = why.join("; ");
}

// ---------------------------------------------------------------------------------------------
// Options and the report

struct Opts {
    quick: bool,
    out: PathBuf,
    rates: Vec<u64>,
    step_s: f64,
    fps: u64,
    flush_timeout_ms: u32,
    outputs: Vec<Output>,
    broker_nodelay: bool,
}

impl Opts {
    fn parse() -> Result<Opts, String> {
        let mut args = std::env::args().skip(1);
        let (mut quick, mut out, mut rates, mut step_s, mut fps, mut outputs) =
            (false, None, None, None, None, None);
        let mut broker_nodelay = false;
        while let Some(a) = args.next() {
            let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
            match a.as_str() {
                "--quick" => quick = true,
                "--broker-tcp-nodelay" => broker_nodelay = true,
                "--out" => out = Some(PathBuf::from(value("--out")?)),
                "--rates" => {
                    let v = value("--rates")?;
                    let r: Result<Vec<u64>, _> = v.split(',').map(|s| s.trim().parse()).collect();
                    match r {
                        Ok(r) if !r.is_empty() && r.iter().all(|&x| x > 0) => rates = Some(r),
                        _ => {
                            return Err(format!(
                                "--rates {v:?}: give events/s above 0, comma-separated"
                            ));
                        }
                    }
                }
                "--step-s" => {
                    let v = value("--step-s")?;
                    match v.parse::<f64>() {
                        Ok(s) if s > 0.0 && s <= 600.0 => step_s = Some(s),
                        _ => return Err(format!("--step-s {v:?}: give seconds in (0, 600]")),
                    }
                }
                "--fps" => {
                    let v = value("--fps")?;
                    match v.parse::<u64>() {
                        Ok(f) if (1..=10_000).contains(&f) => fps = Some(f),
                        _ => return Err(format!("--fps {v:?}: give buffers/s in 1..=10000")),
                    }
                }
                "--outputs" => {
                    let v = value("--outputs")?;
                    let mut o = Vec::new();
                    for name in v.split(',').map(str::trim) {
                        match Output::ALL.iter().find(|x| x.name() == name) {
                            Some(x) => o.push(*x),
                            None => {
                                return Err(format!(
                                    "--outputs: {name:?} is not one of none, file, mqtt, \
                                     file+mqtt, none-again"
                                ));
                            }
                        }
                    }
                    if !o.contains(&Output::None) {
                        // Every judgement needs the baseline.
                        o.insert(0, Output::None);
                    }
                    // The baseline first: the others are judged against it.
                    o.sort_by_key(|x| Output::ALL.iter().position(|y| y == x));
                    o.dedup();
                    outputs = Some(o);
                }
                "-h" | "--help" => {
                    return Err("usage: bench_publish [--quick] [--out PATH] [--rates \
                                100,1000,...] [--step-s S] [--fps N] [--outputs \
                                none,file,mqtt,file+mqtt] [--broker-tcp-nodelay]"
                        .into());
                }
                other => return Err(format!("unknown argument {other:?} (try --help)")),
            }
        }
        Ok(Opts {
            quick,
            out: out.unwrap_or_else(|| {
                PathBuf::from(if quick {
                    "bench-results/bench-publish-quick.json"
                } else {
                    "bench-results/bench-publish.json"
                })
            }),
            rates: rates.unwrap_or_else(|| {
                if quick {
                    vec![100, 1000, 10_000]
                } else {
                    vec![100, 300, 1000, 3000, 10_000, 30_000]
                }
            }),
            step_s: step_s.unwrap_or(if quick { 1.5 } else { 5.0 }),
            fps: fps.unwrap_or(100),
            flush_timeout_ms: if quick { 3000 } else { 10_000 },
            outputs: outputs.unwrap_or_else(|| Output::ALL.to_vec()),
            broker_nodelay,
        })
    }
}

#[derive(Default)]
struct Report {
    figures: Vec<(String, f64)>,
    details: Vec<(String, String)>,
    steps: Vec<Step>,
    errors: Vec<String>,
}

impl Report {
    fn fig(&mut self, name: &str, value: f64) {
        println!("{name}: {}", show(value));
        self.figures.push((name.to_string(), value));
    }

    fn step_figures(&mut self, s: &Step) {
        let k = format!("pub_{}_{}", s.output.key(), s.rate);
        for (what, v) in [
            ("offered", s.offered as f64),
            ("delivered", s.delivered as f64),
            ("queue_dropped", s.queue_dropped as f64),
            ("spool_dropped", s.spool_dropped as f64),
            ("drain_ms", s.drain_ms),
            ("delivered_per_s", s.delivered_per_s),
            ("buffer_wall_p50_us", s.buf_wall[0]),
            ("buffer_wall_p99_us", s.buf_wall[1]),
            ("buffer_cpu_p50_us", s.buf_cpu[0]),
            ("buffer_cpu_p99_us", s.buf_cpu[1]),
            ("event_wall_p50_us", s.ev_wall[0]),
            ("event_wall_p99_us", s.ev_wall[1]),
            ("event_cpu_p50_us", s.ev_cpu[0]),
            ("event_cpu_p99_us", s.ev_cpu[1]),
            ("busy_pct", s.busy_pct),
            ("busy_cpu_pct", s.busy_cpu_pct),
        ] {
            self.fig(&format!("{k}_{what}"), v);
        }
        if s.output.mqtt() {
            self.fig(&format!("{k}_latency_p50_ms"), s.latency_ms[0]);
            self.fig(&format!("{k}_latency_p99_ms"), s.latency_ms[1]);
        }
        if let Some(r) = s.ratios {
            self.fig(&format!("{k}_buffer_wall_p50_ratio"), r.buf_wall);
            self.fig(&format!("{k}_buffer_cpu_p50_ratio"), r.buf_cpu);
            self.fig(&format!("{k}_event_cpu_p50_ratio"), r.ev_cpu);
            self.fig(&format!("{k}_event_wall_p50_ratio"), r.ev_wall);
        }
    }

    fn print_table(&self) {
        println!();
        println!(
            "per step: streaming thread inside iguardpublish, µs p50/p99; ratios = p50 ÷ the \
             slower no-output baseline's at the same rate (none-again: ÷ none's): buffer \
             wall/buffer CPU/event CPU (event wall, not judged)"
        );
        println!(
            "{:<10} {:>6} {:>7} {:>7} {:>6} {:>6} {:>8} {:>9} {:>11} {:>11} {:>11} {:>11} {:>22} \
             {:>11} {:>11}  kept up",
            "output",
            "ev/s",
            "offered",
            "deliv",
            "qdrop",
            "sdrop",
            "drain ms",
            "deliv/s",
            "buf wall",
            "buf cpu",
            "ev wall",
            "ev cpu",
            "ratio",
            "busy% w/cpu",
            "PUBACK ms"
        );
        let pair = |v: [f64; 2]| format!("{}/{}", show(v[0]), show(v[1]));
        for s in &self.steps {
            let ratio = s.ratios.map_or("-".into(), |r| {
                format!(
                    "{:.2}/{:.2}/{:.2} ({:.2})",
                    r.buf_wall, r.buf_cpu, r.ev_cpu, r.ev_wall
                )
            });
            let lat = if s.output.mqtt() {
                pair(s.latency_ms)
            } else {
                "-".into()
            };
            println!(
                "{:<10} {:>6} {:>7} {:>7} {:>6} {:>6} {:>8} {:>9} {:>11} {:>11} {:>11} {:>11} \
                 {:>22} {:>11} {:>11}  {}",
                s.output.name(),
                s.rate,
                s.offered,
                s.delivered,
                s.queue_dropped,
                s.spool_dropped,
                show(s.drain_ms.round()),
                show(s.delivered_per_s.round()),
                pair(s.buf_wall),
                pair(s.buf_cpu),
                pair(s.ev_wall),
                pair(s.ev_cpu),
                ratio,
                format!("{:.1}/{:.1}", s.busy_pct, s.busy_cpu_pct),
                lat,
                if s.kept_up {
                    "yes".to_string()
                } else {
                    format!("no: {}", s.why_not)
                }
            );
        }
        println!();
        println!("{:<46} {:>12}", "figure", "value");
        println!("{}", "-".repeat(60));
        for (name, v) in &self.figures {
            if !name.starts_with("pub_") || name.starts_with("pub_max") || name.contains("_at_") {
                println!("{name:<46} {:>12}", show(*v));
            }
        }
        for e in &self.errors {
            println!("error: {e}");
        }
    }

    fn json(&self, opts: &Opts, wall_s: f64) -> String {
        let mut j = String::from("{\n");
        let _ = writeln!(
            j,
            "  \"mode\": {},",
            json_str(if opts.quick { "quick" } else { "full" })
        );
        let _ = writeln!(j, "  \"cores\": {},", cores());
        let _ = writeln!(j, "  \"wall_s\": {},", json_num(wall_s));
        let _ = writeln!(j, "  \"noise_ratio\": {},", json_num(NOISE_RATIO));
        let _ = writeln!(j, "  \"drain_max_ms\": {},", json_num(DRAIN_MAX_MS));
        j.push_str("  \"figures\": {\n");
        let figs: Vec<String> = self
            .figures
            .iter()
            .map(|(n, v)| format!("    {}: {}", json_str(n), json_num(*v)))
            .collect();
        j.push_str(&figs.join(",\n"));
        j.push_str("\n  },\n  \"steps\": [\n");
        let pair = |v: [f64; 2]| format!("[{}, {}]", json_num(v[0]), json_num(v[1]));
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|s| {
                let r = s.ratios.map_or("null".into(), |r| {
                    format!(
                        "{{\"buffer_wall_p50\": {}, \"buffer_cpu_p50\": {}, \"event_wall_p50\": \
                         {}, \"event_cpu_p50\": {}, \"buffer_wall_p99\": {}, \
                         \"event_wall_p99\": {}}}",
                        json_num(r.buf_wall),
                        json_num(r.buf_cpu),
                        json_num(r.ev_wall),
                        json_num(r.ev_cpu),
                        json_num(r.buf_wall_p99),
                        json_num(r.ev_wall_p99)
                    )
                });
                let warnings: Vec<String> = s.warnings.iter().map(|w| json_str(w)).collect();
                format!(
                    "    {{\"output\": {}, \"rate\": {}, \"push_s\": {}, \"buffers\": {}, \
                     \"offered\": {}, \"received\": {}, \"delivered\": {}, \
                     \"delivered_at_end_of_push\": {}, \"queue_dropped\": {}, \
                     \"spool_dropped\": {}, \"invalid\": {}, \"drain_ms\": {}, \
                     \"delivered_per_s\": {}, \"buffer_wall_us\": {}, \"buffer_cpu_us\": {}, \
                     \"event_wall_us\": {}, \"event_cpu_us\": {}, \"busy_pct\": {}, \
                     \"busy_cpu_pct\": {}, \
                     \"latency_ms\": {}, \"ratios\": {}, \"kept_up\": {}, \"why_not\": {}, \
                     \"warnings\": [{}]}}",
                    json_str(s.output.name()),
                    s.rate,
                    json_num(s.push_s),
                    s.buffers,
                    s.offered,
                    s.received,
                    s.delivered,
                    s.delivered_at_end,
                    s.queue_dropped,
                    s.spool_dropped,
                    s.invalid,
                    json_num(s.drain_ms),
                    json_num(s.delivered_per_s),
                    pair(s.buf_wall),
                    pair(s.buf_cpu),
                    pair(s.ev_wall),
                    pair(s.ev_cpu),
                    json_num(s.busy_pct),
                    json_num(s.busy_cpu_pct),
                    pair(s.latency_ms),
                    r,
                    s.kept_up,
                    json_str(&s.why_not),
                    warnings.join(", ")
                )
            })
            .collect();
        j.push_str(&steps.join(",\n"));
        j.push_str("\n  ],\n  \"details\": {\n");
        let details: Vec<String> = self
            .details
            .iter()
            .map(|(k, v)| format!("    {}: {}", json_str(k), json_str(v)))
            .collect();
        j.push_str(&details.join(",\n"));
        j.push_str("\n  },\n  \"errors\": [");
        let errors: Vec<String> = self.errors.iter().map(|e| json_str(e)).collect();
        j.push_str(&errors.join(", "));
        j.push_str("]\n}\n");
        j
    }
}

fn tmp_root() -> Result<PathBuf, String> {
    let d = std::env::temp_dir().join(format!(
        "iguard-bench-publish-{}-{}",
        std::process::id(),
        wire::run_id()
    ));
    std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    Ok(d)
}

fn run(opts: &Opts, rep: &mut Report) -> Result<(), String> {
    let root = tmp_root()?;
    let broker = if opts.outputs.iter().any(|o| o.mqtt()) {
        match Broker::start(&root, opts.broker_nodelay) {
            Ok(b) => {
                rep.details.push((
                    "mosquitto".into(),
                    format!("{} on {}", b.version(), b.url()),
                ));
                Some(b)
            }
            Err(e) => {
                rep.errors.push(format!("mqtt outputs not run: {e}"));
                None
            }
        }
    } else {
        None
    };
    let mut fails = vec![0usize; opts.outputs.len()];
    let mut next_id = 1u64;
    // A short step nobody reads first: the first element, event and allocations of the
    // process are slower than any later one.
    eprintln!("== warm-up");
    run_step(StepConfig {
        output: Output::None,
        rate: 1000,
        step_s: 0.3,
        fps: opts.fps,
        flush_timeout_ms: opts.flush_timeout_ms,
        broker: None,
        dir: &root,
        next_id: &mut next_id,
    })?;
    for &rate in &opts.rates {
        let mut ran: Vec<(usize, Step)> = Vec::new();
        for (i, &output) in opts.outputs.iter().enumerate() {
            let active = output.baseline()
                || fails[i] < FAILS_TO_STOP && (!output.mqtt() || broker.is_some());
            if !active {
                continue;
            }
            if output.baseline()
                && !opts
                    .outputs
                    .iter()
                    .enumerate()
                    .any(|(k, o)| !o.baseline() && fails[k] < FAILS_TO_STOP)
                && opts.outputs.iter().any(|o| !o.baseline())
            {
                // Every ladder stopped: no baseline needed any more.
                continue;
            }
            eprintln!("== {} at {rate} events/s", output.name());
            let step = run_step(StepConfig {
                output,
                rate,
                step_s: opts.step_s,
                fps: opts.fps,
                flush_timeout_ms: opts.flush_timeout_ms,
                broker: broker.as_ref(),
                dir: &root,
                next_id: &mut next_id,
            });
            match step {
                Ok(s) => ran.push((i, s)),
                Err(e) => {
                    rep.errors
                        .push(format!("{} at {rate}/s: {e}", output.name()));
                    fails[i] = FAILS_TO_STOP;
                }
            }
        }
        // The outputs against the slower of the two baseline runs around them; the second
        // baseline (the control) against the first.
        let first = ran.iter().find(|(_, s)| s.output == Output::None);
        let first = first.map(|(_, s)| s.clone());
        let again = ran.iter().find(|(_, s)| s.output == Output::NoneAgain);
        let band = first.as_ref().map(|b| match again {
            Some((_, a)) => slower(b, a),
            None => b.clone(),
        });
        for (i, mut step) in ran {
            let base = if step.output == Output::NoneAgain {
                first.as_ref()
            } else {
                band.as_ref()
            };
            judge(&mut step, base);
            if step.kept_up {
                fails[i] = 0;
            } else {
                fails[i] += 1;
            }
            rep.step_figures(&step);
            rep.steps.push(step);
        }
    }
    drop(broker);
    let _ = std::fs::remove_dir_all(&root);
    headline(opts, rep);
    Ok(())
}

/// Per output: the highest rate that kept up (0: none did), and how many lower steps did not.
fn headline(opts: &Opts, rep: &mut Report) {
    for &output in opts.outputs.iter().filter(|o| **o != Output::None) {
        let steps: Vec<&Step> = rep.steps.iter().filter(|s| s.output == output).collect();
        if steps.is_empty() {
            continue;
        }
        let best = steps
            .iter()
            .filter(|s| s.kept_up)
            .map(|s| s.rate)
            .max()
            .unwrap_or(0);
        let below = steps.iter().filter(|s| s.rate < best && !s.kept_up).count();
        rep.fig(
            &format!("pub_max_rate_kept_up_{}", output.key()),
            best as f64,
        );
        rep.fig(
            &format!("pub_max_rate_steps_below_not_kept_up_{}", output.key()),
            below as f64,
        );
    }
    // Verdict → PUBACK at a moderate rate: the ladder's step nearest 1000/s.
    let moderate = opts
        .rates
        .iter()
        .copied()
        .min_by_key(|r| r.abs_diff(1000))
        .unwrap_or(1000);
    if let Some(s) = rep
        .steps
        .iter()
        .find(|s| s.output == Output::Mqtt && s.rate == moderate)
        .cloned()
    {
        rep.fig(
            &format!("pub_mqtt_latency_p50_ms_at_{moderate}"),
            s.latency_ms[0],
        );
        rep.fig(
            &format!("pub_mqtt_latency_p99_ms_at_{moderate}"),
            s.latency_ms[1],
        );
    }
    // Whether the streaming thread's own work per event changes with the rate (no output).
    let base: Vec<&Step> = rep
        .steps
        .iter()
        .filter(|s| s.output == Output::None)
        .collect();
    if let (Some(lo), Some(hi)) = (base.first(), base.last())
        && lo.rate != hi.rate
    {
        let (lo_rate, hi_rate, r) = (lo.rate, hi.rate, hi.ev_cpu[0] / lo.ev_cpu[0]);
        rep.fig(
            &format!("pub_none_event_cpu_p50_ratio_at_{hi_rate}_vs_{lo_rate}"),
            r,
        );
    }
}

fn main() -> ExitCode {
    let opts = match Opts::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = clock::start_gstreamer() {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    let started = Instant::now();
    let mut rep = Report::default();
    rep.details
        .push(("load_average_start".into(), load_average()));
    rep.details.push(("machine".into(), clock::machine()));
    rep.details.push((
        "setup".into(),
        format!(
            "{} buffers/s of 64x48 GRAY8; the events due pushed before each buffer; {} s a \
             step; flush-timeout {} ms; {SOURCES} sources, 1 in {VERIFIED_EVERY} verified; \
             MQTT QoS 1, no subscriber, broker set_tcp_nodelay {}",
            opts.fps, opts.step_s, opts.flush_timeout_ms, opts.broker_nodelay
        ),
    ));
    if let Err(e) = run(&opts, &mut rep) {
        rep.errors.push(e);
    }
    let wall = started.elapsed().as_secs_f64();
    rep.details
        .push(("load_average_end".into(), load_average()));
    rep.print_table();
    println!("wall time: {wall:.1} s");
    if let Some(dir) = opts.out.parent()
        && !dir.as_os_str().is_empty()
    {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(&opts.out, rep.json(&opts, wall)) {
        Ok(()) => println!("written: {}", opts.out.display()),
        Err(e) => {
            eprintln!("cannot write {}: {e}", opts.out.display());
            return ExitCode::FAILURE;
        }
    }
    if rep.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
