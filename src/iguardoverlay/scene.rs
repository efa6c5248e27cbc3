// SPDX-License-Identifier: MIT OR Apache-2.0
//! What `iguardoverlay` draws on one frame, as plain shapes in frame pixels: each detection's
//! outline and label, the verdicts held on the objects they are about, and the stats lines.
//! Nothing here touches GStreamer objects; `imp.rs` turns the shapes into overlay rectangles.
//! The verdicts it draws are held in `held.rs`; the geometry (outlines, label places,
//! alignment) is `layout.rs`'s.
//!
//! A verdict is held from the running time of the buffer that carried it for `hold`
//! nanoseconds. It is drawn on the detection with the same object id (so it follows the object
//! as its box moves), or, for verdicts without an object id (`clip-per=source`, untracked
//! detections), on the detections whose centre lies inside the verdict's crop. An untracked
//! verdict that no detection matches is drawn on its crop; one without a crop is a line at the
//! top left.

use super::held::{Held, Holds};
use super::incidents::Incidents;
use super::layout::{Alignment, align, outline, place_label};
use super::text::Argb;
use crate::detections::Detection;
use crate::geometry::{Bounds, PixelRect};
use crate::verdict::Status;

/// Colours by what is known about a box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Colours {
    /// A detection no held verdict is about yet.
    pub pending: Argb,
    /// `verified`, and `fallback` at or above its threshold: a confirmed alarm.
    pub verified: Argb,
    /// `rejected`, and `fallback` below its threshold: a false alarm removed.
    pub rejected: Argb,
    /// `timeout`, `dropped`, `error`: the clip was never scored.
    pub unscored: Argb,
    /// Label text, drawn on a box of the outline's colour.
    pub text: Argb,
}

/// How shapes are drawn; copied out of the element's settings for each frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Style {
    pub line_width: u32,
    pub colours: Colours,
    pub show_stats: bool,
}

/// One thing to draw.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// A solid rectangle (one side of an outline).
    Fill { rect: PixelRect, colour: Argb },
    /// Text on a background box filling `rect`; text that does not fit is cut.
    Label {
        rect: PixelRect,
        text: String,
        fg: Argb,
        bg: Argb,
    },
    /// A straight line `width` pixels thick from `from` to `to` (frame pixels), drawn in the
    /// pixels of `rect`, which holds it (a piece of a zone's edge).
    Stroke {
        rect: PixelRect,
        from: (f32, f32),
        to: (f32, f32),
        width: f32,
        colour: Argb,
    },
}

impl Shape {
    pub fn rect(&self) -> PixelRect {
        match self {
            Shape::Fill { rect, .. } | Shape::Label { rect, .. } | Shape::Stroke { rect, .. } => {
                *rect
            }
        }
    }
}

impl Held {
    /// The colour of a held verdict: verified, rejected, or never scored.
    pub fn colour(&self, c: &Colours) -> Argb {
        match self.status {
            Status::Verified => c.verified,
            Status::Rejected => c.rejected,
            Status::Fallback if self.positive => c.verified,
            Status::Fallback => c.rejected,
            Status::Timeout | Status::Dropped | Status::Error => c.unscored,
        }
    }
}

/// Everything the overlay draws on one frame.
pub struct Frame<'a> {
    pub width: u32,
    pub height: u32,
    pub align: Alignment,
    pub style: &'a Style,
    /// The label box size of a text (the font's measure at the element's font size).
    pub measure: &'a dyn Fn(&str) -> (u32, u32),
}

