// SPDX-License-Identifier: MIT OR Apache-2.0
//! Zones drawn by `iguardoverlay` (`zones`, `draw-zones`): each polygon's edges as thin
//! strokes, and its name on a label above the zone.
//!
//! An edge is cut into pieces of at most [`PIECE`] pixels, each drawn in the small box that
//! holds it: a diagonal across the frame then needs a few dozen small bitmaps (rendered once
//! and kept, as zones do not move) rather than one the size of the frame.

use super::layout::{Alignment, align, place_label};
use super::scene::Shape;
use super::text::Argb;
use crate::geometry::PixelRect;
use crate::zones::Zones;

/// The longest piece of an edge drawn as one bitmap, in pixels.
pub const PIECE: f32 = 32.0;

/// How zones look.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZoneStyle {
    /// Outline thickness, in pixels.
    pub width: f32,
    pub colour: Argb,
    /// Name text, drawn on a box of the outline's colour.
    pub text: Argb,
}

/// The shapes of `zones` on a `frame_w` x `frame_h` frame: first every edge's strokes, then
/// the names. `measure` gives a label's size.
pub fn shapes(
    zones: &Zones,
    frame_w: u32,
    frame_h: u32,
    a: Alignment,
    style: &ZoneStyle,
    measure: &dyn Fn(&str) -> (u32, u32),
) -> Vec<Shape> {
    let (fw, fh) = (frame_w as f32, frame_h as f32);
    let mut strokes = Vec::new();
    let mut names = Vec::new();
    for zone in zones.iter() {
        // Each corner at the centre of the pixel it falls in: a thin line then covers whole
        // pixels rather than two half ones.
        let centre = |v: f64, size: f32| (v as f32 * size).floor().clamp(0.0, size - 1.0) + 0.5;
        let points: Vec<(f32, f32)> = zone
            .points
            .iter()
            .map(|&(x, y)| (centre(x, fw), centre(y, fh)))
            .collect();
        for (k, &from) in points.iter().enumerate() {
            let to = points[(k + 1) % points.len()];
            for (p, q) in pieces(from, to) {
                if let Some(rect) = holding(p, q, style.width, frame_w, frame_h, a) {
                    strokes.push(Shape::Stroke {
                        rect,
                        from: p,
                        to: q,
                        width: style.width,
                        colour: style.colour,
                    });
                }
            }
        }
        let x0 = points.iter().map(|p| p.0).fold(f32::MAX, f32::min);
        let y0 = points.iter().map(|p| p.1).fold(f32::MAX, f32::min);
        let x1 = points.iter().map(|p| p.0).fold(f32::MIN, f32::max);
        let y1 = points.iter().map(|p| p.1).fold(f32::MIN, f32::max);
        let anchor = PixelRect {
            x: x0.max(0.0) as u32,
            y: y0.max(0.0) as u32,
            width: (x1 - x0).max(1.0) as u32,
            height: (y1 - y0).max(1.0) as u32,
        };
        let size = measure(&zone.name);
        if let Some(rect) = place_label(anchor, size, frame_w, frame_h) {
            let rect = align(rect, a, frame_w, frame_h);
            if rect.width > 0 && rect.height > 0 {
                names.push(Shape::Label {
                    rect,
                    text: zone.name.clone(),
                    fg: style.text,
                    bg: style.colour,
                });
            }
        }
    }
    strokes.extend(names);
    strokes
}

/// `from` → `to` cut into pieces of at most [`PIECE`] pixels.
fn pieces(from: (f32, f32), to: (f32, f32)) -> Vec<((f32, f32), (f32, f32))> {
    let (dx, dy) = (to.0 - from.0, to.1 - from.1);
    let n = ((dx * dx + dy * dy).sqrt() / PIECE).ceil().max(1.0) as u32;
    let at = |k: u32| {
        let t = k as f32 / n as f32;
        (from.0 + dx * t, from.1 + dy * t)
    };
    (0..n).map(|k| (at(k), at(k + 1))).collect()
}

/// The pixels that hold a stroke from `p` to `q` of `width`, clamped to the frame and grown
/// to the chroma alignment; `None` when nothing of it is in the frame.
fn holding(
    p: (f32, f32),
    q: (f32, f32),
    width: f32,
    frame_w: u32,
    frame_h: u32,
    a: Alignment,
) -> Option<PixelRect> {
    let r = width / 2.0 + 1.0;
    let x0 = (p.0.min(q.0) - r).floor().max(0.0);
    let y0 = (p.1.min(q.1) - r).floor().max(0.0);
    let x1 = (p.0.max(q.0) + r).ceil().min(frame_w as f32);
    let y1 = (p.1.max(q.1) + r).ceil().min(frame_h as f32);
    if x1 <= x0 || y1 <= y0 {
        return None;
    }
    let rect = PixelRect {
        x: x0 as u32,
        y: y0 as u32,
        width: (x1 - x0) as u32,
        height: (y1 - y0) as u32,
    };
    let rect = align(rect, a, frame_w, frame_h);
    (rect.width > 0 && rect.height > 0).then_some(rect)
}

