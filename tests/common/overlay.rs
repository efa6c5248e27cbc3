// SPDX-License-Identifier: MIT OR Apache-2.0
//! Set-ups shared by the `iguardoverlay` tests: a frame with detections and verdicts, and the
//! element in a harness.

use gst::prelude::*;
use gstiguard::meta;
use gstiguard::verdict::Verdict;

use super::init;

/// A detection: label, object id, box.
pub type Det = (&'static str, Option<i32>, (u32, u32, u32, u32));

/// Video info of `format` at `width`×`height`, 10 fps.
pub fn info(format: gst_video::VideoFormat, width: u32, height: u32) -> gst_video::VideoInfo {
    init();
    gst_video::VideoInfo::builder(format, width, height)
        .fps(gst::Fraction::new(10, 1))
        .build()
        .unwrap()
}

/// A uniform frame (every byte 0x80: mid grey in RGB and YUV alike) at `pts_ms`, 100 ms long,
/// with detections (as ROI metas, the id in the `detection` param) and verdicts.
pub fn frame(
    info: &gst_video::VideoInfo,
    pts_ms: u64,
    dets: &[Det],
    verdicts: &[Verdict],
) -> gst::Buffer {
    let mut buf = gst::Buffer::with_size(info.size()).unwrap();
    {
        let b = buf.get_mut().unwrap();
        b.map_writable().unwrap().fill(0x80);
        b.set_pts(gst::ClockTime::from_mseconds(pts_ms));
        b.set_duration(gst::ClockTime::from_mseconds(100));
        for (label, id, rect) in dets {
            let mut m = gst_video::VideoRegionOfInterestMeta::add(b, label, *rect);
            let mut s = gst::Structure::builder("detection").field("confidence", 0.9f64);
            if let Some(id) = id {
                s = s.field("object_id", *id);
            }
            m.add_param(s.build());
        }
        for v in verdicts {
            meta::add(b, v).unwrap();
        }
    }
    buf
}

/// An `iguardoverlay` set by `props` in a harness fed `info`'s caps; with `accept_meta`,
/// downstream accepts overlay composition metas (so the element attaches, not blends).
pub fn harness(
    info: &gst_video::VideoInfo,
    props: &[(&str, &dyn ToValue)],
    accept_meta: bool,
) -> gst_check::Harness {
    init();
    let mut builder = gst::ElementFactory::make("iguardoverlay");
    for (k, v) in props {
        builder = builder.property(k, v.to_value());
    }
    let e = builder.build().unwrap();
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    if accept_meta {
        h.add_propose_allocation_meta(gst_video::VideoOverlayCompositionMeta::meta_api(), None);
    }
    h.set_src_caps(info.to_caps().unwrap());
    h
}
