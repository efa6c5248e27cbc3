// SPDX-License-Identifier: MIT OR Apache-2.0
//! `snapshot=true` through real GStreamer: the verdict's JPEG decodes, with an independent
//! decoder (Debian's python3-pil), to the tiles the scorer saw, laid out `snapshot-columns`
//! wide; it was encoded on a worker thread, not the streaming thread; over
//! `snapshot-max-bytes` it is left off and counted; with `snapshot=false` there is none.

mod broker;
mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use gst::prelude::*;
use gstiguard::clip::Clip;
use gstiguard::verdict::Verdict;

/// Where the trigger's box is; later frames move it right, so every tile differs.
const BOX: (u32, u32, u32, u32) = (100, 60, 64, 80);

/// The Python with PIL (Debian's python3-pil): not the ONNX venv, which has no imaging module.
fn image_python() -> String {
    std::env::var("IGUARD_IMAGE_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into())
}

/// Runs one clip through an element configured by `props` and returns its verdicts and the
/// clip the scorer saw.
fn run(props: &[(&str, &dyn ToValue)]) -> (gst::Element, Vec<Verdict>, Vec<Clip>) {
    let mut all: Vec<(&str, &dyn ToValue)> = vec![
        ("clip-per", &"source"),
        ("temporal-size", &4u32),
        ("roi-margin", &0.5f32),
        ("cooldown", &1000u32),
        ("trigger-labels", &"person"),
    ];
    all.extend_from_slice(props);
    let (e, bus) = element(&all);
    let rec = Arc::new(Recorder::default());
    set_scorer(&e, rec.clone());
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_src_caps(caps());
    for n in 1..12u64 {
        let (x, y, w, hh) = BOX;
        let mut b = frame((x + 6 * n as u32, y, w, hh), n * 33);
        if n == 2 {
            add_detection(&mut b, "person", 0.9, BOX);
        }
        h.push(b).expect("push");
        h.pull().expect("pull");
    }
    h.push_event(gst::event::Eos::new());
    let clips = rec.clips.lock().unwrap().clone();
    (e, bus_verdicts(&bus), clips)
}

/// The sheet the snapshot should show, built here independently of the element's code.
fn expected_sheet(c: &Clip, columns: u32) -> (u32, u32, Vec<u8>) {
    let rows = c.real_frames.div_ceil(columns);
    let (w, h) = (columns * c.width, rows * c.height);
    let mut out = vec![0u8; (w * h * 3) as usize];
    for i in 0..c.real_frames {
        let tile = c.tile(i as usize);
        for y in 0..c.height {
            for x in 0..c.width {
                let src = ((y * c.width + x) * 3) as usize;
                let (sx, sy) = ((i % columns) * c.width + x, (i / columns) * c.height + y);
                let dst = ((sy * w + sx) * 3) as usize;
                out[dst..dst + 3].copy_from_slice(&tile[src..src + 3]);
            }
        }
    }
    (w, h, out)
}

/// Decodes `jpeg` with PIL and returns its size and the mean absolute difference per channel
/// from `rgb` (raw, `w`×`h`).
fn decode_and_compare(jpeg: &[u8], w: u32, h: u32, rgb: &[u8]) -> (u32, u32, f64) {
    let dir = std::env::temp_dir().join(format!("iguard-snapshot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (jp, rp) = (dir.join("s.jpg"), dir.join("s.rgb"));
    std::fs::write(&jp, jpeg).unwrap();
    std::fs::write(&rp, rgb).unwrap();
    let script = r#"
import sys
from PIL import Image
im = Image.open(sys.argv[1])
assert im.format == "JPEG", im.format
im = im.convert("RGB")
w, h = int(sys.argv[3]), int(sys.argv[4])
raw = open(sys.argv[2], "rb").read()
got = im.tobytes()
if im.size != (w, h):
    print(im.size[0], im.size[1], -1.0)
else:
    print(w, h, sum(abs(a - b) for a, b in zip(got, raw)) / len(raw))
"#;
    let out = Command::new(image_python())
        .arg("-c")
        .arg(script)
        .arg(&jp)
        .arg(&rp)
        .arg(w.to_string())
        .arg(h.to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} (python3-pil): {e}", image_python()));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "PIL failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<&str> = text.split_whitespace().collect();
    (
        v[0].parse().unwrap(),
        v[1].parse().unwrap(),
        v[2].parse().unwrap(),
    )
}

#[test]
fn the_snapshot_decodes_to_the_tiles_the_scorer_saw() {
    let (e, verdicts, clips) = run(&[
        ("input-width", &32u32),
        ("input-height", &24u32),
        ("snapshot", &true),
        ("snapshot-columns", &2u32),
        ("snapshot-quality", &95u32),
    ]);
    assert_eq!(clips.len(), 1);
    let c = &clips[0];
    assert_eq!((c.real_frames, c.width, c.height), (4, 32, 24));
    // Distinct tiles, so a sheet in the wrong order would not match.
    assert_ne!(c.tile(0), c.tile(3));
    assert_eq!(verdicts.len(), 1);
    let jpeg = verdicts[0]
        .snapshot
        .clone()
        .expect("a snapshot on the verdict");
    let (w, h, rgb) = expected_sheet(c, 2);
    assert_eq!((w, h), (64, 48));
    let (dw, dh, mae) = decode_and_compare(&jpeg, w, h, &rgb);
    assert_eq!((dw, dh), (64, 48), "the sheet's size");
    assert!(
        mae < 4.0,
        "mean abs difference {mae} is beyond JPEG's at q95"
    );
    // The same sheet with two tiles swapped is far off: the comparison can tell.
    let mut swapped = c.clone();
    let n = c.tile_bytes();
    swapped.pixels.copy_within(3 * n..4 * n, 0);
    let (_, _, rgb_wrong) = expected_sheet(&swapped, 2);
    let (_, _, off) = decode_and_compare(&jpeg, w, h, &rgb_wrong);
    // One wrong tile of four, itself partly like the right one: still well off.
    assert!(off > 2.0 * mae + 2.0, "a wrong tile shows: {off} vs {mae}");

    let threads = gstiguard::snapshot::encoder_threads();
    assert!(!threads.is_empty());
    assert!(
        threads.iter().all(|t| t.starts_with("iguard-w")),
        "encoded off the streaming thread, by workers: {threads:?}"
    );
    let s = Stats::of(&e);
    s.assert_adds_up();
    assert_eq!((s.u("snapshots-encoded"), s.u("snapshots-skipped")), (1, 0));
}

#[test]
fn a_snapshot_over_the_bound_is_left_off_and_counted() {
    let (e, verdicts, clips) = run(&[
        ("input-width", &224u32),
        ("input-height", &224u32),
        ("snapshot", &true),
        ("snapshot-quality", &100u32),
        ("snapshot-max-bytes", &1024u32),
    ]);
    assert_eq!((clips.len(), verdicts.len()), (1, 1));
    assert!(verdicts[0].snapshot.is_none());
    assert!(
        verdicts[0].status.is_scored(),
        "the verdict itself is intact"
    );
    let s = Stats::of(&e);
    assert_eq!((s.u("snapshots-encoded"), s.u("snapshots-skipped")), (0, 1));
}

#[test]
fn no_snapshot_unless_asked() {
    let (e, verdicts, _) = run(&[("input-width", &32u32), ("input-height", &24u32)]);
    assert_eq!(verdicts.len(), 1);
    assert!(verdicts[0].snapshot.is_none());
    assert_eq!(Stats::of(&e).u("snapshots-encoded"), 0);
}

/// Runs 40 frames (a person in each: a clip every 4) through `iguardverify snapshot=true →
/// iguardpublish file-path=<dir>/events.jsonl <props>` to EOS; returns the logged events and
/// the publisher's stats.
fn publish_run(dir: &Path, props: &str) -> (Vec<serde_json::Value>, gst::Structure) {
    init();
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let det = dir.join("detections.txt");
    let mut d = String::new();
    for f in 1..=40 {
        d.push_str(&format!("{f},1,100,60,60,120,0.9,1\n"));
    }
    std::fs::write(&det, d).unwrap();
    let log = dir.join("events.jsonl");
    let desc = format!(
        "videotestsrc num-buffers=40 ! video/x-raw,format=RGBA,width=320,height=240,framerate=30/1 \
         ! iguardreplay location={} \
         ! iguardverify name=v cooldown=0 temporal-size=4 input-width=32 input-height=32 \
           model-type=fallback snapshot=true incidents=false \
         ! iguardpublish name=p file-path={} {props} ! fakesink",
        det.display(),
        log.display(),
    );
    let pipeline = gst::parse::launch(&desc).unwrap();
    let _guard = StopOnDrop(pipeline.clone());
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    expect_eos(&bus, Duration::from_secs(60));
    let bin = pipeline.downcast_ref::<gst::Bin>().unwrap();
    let p = bin
        .by_name("p")
        .unwrap()
        .property::<gst::Structure>("stats");
    pipeline.set_state(gst::State::Null).unwrap();

    let events: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (events, p)
}

/// `iguardverify snapshot=true → iguardpublish file-path snapshot-dir`: each event names its
/// snapshot's file, size and SHA-256; the folder keeps the newest `snapshot-dir-max-files`.
#[test]
fn iguardpublish_writes_each_snapshot_next_to_the_event_log_bounded() {
    let dir = std::env::temp_dir().join(format!("iguard-snapdir-e2e-{}", std::process::id()));
    let shots = dir.join("snapshots");
    let (events, p) = publish_run(
        &dir,
        &format!("snapshot-dir={} snapshot-dir-max-files=3", shots.display()),
    );
    assert!(events.len() >= 5, "{} events", events.len());
    for e in &events {
        let s = &e["snapshot"];
        assert_eq!(
            s["file"].as_str().unwrap(),
            format!("{}.jpg", e["event_id"].as_str().unwrap())
        );
        assert!(s["bytes"].as_u64().unwrap() > 100, "{s}");
        assert!(e.to_string().len() < 4096, "no JPEG inside the JSON");
    }
    assert_eq!(
        p.get::<u64>("snapshots-written").unwrap(),
        events.len() as u64
    );
    assert_eq!(p.get::<u64>("snapshots-failed").unwrap(), 0);
    // The newest three are kept, each the bytes its event names (checked by Python's own
    // hashlib and PIL).
    let mut kept: Vec<String> = std::fs::read_dir(&shots)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    let mut newest: Vec<String> = events[events.len() - 3..]
        .iter()
        .map(|e| e["snapshot"]["file"].as_str().unwrap().to_string())
        .collect();
    newest.sort();
    assert_eq!(kept, newest);
    for e in &events[events.len() - 3..] {
        let path = shots.join(e["snapshot"]["file"].as_str().unwrap());
        let out = Command::new(image_python())
            .arg("-c")
            .arg(
                "import sys, hashlib\nfrom PIL import Image\nb = open(sys.argv[1], 'rb').read()\n\
                 im = Image.open(sys.argv[1]); im.load()\n\
                 print(hashlib.sha256(b).hexdigest(), len(b), im.size[0], im.size[1])",
            )
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(v[0], e["snapshot"]["sha256"].as_str().unwrap());
        assert_eq!(
            v[1].parse::<u64>().unwrap(),
            e["snapshot"]["bytes"].as_u64().unwrap()
        );
        // temporal-size=4 tiles of 32×32, four to a row.
        assert_eq!((v[2], v[3]), ("128", "32"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// MQTT: the newest snapshot of each source goes to `<prefix>/<source>/snapshot`, raw JPEG,
/// retained: a client that subscribes after the run still gets the last clip's sheet.
#[test]
fn mqtt_retains_the_last_snapshot_of_each_source() {
    let mut b = broker::Broker::start("snapshot");
    let dir = std::env::temp_dir().join(format!("iguard-snapmqtt-{}", std::process::id()));
    let (events, _) = publish_run(&dir, &format!("mqtt-url={} topic-prefix=snap", b.url()));
    assert!(events.len() >= 5);
    let last = events.last().unwrap();
    let late = broker::Subscriber::start(b.port, "late-snap", "snap/+/snapshot", false);
    late.wait("the retained snapshot", Duration::from_secs(20), |m| {
        !m.is_empty()
    });
    std::thread::sleep(Duration::from_millis(300));
    let m = late.messages();
    assert_eq!(m.len(), 1, "one source, one retained snapshot");
    assert_eq!(
        m[0].topic,
        format!("snap/{}/snapshot", last["source"].as_str().unwrap())
    );
    assert!(m[0].retain);
    assert_eq!(&m[0].payload[..2], &[0xff, 0xd8], "raw JPEG");
    assert_eq!(
        m[0].payload.len() as u64,
        last["snapshot"]["bytes"].as_u64().unwrap(),
        "the last verdict's snapshot"
    );
    let digest = gstiguard::publish::wire::snapshot_summary(&m[0].payload);
    assert_eq!(digest["sha256"], last["snapshot"]["sha256"]);
    b.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