impl Frame<'_> {
    fn push_box(&self, out: &mut Vec<Shape>, rect: PixelRect, colour: Argb, text: String) {
        for side in outline(rect, self.style.line_width) {
            let side = align(side, self.align, self.width, self.height);
            if side.width > 0 && side.height > 0 {
                out.push(Shape::Fill { rect: side, colour });
            }
        }
        self.push_label(out, rect, colour, text);
    }

    fn push_label(&self, out: &mut Vec<Shape>, anchor: PixelRect, bg: Argb, text: String) {
        let size = (self.measure)(&text);
        let Some(rect) = place_label(anchor, size, self.width, self.height) else {
            return;
        };
        let rect = align(rect, self.align, self.width, self.height);
        if rect.width == 0 || rect.height == 0 {
            return;
        }
        out.push(Shape::Label {
            rect,
            text,
            fg: self.style.colours.text,
            bg,
        });
    }

    /// The shapes for `detections` with the verdicts in `holds`.
    pub fn layout(&self, detections: &[Detection], holds: &Holds) -> Vec<Shape> {
        self.layout_with(detections, holds, &Incidents::default())
    }

    /// The shapes for `detections` with the verdicts in `holds` and the incidents in
    /// `incidents`: an object's incident names its state on the object's label (`person #7:
    /// incident 12 ALERT 0.93`) and colours its box; incidents without an object are lines at
    /// the top left.
    pub fn layout_with(
        &self,
        detections: &[Detection],
        holds: &Holds,
        incidents: &Incidents,
    ) -> Vec<Shape> {
        let colours = &self.style.colours;
        let mut out = Vec::new();
        let mut used_untracked = Vec::new();
        let present: Vec<u64> = detections.iter().filter_map(|d| d.object_id).collect();
        for d in detections {
            let Some(rect) = Bounds::of(&d.rect).to_pixels(self.width, self.height) else {
                continue;
            };
            let held = match d.object_id {
                Some(id) => holds.tracked(id),
                None => holds
                    .untracked_over(&rect)
                    .or_else(|| holds.orphan_over(&rect, &present)),
            };
            let incident = match d.object_id {
                Some(id) => incidents.on_object(id),
                None => incidents.orphan_over(&rect, &present),
            };
            let mut text = d.label.clone();
            if let Some(id) = d.object_id {
                text.push_str(&format!(" #{id}"));
            }
            let mut colour = match held {
                Some(h) => {
                    if h.object_id.is_none() {
                        used_untracked.push(h.request_id);
                    }
                    h.colour(colours)
                }
                None => colours.pending,
            };
            // What a person acts on first: the incident's state, else the latest verdict.
            if let Some(i) = incident {
                text.push_str(": ");
                text.push_str(&i.text());
                colour = i.colour(colours, colour);
            } else if let Some(h) = held {
                text.push_str(": ");
                text.push_str(&h.text());
            }
            self.push_box(&mut out, rect, colour, text);
        }

        // Untracked verdicts that no detection shows: on their crop, or as a line.
        let mut lines = Vec::new();
        for h in holds.untracked() {
            if used_untracked.contains(&h.request_id) {
                continue;
            }
            match h.crop {
                Some(crop) => {
                    self.push_box(&mut out, crop, h.colour(colours), h.text());
                }
                None => lines.push((
                    format!("source {}: {}", h.source_id, h.text()),
                    h.colour(colours),
                )),
            }
        }
        for i in incidents.per_source() {
            lines.push((
                format!("source {}: {}", i.source_id, i.text()),
                i.colour(colours, colours.pending),
            ));
        }
        if self.style.show_stats {
            for (source, s) in holds.stats() {
                lines.push((
                    format!(
                        "source {source}: {} verdicts, {} verified, {} rejected, {} unscored",
                        s.verdicts, s.verified, s.rejected, s.unscored
                    ),
                    colours.pending,
                ));
            }
        }
        // Stacked from the top-left corner, as far as the frame goes.
        let mut y = 0;
        for (text, bg) in lines {
            if y >= self.height {
                break;
            }
            let (w, h) = (self.measure)(&text);
            let rect = PixelRect {
                x: 0,
                y,
                width: w.min(self.width),
                height: h.min(self.height - y),
            };
            let rect = align(rect, self.align, self.width, self.height);
            if rect.width == 0 || rect.height == 0 {
                break;
            }
            y = rect.y + rect.height;
            out.push(Shape::Label {
                rect,
                text,
                fg: colours.text,
                bg,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Rect;
    use crate::iguardoverlay::held::{MAX_TRACKED, MAX_UNTRACKED, SourceStats};
    use crate::verdict::Verdict;

    const S: u64 = 1_000_000_000;

    fn verdict(request_id: u64, status: Status, object_id: Option<u64>) -> Verdict {
        Verdict {
            request_id,
            source_id: 0,
            pad_index: 0,
            status,
            score: match status {
                Status::Verified | Status::Fallback => 0.9,
                Status::Rejected => 0.1,
                _ => f64::NAN,
            },
            threshold: 0.5,
            label: "person".into(),
            trigger_label: "person".into(),
            trigger_confidence: 0.8,
            clip_start_pts: None,
            clip_end_pts: None,
            frames: 16,
            queue_ms: 0.0,
            processing_ms: 0.0,
            scorer: "onnx".into(),
            reason: String::new(),
            object_id,
            crop: None,
            snapshot: None,
            zones: Vec::new(),
        }
    }

    fn det(label: &str, id: Option<u64>, x: f32, y: f32, w: f32, h: f32) -> Detection {
        Detection {
            class_id: 0,
            label: label.into(),
            confidence: 0.9,
            rect: Rect {
                x,
                y,
                width: w,
                height: h,
            },
            object_id: id,
        }
    }

    fn style() -> Style {
        Style {
            line_width: 2,
            colours: Colours {
                pending: Argb(0xFF0000FF),
                verified: Argb(0xFFFF0000),
                rejected: Argb(0xFF00FF00),
                unscored: Argb(0xFFFFFF00),
                text: Argb(0xFF000000),
            },
            show_stats: false,
        }
    }

    fn measure(text: &str) -> (u32, u32) {
        (text.len() as u32 * 6, 10)
    }

    fn frame<'a>(style: &'a Style, align: Alignment) -> Frame<'a> {
        Frame {
            width: 200,
            height: 100,
            align,
            style,
            measure: &measure,
        }
    }

    fn fills(shapes: &[Shape]) -> Vec<(PixelRect, Argb)> {
        shapes
            .iter()
            .filter_map(|s| match s {
                Shape::Fill { rect, colour } => Some((*rect, *colour)),
                _ => None,
            })
            .collect()
    }

    fn labels(shapes: &[Shape]) -> Vec<(PixelRect, String, Argb)> {
        shapes
            .iter()
            .filter_map(|s| match s {
                Shape::Label { rect, text, bg, .. } => Some((*rect, text.clone(), *bg)),
                _ => None,
            })
            .collect()
    }

    fn px(x: u32, y: u32, width: u32, height: u32) -> PixelRect {
        PixelRect {
            x,
            y,
            width,
            height,
        }
    }

    #[test]
    fn a_box_without_a_verdict_is_drawn_in_the_pending_colour_with_label_and_id() {
        let st = style();
        let shapes = frame(&st, Alignment::NONE).layout(
            &[det("person", Some(7), 20.0, 30.0, 40.0, 50.0)],
            &Holds::default(),
        );
        let f = fills(&shapes);
        assert_eq!(f.len(), 4);
        assert!(f.iter().all(|(_, c)| *c == st.colours.pending));
        let l = labels(&shapes);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].1, "person #7");
        assert_eq!(l[0].0, px(20, 20, 9 * 6, 10));
    }

    #[test]
    fn a_verdict_follows_its_object_by_id_and_not_others() {
        let st = style();
        let mut holds = Holds::default();
        holds.observe(S, &[verdict(1, Status::Verified, Some(7))]);
        for (i, x) in [20.0f32, 60.0, 100.0].into_iter().enumerate() {
            let now = S + i as u64 * S / 10;
            holds.expire(now, 3 * S);
            let shapes = frame(&st, Alignment::NONE).layout(
                &[
                    det("person", Some(7), x, 30.0, 30.0, 40.0),
                    det("person", Some(8), 150.0, 30.0, 30.0, 40.0),
                ],
                &holds,
            );
            let l = labels(&shapes);
            assert_eq!(l[0].1, "person #7: verified person 0.90");
            assert_eq!(l[0].2, st.colours.verified);
            assert_eq!(l[1].1, "person #8");
            assert_eq!(l[1].2, st.colours.pending);
            let f = fills(&shapes);
            assert_eq!(
                f[0].0,
                px(x as u32, 30, 30, 2),
                "the outline moved with the box"
            );
            assert!(f[..4].iter().all(|(_, c)| *c == st.colours.verified));
            assert!(f[4..].iter().all(|(_, c)| *c == st.colours.pending));
        }
    }

    #[test]
    fn an_incident_names_its_state_on_its_object_and_colours_it() {
        use crate::iguardoverlay::incidents::Incidents;
        use crate::incident::Incident;
        let st = style();
        let mut holds = Holds::default();
        holds.observe(S, &[verdict(1, Status::Rejected, Some(7))]);
        let mut incidents = Incidents::default();
        let mut i = Incident::open(12, 0, 0, Some(7), "person", None, 0);
        incidents.queue(i.clone());
        let mut per_source = Incident::open(3, 1, 0, None, "person", None, 0);
        per_source.state = crate::incident::State::Alert;
        incidents.queue(per_source);
        incidents.observe(S);
        let dets = [det("person", Some(7), 20.0, 30.0, 40.0, 50.0)];
        let l = labels(&frame(&st, Alignment::NONE).layout_with(&dets, &holds, &incidents));
        assert_eq!(l[0].1, "person #7: incident 12 pending");
        assert_eq!(
            l[0].2, st.colours.rejected,
            "pending: its latest verdict's colour"
        );
        assert_eq!(l[1].1, "source 1: incident 3 ALERT");
        assert_eq!(l[1].2, st.colours.verified);
        i.state = crate::incident::State::Alert;
        i.best_score = 0.93;
        incidents.queue(i);
        incidents.observe(2 * S);
        let shapes = frame(&st, Alignment::NONE).layout_with(&dets, &holds, &incidents);
        let l = labels(&shapes);
        assert_eq!(l[0].1, "person #7: incident 12 ALERT 0.93");
        assert_eq!(l[0].2, st.colours.verified);
        assert!(
            fills(&shapes)
                .iter()
                .all(|(_, c)| *c == st.colours.verified)
        );
    }

    #[test]
    fn a_verdict_is_held_for_hold_then_dropped() {
        let mut holds = Holds::default();
        holds.observe(2 * S, &[verdict(1, Status::Rejected, Some(3))]);
        holds.expire(2 * S, S);
        assert!(holds.tracked(3).is_some());
        holds.expire(2 * S + S - 1, S);
        assert!(holds.tracked(3).is_some());
        holds.expire(3 * S, S);
        assert!(holds.tracked(3).is_none());
        // hold = 0: only the buffer that carried it.
        holds.observe(5 * S, &[verdict(2, Status::Rejected, Some(3))]);
        holds.expire(5 * S, 0);
        assert!(holds.tracked(3).is_some());
        holds.expire(5 * S + 1, 0);
        assert!(holds.tracked(3).is_none());
        // Time going backwards (a new segment) ends a hold.
        holds.observe(5 * S, &[verdict(3, Status::Rejected, Some(4))]);
        holds.expire(S, 10 * S);
        assert_eq!(holds.held(), 0);
    }

    #[test]
    fn a_newer_verdict_on_an_object_replaces_the_older_and_copies_count_once() {
        let mut holds = Holds::default();
        holds.observe(S, &[verdict(1, Status::Rejected, Some(3))]);
        holds.observe(2 * S, &[verdict(2, Status::Verified, Some(3))]);
        holds.observe(2 * S, &[verdict(2, Status::Verified, Some(3))]);
        assert_eq!(holds.tracked(3).unwrap().status, Status::Verified);
        assert_eq!(holds.held(), 1);
        let s = holds.stats()[&0];
        assert_eq!(
            s,
            SourceStats {
                verdicts: 2,
                verified: 1,
                rejected: 1,
                unscored: 0
            }
        );
    }

    #[test]
    fn colours_and_text_by_status() {
        let c = style().colours;
        let mut h = Held::new(&verdict(1, Status::Fallback, None), 0);
        assert_eq!(h.colour(&c), c.verified);
        h.positive = false;
        assert_eq!(h.colour(&c), c.rejected);
        let d = Held::new(&verdict(2, Status::Dropped, None), 0);
        assert_eq!(d.colour(&c), c.unscored);
        assert_eq!(d.text(), "dropped");
        let mut r = Held::new(&verdict(3, Status::Rejected, None), 0);
        r.label.clear();
        assert_eq!(r.text(), "rejected 0.10");
    }

    #[test]
    fn untracked_verdicts_colour_the_boxes_inside_their_crop_else_their_crop() {
        let st = style();
        let mut holds = Holds::default();
        let mut v = verdict(9, Status::Verified, None);
        v.crop = Some(px(10, 10, 80, 80));
        holds.observe(S, &[v]);

        let shapes = frame(&st, Alignment::NONE).layout(
            &[
                det("person", None, 20.0, 20.0, 20.0, 40.0),
                det("person", None, 150.0, 20.0, 20.0, 40.0),
            ],
            &holds,
        );
        let l = labels(&shapes);
        assert_eq!(l.len(), 2, "{l:?}");
        assert_eq!(l[0].2, st.colours.verified);
        assert_eq!(l[1].2, st.colours.pending);

        // No detection inside: the crop itself carries the verdict.
        let shapes = frame(&st, Alignment::NONE).layout(&[], &holds);
        let f = fills(&shapes);
        assert_eq!(f[0].0, px(10, 10, 80, 2));
        assert_eq!(labels(&shapes)[0].1, "verified person 0.90");
    }

    #[test]
    fn a_verdict_whose_id_no_detection_carries_goes_on_the_box_in_its_crop() {
        // The element's built-in association numbered the object; the detections (from a
        // detector without a tracker) carry no ids.
        let st = style();
        let mut holds = Holds::default();
        let mut v = verdict(4, Status::Verified, Some(17));
        v.crop = Some(px(10, 10, 80, 80));
        holds.observe(S, &[v]);
        let shapes = frame(&st, Alignment::NONE).layout(
            &[
                det("person", None, 20.0, 20.0, 20.0, 40.0),
                det("person", None, 150.0, 20.0, 20.0, 40.0),
                det("person", Some(3), 30.0, 30.0, 20.0, 20.0),
            ],
            &holds,
        );
        let l = labels(&shapes);
        assert_eq!(l.len(), 3, "{l:?}");
        assert_eq!(l[0].2, st.colours.verified, "{l:?}");
        assert_eq!(l[1].2, st.colours.pending, "outside the crop");
        assert_eq!(l[2].2, st.colours.pending, "another object's own id");
        // When a detection does carry id 17, only that one gets it.
        let shapes = frame(&st, Alignment::NONE).layout(
            &[
                det("person", None, 20.0, 20.0, 20.0, 40.0),
                det("person", Some(17), 150.0, 20.0, 20.0, 40.0),
            ],
            &holds,
        );
        let l = labels(&shapes);
        assert_eq!((l[0].2, l[1].2), (st.colours.pending, st.colours.verified));
    }

    #[test]
    fn a_verdict_without_object_or_crop_and_the_stats_are_lines_at_the_top_left() {
        let mut st = style();
        st.show_stats = true;
        let mut holds = Holds::default();
        holds.observe(S, &[verdict(1, Status::Timeout, None)]);
        let shapes = frame(&st, Alignment { x: 2, y: 2 }).layout(&[], &holds);
        let l = labels(&shapes);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].1, "source 0: timeout");
        assert_eq!(l[0].0.y, 0);
        assert_eq!(l[0].2, st.colours.unscored);
        assert!(l[1].1.starts_with("source 0: 1 verdicts"), "{}", l[1].1);
        assert_eq!(l[1].0.y, l[0].0.height);
    }

    #[test]
    fn shapes_are_aligned_for_subsampled_formats() {
        let st = style();
        let a = Alignment { x: 2, y: 2 };
        let shapes = frame(&st, a).layout(
            &[det("person", Some(1), 21.0, 31.0, 41.0, 51.0)],
            &Holds::default(),
        );
        assert!(!shapes.is_empty());
        for s in &shapes {
            let r = s.rect();
            assert_eq!(r.x % 2, 0, "{s:?}");
            assert_eq!(r.y % 2, 0, "{s:?}");
            assert_eq!(r.width % 2, 0, "{s:?}");
            assert_eq!(r.height % 2, 0, "{s:?}");
        }
    }

    #[test]
    fn boxes_outside_the_frame_are_skipped_and_holds_stay_bounded() {
        let st = style();
        let shapes = frame(&st, Alignment::NONE).layout(
            &[
                det("person", None, 500.0, 500.0, 10.0, 10.0),
                det("person", None, f32::NAN, 0.0, 10.0, 10.0),
            ],
            &Holds::default(),
        );
        assert!(shapes.is_empty());

        let mut holds = Holds::default();
        for i in 0..(MAX_TRACKED as u64 + 10) {
            holds.observe(i, &[verdict(i, Status::Verified, Some(i))]);
        }
        for i in 0..(MAX_UNTRACKED as u64 + 10) {
            holds.observe(i, &[verdict(100_000 + i, Status::Verified, None)]);
        }
        assert_eq!(holds.held(), MAX_TRACKED + MAX_UNTRACKED);
        assert!(holds.tracked(0).is_none(), "the oldest goes first");
        assert!(holds.tracked(MAX_TRACKED as u64 + 9).is_some());
    }
}
