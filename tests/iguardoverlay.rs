// SPDX-License-Identifier: MIT OR Apache-2.0
//! `iguardoverlay` driven by real GStreamer: Harness runs with known boxes and verdicts on
//! uniform frames (every format the element offers), checked sample by sample; the composition
//! meta against a downstream that does and does not accept it; and a real pipeline from
//! `iguardreplay` through `iguardverify`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::overlay::{Det, frame, harness, info};
use common::{StopOnDrop, error_text, expect_eos, init, verdict, with_watchdog};
use gst::prelude::*;
use gstiguard::geometry::PixelRect;
use gstiguard::meta;
use gstiguard::verdict::{Status, Verdict};

const BOX_COLOR: [u8; 3] = [0x00, 0xC8, 0xFF];
const VERIFIED_COLOR: [u8; 3] = [0xFF, 0x20, 0x20];
const REJECTED_COLOR: [u8; 3] = [0x20, 0xD0, 0x20];

/// For every pixel, whether any component sample covering it differs between `a` and `b`.
/// A frame with one tracked person box `bx` and a `verified` verdict for it, before and after
/// the element drew it with `line-width` `lw` and 12 px text.
fn draw_one_box(
    info: &gst_video::VideoInfo,
    bx: (u32, u32, u32, u32),
    lw: u32,
) -> (gst::Buffer, gst::Buffer) {
    let mut h = harness(info, &[("line-width", &lw), ("font-size", &12.0f64)], false);
    let input = frame(
        info,
        0,
        &[("person", Some(7), bx)],
        &[verdict(1, Status::Verified, Some(7))],
    );
    let reference = input.copy_deep().unwrap();
    let output = h.push_and_pull(input).unwrap();
    (reference, output)
}

fn changed(info: &gst_video::VideoInfo, a: &gst::Buffer, b: &gst::Buffer) -> Vec<Vec<bool>> {
    changed_in(info, a, b, 0..info.n_components())
}

/// As [`changed`], looking only at the components `comps`.
fn changed_in(
    info: &gst_video::VideoInfo,
    a: &gst::Buffer,
    b: &gst::Buffer,
    comps: std::ops::Range<u32>,
) -> Vec<Vec<bool>> {
    let (w, h) = (info.width() as usize, info.height() as usize);
    let mut out = vec![vec![false; w]; h];
    let fa = gst_video::VideoFrameRef::from_buffer_ref_readable(a.as_ref(), info).unwrap();
    let fb = gst_video::VideoFrameRef::from_buffer_ref_readable(b.as_ref(), info).unwrap();
    let finfo = info.format_info();
    for c in comps {
        let cu = c as u8;
        let plane = finfo.plane()[c as usize] as usize;
        let stride = info.stride()[plane] as usize;
        let pstride = info.comp_pstride(cu) as usize;
        let (wsub, hsub) = (finfo.w_sub()[c as usize], finfo.h_sub()[c as usize]);
        let (da, db) = (fa.comp_data(c).unwrap(), fb.comp_data(c).unwrap());
        for cy in 0..info.comp_height(cu) as usize {
            for cx in 0..info.comp_width(cu) as usize {
                let i = cy * stride + cx * pstride;
                if da[i] == db[i] {
                    continue;
                }
                // The pixels this sample covers.
                let (y0, y1) = (cy << hsub, ((cy + 1) << hsub).min(h));
                let (x0, x1) = (cx << wsub, ((cx + 1) << wsub).min(w));
                for row in &mut out[y0..y1] {
                    row[x0..x1].fill(true);
                }
            }
        }
    }
    out
}

fn inside(r: (u32, u32, u32, u32), x: usize, y: usize) -> bool {
    let (x, y) = (x as u32, y as u32);
    x >= r.0 && x < r.0 + r.2 && y >= r.1 && y < r.1 + r.3
}

/// The RGB of pixel (x, y) of an RGBA frame.
fn rgb(buf: &gst::Buffer, width: u32, x: u32, y: u32) -> [u8; 3] {
    let map = buf.map_readable().unwrap();
    let i = ((y * width + x) * 4) as usize;
    [map[i], map[i + 1], map[i + 2]]
}

fn near(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| (*x as i32 - y as i32).abs() <= 3)
}

/// The formats the element's sink template offers.
fn template_formats() -> Vec<gst_video::VideoFormat> {
    init();
    let factory = gst::ElementFactory::find("iguardoverlay").unwrap();
    let templ = factory
        .static_pad_templates()
        .into_iter()
        .find(|t| t.name_template() == "sink")
        .unwrap();
    let caps = templ.caps();
    let s = caps.structure(0).unwrap();
    let list = s.get::<gst::List>("format").unwrap();
    list.iter()
        .map(|v| gst_video::VideoFormat::from_string(v.get::<&str>().unwrap()))
        .collect()
}

#[test]
fn boxes_and_verdicts_change_pixels_inside_the_outlines_and_nowhere_else_in_every_format() {
    use gst_video::VideoFormat::*;
    let formats = template_formats();
    for required in [Rgba, Bgrx, I420, Nv12] {
        assert!(
            formats.contains(&required),
            "{required:?} missing from {formats:?}"
        );
    }
    // Even coordinates and line width: whole chroma samples in every format.
    let bx = (80u32, 100u32, 60u32, 60u32);
    let lw = 4u32;
    let inner = (bx.0 + lw, bx.1 + lw, bx.2 - 2 * lw, bx.3 - 2 * lw);
    // The label sits above the box, from its left edge.
    let band = (bx.0, 60u32, 320 - bx.0, bx.1 - 60);
    for format in formats {
        let info = info(format, 320, 240);
        let (reference, output) = draw_one_box(&info, bx, lw);
        let diff = changed(&info, &reference, &output);
        let mut in_band = 0;
        for (y, row) in diff.iter().enumerate() {
            for (x, &c) in row.iter().enumerate() {
                let on_outline = inside(bx, x, y) && !inside(inner, x, y);
                if on_outline {
                    assert!(c, "{format:?}: outline pixel ({x}, {y}) unchanged");
                } else if inside(band, x, y) {
                    in_band += c as u32;
                } else {
                    assert!(
                        !c,
                        "{format:?}: pixel ({x}, {y}) outside the drawing changed"
                    );
                }
            }
        }
        // A label of 12 px text spans well over 40 x 12 pixels.
        assert!(
            in_band > 40 * 12,
            "{format:?}: label covers only {in_band} pixels"
        );
    }
}

