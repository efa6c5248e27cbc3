// SPDX-License-Identifier: MIT OR Apache-2.0
//! Boxes as detectors report them (floating point, possibly nonsense) and the integer pixel
//! regions the sampler crops.

/// A box in frame pixels as a detector reported it. Nothing is guaranteed: values may be
/// negative, NaN, infinite or outside the frame. [`Rect::to_pixels`] makes it safe.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rect {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

/// A non-empty region inside a frame, in whole pixels: `x + width <= frame width` and
/// `y + height <= frame height` always hold for the frame it was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelRect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl PixelRect {
    /// The whole frame.
    pub fn full(width: u32, height: u32) -> Self {
        PixelRect {
            x: 0,
            y: 0,
            width,
            height,
        }
    }
}

/// A box in f64: unions and margins of detector boxes are computed in it, since f32 boxes
/// near f32::MAX (DeepStream floats) would overflow to infinity.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Bounds {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
}

impl Bounds {
    pub fn of(r: &Rect) -> Bounds {
        let (x, y) = (r.x as f64, r.y as f64);
        Bounds {
            x0: x,
            y0: y,
            x1: x + r.width as f64,
            y1: y + r.height as f64,
        }
    }

    pub fn union(&self, o: &Bounds) -> Bounds {
        Bounds {
            x0: self.x0.min(o.x0),
            y0: self.y0.min(o.y0),
            x1: self.x1.max(o.x1),
            y1: self.y1.max(o.y1),
        }
    }

    /// Grown by `margin` times its size on every side.
    pub fn widen(&self, margin: f32) -> Bounds {
        let dx = (self.x1 - self.x0) * margin as f64;
        let dy = (self.y1 - self.y0) * margin as f64;
        Bounds {
            x0: self.x0 - dx,
            y0: self.y0 - dy,
            x1: self.x1 + dx,
            y1: self.y1 + dy,
        }
    }

    /// Clamped to the frame and rounded outwards ([`pixel_span`]); `None` when nothing is
    /// inside it.
    pub fn to_pixels(&self, frame_width: u32, frame_height: u32) -> Option<PixelRect> {
        let (x0, x1) = pixel_span(self.x0, self.x1, frame_width)?;
        let (y0, y1) = pixel_span(self.y0, self.y1, frame_height)?;
        Some(PixelRect {
            x: x0,
            y: y0,
            width: x1 - x0,
            height: y1 - y0,
        })
    }
}

/// The one rounding rule for boxes, used by every reader and the sampler: the span
/// `[start, end)` clamped to `[0, limit]` and rounded outwards to whole pixels, so the pixels
/// cover all of the box that is inside the frame. `None` when a value is not finite, the span
/// is empty (`end <= start`) or nothing is left inside.
pub fn pixel_span(start: f64, end: f64, limit: u32) -> Option<(u32, u32)> {
    if !start.is_finite() || !end.is_finite() || end <= start {
        return None;
    }
    let limit = limit as f64;
    let a = start.floor().clamp(0.0, limit);
    let b = end.ceil().clamp(0.0, limit);
    (b > a).then_some((a as u32, b as u32))
}

impl Rect {
    /// Whether every coordinate is finite and the box has a positive area.
    pub fn is_valid(&self) -> bool {
        [self.x, self.y, self.width, self.height]
            .iter()
            .all(|v| v.is_finite())
            && self.width > 0.0
            && self.height > 0.0
    }

    /// Clamped to a `frame_width`×`frame_height` frame and rounded outwards to whole pixels.
    /// `None` when the box is invalid, the frame is empty or nothing of the box is inside it.
    pub fn to_pixels(&self, frame_width: u32, frame_height: u32) -> Option<PixelRect> {
        if !self.is_valid() {
            return None;
        }
        Bounds::of(self).to_pixels(frame_width, frame_height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(x: f32, y: f32, w: f32, h: f32) -> Rect {
        Rect {
            x,
            y,
            width: w,
            height: h,
        }
    }

    #[test]
    fn clamps_to_the_frame() {
        let p = r(-10.0, 20.5, 100.0, 1000.0).to_pixels(64, 48).unwrap();
        assert_eq!(
            p,
            PixelRect {
                x: 0,
                y: 20,
                width: 64,
                height: 28
            }
        );
    }

    #[test]
    fn rejects_nonsense() {
        for b in [
            r(f32::NAN, 0.0, 10.0, 10.0),
            r(0.0, 0.0, f32::INFINITY, 10.0),
            r(0.0, 0.0, -5.0, 10.0),
            r(0.0, 0.0, 0.0, 10.0),
            r(100.0, 100.0, 10.0, 10.0),
            r(-50.0, -50.0, 10.0, 10.0),
        ] {
            assert_eq!(b.to_pixels(64, 48), None, "{b:?}");
        }
        assert_eq!(r(0.0, 0.0, 1.0, 1.0).to_pixels(0, 48), None);
    }

    #[test]
    fn union_and_widen() {
        let u = Bounds::of(&r(0.0, 0.0, 10.0, 10.0)).union(&Bounds::of(&r(20.0, 5.0, 10.0, 10.0)));
        assert_eq!(u, Bounds::of(&r(0.0, 0.0, 30.0, 15.0)));
        // A quarter each side: exact in binary, so the comparison can be exact.
        assert_eq!(u.widen(0.25), Bounds::of(&r(-7.5, -3.75, 45.0, 22.5)));
    }

    #[test]
    fn spans_round_outwards_and_clamp() {
        assert_eq!(pixel_span(10.4, 40.6, 320), Some((10, 41)));
        assert_eq!(pixel_span(10.0, 40.0, 320), Some((10, 40)));
        assert_eq!(pixel_span(10.0, 10.3, 320), Some((10, 11)));
        assert_eq!(pixel_span(-5.5, 3.2, 320), Some((0, 4)));
        assert_eq!(pixel_span(300.0, 350.0, 320), Some((300, 320)));
        // Empty or inverted spans (a box shrunk past its centre) cover nothing, even inside
        // one pixel.
        for (a, b) in [
            (10.0, 10.0),
            (10.75, 10.25),
            (-9.0, -1.0),
            (320.0, 400.0),
            (5.0, 2.0),
        ] {
            assert_eq!(pixel_span(a, b, 320), None, "{a}..{b}");
        }
        assert_eq!(pixel_span(0.0, 10.0, 0), None);
        assert_eq!(pixel_span(f64::NAN, 10.0, 320), None);
        assert_eq!(pixel_span(0.0, f64::INFINITY, 320), None);
    }

    #[test]
    fn huge_boxes_unite_and_widen_without_overflow() {
        let a = Bounds::of(&r(0.0, 0.0, 137.3, f32::MAX));
        assert_eq!(
            a.widen(0.75).to_pixels(1, 202),
            Some(PixelRect::full(1, 202))
        );
        let u =
            Bounds::of(&r(-3e38, 0.0, 3.1e38, 10.0)).union(&Bounds::of(&r(0.0, 0.0, 3e38, 10.0)));
        assert_eq!(
            u.to_pixels(64, 48),
            Some(PixelRect {
                x: 0,
                y: 0,
                width: 64,
                height: 10
            })
        );
    }

    #[test]
    fn huge_values_do_not_overflow() {
        let p = r(-1e30, -1e30, 3e30, 3e30).to_pixels(1920, 1080).unwrap();
        assert_eq!(p, PixelRect::full(1920, 1080));
    }
}