/// The stroke's pixels in `rect`: native-endian `0xAARRGGBB` words, `colour` where the
/// pixel's centre lies within `width / 2` of the segment (its edge smoothed over one pixel),
/// transparent elsewhere.
pub fn stroke_pixels(
    rect: PixelRect,
    from: (f32, f32),
    to: (f32, f32),
    width: f32,
    colour: Argb,
) -> Vec<u8> {
    let (w, h) = (rect.width as usize, rect.height as usize);
    let mut out = vec![0u8; w * h * 4];
    let (dx, dy) = (to.0 - from.0, to.1 - from.1);
    let len2 = dx * dx + dy * dy;
    let half = width / 2.0;
    for row in 0..h {
        for col in 0..w {
            let (cx, cy) = (
                rect.x as f32 + col as f32 + 0.5,
                rect.y as f32 + row as f32 + 0.5,
            );
            let t = if len2 > 0.0 {
                (((cx - from.0) * dx + (cy - from.1) * dy) / len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let (px, py) = (from.0 + dx * t, from.1 + dy * t);
            let d = ((cx - px).powi(2) + (cy - py).powi(2)).sqrt();
            let cover = (half + 0.5 - d).clamp(0.0, 1.0);
            if cover <= 0.0 {
                continue;
            }
            let alpha = (colour.a() as f32 * cover).round() as u32;
            let word = (alpha << 24) | (colour.0 & 0x00FF_FFFF);
            out[(row * w + col) * 4..][..4].copy_from_slice(&word.to_ne_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measure(text: &str) -> (u32, u32) {
        (text.len() as u32 * 6, 10)
    }

    const STYLE: ZoneStyle = ZoneStyle {
        width: 1.0,
        colour: Argb(0xFFFF_FFFF),
        text: Argb(0xFF00_0000),
    };

    fn strokes(shapes: &[Shape]) -> Vec<PixelRect> {
        shapes
            .iter()
            .filter(|s| matches!(s, Shape::Stroke { .. }))
            .map(Shape::rect)
            .collect()
    }

    #[test]
    fn edges_are_cut_into_small_pieces_and_the_name_goes_above_the_zone() {
        let zones = Zones::parse("lawn:0.1,0.5 0.9,0.5 0.9,0.9 0.1,0.9").unwrap();
        let shapes = shapes(&zones, 200, 100, Alignment::NONE, &STYLE, &measure);
        let s = strokes(&shapes);
        // Top and bottom edges are 160 px: 5 pieces each; the sides 40 px: 2 each.
        assert_eq!(s.len(), 5 + 2 + 5 + 2, "{s:?}");
        for r in &s {
            assert!(
                r.width <= PIECE as u32 + 4 && r.height <= PIECE as u32 + 4,
                "{r:?}"
            );
        }
        let Some(Shape::Label { rect, text, .. }) = shapes.last() else {
            panic!("{shapes:?}");
        };
        assert_eq!(text, "lawn");
        assert_eq!(
            *rect,
            PixelRect {
                x: 20,
                y: 40,
                width: 24,
                height: 10
            }
        );
    }

    #[test]
    fn a_stroke_covers_its_line_and_nothing_far_from_it() {
        let rect = PixelRect {
            x: 0,
            y: 0,
            width: 20,
            height: 20,
        };
        let px = stroke_pixels(rect, (2.0, 2.0), (18.0, 18.0), 2.0, Argb(0xFF11_2233));
        let alpha = |x: usize, y: usize| {
            let i = (y * 20 + x) * 4;
            u32::from_ne_bytes([px[i], px[i + 1], px[i + 2], px[i + 3]]) >> 24
        };
        assert_eq!(alpha(10, 10), 255, "on the diagonal");
        assert_eq!(alpha(10, 2), 0, "far from it");
        assert_eq!(alpha(0, 19), 0);
        let word = u32::from_ne_bytes([
            px[(10 * 20 + 10) * 4],
            px[(10 * 20 + 10) * 4 + 1],
            px[(10 * 20 + 10) * 4 + 2],
            px[(10 * 20 + 10) * 4 + 3],
        ]);
        assert_eq!(word & 0xFF_FFFF, 0x11_2233);
    }

    #[test]
    fn zones_off_the_frame_edge_stay_in_the_frame_and_are_aligned() {
        let zones = Zones::parse("all:0,0 1,0 1,1 0,1").unwrap();
        let a = Alignment { x: 2, y: 2 };
        for s in shapes(&zones, 101, 51, a, &STYLE, &measure) {
            let r = s.rect();
            assert!(r.x + r.width <= 101 && r.y + r.height <= 51, "{r:?}");
            assert_eq!((r.x % 2, r.y % 2), (0, 0), "{r:?}");
        }
    }
}