#[test]
fn odd_boxes_in_subsampled_formats_stay_within_a_chroma_sample_of_their_outline() {
    // Odd positions and sizes: the element rounds shapes out to whole chroma samples, so a
    // change reaches at most one pixel past the box and never into its inside.
    let bx = (81u32, 101u32, 59u32, 59u32);
    let lw = 3u32;
    let grown = (bx.0 - 1, bx.1 - 1, bx.2 + 2, bx.3 + 2);
    let inner = (
        bx.0 + lw + 1,
        bx.1 + lw + 1,
        bx.2 - 2 * lw - 2,
        bx.3 - 2 * lw - 2,
    );
    // The label above it, also rounded out: down to the box's first row.
    let band = (0u32, 60u32, 320, bx.1 + 1 - 60);
    for format in template_formats() {
        let info = info(format, 320, 240);
        let (reference, output) = draw_one_box(&info, bx, lw);
        let diff = changed(&info, &reference, &output);
        let finfo = info.format_info();
        if finfo.is_yuv() && info.n_components() >= 3 {
            // No colour fringes: a pixel whose chroma changed was drawn on, so its luma
            // changed too (red and black, the colours here, are far from grey's luma).
            let luma = changed_in(&info, &reference, &output, 0..1);
            let chroma = changed_in(&info, &reference, &output, 1..3);
            for (y, row) in chroma.iter().enumerate() {
                for (x, &c) in row.iter().enumerate() {
                    assert!(!c || luma[y][x], "{format:?}: colour fringe at ({x}, {y})");
                }
            }
        }
        for (y, row) in diff.iter().enumerate() {
            for (x, &c) in row.iter().enumerate() {
                if inside(bx, x, y)
                    && !inside((bx.0 + lw, bx.1 + lw, bx.2 - 2 * lw, bx.3 - 2 * lw), x, y)
                {
                    assert!(c, "{format:?}: outline pixel ({x}, {y}) unchanged");
                }
                if c && !inside(band, x, y) {
                    assert!(
                        inside(grown, x, y) && !inside(inner, x, y),
                        "{format:?}: pixel ({x}, {y}) changed away from the outline"
                    );
                }
            }
        }
    }
}

#[test]
fn a_verdict_is_held_for_hold_seconds_of_pts_then_dropped() {
    let info = info(gst_video::VideoFormat::Rgba, 320, 240);
    let mut h = harness(&info, &[("hold", &0.5f64)], false);
    let bx = (100, 100, 50, 80);
    let top = (bx.0 + bx.2 / 2, bx.1);
    let mut seen = Vec::new();
    for n in 0..14u64 {
        let verdicts = if n == 3 {
            vec![verdict(1, Status::Verified, Some(7))]
        } else {
            vec![]
        };
        let out = h
            .push_and_pull(frame(&info, n * 100, &[("person", Some(7), bx)], &verdicts))
            .unwrap();
        seen.push(rgb(&out, 320, top.0, top.1));
    }
    for (n, c) in seen.iter().enumerate() {
        // Arrives at 300 ms, held while running time < 800 ms.
        let expected = if (3..8).contains(&n) {
            VERIFIED_COLOR
        } else {
            BOX_COLOR
        };
        assert!(
            near(*c, expected),
            "frame {n} ({} ms): {c:?}, expected {expected:?}",
            n * 100
        );
    }
}

#[test]
fn buffers_without_timestamps_count_their_durations_and_a_flush_ends_holds() {
    let info = info(gst_video::VideoFormat::Rgba, 320, 240);
    let mut h = harness(&info, &[("hold", &0.25f64)], false);
    let bx = (100, 100, 50, 80);
    let top = |b: &gst::Buffer| rgb(b, 320, bx.0 + bx.2 / 2, bx.1);
    let push = |h: &mut gst_check::Harness, verdicts: &[Verdict], pts: bool| {
        let mut b = frame(&info, 0, &[("person", Some(7), bx)], verdicts);
        if !pts {
            b.get_mut().unwrap().set_pts(gst::ClockTime::NONE);
        }
        h.push_and_pull(b).unwrap()
    };
    // 100 ms durations: the verdict at 0 ms holds at 100 and 200 ms, not at 300 ms.
    let first = push(&mut h, &[verdict(1, Status::Verified, Some(7))], true);
    assert!(near(top(&first), VERIFIED_COLOR));
    for n in 1..4 {
        let out = push(&mut h, &[], false);
        let expected = if n < 3 { VERIFIED_COLOR } else { BOX_COLOR };
        assert!(
            near(top(&out), expected),
            "untimed buffer {n}: {:?}",
            top(&out)
        );
    }

    let out = push(&mut h, &[verdict(2, Status::Rejected, Some(7))], true);
    assert!(near(top(&out), REJECTED_COLOR));
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    let segment = gst::FormattedSegment::<gst::ClockTime>::new();
    assert!(h.push_event(gst::event::Segment::new(&segment)));
    let out = push(&mut h, &[], true);
    assert!(near(top(&out), BOX_COLOR), "after a flush: {:?}", top(&out));
}

