// SPDX-License-Identifier: MIT OR Apache-2.0
//! Clocks, percentiles, machine facts and start-up shared by the benchmark programs
//! (`#[path]`-included by each; a file in a subfolder of `examples/` is not an example of its
//! own).
#![allow(dead_code)]

use std::sync::LazyLock;
use std::time::{Duration, Instant};

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Starts the clock [`now_ns`] counts from (otherwise its first call does).
fn start() {
    LazyLock::force(&EPOCH);
}

/// Monotonic nanoseconds since the program started.
pub fn now_ns() -> u64 {
    EPOCH.elapsed().as_nanos() as u64
}

pub fn sleep_until(t_ns: u64) {
    let now = now_ns();
    if t_ns > now {
        std::thread::sleep(Duration::from_nanos(t_ns - now));
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1] as f64
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// CPU time of the calling thread, in nanoseconds: what the work cost, without the time the
/// thread spent preempted (by other threads of the program or other processes on this shared
/// machine).
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if r != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The 1-minute load average, to show how busy the shared machine was.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(String::from))
        .unwrap_or_default()
}

/// What the figures were measured on, for the report.
pub fn machine() -> String {
    format!(
        "{} cores; release build; {}",
        cores(),
        gst::version_string()
    )
}

/// Starts the clock, GStreamer and the plugin, registered statically (so `GST_PLUGIN_PATH`
/// must not hold a second copy), or says what failed.
pub fn start_gstreamer() -> Result<(), String> {
    start();
    gst::init().map_err(|e| format!("cannot initialise GStreamer: {e}"))?;
    gstiguard::plugin_register_static()
        .map_err(|e| format!("cannot register the iguard plugin: {e}"))
}
