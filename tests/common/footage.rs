// SPDX-License-Identifier: MIT OR Apache-2.0
//! The real footage of the tests: OpenCV's `vtest.avi` and its HOG person detections, made by
//! `make footage` (footage.mk) under `.cache/footage/` or named by `IGUARD_FOOTAGE_VIDEO` and
//! `IGUARD_FOOTAGE_DETECTIONS`.

use std::path::PathBuf;

/// The video and its detections. Without them this fails naming `make footage`, or with
/// `IGUARD_FOOTAGE=skip` returns `None` (the test then skips).
pub fn footage() -> Option<(PathBuf, PathBuf)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/footage");
    let path = |var: &str, name: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| dir.join(name))
    };
    let video = path("IGUARD_FOOTAGE_VIDEO", "vtest.avi");
    let dets = path("IGUARD_FOOTAGE_DETECTIONS", "vtest-hog.txt");
    if video.is_file() && dets.is_file() {
        return Some((video, dets));
    }
    if std::env::var("IGUARD_FOOTAGE").as_deref() == Ok("skip") {
        eprintln!(
            "IGUARD_FOOTAGE=skip: no footage at {}, skipped",
            video.display()
        );
        return None;
    }
    panic!(
        "no footage: {} or {} is missing; run `make footage` (or set IGUARD_FOOTAGE=skip)",
        video.display(),
        dets.display()
    );
}