#[test]
fn a_frame_with_nothing_to_show_is_untouched_and_stats_are_drawn_at_the_top_left() {
    let info = info(gst_video::VideoFormat::Rgba, 320, 240);
    let mut h = harness(&info, &[], false);
    let input = frame(&info, 0, &[], &[]);
    let reference = input.copy_deep().unwrap();
    let out = h.push_and_pull(input).unwrap();
    assert!(
        changed(&info, &reference, &out)
            .iter()
            .flatten()
            .all(|c| !c)
    );

    let mut h = harness(&info, &[("show-stats", &true)], false);
    let input = frame(&info, 0, &[], &[verdict(1, Status::Rejected, Some(4))]);
    let reference = input.copy_deep().unwrap();
    let out = h.push_and_pull(input).unwrap();
    let diff = changed(&info, &reference, &out);
    assert!(diff[2][2], "the stats line starts at the top-left corner");
    assert!(
        diff[120..].iter().flatten().all(|c| !c),
        "one line of text, at the top only"
    );
    // The verdict's object is not in the frame, so no box: the changes are the line's.
    assert!(
        diff.iter().flatten().filter(|c| **c).count() > 1000,
        "a whole line of stats"
    );
}

#[test]
fn a_verdict_follows_its_object_by_id_as_the_box_moves() {
    let info = info(gst_video::VideoFormat::Rgba, 320, 240);
    let mut h = harness(&info, &[("hold", &10.0f64)], false);
    let other = (250, 150, 40, 60);
    for n in 0..8u32 {
        let moving = (20 + n * 25, 120, 40, 60);
        let verdicts = if n == 0 {
            vec![verdict(1, Status::Rejected, Some(7))]
        } else {
            vec![]
        };
        let out = h
            .push_and_pull(frame(
                &info,
                n as u64 * 100,
                &[("person", Some(7), moving), ("person", Some(8), other)],
                &verdicts,
            ))
            .unwrap();
        let at = |r: (u32, u32, u32, u32)| rgb(&out, 320, r.0 + r.2 / 2, r.1 + r.3 - 1);
        assert!(
            near(at(moving), REJECTED_COLOR),
            "frame {n}: moving box {:?}",
            at(moving)
        );
        assert!(
            near(at(other), BOX_COLOR),
            "frame {n}: other box {:?}",
            at(other)
        );
        if n > 1 {
            // Where the box was two frames ago is background again.
            let old = (20 + (n - 2) * 25, 120, 40, 60);
            assert_eq!(
                rgb(&out, 320, old.0 + 1, old.1 + old.3 - 1),
                [0x80; 3],
                "frame {n}"
            );
        }
    }
}

#[test]
fn untracked_verdicts_colour_the_boxes_inside_their_crop() {
    let info = info(gst_video::VideoFormat::Rgba, 320, 240);
    let mut h = harness(&info, &[], false);
    let mut v = verdict(1, Status::Verified, None);
    v.crop = Some(PixelRect {
        x: 40,
        y: 80,
        width: 120,
        height: 120,
    });
    let a = (60, 100, 40, 60);
    let b = (220, 100, 40, 60);
    let out = h
        .push_and_pull(frame(
            &info,
            0,
            &[("person", None, a), ("person", None, b)],
            &[v],
        ))
        .unwrap();
    let bottom = |r: (u32, u32, u32, u32)| rgb(&out, 320, r.0 + r.2 / 2, r.1 + r.3 - 1);
    assert!(near(bottom(a), VERIFIED_COLOR), "{:?}", bottom(a));
    assert!(near(bottom(b), BOX_COLOR), "{:?}", bottom(b));
}

#[test]
fn metas_pass_through_and_no_buffer_is_held() {
    let info = info(gst_video::VideoFormat::I420, 320, 240);
    let mut h = harness(&info, &[], false);
    let v = verdict(5, Status::Rejected, Some(3));
    for n in 0..5u64 {
        let mut input = frame(
            &info,
            n * 100,
            &[
                ("person", Some(3), (10, 20, 30, 40)),
                ("car", None, (100, 100, 20, 20)),
            ],
            std::slice::from_ref(&v),
        );
        gst::ReferenceTimestampMeta::add(
            input.get_mut().unwrap(),
            &gst::Caps::new_empty_simple("timestamp/x-test"),
            gst::ClockTime::from_seconds(n),
            None,
        );
        h.push(input).unwrap();
        // Pushed on at once, before the next buffer arrives.
        assert_eq!(h.buffers_in_queue(), 1, "buffer {n} not pushed on at once");
        let out = h.pull().unwrap();
        // The harness's reference is the only one: the element kept none.
        assert!(
            out.is_writable(),
            "buffer {n} is still referenced elsewhere"
        );
        let rois: Vec<_> = out
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .map(|m| (m.roi_type().to_string(), m.rect()))
            .collect();
        assert_eq!(
            rois,
            vec![
                ("person".to_string(), (10, 20, 30, 40)),
                ("car".to_string(), (100, 100, 20, 20))
            ]
        );
        assert_eq!(meta::read_all(&out), vec![v.clone()]);
        let ts = out.meta::<gst::ReferenceTimestampMeta>().unwrap();
        assert_eq!(ts.timestamp(), gst::ClockTime::from_seconds(n));
        assert!(
            out.meta::<gst_video::VideoOverlayCompositionMeta>()
                .is_none()
        );
    }
}

