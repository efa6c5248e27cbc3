// SPDX-License-Identifier: MIT OR Apache-2.0
//! `iguardverify` with `clip-per=object`, driven through real GStreamer: two objects crossing
//! each get their own clip whose crop follows them (ids from ROI params, from the replay file,
//! and from the built-in association), `max-clips-per-source` overflow answered `dropped` and
//! counted, the per-object cooldown, a lost track ending its clip (completed or dropped by
//! `min-frames`), a `gun` triggering with default properties, `clip-per=source` verdicts
//! carrying no object, and DeepStream `object_id`s (the stand-in's batch metas) keeping objects
//! of different cameras apart. Every test checks that the stats add up.

mod common;
mod standin;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use gstiguard::geometry::PixelRect;
use gstiguard::meta;
use gstiguard::verdict::{Status, Verdict};

const BG: Boxed = (0, 0, 1, 1);

/// One detection: label, confidence, box, tracker id.
type Det = (&'static str, f64, Boxed, Option<u64>);

fn person(x: u32, y: u32, id: Option<u64>) -> Det {
    ("person", 0.9, (x, y, 40, 80), id)
}

/// Pushes frame `n` (pts n×33 ms) with the detections, ids in the `detection` param.
fn push(h: &mut gst_check::Harness, n: u64, dets: &[Det]) {
    let mut b = frame(BG, n * 33);
    {
        let buf = b.make_mut();
        for (label, conf, rect, id) in dets {
            let mut m = gst_video::VideoRegionOfInterestMeta::add(buf, label, *rect);
            let mut s = gst::Structure::builder("detection").field("confidence", *conf);
            if let Some(id) = id {
                s = s.field("object_id", *id);
            }
            m.add_param(s.build());
        }
    }
    h.push(b).expect("push");
    h.pull().expect("pull");
}

fn finish(h: &mut gst_check::Harness, e: &gst::Element, bus: &gst::Bus) -> (Vec<Verdict>, Stats) {
    h.push_event(gst::event::Eos::new());
    let stats = Stats::of(e);
    stats.assert_adds_up();
    (bus_verdicts(bus), stats)
}

fn iou(a: PixelRect, b: Boxed) -> f64 {
    let (ax1, ay1) = (a.x + a.width, a.y + a.height);
    let (bx1, by1) = (b.0 + b.2, b.1 + b.3);
    let w = ax1.min(bx1).saturating_sub(a.x.max(b.0)) as f64;
    let h = ay1.min(by1).saturating_sub(a.y.max(b.1)) as f64;
    let inter = w * h;
    inter / ((a.width * a.height) as f64 + (b.2 * b.3) as f64 - inter)
}

fn contains_centre(a: PixelRect, b: Boxed) -> bool {
    let (cx, cy) = (b.0 + b.2 / 2, b.1 + b.3 / 2);
    cx >= a.x && cx < a.x + a.width && cy >= a.y && cy < a.y + a.height
}

/// Boxes of two people crossing: A walks right, B left, 20 px a frame, B 10 px lower; they
/// pass through each other on frame 6 (i = 5) and are 80 px apart on the last (i = 7).
fn crossing(i: u32) -> (Boxed, Boxed) {
    ((40 + 20 * i, 80, 40, 80), (240 - 20 * i, 90, 40, 80))
}

fn recorded() -> (gst::Element, gst::Bus, Arc<Recorder>) {
    let (e, bus) = element(&[
        ("temporal-size", &8u32),
        ("input-width", &32u32),
        ("input-height", &32u32),
        ("roi-margin", &0.0f32),
        ("cooldown", &1000u32),
    ]);
    let rec = Arc::new(Recorder::default());
    set_scorer(&e, rec.clone());
    (e, bus, rec)
}

#[test]
fn two_crossing_objects_each_get_a_clip_that_follows_them() {
    with_watchdog(Duration::from_secs(60), || {
        let (e, bus, rec) = recorded();
        let mut h = harness(&e);
        for i in 0..8 {
            let (a, b) = crossing(i);
            push(
                &mut h,
                i as u64 + 1,
                &[("person", 0.9, a, Some(7)), ("person", 0.8, b, Some(9))],
            );
        }
        let (v, stats) = finish(&mut h, &e, &bus);
        assert_eq!(rec.clips.lock().unwrap().len(), 2, "one clip per person");
        assert_eq!(stats.u("clips-most-collecting"), 2, "{}", stats.0);
        let by_id: BTreeMap<u64, &Verdict> = v.iter().map(|v| (v.object_id.unwrap(), v)).collect();
        assert_eq!(by_id.keys().copied().collect::<Vec<_>>(), vec![7, 9]);
        let (a, b) = crossing(7);
        for (id, last) in [(7, a), (9, b)] {
            let crop = by_id[&id].crop.expect("a crop");
            assert_eq!(by_id[&id].frames, 8);
            // The crop is on its own person at the end (after they crossed), not the other.
            assert!(
                contains_centre(crop, last),
                "object {id}: {crop:?} vs {last:?}"
            );
            assert!(iou(crop, last) > 0.3, "object {id}: {crop:?} vs {last:?}");
            // Square tiles, square crops.
            assert!(crop.width.abs_diff(crop.height) <= 1, "{crop:?}");
        }
    });
}

/// Runs `videotestsrc ! iguardreplay(file) ! iguardverify ! fakesink` to EOS.
fn replay(lines: &str, frames: u32, props: &str) -> (Vec<Verdict>, Stats) {
    init();
    let dir = std::env::temp_dir().join(format!("iguard-tracks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("dets-{:x}.txt", lines.len() * 31 + frames as usize));
    std::fs::write(&path, lines).unwrap();
    let desc = format!(
        "videotestsrc num-buffers={frames} ! video/x-raw,width=320,height=240,format=RGBA,framerate=30/1 \
         ! iguardreplay location={} class-labels=1=person ! iguardverify name=v {props} \
         ! fakesink sync=false",
        path.display()
    );
    let out = run_to_eos(&desc, Duration::from_secs(60), |_| {});
    let _ = std::fs::remove_file(&path);
    out
}

fn crossing_file(ids: (i64, i64)) -> String {
    let mut s = String::from("# two people crossing\n");
    for i in 0..8 {
        let (a, b) = crossing(i);
        for (id, r) in [(ids.0, a), (ids.1, b)] {
            s += &format!("{},{id},{},{},{},{},0.9,1\n", i + 1, r.0, r.1, r.2, r.3);
        }
    }
    s
}

/// Each ROI meta of `buf`: its box, the `detection` param's `object_id` and `confidence`.
fn rois(buf: &gst::BufferRef) -> Vec<(Boxed, Option<u64>, Option<f64>)> {
    buf.iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .map(|m| {
            let d = m.param("detection");
            (
                m.rect(),
                d.and_then(|d| d.get::<u64>("object_id").ok()),
                d.and_then(|d| d.get::<f64>("confidence").ok()),
            )
        })
        .collect()
}

#[test]
fn builtin_ids_are_written_back_to_the_roi_metas_verdicts_name() {
    with_watchdog(Duration::from_secs(60), || {
        let (e, bus, _rec) = recorded();
        let mut h = harness(&e);
        let mut seen: Vec<(Option<u64>, Option<u64>)> = Vec::new();
        for i in 0..8u32 {
            let (a, b) = crossing(i);
            let mut buf = frame(BG, (i as u64 + 1) * 33);
            {
                let buf = buf.make_mut();
                let mut m = gst_video::VideoRegionOfInterestMeta::add(buf, "person", a);
                m.add_param(
                    gst::Structure::builder("detection")
                        .field("confidence", 0.9f64)
                        .build(),
                );
                // No params at all, and a label that triggers nothing.
                gst_video::VideoRegionOfInterestMeta::add(buf, "person", b);
                gst_video::VideoRegionOfInterestMeta::add(buf, "car", (0, 0, 20, 20));
            }
            h.push(buf).unwrap();
            let out = h.pull().unwrap();
            let r = rois(&out);
            assert_eq!(r.len(), 3, "{r:?}");
            assert_eq!((r[0].0, r[1].0), (a, b), "boxes unchanged");
            assert_eq!(r[0].2, Some(0.9), "the detector's confidence is kept");
            assert_eq!(r[2].1, None, "untracked labels get no id: {r:?}");
            seen.push((r[0].1, r[1].1));
        }
        let (v, stats) = finish(&mut h, &e, &bus);
        let (id_a, id_b) = seen[0];
        let (id_a, id_b) = (id_a.expect("an id for A"), id_b.expect("an id for B"));
        assert_ne!(id_a, id_b);
        // Stable through the crossing: each box keeps its person's id.
        assert!(
            seen.iter().all(|s| *s == (Some(id_a), Some(id_b))),
            "{seen:?}"
        );
        // The ids the verdicts name are those on the boxes, on the right person.
        assert_eq!(stats.u("completed"), 2, "{}", stats.0);
        let (a, b) = crossing(7);
        for (id, last) in [(id_a, a), (id_b, b)] {
            let v = v
                .iter()
                .find(|v| v.object_id == Some(id))
                .expect("a verdict");
            assert!(contains_centre(v.crop.unwrap(), last), "{id}: {v:?}");
        }
    });
}

#[test]
fn an_id_the_detector_gave_is_never_overwritten() {
    with_watchdog(Duration::from_secs(60), || {
        let (e, _bus, _rec) = recorded();
        let mut h = harness(&e);
        for i in 0..3u64 {
            let mut buf = frame(BG, (i + 1) * 33);
            {
                let buf = buf.make_mut();
                let mut m =
                    gst_video::VideoRegionOfInterestMeta::add(buf, "person", (40, 80, 40, 80));
                m.add_param(
                    gst::Structure::builder("detection")
                        .field("object_id", 41u64)
                        .build(),
                );
            }
            h.push(buf).unwrap();
            let out = h.pull().unwrap();
            assert_eq!(rois(&out)[0].1, Some(41));
        }
    });
}

#[test]
fn ids_from_the_replay_file_and_from_the_builtin_association() {
    with_watchdog(Duration::from_secs(90), || {
        let props = "temporal-size=8 roi-margin=0 cooldown=1000";
        let (v, stats) = replay(&crossing_file((3, 5)), 12, props);
        stats.assert_adds_up();
        let ids: BTreeSet<u64> = v.iter().filter_map(|v| v.object_id).collect();
        assert_eq!(ids, BTreeSet::from([3, 5]), "{v:?}");
        assert!(
            v.iter()
                .all(|v| v.status == Status::Fallback && v.frames == 8)
        );

        // No ids in the file: the element associates the boxes itself, without swapping them.
        let (v, stats) = replay(&crossing_file((-1, -1)), 12, props);
        stats.assert_adds_up();
        assert_eq!(v.len(), 2, "{v:?}");
        let (a, b) = crossing(7);
        let on_a = v
            .iter()
            .filter(|v| contains_centre(v.crop.unwrap(), a))
            .count();
        let on_b = v
            .iter()
            .filter(|v| contains_centre(v.crop.unwrap(), b))
            .count();
        assert_eq!((on_a, on_b), (1, 1), "{v:?}");
        assert_ne!(v[0].object_id, v[1].object_id);
        assert!(v.iter().all(|v| v.object_id.is_some() && v.frames == 8));

        // tracking=ids with id-less detections: nothing to follow, no clip.
        let (v, stats) = replay(
            &crossing_file((-1, -1)),
            12,
            &format!("{props} tracking=ids"),
        );
        stats.assert_adds_up();
        assert!(v.is_empty(), "{v:?}");
    });
}

#[test]
fn a_trigger_beyond_max_clips_per_source_is_answered_dropped_and_counted() {
    with_watchdog(Duration::from_secs(60), || {
        let (e, bus) = element(&[
            ("temporal-size", &4u32),
            ("input-width", &16u32),
            ("input-height", &16u32),
            ("cooldown", &1000u32),
            ("max-clips-per-source", &2u32),
        ]);
        let mut h = harness(&e);
        let crowd = [
            person(10, 10, Some(1)),
            person(110, 10, Some(2)),
            ("person", 0.7, (210, 10, 40, 80), Some(3)),
        ];
        for n in 1..=4 {
            push(&mut h, n, &crowd);
        }
        let (v, stats) = finish(&mut h, &e, &bus);
        assert_eq!(stats.u("clips-overflowed"), 1, "{}", stats.0);
        assert_eq!(stats.u("dropped"), 1);
        assert_eq!(stats.u("fallback"), 2);
        assert_eq!(stats.u("clips-most-collecting"), 2);
        let dropped: Vec<&Verdict> = v.iter().filter(|v| v.status == Status::Dropped).collect();
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].object_id, Some(3), "the least confident waits");
        assert!(
            dropped[0].reason.contains("max-clips-per-source=2"),
            "{}",
            dropped[0].reason
        );
        assert_eq!(dropped[0].trigger_label, "person");
    });
}

#[test]
fn the_cooldown_is_per_object() {
    with_watchdog(Duration::from_secs(60), || {
        let (e, bus) = element(&[
            ("temporal-size", &4u32),
            ("input-width", &16u32),
            ("input-height", &16u32),
            ("cooldown", &10u32),
        ]);
        let mut h = harness(&e);
        for n in 1..=24u64 {
            let mut dets = vec![person(10, 10, Some(1))];
            if n >= 6 {
                dets.push(person(200, 10, Some(2)));
            }
            push(&mut h, n, &dets);
        }
        let (v, _) = finish(&mut h, &e, &bus);
        let mut starts: Vec<(u64, u64)> = v
            .iter()
            .map(|v| (v.object_id.unwrap(), v.clip_start_pts.unwrap() / 33_000_000))
            .collect();
        starts.sort();
        // Object 1: 1-4, cooldown 5-14, 15-18, cooldown. Object 2: 6-9 while object 1 cools
        // down, cooldown 10-19, then 20-23.
        assert_eq!(starts, vec![(1, 1), (1, 15), (2, 6), (2, 20)]);
    });
}

#[test]
fn a_lost_track_ends_its_clip_completed_or_dropped_by_min_frames() {
    with_watchdog(Duration::from_secs(60), || {
        let (e, bus) = element(&[
            ("temporal-size", &16u32),
            ("input-width", &16u32),
            ("input-height", &16u32),
            ("track-timeout", &3u32),
            ("min-frames", &4u32),
        ]);
        let mut h = harness(&e);
        // Object 1 for 6 frames, object 2 for 3 (min-frames 4); then nobody.
        for n in 1..=6 {
            let mut dets = vec![person(10, 10, Some(1))];
            if n <= 3 {
                dets.push(person(200, 10, Some(2)));
            }
            push(&mut h, n, &dets);
        }
        for n in 7..=12 {
            push(&mut h, n, &[]);
        }
        let stats = Stats::of(&e);
        assert_eq!(
            stats.u("clips-collecting"),
            0,
            "both ended before EOS: {}",
            stats.0
        );
        let (v, stats) = finish(&mut h, &e, &bus);
        assert_eq!(stats.u("clips-lost-completed"), 1, "{}", stats.0);
        assert_eq!(stats.u("clips-lost-dropped"), 1);
        let one = v.iter().find(|v| v.object_id == Some(1)).unwrap();
        // Ended on the third frame without the object; the tiles of the gap are cut and its
        // 6 are completed by repeating the last.
        assert_eq!((one.status, one.frames), (Status::Fallback, 6));
        assert_eq!(one.clip_end_pts, Some(6 * 33_000_000));
        let two = v.iter().find(|v| v.object_id == Some(2)).unwrap();
        assert_eq!(two.status, Status::Dropped);
        assert!(two.reason.contains("lost"), "{}", two.reason);
        assert_eq!(two.frames, 3);
    });
}

#[test]
fn a_gun_triggers_with_default_properties() {
    with_watchdog(Duration::from_secs(60), || {
        let (e, bus) = element(&[]);
        let mut h = harness(&e);
        push(&mut h, 1, &[("gun", 0.9, (100, 100, 30, 20), None)]);
        let (v, _) = finish(&mut h, &e, &bus);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].trigger_label, "gun");
        assert_eq!(v[0].status, Status::Fallback);
        assert!(
            v[0].score > 0.8,
            "the gun is the clip's own label: {}",
            v[0].score
        );
        assert_eq!(v[0].object_id, Some(1), "built-in id");
    });
}

