// SPDX-License-Identifier: MIT OR Apache-2.0
//! The crop: the source region in fractions of the frame, the target an object's box asks
//! for, and fitting it inside the frame.

use super::*;

/// The crop region in fractions of the frame, so it stays put across a resolution change.
#[derive(Debug, Clone, Copy)]
pub(super) struct Region {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

impl Region {
    pub(super) fn from_pixels(p: PixelRect, width: u32, height: u32) -> Region {
        let (w, h) = (width as f64, height as f64);
        Region {
            x0: p.x as f64 / w,
            y0: p.y as f64 / h,
            x1: (p.x + p.width) as f64 / w,
            y1: (p.y + p.height) as f64 / h,
        }
    }

    pub(super) fn to_pixels(self, width: u32, height: u32) -> Option<PixelRect> {
        let (w, h) = (width as f64, height as f64);
        Rect {
            x: (self.x0 * w) as f32,
            y: (self.y0 * h) as f32,
            width: ((self.x1 - self.x0) * w) as f32,
            height: ((self.y1 - self.y0) * h) as f32,
        }
        .to_pixels(width, height)
    }
}

/// How much of a new target box enters the smoothed crop on each frame the object is seen.
pub(super) const CROP_SMOOTHING: f64 = 0.5;

/// `b` clamped to a `width`×`height` frame (so huge boxes stay finite through what follows).
fn clamp_to_frame(b: &Bounds, width: u32, height: u32) -> Bounds {
    let (w, h) = (width as f64, height as f64);
    Bounds {
        x0: b.x0.clamp(0.0, w),
        y0: b.y0.clamp(0.0, h),
        x1: b.x1.clamp(0.0, w),
        y1: b.y1.clamp(0.0, h),
    }
}

/// The crop an object's box asks for: clamped to the frame, widened by the margin, grown to
/// the tile's aspect ratio around its centre.
pub(super) fn crop_target(b: &Bounds, margin: f32, aspect: f64, width: u32, height: u32) -> Bounds {
    let t = clamp_to_frame(b, width, height).widen(margin.clamp(0.0, 10.0));
    let (cx, cy) = ((t.x0 + t.x1) / 2.0, (t.y0 + t.y1) / 2.0);
    let (mut w, mut h) = ((t.x1 - t.x0).max(1.0), (t.y1 - t.y0).max(1.0));
    if w / h < aspect {
        w = h * aspect;
    } else {
        h = w / aspect;
    }
    Bounds {
        x0: cx - w / 2.0,
        y0: cy - h / 2.0,
        x1: cx + w / 2.0,
        y1: cy + h / 2.0,
    }
}

/// `b` made to fit the frame: shrunk (keeping its aspect ratio) when larger, then moved inside.
pub(super) fn fit_frame(b: &Bounds, width: u32, height: u32) -> Option<PixelRect> {
    let (fw, fh) = (width as f64, height as f64);
    let (mut w, mut h) = (b.x1 - b.x0, b.y1 - b.y0);
    if !(w > 0.0 && h > 0.0) {
        return None;
    }
    if w > fw {
        h *= fw / w;
        w = fw;
    }
    if h > fh {
        w *= fh / h;
        h = fh;
    }
    let (cx, cy) = ((b.x0 + b.x1) / 2.0, (b.y0 + b.y1) / 2.0);
    let x0 = (cx - w / 2.0).clamp(0.0, fw - w);
    let y0 = (cy - h / 2.0).clamp(0.0, fh - h);
    Bounds {
        x0,
        y0,
        x1: x0 + w,
        y1: y0 + h,
    }
    .to_pixels(width, height)
}

/// Where the object of box `b` stands, normalised by the frame's size.
pub(super) fn foot(b: &Bounds, width: u32, height: u32) -> Option<(f64, f64)> {
    foot_point(b.x0, b.y0, b.x1 - b.x0, b.y1 - b.y0, width, height)
}

pub(super) fn centre_inside(d: &Detection, crop: &PixelRect) -> bool {
    let b = Bounds::of(&d.rect);
    let (cx, cy) = ((b.x0 + b.x1) / 2.0, (b.y0 + b.y1) / 2.0);
    cx >= crop.x as f64
        && cx <= (crop.x + crop.width) as f64
        && cy >= crop.y as f64
        && cy <= (crop.y + crop.height) as f64
}