#[test]
fn the_composition_is_attached_when_downstream_accepts_it_and_blended_otherwise() {
    let info = info(gst_video::VideoFormat::Nv12, 320, 240);
    let bx = (80, 100, 60, 60);
    let dets: [Det; 1] = [("person", Some(7), bx)];
    let verdicts = [verdict(1, Status::Verified, Some(7))];

    // Downstream renders the meta: the frame is untouched and carries the drawing.
    let mut h = harness(&info, &[], true);
    let input = frame(&info, 0, &dets, &verdicts);
    let reference = input.copy_deep().unwrap();
    let out = h.push_and_pull(input).unwrap();
    assert!(
        changed(&info, &reference, &out)
            .iter()
            .flatten()
            .all(|c| !c),
        "attached, yet pixels changed"
    );
    let m = out
        .meta::<gst_video::VideoOverlayCompositionMeta>()
        .expect("composition meta attached");
    let comp = m.overlay();
    assert_eq!(comp.n_rectangles(), 5, "four sides and a label");
    assert_eq!(
        comp.rectangle(0).unwrap().render_rectangle(),
        (80, 100, 60, 2)
    );

    // An upstream composition is extended, not replaced.
    let mut input = frame(&info, 100, &dets, &[]);
    {
        let mut px = gst::Buffer::from_mut_slice(vec![0xFFu8; 4 * 4 * 4]);
        gst_video::VideoMeta::add(
            px.get_mut().unwrap(),
            gst_video::VideoFrameFlags::empty(),
            gst_video::VideoFormat::Bgra,
            4,
            4,
        )
        .unwrap();
        let rect = gst_video::VideoOverlayRectangle::new_raw(
            &px,
            0,
            0,
            4,
            4,
            gst_video::VideoOverlayFormatFlags::empty(),
        );
        let upstream = gst_video::VideoOverlayComposition::new(std::iter::once(&rect)).unwrap();
        gst_video::VideoOverlayCompositionMeta::add(input.get_mut().unwrap(), &upstream);
    }
    let out = h.push_and_pull(input).unwrap();
    let metas = out
        .iter_meta::<gst_video::VideoOverlayCompositionMeta>()
        .count();
    assert_eq!(metas, 1);
    let comp = out
        .meta::<gst_video::VideoOverlayCompositionMeta>()
        .unwrap()
        .overlay_owned();
    assert_eq!(comp.n_rectangles(), 6, "upstream's rectangle plus ours");
    assert_eq!(comp.rectangle(0).unwrap().render_rectangle(), (0, 0, 4, 4));

    // Downstream does not: blended, no meta.
    let mut h = harness(&info, &[], false);
    let input = frame(&info, 0, &dets, &verdicts);
    let reference = input.copy_deep().unwrap();
    let out = h.push_and_pull(input).unwrap();
    assert!(
        out.meta::<gst_video::VideoOverlayCompositionMeta>()
            .is_none()
    );
    assert!(
        changed(&info, &reference, &out)
            .iter()
            .flatten()
            .any(|c| *c)
    );
}

#[test]
fn a_reconfigure_asks_downstream_again_and_new_caps_are_followed() {
    let info = info(gst_video::VideoFormat::Rgba, 320, 240);
    let dets: [Det; 1] = [("person", Some(7), (80, 100, 60, 60))];
    let mut h = harness(&info, &[], false);
    let out = h.push_and_pull(frame(&info, 0, &dets, &[])).unwrap();
    assert!(
        out.meta::<gst_video::VideoOverlayCompositionMeta>()
            .is_none()
    );

    // Downstream now renders the meta and says so with a reconfigure event.
    h.add_propose_allocation_meta(gst_video::VideoOverlayCompositionMeta::meta_api(), None);
    assert!(h.push_upstream_event(gst::event::Reconfigure::new()));
    let input = frame(&info, 100, &dets, &[]);
    let reference = input.copy_deep().unwrap();
    let out = h.push_and_pull(input).unwrap();
    assert!(
        out.meta::<gst_video::VideoOverlayCompositionMeta>()
            .is_some()
    );
    assert!(
        changed(&info, &reference, &out)
            .iter()
            .flatten()
            .all(|c| !c)
    );

    // New caps mid-stream: another format and size, still attached and placed in it.
    let small = self::info(gst_video::VideoFormat::I420, 160, 120);
    h.set_src_caps(small.to_caps().unwrap());
    let out = h
        .push_and_pull(frame(
            &small,
            200,
            &[("person", Some(7), (150, 110, 40, 40))],
            &[],
        ))
        .unwrap();
    let comp = out
        .meta::<gst_video::VideoOverlayCompositionMeta>()
        .unwrap()
        .overlay_owned();
    for r in comp.iter() {
        let (x, y, w, hgt) = r.render_rectangle();
        assert!(x >= 0 && y >= 0, "{x},{y}");
        assert!(
            x as u32 + w <= 160 && y as u32 + hgt <= 120,
            "{x},{y} {w}x{hgt} outside 160x120"
        );
    }
}

#[test]
fn a_missing_font_fails_the_start_naming_the_file() {
    init();
    let p = gst::parse::launch(
        "videotestsrc num-buffers=1 ! iguardoverlay font-file=/nonexistent/NoSuch.ttf ! fakesink",
    )
    .unwrap();
    let _stop = StopOnDrop(p.clone());
    assert!(p.set_state(gst::State::Playing).is_err());
    let bus = p.bus().unwrap();
    let text = error_text(&bus, Duration::from_secs(5));
    assert!(text.contains("/nonexistent/NoSuch.ttf"), "{text}");
    assert!(text.contains("fonts-dejavu-core"), "{text}");
}