#[test]
fn clip_per_source_verdicts_name_no_object_and_carry_the_union_crop() {
    with_watchdog(Duration::from_secs(60), || {
        let (e, bus) = element(&[
            ("clip-per", &"source"),
            ("temporal-size", &2u32),
            ("roi-margin", &0.0f32),
        ]);
        let mut h = harness(&e);
        push(
            &mut h,
            1,
            &[person(10, 10, Some(1)), person(200, 20, Some(2))],
        );
        push(&mut h, 2, &[]);
        let (v, _) = finish(&mut h, &e, &bus);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].object_id, None);
        assert_eq!(
            v[0].crop,
            Some(PixelRect {
                x: 10,
                y: 10,
                width: 230,
                height: 90
            })
        );
        // On the message as G_MAXUINT64.
        let s = meta::to_structure(meta::MESSAGE_NAME, &v[0]);
        assert_eq!(s.get::<u64>(meta::fields::OBJECT_ID).unwrap(), u64::MAX);
        assert_eq!(s.get::<u32>(meta::fields::CROP_WIDTH).unwrap(), 230);
    });
}

#[test]
fn deepstream_object_ids_give_a_clip_per_object_and_camera() {
    with_watchdog(Duration::from_secs(60), || {
        use standin::{Batch, Frame};
        let (e, bus) = element(&[
            ("class-labels", &"0=person"),
            ("temporal-size", &4u32),
            ("input-width", &16u32),
            ("input-height", &16u32),
            ("cooldown", &1000u32),
        ]);
        let mut h = harness(&e);
        let r = |b: Boxed| (b.0 as f32, b.1 as f32, b.2 as f32, b.3 as f32);
        for i in 0..4u32 {
            let (a, b) = crossing(i);
            // Camera 0: two tracked people crossing; camera 1: one, with the same tracker id as
            // one on camera 0 (ids are per camera).
            let batch = Batch::new()
                .frame(0, 0, i as i32, i as u64 * 33_000_000, |f: Frame| {
                    f.object(0, 0.9, r(a), "")
                        .id(11)
                        .object(0, 0.9, r(b), "")
                        .id(12)
                })
                .frame(1, 1, i as i32, i as u64 * 33_000_000, |f: Frame| {
                    f.object(0, 0.9, r(b), "").id(11)
                });
            let mut buf = frame(BG, i as u64 * 33);
            batch.attach(buf.get_mut().unwrap());
            h.push(buf).expect("push");
            h.pull().expect("pull");
        }
        let (v, _) = finish(&mut h, &e, &bus);
        let mut got: Vec<(u32, u64)> = v
            .iter()
            .map(|v| (v.source_id, v.object_id.unwrap()))
            .collect();
        got.sort();
        assert_eq!(got, vec![(0, 11), (0, 12), (1, 11)], "{v:?}");
        assert!(
            v.iter()
                .all(|v| v.frames == 4 && v.status == Status::Fallback)
        );
        // Camera 0's object 11 is A, whose crop ends on A's last box.
        let a = v
            .iter()
            .find(|v| (v.source_id, v.object_id) == (0, Some(11)))
            .unwrap();
        assert!(contains_centre(a.crop.unwrap(), crossing(3).0), "{a:?}");
    });
}

