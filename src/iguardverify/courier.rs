// SPDX-License-Identifier: MIT OR Apache-2.0
//! Gets verdict events out when no buffer comes to carry them.
//!
//! The streaming thread pushes the `iguard-verdict` events waiting in the outbox before each
//! buffer and before EOS. A live source that stalls (a camera that stopped sending, a network
//! cut) sends no buffer, and its last verdicts would wait for the next one indefinitely. The
//! courier is a thread of the element that wakes when an event has waited `max_wait` and runs
//! the element's delivery, which takes the sink pad's stream lock before pushing: serialized
//! events then go out between two buffers, never beside one, exactly as if the streaming thread
//! had pushed them. When buffers flow the streaming thread gets there first and the courier
//! sleeps.
//!
//! Lock order: the stream lock (taken by the delivery) → the outbox; the courier's own lock is
//! never held while delivering.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;

use crate::publish::wire;
use crate::sync::lock;

#[derive(Debug, Default)]
struct Waiting {
    /// Since when an event has waited (none waits: `None`).
    since: Option<Instant>,
    shutdown: bool,
    /// The thread has left its loop.
    exited: bool,
}

/// What the outbox's users tell the courier.
#[derive(Debug, Default)]
pub struct Signal {
    waiting: Mutex<Waiting>,
    cv: Condvar,
}

impl Signal {
    /// An event was queued: the clock starts unless it already runs for an older one.
    pub fn queued(&self) {
        let mut w = lock(&self.waiting);
        if w.since.is_none() {
            w.since = Some(Instant::now());
            self.cv.notify_all();
        }
    }

    /// Everything queued is being pushed now. Call it before taking the outbox, so an event
    /// queued in between starts the clock again.
    pub fn taken(&self) {
        lock(&self.waiting).since = None;
    }
}

/// What one delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Pushed (or nothing to push, or nowhere to push it any more).
    Done,
    /// Not now (the pads are flushing): try again after `max_wait`.
    Later,
}

/// The courier thread; stopped by [`Courier::stop`] (or when dropped).
#[derive(Debug)]
pub struct Courier {
    signal: Arc<Signal>,
    thread: Option<JoinHandle<()>>,
}

impl Courier {
    /// Starts a thread named `name` that runs `deliver` once an event has waited `max_wait`.
    /// `deliver` calls [`Signal::taken`] before it takes the outbox.
    pub fn start(
        name: String,
        max_wait: Duration,
        deliver: impl Fn(&Signal) -> Delivery + Send + 'static,
    ) -> std::io::Result<Courier> {
        let signal = Arc::new(Signal::default());
        let s = signal.clone();
        let thread = thread::Builder::new()
            .name(name)
            .spawn(move || run(&s, max_wait, deliver))?;
        Ok(Courier {
            signal,
            thread: Some(thread),
        })
    }

    pub fn signal(&self) -> Arc<Signal> {
        self.signal.clone()
    }

    /// Ends the thread and waits for it at most `wait`: a delivery in progress ends when
    /// the pads stop (they are flushing by then); past `wait` the thread is left to end alone.
    /// Returns whether it ended.
    pub fn stop(mut self, wait: Duration) -> bool {
        self.shut(wait)
    }

    fn shut(&mut self, wait: Duration) -> bool {
        let Some(thread) = self.thread.take() else {
            return true;
        };
        let mut w = lock(&self.signal.waiting);
        w.shutdown = true;
        self.signal.cv.notify_all();
        if thread.thread().id() == thread::current().id() {
            // Dropped on its own thread (it held the last reference to the element).
            return true;
        }
        let deadline = Instant::now() + wait;
        while !w.exited {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            w = self
                .signal
                .cv
                .wait_timeout(w, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(w);
        let _ = thread.join();
        true
    }
}

impl Drop for Courier {
    fn drop(&mut self) {
        self.shut(Duration::from_secs(1));
    }
}

fn run(signal: &Signal, max_wait: Duration, deliver: impl Fn(&Signal) -> Delivery) {
    loop {
        let mut w = lock(&signal.waiting);
        loop {
            if w.shutdown {
                w.exited = true;
                signal.cv.notify_all();
                return;
            }
            let Some(since) = w.since else {
                w = signal.cv.wait(w).unwrap_or_else(|e| e.into_inner());
                continue;
            };
            let now = Instant::now();
            let due = since + max_wait;
            if now >= due {
                break;
            }
            w = signal
                .cv
                .wait_timeout(w, due - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        w.since = None;
        drop(w);
        if deliver(signal) == Delivery::Later {
            signal.queued();
        }
    }
}

/// The courier's delivery: pushes what waits in `outbox` holding the sink pad's stream lock, so
/// the serialized events go out between two buffers exactly as the streaming thread would push
/// them. While the pads are flushing (a seek, a stop) it waits for the next try, so the events
/// are not pushed into a flush and lost.
pub(super) fn delivery(
    weak: glib::WeakRef<super::IGuardVerify>,
    outbox: Arc<Mutex<wire::Outbox>>,
) -> impl Fn(&Signal) -> Delivery + Send + 'static {
    move |signal| {
        let Some(obj) = weak.upgrade() else {
            return Delivery::Done;
        };
        let sink = gst_base::prelude::BaseTransformExtManual::sink_pad(&obj).clone();
        let src = gst_base::prelude::BaseTransformExtManual::src_pad(&obj).clone();
        let _stream = sink.stream_lock();
        let flushing = |p: &gst::Pad| p.pad_flags().contains(gst::PadFlags::FLUSHING);
        if flushing(&sink) || flushing(&src) {
            return Delivery::Later;
        }
        signal.taken();
        let events = lock(&outbox).take();
        if !events.is_empty() {
            gst::debug!(
                super::imp::CAT,
                obj = obj,
                "{} verdict events pushed with no buffer to carry them",
                events.len()
            );
        }
        for ev in events {
            let _ = src.push_event(ev);
        }
        Delivery::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    const WAIT: Duration = Duration::from_millis(20);

    fn wait_until(what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn an_event_left_waiting_is_delivered() {
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let courier = Courier::start("iguard-t-c1".into(), WAIT, move |_| {
            c.fetch_add(1, Ordering::SeqCst);
            Delivery::Done
        })
        .unwrap();
        let signal = courier.signal();
        thread::sleep(3 * WAIT);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "nothing queued, nothing delivered"
        );
        signal.queued();
        wait_until("the delivery", || calls.load(Ordering::SeqCst) == 1);
        // Taken by the streaming thread in time: no delivery.
        signal.queued();
        signal.taken();
        thread::sleep(3 * WAIT);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(courier.stop(Duration::from_secs(5)));
    }

    #[test]
    fn a_delivery_that_cannot_happen_now_is_tried_again() {
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let courier = Courier::start("iguard-t-c2".into(), WAIT, move |_| {
            // Flushing twice, then done.
            match c.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Delivery::Later,
                _ => Delivery::Done,
            }
        })
        .unwrap();
        courier.signal().queued();
        wait_until("three tries", || calls.load(Ordering::SeqCst) == 3);
        thread::sleep(3 * WAIT);
        assert_eq!(calls.load(Ordering::SeqCst), 3, "no try after the delivery");
        assert!(courier.stop(Duration::from_secs(5)));
    }

    #[test]
    fn stop_ends_the_thread_also_while_an_event_waits() {
        let courier = Courier::start("iguard-t-c3".into(), Duration::from_secs(3600), |_| {
            Delivery::Done
        })
        .unwrap();
        courier.signal().queued();
        assert!(courier.stop(Duration::from_secs(5)), "the thread ended");
    }
}