#[test]
fn a_real_pipeline_draws_iguardverify_verdicts_on_the_objects_they_are_about() {
    with_watchdog(Duration::from_secs(120), || {
        init();
        let p = gst::parse::launch(&format!(
            "videotestsrc num-buffers=60 pattern=black \
             ! video/x-raw,width=320,height=240,format=RGBA,framerate=30/1 \
             ! iguardreplay location={}/tests/data/demo-detections.txt \
             ! iguardverify cooldown=0 temporal-size=4 \
             ! iguardoverlay hold=60 line-width=2 ! fakesink name=sink sync=false",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let _stop = StopOnDrop(p.clone().upcast());

        // For each frame showing the person (track 1): its top outline's colour, and the
        // verdict about it seen so far.
        type Seen = Vec<([u8; 3], Option<Verdict>)>;
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let verdicts: Arc<Mutex<Vec<Verdict>>> = Arc::default();
        let sink = p.by_name("sink").unwrap().static_pad("sink").unwrap();
        {
            let seen = seen.clone();
            let verdicts = verdicts.clone();
            sink.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                let Some(buf) = info.buffer() else {
                    return gst::PadProbeReturn::Ok;
                };
                let mut vs = verdicts.lock().unwrap();
                vs.extend(meta::read_all(buf));
                let about_person = vs.iter().rev().find(|v| v.object_id == Some(1)).cloned();
                for m in buf.iter_meta::<gst_video::VideoRegionOfInterestMeta>() {
                    let id = m
                        .param("detection")
                        .and_then(|s| s.get::<i32>("object_id").ok());
                    if id != Some(1) {
                        continue;
                    }
                    let (x, y, w, _) = m.rect();
                    let map = buf.map_readable().unwrap();
                    let i = ((y * 320 + x + w / 2) * 4) as usize;
                    seen.lock()
                        .unwrap()
                        .push(([map[i], map[i + 1], map[i + 2]], about_person.clone()));
                }
                gst::PadProbeReturn::Ok
            });
        }
        p.set_state(gst::State::Playing).unwrap();
        let bus = p.bus().unwrap();
        expect_eos(&bus, Duration::from_secs(60));

        let seen = seen.lock().unwrap();
        assert!(seen.len() > 20, "person on {} frames", seen.len());
        let before = seen.iter().filter(|(_, v)| v.is_none()).count();
        let after: Vec<_> = seen
            .iter()
            .filter_map(|(c, v)| Some((*c, v.clone()?)))
            .collect();
        assert!(before > 0, "frames before the first verdict");
        assert!(
            !after.is_empty(),
            "no verdict about the person reached the overlay"
        );
        for (c, _) in seen.iter().filter(|(_, v)| v.is_none()) {
            assert!(near(*c, BOX_COLOR), "before its verdict: {c:?}");
        }
        for (c, v) in &after {
            let expected = match v.status {
                Status::Verified => VERIFIED_COLOR,
                Status::Rejected => REJECTED_COLOR,
                Status::Fallback if v.is_positive() => VERIFIED_COLOR,
                Status::Fallback => REJECTED_COLOR,
                _ => [0xFF, 0xC0, 0x00],
            };
            assert!(near(*c, expected), "after {v:?}: {c:?}");
        }
    });
}

// ---- Pixel caching (issue 19, item 12): boxes that move reuse their pixels; the cache is
// bounded and least-recently-used; blended output equals the composition path's. ----

use gstiguard::detections::roi::detection_from_roi;
use gstiguard::iguardoverlay::held::Holds;
use gstiguard::iguardoverlay::layout::Alignment;
use gstiguard::iguardoverlay::scene::{self, Shape};
use gstiguard::iguardoverlay::text::{Argb, DEFAULT_FONT_FILE, Font};

/// Boxes `k` = 0..n on frame `t`: each moves and changes size by odd steps, as a tracker's
/// boxes do, so no two frames have a side of the same size.
fn moving_dets(t: u32, n: u32) -> Vec<Det> {
    (0..n)
        .map(|k| {
            let x = 10 + 70 * (k % 4) + 3 * t + k;
            let y = 30 + 100 * (k / 4) + 5 * t;
            ("person", Some(k as i32 + 1), (x, y, 41 + 3 * t, 51 + 5 * t))
        })
        .collect()
}

/// The addresses of the pixel buffers of `out`'s attached composition, in drawing order.
fn attached_pixels(out: &gst::Buffer) -> Vec<usize> {
    let comp = out
        .meta::<gst_video::VideoOverlayCompositionMeta>()
        .expect("composition meta attached")
        .overlay_owned();
    comp.iter()
        .map(|r| {
            r.pixels_unscaled_raw(gst_video::VideoOverlayFormatFlags::empty())
                .as_ptr() as usize
        })
        .collect()
}

#[test]
fn boxes_that_move_and_grow_reuse_the_pixels_of_earlier_frames() {
    let info = info(gst_video::VideoFormat::I420, 320, 240);
    let mut h = harness(&info, &[("hold", &60.0f64)], true);
    let verdicts = [
        verdict(1, Status::Verified, Some(1)),
        verdict(2, Status::Rejected, Some(2)),
    ];
    // Every output is kept, so no pixel buffer is freed and its address reused.
    let mut outs = Vec::new();
    // The first two frames see each label at both chroma alignments (boxes move by odd
    // steps, and I420 rounds a label out to even columns and rows): two renders per label.
    let mut first = std::collections::HashSet::new();
    for t in 0..6u32 {
        let vs: &[Verdict] = if t == 0 { &verdicts } else { &[] };
        let out = h
            .push_and_pull(frame(&info, t as u64 * 100, &moving_dets(t, 3), vs))
            .unwrap();
        let pixels = attached_pixels(&out);
        assert_eq!(
            pixels.len(),
            3 * 5,
            "frame {t}: four sides and a label a box"
        );
        if t < 2 {
            first.extend(pixels);
        } else {
            let fresh: Vec<_> = pixels.iter().filter(|p| !first.contains(p)).collect();
            assert!(
                fresh.is_empty(),
                "frame {t}: {} of {} rectangles got new pixels although only positions and \
                 sizes changed",
                fresh.len(),
                pixels.len()
            );
        }
        outs.push(out);
    }
}