/// A flushing seek in a real pipeline forgets the built-in tracks, but the ids already given
/// are never given again: after the seek the same (id-less) person gets a new id on its ROI
/// meta, so an id names one object for the whole run.
#[test]
fn a_seek_does_not_give_a_builtin_id_to_another_object() {
    with_watchdog(Duration::from_secs(90), || {
        use gst::prelude::*;
        use std::sync::Mutex;
        init();
        let dir = std::env::temp_dir().join(format!("iguard-tracks-seek-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("still-person.txt");
        // One untracked person standing still, on every frame the run can reach.
        let lines: String = (1..=3000)
            .map(|f| format!("{f},-1,100,60,40,80,0.9,1\n"))
            .collect();
        std::fs::write(&path, lines).unwrap();
        let desc = format!(
            "videotestsrc ! video/x-raw,width=320,height=240,format=RGBA,framerate=30/1 \
             ! iguardreplay location={} class-labels=1=person \
             ! iguardverify name=v clip-per=object temporal-size=4 input-width=16 \
               input-height=16 cooldown=1000 \
             ! fakesink name=sink sync=true",
            path.display()
        );
        let p = gst::parse::launch(&desc)
            .unwrap()
            .downcast::<gst::Pipeline>()
            .unwrap();
        let _stop = StopOnDrop(p.clone().upcast());
        let v = p.by_name("v").unwrap();
        set_scorer(&v, Arc::new(Recorder::default()));
        // Per flush epoch (0 before the seek, 1 after), the ids on the ROI metas.
        // (flushes seen, ids per epoch)
        type Seen = (usize, Vec<Vec<Option<u64>>>);
        let seen: Arc<Mutex<Seen>> = Arc::new(Mutex::new((0, vec![vec![], vec![]])));
        let pad = p.by_name("sink").unwrap().static_pad("sink").unwrap();
        let s = seen.clone();
        pad.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_FLUSH,
            move |_, info| {
                let mut s = s.lock().unwrap();
                match &info.data {
                    Some(gst::PadProbeData::Event(e)) if e.type_() == gst::EventType::FlushStop => {
                        s.0 += 1
                    }
                    Some(gst::PadProbeData::Buffer(b)) => {
                        let epoch = s.0.min(1);
                        s.1[epoch].extend(rois(b).into_iter().map(|r| r.1));
                    }
                    _ => (),
                }
                gst::PadProbeReturn::Ok
            },
        );
        let frames_in = |epoch: usize| seen.lock().unwrap().1[epoch].len();
        p.set_state(gst::State::Playing).unwrap();
        wait_for("6 frames before the seek", Duration::from_secs(30), || {
            frames_in(0) >= 6
        });
        assert!(
            p.seek_simple(gst::SeekFlags::FLUSH, gst::ClockTime::ZERO)
                .is_ok()
        );
        wait_for("6 frames after the seek", Duration::from_secs(30), || {
            frames_in(1) >= 6
        });
        p.set_state(gst::State::Null).unwrap();
        let _ = std::fs::remove_file(&path);
        let (epochs, ids) = seen.lock().unwrap().clone();
        assert_eq!(epochs, 1, "one flush");
        let before: BTreeSet<Option<u64>> = ids[0].iter().copied().collect();
        let after: BTreeSet<Option<u64>> = ids[1].iter().copied().collect();
        // One person, one id on each side of the seek, and not the same one.
        assert_eq!(before.len(), 1, "{before:?}");
        assert_eq!(after.len(), 1, "{after:?}");
        assert!(before.iter().chain(&after).all(Option::is_some), "{ids:?}");
        assert!(
            before.is_disjoint(&after),
            "before {before:?}, after {after:?}"
        );
        Stats::of(&v).assert_adds_up();
    });
}
