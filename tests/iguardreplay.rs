// SPDX-License-Identifier: MIT OR Apache-2.0
//! `iguardreplay` driven by real GStreamer: a Harness for exact per-frame checks, a real
//! `videotestsrc` pipeline for the demo file, and pipelines whose state change must fail.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;

use common::{expect_eos, init};
use gst::glib;
use gst::prelude::*;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A file in the temp folder, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> Self {
        let path = std::env::temp_dir().join(format!("iguardreplay-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What a downstream reader sees of one ROI meta.
#[derive(Debug, Clone, PartialEq)]
struct Roi {
    label: String,
    rect: (u32, u32, u32, u32),
    confidence: f64,
    label_id: i32,
    object_id: Option<i32>,
}

fn roi(
    label: &str,
    rect: (u32, u32, u32, u32),
    confidence: f64,
    label_id: i32,
    object_id: Option<i32>,
) -> Roi {
    Roi {
        label: label.to_string(),
        rect,
        confidence,
        label_id,
        object_id,
    }
}

/// The buffer's ROI metas, sorted so the order metas were added in does not matter.
fn rois(buffer: &gst::BufferRef) -> Vec<Roi> {
    let mut out: Vec<Roi> = buffer
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .map(|m| {
            let p = m.param("detection").expect("a detection param structure");
            Roi {
                label: m.roi_type().to_string(),
                rect: m.rect(),
                confidence: p.get::<f64>("confidence").unwrap(),
                label_id: p.get::<i32>("label_id").unwrap(),
                object_id: p
                    .has_field("object_id")
                    .then(|| p.get::<i32>("object_id").unwrap()),
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.label, a.rect).cmp(&(&b.label, b.rect)));
    out
}

const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;

fn replay(properties: &[(&str, &dyn ToValue)]) -> gst::Element {
    let mut builder = gst::ElementFactory::make("iguardreplay");
    for (name, value) in properties {
        builder = builder.property(name, value.to_value());
    }
    builder.build().unwrap()
}

/// Pushes `frames` blank 320×240 RGB buffers through `element` and returns each one's metas.
fn run_harness(element: &gst::Element, frames: usize) -> Vec<Vec<Roi>> {
    let mut h = gst_check::Harness::with_element(element, Some("sink"), Some("src"));
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, WIDTH, HEIGHT)
        .fps(gst::Fraction::new(25, 1))
        .build()
        .unwrap();
    h.set_src_caps(info.to_caps().unwrap());
    (0..frames)
        .map(|i| {
            let mut buffer = gst::Buffer::with_size(info.size()).unwrap();
            buffer
                .get_mut()
                .unwrap()
                .set_pts(gst::ClockTime::from_mseconds(40 * i as u64));
            h.push(buffer).unwrap();
            rois(&h.pull().unwrap())
        })
        .collect()
}

#[test]
fn defaults() {
    init();
    let e = replay(&[]);
    assert_eq!(e.property::<Option<String>>("location"), None);
    assert_eq!(e.property::<String>("class-labels"), "1=person,2=weapon");
    assert_eq!(e.property::<i64>("frame-offset"), 0);
    let factory = e.factory().unwrap();
    assert_eq!(factory.rank(), gst::Rank::NONE);
    assert_eq!(factory.metadata("klass"), Some("Filter/Analyzer/Video"));
}

/// Every buffer gets exactly its frame's detections from `tests/data/sample-detections.txt`:
/// labels from the default map, boxes rounded outwards, clamped when partly outside and dropped
/// when fully outside, the confidence and class id, and an object id only for tracked detections.
#[test]
fn attaches_each_frames_detections() {
    init();
    let location = data("sample-detections.txt");
    let e = replay(&[("location", &location.to_str().unwrap())]);
    let frames = run_harness(&e, 7);
    assert_eq!(
        frames,
        vec![
            // frame 1
            vec![
                roi("person", (10, 20, 30, 40), 0.9, 1, Some(1)),
                roi("weapon", (100, 50, 21, 11), 0.75, 2, None),
            ],
            // frame 2: nothing recorded
            vec![],
            // frame 3: the first box is clamped at the top-left corner (and has no class
            // column: class 1), the second at the bottom-right one (class 5 is not mapped)
            vec![
                roi("class-5", (300, 200, 20, 40), 0.6, 5, Some(3)),
                roi("person", (0, 0, 40, 15), 0.5, 1, Some(2)),
            ],
            // frame 4: the only box is outside the frame
            vec![],
            // frame 5
            vec![roi("weapon", (0, 0, 320, 240), 1.0, 2, None)],
            // frames 6 and 7: after the last recorded frame
            vec![],
            vec![],
        ]
    );
}

#[test]
fn class_labels_name_the_classes() {
    init();
    let location = data("sample-detections.txt");
    let e = replay(&[
        ("location", &location.to_str().unwrap()),
        ("class-labels", &"1 = human, 5=knife"),
    ]);
    let labels: Vec<Vec<String>> = run_harness(&e, 5)
        .into_iter()
        .map(|f| f.into_iter().map(|r| r.label).collect())
        .collect();
    assert_eq!(
        labels,
        vec![
            vec!["class-2", "human"],
            vec![],
            vec!["human", "knife"],
            vec![],
            vec!["class-2"],
        ]
    );
}

#[test]
fn frame_offset_shifts_the_lookup() {
    init();
    let location = data("sample-detections.txt");
    let ahead = replay(&[
        ("location", &location.to_str().unwrap()),
        ("frame-offset", &2i64),
    ]);
    let counts: Vec<usize> = run_harness(&ahead, 3).iter().map(Vec::len).collect();
    // buffers 1, 2, 3 read frames 3, 4, 5
    assert_eq!(counts, vec![2, 0, 1]);

    let behind = replay(&[
        ("location", &location.to_str().unwrap()),
        ("frame-offset", &-1i64),
    ]);
    let counts: Vec<usize> = run_harness(&behind, 3).iter().map(Vec::len).collect();
    // buffers 1, 2, 3 read frames 0 (none), 1, 2
    assert_eq!(counts, vec![0, 2, 0]);
}

/// The expected metas of the demo file, read by the simplest possible reader (the file is all
/// 8-column lines with boxes inside the frame, so nothing is clamped).
fn demo_expectation(path: &Path, frames: usize) -> Vec<Vec<Roi>> {
    let mut expected = vec![Vec::new(); frames];
    for line in std::fs::read_to_string(path).unwrap().lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<f64> = line.split(',').map(|v| v.trim().parse().unwrap()).collect();
        // Rounded outwards, like the element's sampler.
        let (x0, y0) = (f[2].floor(), f[3].floor());
        let (x1, y1) = ((f[2] + f[4]).ceil(), (f[3] + f[5]).ceil());
        assert!(x0 >= 0.0 && y0 >= 0.0 && x1 <= WIDTH as f64 && y1 <= HEIGHT as f64);
        let label = if f[7] == 1.0 { "person" } else { "weapon" };
        expected[f[0] as usize - 1].push(roi(
            label,
            (x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32),
            f[6],
            f[7] as i32,
            Some(f[1] as i32),
        ));
    }
    for frame in &mut expected {
        frame.sort_by(|a, b| (&a.label, a.rect).cmp(&(&b.label, b.rect)));
    }
    expected
}

/// The demo file through a real `videotestsrc` pipeline: buffer k carries frame k's boxes; a
/// person on frames 5–40, a weapon on frames 20–36, nothing elsewhere.
#[test]
fn demo_file_in_a_real_pipeline() {
    init();
    const FRAMES: usize = 45;
    let location = data("demo-detections.txt");
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers={FRAMES} pattern=black \
         ! video/x-raw,format=I420,width={WIDTH},height={HEIGHT},framerate=25/1 \
         ! iguardreplay name=replay location=\"{}\" ! fakesink sync=false",
        location.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();

    let seen = Arc::new(Mutex::new(Vec::new()));
    let replay = pipeline.by_name("replay").unwrap();
    let sink = Arc::clone(&seen);
    replay
        .static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buffer) = info.buffer() {
                sink.lock().unwrap().push(rois(buffer));
            }
            gst::PadProbeReturn::Ok
        })
        .unwrap();

    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    expect_eos(&bus, Duration::from_secs(30));
    pipeline.set_state(gst::State::Null).unwrap();

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), FRAMES);
    assert_eq!(*seen, demo_expectation(&location, FRAMES));
    for (i, frame) in seen.iter().enumerate() {
        let k = i + 1;
        let has = |label: &str| frame.iter().any(|r| r.label == label);
        assert_eq!(has("person"), (5..=40).contains(&k), "frame {k}");
        assert_eq!(has("weapon"), (20..=36).contains(&k), "frame {k}");
        for r in frame.iter().filter(|r| r.label == "weapon") {
            assert!((0.6..=0.95).contains(&r.confidence), "frame {k}: {r:?}");
        }
    }
}