#[test]
fn a_label_in_use_stays_cached_while_hundreds_of_others_come_and_go() {
    let info = info(gst_video::VideoFormat::Rgba, 320, 240);
    let mut h = harness(&info, &[], true);
    let mut outs = Vec::new();
    let label_of = |out: &gst::Buffer, i: usize| attached_pixels(out)[i];
    // Object 1 is on every frame; each frame also brings a new object (a new label).
    let dets = |n: i32| -> Vec<Det> {
        vec![
            ("person", Some(1), (20, 40, 40, 60)),
            ("person", Some(1000 + n), (150, 100, 40, 60)),
        ]
    };
    let out = h.push_and_pull(frame(&info, 0, &dets(0), &[])).unwrap();
    // Rectangles: box 1's four sides and label (index 4), then box 2's.
    let (kept, early) = (label_of(&out, 4), label_of(&out, 9));
    outs.push(out);
    for n in 1..700 {
        let out = h
            .push_and_pull(frame(&info, n as u64 * 100, &dets(n), &[]))
            .unwrap();
        assert_eq!(
            label_of(&out, 4),
            kept,
            "frame {n}: the label drawn on every frame was rendered again"
        );
        outs.push(out);
    }
    // The label of a box seen once, 700 labels ago, was let go: the cache is bounded.
    let out = h
        .push_and_pull(frame(&info, 70_000, &dets(0), &[]))
        .unwrap();
    assert_eq!(label_of(&out, 4), kept);
    assert_ne!(
        label_of(&out, 9),
        early,
        "a label unused for 700 frames is still held"
    );
}

/// The composition the element made before its pixels were cached by label and colour: every
/// shape an overlay rectangle of its own size (sides in their colour, labels rendered by the
/// font); `None` when there is nothing to draw.
fn old_composition(
    info: &gst_video::VideoInfo,
    input: &gst::Buffer,
    holds: &Holds,
    font: &Font,
    font_px: f32,
    line_width: u32,
    pending: Argb,
) -> Option<gst_video::VideoOverlayComposition> {
    let detections: Vec<_> = input
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .map(|m| detection_from_roi(&m))
        .collect();
    let finfo = info.format_info();
    let sub = |s: &[u32]| 1u32 << s.iter().copied().max().unwrap_or(0).min(4);
    let style = scene::Style {
        line_width,
        colours: scene::Colours {
            pending,
            verified: Argb(0xFFFF_2020),
            rejected: Argb(0xFF20_D020),
            unscored: Argb(0xFFFF_C000),
            text: Argb(0xFF00_0000),
        },
        show_stats: false,
    };
    let measure = |text: &str| font.measure(text, font_px);
    let shapes = scene::Frame {
        width: info.width(),
        height: info.height(),
        align: Alignment {
            x: sub(finfo.w_sub()),
            y: sub(finfo.h_sub()),
        },
        style: &style,
        measure: &measure,
    }
    .layout(&detections, holds);
    let rects: Vec<_> = shapes
        .into_iter()
        .map(|shape| {
            let r = shape.rect();
            let bgra = match &shape {
                Shape::Fill { colour, .. } => {
                    colour.bgra().repeat(r.width as usize * r.height as usize)
                }
                Shape::Label { text, fg, bg, .. } => {
                    font.render(text, font_px, *fg, *bg, r.width, r.height)
                }
                Shape::Stroke { .. } => unreachable!("no zones here"),
            };
            let mut px = gst::Buffer::from_mut_slice(bgra);
            gst_video::VideoMeta::add(
                px.get_mut().unwrap(),
                gst_video::VideoFrameFlags::empty(),
                gst_video::VideoFormat::Bgra,
                r.width,
                r.height,
            )
            .unwrap();
            gst_video::VideoOverlayRectangle::new_raw(
                &px,
                r.x as i32,
                r.y as i32,
                r.width,
                r.height,
                gst_video::VideoOverlayFormatFlags::empty(),
            )
        })
        .collect();
    (!rects.is_empty()).then(|| gst_video::VideoOverlayComposition::new(rects.iter()).unwrap())
}

/// What the element drew before: [`old_composition`] blended by the old blender, through
/// GStreamer's colour conversion.
fn composition_path(
    info: &gst_video::VideoInfo,
    input: &gst::Buffer,
    holds: &Holds,
    font: &Font,
    font_px: f32,
    line_width: u32,
    pending: Argb,
) -> gst::Buffer {
    let mut out = input.copy_deep().unwrap();
    if let Some(comp) = old_composition(info, input, holds, font, font_px, line_width, pending) {
        let mut f =
            gst_video::VideoFrameRef::from_buffer_ref_writable(out.get_mut().unwrap(), info)
                .unwrap();
        old_blender::blend(&comp, &mut f).unwrap();
    }
    out
}

/// The set-up the path comparisons share: the overlay at `format` (hold 60 s, 3-pixel lines,
/// 13-pixel labels, pending boxes half transparent, verified and rejected ones opaque), the
/// font, and the holds a reference drawing needs.
struct Comparison {
    font: Font,
    font_px: f32,
    lw: u32,
    pending: Argb,
    info: gst_video::VideoInfo,
    h: gst_check::Harness,
    holds: Holds,
}

