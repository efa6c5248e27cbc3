// SPDX-License-Identifier: MIT OR Apache-2.0
//! Layout geometry of `iguardoverlay`, in frame pixels: outlines, label places, the alignment
//! a chroma-subsampled format needs, and whether a box lies in a crop. Plain arithmetic.

use crate::geometry::PixelRect;

/// Positions and sizes are rounded outwards to multiples of these, so that blending into a
/// chroma-subsampled frame (I420, NV12, YUY2) changes no pixel outside a shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alignment {
    pub x: u32,
    pub y: u32,
}

impl Alignment {
    pub const NONE: Alignment = Alignment { x: 1, y: 1 };
}

/// `rect` grown to multiples of `a`, clamped to the frame.
pub fn align(rect: PixelRect, a: Alignment, frame_w: u32, frame_h: u32) -> PixelRect {
    let x0 = rect.x / a.x * a.x;
    let y0 = rect.y / a.y * a.y;
    let x1 = (rect.x + rect.width).div_ceil(a.x).saturating_mul(a.x);
    let y1 = (rect.y + rect.height).div_ceil(a.y).saturating_mul(a.y);
    let x1 = x1.min(frame_w);
    let y1 = y1.min(frame_h);
    PixelRect {
        x: x0,
        y: y0,
        width: x1.saturating_sub(x0),
        height: y1.saturating_sub(y0),
    }
}

/// The four sides of `rect`'s outline, each `line_width` thick, inside `rect`.
pub fn outline(rect: PixelRect, line_width: u32) -> Vec<PixelRect> {
    let lw = line_width.max(1);
    if rect.width <= 2 * lw || rect.height <= 2 * lw {
        return vec![rect];
    }
    let inner_h = rect.height - 2 * lw;
    vec![
        PixelRect { height: lw, ..rect },
        PixelRect {
            y: rect.y + rect.height - lw,
            height: lw,
            ..rect
        },
        PixelRect {
            y: rect.y + lw,
            width: lw,
            height: inner_h,
            ..rect
        },
        PixelRect {
            x: rect.x + rect.width - lw,
            y: rect.y + lw,
            width: lw,
            height: inner_h,
        },
    ]
}

/// Where a label of `size` goes for a box: above it when there is room, else inside its top;
/// shifted left to stay in the frame, and cut to the frame's width.
pub fn place_label(
    anchor: PixelRect,
    size: (u32, u32),
    frame_w: u32,
    frame_h: u32,
) -> Option<PixelRect> {
    let width = size.0.min(frame_w);
    let height = size.1.min(frame_h);
    if width == 0 || height == 0 {
        return None;
    }
    let y = if anchor.y >= height {
        anchor.y - height
    } else {
        anchor.y.min(frame_h - height)
    };
    let x = anchor.x.min(frame_w - width);
    Some(PixelRect {
        x,
        y,
        width,
        height,
    })
}

/// Whether the centre of `rect` lies inside `crop`.
pub(crate) fn centre_inside(rect: &PixelRect, crop: &PixelRect) -> bool {
    // Doubled coordinates: the centre of an odd-sized box is a half pixel.
    let cx = rect.x as u64 * 2 + rect.width as u64;
    let cy = rect.y as u64 * 2 + rect.height as u64;
    let (x0, y0) = (crop.x as u64 * 2, crop.y as u64 * 2);
    let (x1, y1) = (x0 + crop.width as u64 * 2, y0 + crop.height as u64 * 2);
    (x0..x1).contains(&cx) && (y0..y1).contains(&cy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn px(x: u32, y: u32, width: u32, height: u32) -> PixelRect {
        PixelRect {
            x,
            y,
            width,
            height,
        }
    }

    #[test]
    fn an_outline_is_four_sides_inside_the_box() {
        let sides = outline(px(10, 20, 30, 40), 3);
        assert_eq!(
            sides,
            vec![
                px(10, 20, 30, 3),
                px(10, 57, 30, 3),
                px(10, 23, 3, 34),
                px(37, 23, 3, 34)
            ]
        );
        // Too small for a hole: filled.
        assert_eq!(outline(px(0, 0, 5, 5), 3), vec![px(0, 0, 5, 5)]);
    }

    #[test]
    fn alignment_grows_outwards_and_stays_in_the_frame() {
        let a = Alignment { x: 2, y: 2 };
        assert_eq!(align(px(3, 5, 4, 1), a, 100, 100), px(2, 4, 6, 2));
        assert_eq!(align(px(98, 98, 1, 1), a, 99, 99), px(98, 98, 1, 1));
        assert_eq!(
            align(px(3, 5, 4, 1), Alignment::NONE, 100, 100),
            px(3, 5, 4, 1)
        );
    }

    #[test]
    fn labels_go_above_the_box_or_inside_it_and_stay_in_the_frame() {
        assert_eq!(
            place_label(px(50, 40, 20, 20), (30, 10), 200, 100),
            Some(px(50, 30, 30, 10))
        );
        // No room above: inside the top.
        assert_eq!(
            place_label(px(50, 4, 20, 20), (30, 10), 200, 100),
            Some(px(50, 4, 30, 10))
        );
        // At the right edge: shifted left.
        assert_eq!(
            place_label(px(190, 40, 10, 10), (30, 10), 200, 100),
            Some(px(170, 30, 30, 10))
        );
        // Wider than the frame: cut.
        assert_eq!(
            place_label(px(0, 40, 10, 10), (300, 10), 200, 100),
            Some(px(0, 30, 200, 10))
        );
    }
}