/// Takes `replay` to PAUSED inside a pipeline; the state change must fail. Returns the error
/// posted on the bus.
fn failed_start(replay: gst::Element) -> glib::Error {
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("videotestsrc").build().unwrap();
    let sink = gst::ElementFactory::make("fakesink").build().unwrap();
    pipeline.add_many([&src, &replay, &sink]).unwrap();
    gst::Element::link_many([&src, &replay, &sink]).unwrap();

    let result = pipeline.set_state(gst::State::Paused);
    let msg = pipeline
        .bus()
        .unwrap()
        .pop_filtered(&[gst::MessageType::Error]);
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(result.is_err(), "the state change should fail");
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Error(err)) => {
            assert_eq!(
                err.src().map(|s| s.name()),
                Some(replay.name()),
                "posted by the replay element"
            );
            err.error()
        }
        _ => panic!("no error message on the bus"),
    }
}

#[test]
fn a_malformed_file_fails_with_its_line_number() {
    init();
    let file = TempFile::new(
        "malformed.txt",
        "# frame,id,left,top,width,height,conf,class\n\
         1,1,10,20,30,40,0.9,1\n\
         2,1,12,abc,30,40,0.9,1\n",
    );
    let err = failed_start(replay(&[("location", &file.path())]));
    let text = err.message().to_string();
    assert!(err.matches(gst::StreamError::Format), "{err:?}");
    assert!(text.contains(&format!("{}:3:", file.path())), "{text}");
    assert!(text.contains("(top) \"abc\" is not a number"), "{text}");
}