impl Comparison {
    fn new(format: gst_video::VideoFormat, accept_meta: bool) -> Comparison {
        let font =
            Font::load(std::path::Path::new(DEFAULT_FONT_FILE)).unwrap_or_else(|e| panic!("{e}"));
        let (font_px, lw, pending) = (13.0f32, 3u32, Argb(0x80FF_8000));
        let info = info(format, 320, 240);
        let h = harness(
            &info,
            &[
                ("hold", &60.0f64),
                ("line-width", &lw),
                ("font-size", &(font_px as f64)),
                ("box-color", &pending.0),
            ],
            accept_meta,
        );
        Comparison {
            font,
            font_px,
            lw,
            pending,
            info,
            h,
            holds: Holds::default(),
        }
    }

    /// Frame `t` with `n` moving boxes (a verified and a rejected verdict on frame 0), and the
    /// holds brought to its time.
    fn input(&mut self, t: u32, n: u32) -> gst::Buffer {
        let verdicts = [
            verdict(1, Status::Verified, Some(1)),
            verdict(2, Status::Rejected, Some(2)),
        ];
        let vs: &[Verdict] = if t == 0 { &verdicts } else { &[] };
        let input = frame(&self.info, t as u64 * 100, &moving_dets(t, n), vs);
        let now = t as u64 * 100_000_000;
        self.holds.observe(now, &meta::read_all(&input));
        self.holds.expire(now, 60_000_000_000);
        input
    }
}

#[test]
fn blended_frames_equal_the_composition_path_sample_for_sample_in_every_format() {
    if cfg!(target_endian = "big") {
        return; // the reference builds BGRA pixels, the composition's layout on little-endian
    }
    for format in template_formats() {
        let mut c = Comparison::new(format, false);
        for t in 0..4u32 {
            let input = c.input(t, 5);
            let reference = composition_path(
                &c.info, &input, &c.holds, &c.font, c.font_px, c.lw, c.pending,
            );
            let out = c.h.push_and_pull(input).unwrap();
            let (a, b) = (
                out.map_readable().unwrap(),
                reference.map_readable().unwrap(),
            );
            let diff = a.iter().zip(b.iter()).filter(|(x, y)| x != y).count();
            assert_eq!(
                diff, 0,
                "{format:?} frame {t}: {diff} bytes differ from the composition path"
            );
        }
    }
}

#[test]
fn an_attached_composition_renders_as_the_exact_size_rectangles_did() {
    // A renderer downstream draws the attached rectangles, scaling each side's one pixel of
    // colour to the side: GStreamer's own blender stands in for it, on what the element
    // attaches now and on the exact-size rectangles it attached before.
    for format in [gst_video::VideoFormat::Rgba, gst_video::VideoFormat::I420] {
        let mut c = Comparison::new(format, true);
        let (info, pending) = (c.info.clone(), c.pending);
        for t in 0..3u32 {
            let input = c.input(t, 4);
            let before =
                old_composition(&info, &input, &c.holds, &c.font, c.font_px, c.lw, pending)
                    .expect("shapes to draw");
            let mut theirs = input.copy_deep().unwrap();
            let mut ours = c.h.push_and_pull(input).unwrap();
            let now_attached = ours
                .meta::<gst_video::VideoOverlayCompositionMeta>()
                .expect("attached")
                .overlay_owned();
            assert_eq!(now_attached.n_rectangles(), before.n_rectangles());
            for (comp, buf) in [(&now_attached, &mut ours), (&before, &mut theirs)] {
                let mut f =
                    gst_video::VideoFrameRef::from_buffer_ref_writable(buf.make_mut(), &info)
                        .unwrap();
                comp.blend(&mut f).unwrap();
            }
            let (a, b) = (ours.map_readable().unwrap(), theirs.map_readable().unwrap());
            let diff = a.iter().zip(b.iter()).filter(|(x, y)| x != y).count();
            assert_eq!(diff, 0, "{format:?} frame {t}: {diff} bytes differ");
        }
    }
}

/// The blender as it was before fills became solid colours and labels were cached converted
/// (`src/iguardoverlay/blend.rs` at main, errors as strings): the reference for the pixels
/// the element draws now.
mod old_blender {
    use gst_video::prelude::*;

    /// Byte positions in one overlay pixel of its alpha and of the frame's first three components
    /// (R, G, B for RGB frames; Y, U, V for YUV and gray frames).
    struct Layout {
        alpha: usize,
        colour: [usize; 3],
    }

    impl Layout {
        fn of(format: gst_video::VideoFormat) -> Option<Layout> {
            use gst_video::VideoFormat::*;
            Some(match format {
                Ayuv | Argb => Layout {
                    alpha: 0,
                    colour: [1, 2, 3],
                },
                Bgra => Layout {
                    alpha: 3,
                    colour: [2, 1, 0],
                },
                Rgba => Layout {
                    alpha: 3,
                    colour: [0, 1, 2],
                },
                _ => return None,
            })
        }

        fn channel(&self, frame: &gst_video::VideoFormatInfo, component: u32) -> usize {
            if frame.has_alpha() && component == 3 {
                self.alpha
            } else {
                self.colour[component.min(2) as usize]
            }
        }
    }

    /// Blends every rectangle of `composition` into `frame`.
    pub fn blend(
        composition: &gst_video::VideoOverlayCompositionRef,
        frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    ) -> Result<(), String> {
        let info = frame.info().clone();
        let finfo = info.format_info();
        if (0..info.n_components()).any(|c| finfo.depth()[c as usize] != 8) {
            return Err(info.format().to_str().to_string());
        }
        let yuv = !finfo.is_rgb();
        for rect in composition.iter() {
            let pixels = if yuv {
                rect.pixels_unscaled_ayuv(gst_video::VideoOverlayFormatFlags::empty())
            } else {
                rect.pixels_unscaled_argb(gst_video::VideoOverlayFormatFlags::empty())
            };
            let (rx, ry, rw, rh) = rect.render_rectangle();
            blend_pixels(&pixels, (rx, ry, rw, rh), frame, &info)?;
        }
        Ok(())
    }

