// SPDX-License-Identifier: MIT OR Apache-2.0
//! GstAnalytics metadata and the GStreamer these tests run on (issue 22): the analytics library
//! is opened exactly where GStreamer has it (1.24 and later), and the element works the same
//! with or without it. On Debian 12 (GStreamer 1.22) this proves the element without the
//! library; inside the Debian 13 root (1.26, `make test-debian13`) with it. Reading and writing
//! the mtds themselves is tested with GStreamer's own API in `tests/python/analytics_test.py`
//! (`make test-debian13-analytics`).

mod common;

use std::time::Duration;

use common::*;
use gstiguard::analytics::{self, LoadError};
use gstiguard::verdict::Status;

const BOX: (u32, u32, u32, u32) = (100, 60, 64, 80);

#[test]
fn the_library_is_opened_exactly_from_gstreamer_1_24() {
    init();
    let (major, minor, _, _) = gst::version();
    match analytics::library() {
        Ok(lib) => assert!(
            (major, minor) >= (1, 24),
            "GStreamer {major}.{minor} has no analytics library, yet one opened: {}",
            lib.from
        ),
        Err(e) => {
            assert!(
                (major, minor) < (1, 24),
                "GStreamer {major}.{minor} should have {}: {e}",
                analytics::library::LIBRARY
            );
            assert!(matches!(e, LoadError::NotFound(_)), "{e}");
            let text = e.to_string();
            assert!(text.contains("libgstanalytics-1.0.so.0"), "{text}");
            assert!(text.contains("1.24"), "{text}");
        }
    }
}

#[test]
fn roi_metas_give_verdicts_with_or_without_the_library() {
    let (e, bus) = element(&[
        ("model-type", &"fallback"),
        ("temporal-size", &4u32),
        ("cooldown", &1000u32),
        ("async", &false),
        ("trigger-labels", &"person"),
    ]);
    let mut h = harness(&e);
    for n in 1..=8 {
        let mut b = frame(BOX, n * 33);
        add_detection(&mut b, "person", 0.9, BOX);
        h.push(b).expect("push");
        let out = h.pull().expect("pull");
        // No analytics meta appears where there was none.
        if let Some(api) = analytics::meta_api() {
            assert!(
                out.iter_meta::<gst::Meta>().all(|m| m.api() != api),
                "frame {n}"
            );
        }
    }
    h.push_event(gst::event::Eos::new());
    let verdicts = with_watchdog(Duration::from_secs(20), move || {
        let mut all = Vec::new();
        wait_for("a verdict", Duration::from_secs(15), || {
            all.extend(bus_verdicts(&bus));
            !all.is_empty()
        });
        all
    });
    assert_eq!(verdicts.len(), 1, "{verdicts:?}");
    assert_eq!(verdicts[0].status, Status::Fallback);
    assert_eq!(verdicts[0].frames, 4);
    assert!(verdicts[0].object_id.is_some(), "a built-in id");
    Stats::of(&e).assert_adds_up();
}