#[test]
fn a_bad_frame_number_fails_with_its_line_number() {
    init();
    let file = TempFile::new("frame-zero.txt", "\n\n\n0,1,10,20,30,40,0.9,1\n");
    let err = failed_start(replay(&[("location", &file.path())]));
    let text = err.message().to_string();
    assert!(text.contains(&format!("{}:4:", file.path())), "{text}");
    assert!(text.contains("(frame) \"0\""), "{text}");
}

#[test]
fn a_missing_file_is_a_clear_error() {
    init();
    let path = "/nonexistent/iguard/detections.txt";
    let err = failed_start(replay(&[("location", &path)]));
    assert!(err.matches(gst::ResourceError::OpenRead), "{err:?}");
    assert!(err.message().contains(path), "{}", err.message());
}

#[test]
fn no_location_is_a_clear_error() {
    init();
    let err = failed_start(replay(&[]));
    assert!(err.matches(gst::ResourceError::NotFound), "{err:?}");
    assert!(err.message().contains("'location'"), "{}", err.message());
}

#[test]
fn malformed_class_labels_are_an_error() {
    init();
    let location = data("sample-detections.txt");
    let err = failed_start(replay(&[
        ("location", &location.to_str().unwrap()),
        ("class-labels", &"1=person;2=weapon"),
    ]));
    assert!(err.matches(gst::LibraryError::Settings), "{err:?}");
    assert!(
        err.message().contains("\"1=person;2=weapon\""),
        "{}",
        err.message()
    );
}

/// The project's own ROI reader (what `iguardverify` uses) reads back what the replay wrote.
#[test]
fn the_verification_reader_reads_the_metas() {
    use gstiguard::detections::{DetectionReader, roi::RoiReader};

    init();
    let location = data("sample-detections.txt");
    let e = replay(&[("location", &location.to_str().unwrap())]);
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_src_caps_str(&format!(
        "video/x-raw,format=GRAY8,width={WIDTH},height={HEIGHT},framerate=25/1"
    ));
    h.push(gst::Buffer::with_size((WIDTH * HEIGHT) as usize).unwrap())
        .unwrap();
    let buffer = h.pull().unwrap();

    let mut frames = Vec::new();
    RoiReader.read(&buffer, &mut frames);
    let mut seen: Vec<_> = frames[0]
        .detections
        .iter()
        .map(|d| (d.label.clone(), d.class_id, d.confidence, d.object_id))
        .collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        vec![
            ("person".to_string(), 1, 0.9, Some(1)),
            ("weapon".to_string(), 2, 0.75, None),
        ]
    );
}