    fn blend_pixels(
        pixels: &gst::BufferRef,
        (rx, ry, rw, rh): (i32, i32, u32, u32),
        frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
        info: &gst_video::VideoInfo,
    ) -> Result<(), String> {
        let meta = pixels
            .meta::<gst_video::VideoMeta>()
            .ok_or("no video meta")?;
        let (pw, ph) = (meta.width() as usize, meta.height() as usize);
        let pstride = meta.stride()[0] as usize;
        let poffset = meta.offset()[0];
        let layout = Layout::of(meta.format()).ok_or("overlay pixels")?;
        if pw != rw as usize || ph != rh as usize {
            // The element always renders pixels at their drawn size.
            return Err(format!("{pw}x{ph} pixels drawn at {rw}x{rh}"));
        }
        let map = pixels.map_readable().map_err(|e| e.to_string())?;
        let src = map
            .get(poffset..)
            .filter(|s| ph == 0 || s.len() >= (ph - 1) * pstride + pw * 4)
            .ok_or("short pixels")?;

        let finfo = info.format_info();
        let (fw, fh) = (info.width() as i64, info.height() as i64);
        // The drawn area inside the frame, in frame pixels.
        let x0 = (rx as i64).clamp(0, fw);
        let y0 = (ry as i64).clamp(0, fh);
        let x1 = (rx as i64 + rw as i64).clamp(0, fw);
        let y1 = (ry as i64 + rh as i64).clamp(0, fh);
        if x1 <= x0 || y1 <= y0 {
            return Ok(());
        }

        // Frames with alpha: colours are composited "over" the frame's own alpha, as GStreamer's
        // blender does; the old alpha is read before any component is written.
        let area_w = (x1 - x0) as usize;
        let dest_alpha: Option<Vec<u8>> = if finfo.has_alpha() && info.n_components() == 4 {
            let stride = info.stride()[finfo.plane()[3] as usize] as usize;
            let pstride = info.comp_pstride(3) as usize;
            let data = frame.comp_data(3).map_err(|e| e.to_string())?;
            let mut v = Vec::with_capacity(area_w * (y1 - y0) as usize);
            for y in y0..y1 {
                for x in x0..x1 {
                    v.push(data[y as usize * stride + x as usize * pstride]);
                }
            }
            Some(v)
        } else {
            None
        };

        for c in 0..info.n_components() {
            let cu = c as u8;
            let (wsub, hsub) = (finfo.w_sub()[c as usize], finfo.h_sub()[c as usize]);
            let comp_stride = info.stride()[finfo.plane()[c as usize] as usize] as usize;
            let comp_pstride = info.comp_pstride(cu) as usize;
            let (cw, ch) = (info.comp_width(cu) as i64, info.comp_height(cu) as i64);
            let ch_src = layout.channel(&finfo, c);
            let is_alpha = finfo.has_alpha() && c == 3;
            let data = frame.comp_data_mut(c).map_err(|e| e.to_string())?;

            // Samples touched: those whose pixels overlap the drawn area.
            let cx0 = x0 >> wsub;
            let cy0 = y0 >> hsub;
            let cx1 = ((x1 + (1 << wsub) - 1) >> wsub).min(cw);
            let cy1 = ((y1 + (1 << hsub) - 1) >> hsub).min(ch);
            for cy in cy0..cy1 {
                let py0 = (cy << hsub).max(y0);
                let py1 = ((cy + 1) << hsub).min(y1);
                for cx in cx0..cx1 {
                    let px0 = (cx << wsub).max(x0);
                    let px1 = ((cx + 1) << wsub).min(x1);
                    // Alpha-weighted mean of the covered overlay pixels, and their mean alpha,
                    // over the sample's whole footprint (uncovered pixels count as transparent).
                    let footprint = (1u32 << wsub) * (1u32 << hsub);
                    let (mut sum_a, mut sum_av) = (0u32, 0u32);
                    for py in py0..py1 {
                        let row = (py - ry as i64) as usize * pstride;
                        for px in px0..px1 {
                            let i = row + (px - rx as i64) as usize * 4;
                            let a = src[i + layout.alpha] as u32;
                            sum_a += a;
                            sum_av += a * src[i + ch_src] as u32;
                        }
                    }
                    if sum_a == 0 {
                        continue;
                    }
                    let a = sum_a / footprint;
                    let i = cy as usize * comp_stride + cx as usize * comp_pstride;
                    let d = data[i] as u32;
                    let da = dest_alpha.as_ref().map_or(255, |v| {
                        v[(py0 - y0) as usize * area_w + (px0 - x0) as usize] as u32
                    });
                    data[i] = if is_alpha {
                        (a + (da * (255 - a) + 127) / 255).min(255) as u8
                    } else {
                        let v = sum_av / sum_a;
                        // Over: (v·a + d·da·(1 − a)) / (a + da·(1 − a)), in 1/255 steps.
                        let out_a = a * 255 + da * (255 - a);
                        // Fully transparent on both sides: nothing to show, write 0.
                        (v * a * 255 + d * da * (255 - a) + out_a / 2)
                            .checked_div(out_a)
                            .map_or(0, |x| x.min(255) as u8)
                    };
                }
            }
        }
        Ok(())
    }
}
