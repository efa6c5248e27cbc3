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

    /// Clamped to the frame and rounded outwards; `None` when nothing is inside it.
    pub fn to_pixels(&self, frame_width: u32, frame_height: u32) -> Option<PixelRect> {
        if ![self.x0, self.y0, self.x1, self.y1]
            .iter()
            .all(|v| v.is_finite())
            || frame_width == 0
            || frame_height == 0
        {
            return None;
        }
        let (fw, fh) = (frame_width as f64, frame_height as f64);
        let x0 = self.x0.floor().clamp(0.0, fw);
        let y0 = self.y0.floor().clamp(0.0, fh);
        let x1 = self.x1.ceil().clamp(0.0, fw);
        let y1 = self.y1.ceil().clamp(0.0, fh);
        if x1 <= x0 || y1 <= y0 {
            return None;
        }
        Some(PixelRect {
            x: x0 as u32,
            y: y0 as u32,
            width: (x1 - x0) as u32,
            height: (y1 - y0) as u32,
        })
    }
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

    /// The smallest box holding both.
    pub fn union(&self, other: &Rect) -> Rect {
        let x0 = self.x.min(other.x);
        let y0 = self.y.min(other.y);
        let x1 = (self.x + self.width).max(other.x + other.width);
        let y1 = (self.y + self.height).max(other.y + other.height);
        Rect {
            x: x0,
            y: y0,
            width: x1 - x0,
            height: y1 - y0,
        }
    }

    /// Grown by `margin` times its size on every side (0.1 = 10 % of the width left and right).
    pub fn widen(&self, margin: f32) -> Rect {
        let dx = self.width * margin;
        let dy = self.height * margin;
        Rect {
            x: self.x - dx,
            y: self.y - dy,
            width: self.width + 2.0 * dx,
            height: self.height + 2.0 * dy,
        }
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
        let u = r(0.0, 0.0, 10.0, 10.0).union(&r(20.0, 5.0, 10.0, 10.0));
        assert_eq!(u, r(0.0, 0.0, 30.0, 15.0));
        assert_eq!(u.widen(0.1), r(-3.0, -1.5, 36.0, 18.0));
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
