// SPDX-License-Identifier: MIT OR Apache-2.0
//! Fuzzes what `iguardreplay` reads from users: the MOTChallenge detections text
//! (`parser::parse_str`) and the `class-labels` value (`parser::ClassLabels::parse`).
//!
//! Beyond "never panics", an accepted file must hold only finite boxes of non-negative size,
//! whose pixel boxes stay inside any frame, and its counts must agree; an accepted
//! `class-labels` value must print as text that parses back to the same map.

#![no_main]

use std::path::Path;

use gstiguard::iguardreplay::parser::{ClassLabels, parse_str};
use libfuzzer_sys::fuzz_target;

const FRAMES: [(u32, u32); 4] = [(1, 1), (320, 240), (4097, 3), (u32::MAX, u32::MAX)];

fuzz_target!(|data: &[u8]| {
    // The element reads the file with `read_to_string`: only UTF-8 reaches the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    match parse_str(text, Path::new("fuzz.txt")) {
        Ok(d) => {
            assert_eq!(d.is_empty(), d.len() == 0);
            assert!(d.frame_count() <= d.len());
            match d.frame_range() {
                None => assert!(d.is_empty()),
                Some((first, last)) => {
                    assert!(first >= 1 && first <= last, "frames {first}..{last}");
                    // Walk the frames when the range is small enough to do so quickly.
                    if last - first < 100_000 {
                        let mut seen = 0;
                        for frame in first..=last {
                            for det in d.frame(frame) {
                                seen += 1;
                                for v in [det.left, det.top, det.width, det.height, det.confidence]
                                {
                                    assert!(v.is_finite(), "{det:?}");
                                }
                                assert!(det.width >= 0.0 && det.height >= 0.0, "{det:?}");
                                for (w, h) in FRAMES {
                                    if let Some(b) = det.pixel_box(w, h) {
                                        assert!(b.width > 0 && b.height > 0, "{det:?} {b:?}");
                                        assert!(b.x as u64 + b.width as u64 <= w as u64);
                                        assert!(b.y as u64 + b.height as u64 <= h as u64);
                                    }
                                }
                            }
                        }
                        assert_eq!(seen, d.len());
                    }
                }
            }
        }
        Err(e) => {
            // The message names the line; formatting it must not fail either.
            assert!(e.to_string().starts_with("fuzz.txt"), "{e}");
        }
    }

    if let Ok(labels) = ClassLabels::parse(text) {
        let printed = labels.to_string();
        let again = ClassLabels::parse(&printed)
            .unwrap_or_else(|e| panic!("printed labels {printed:?} do not parse: {e}"));
        assert_eq!(again, labels, "{printed:?}");
    }
});
