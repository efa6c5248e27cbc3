// SPDX-License-Identifier: MIT OR Apache-2.0
//! From [`Shape`]s to pixels: the overlay rectangles attached for a downstream renderer, or
//! the fills and bitmaps [`super::blend`] draws into the frame.
//!
//! Work per frame follows what changed, not what moved:
//! - a box's sides are solid colours. Blended, they need no pixels at all; attached, each
//!   colour has one 1x1 pixel buffer that the renderer scales to the side (a uniform colour
//!   scales to itself), so a box that moves or grows reuses it.
//! - labels are rendered once per text, colours, font size and size (the size follows the
//!   text, and chroma alignment can add a sample), converted once for YUV frames, and kept in
//!   a [`Lru`] bounded by entries and bytes: a label seen on every frame stays, the one unused
//!   longest makes room.

use std::sync::Arc;

use gst::glib;

use super::blend::{self, Bitmap, BlendError, Canvas, Layout};
use super::cache::{CacheStats, Lru};
use super::scene::Shape;
use super::text::{Argb, Font};
use crate::geometry::PixelRect;

/// Labels kept at most: a few per object for a few hundred objects.
pub const MAX_CACHED_LABELS: usize = 256;
/// Bytes of label pixels kept at most (a 200x20 label is 16 KiB).
pub const MAX_CACHED_BYTES: usize = 16 << 20;

/// Where the drawing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// Overlay rectangles of a `GstVideoOverlayComposition`, drawn downstream.
    Attach,
    /// Blended into an RGB frame.
    Rgb,
    /// Blended into a YUV or gray frame.
    Yuv,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// One pixel of a colour, scaled by the renderer to the shape (attached only).
    Solid(Argb),
    Label {
        text: String,
        fg: Argb,
        bg: Argb,
        width: u32,
        height: u32,
        font_size_bits: u32,
        /// Converted to A, Y, U, V bytes rather than native ARGB.
        yuv: bool,
    },
    /// A piece of a zone's edge: its box, ends and width (as bits), colour.
    Stroke {
        rect: (u32, u32, u32, u32),
        line: [u32; 5],
        colour: Argb,
        yuv: bool,
    },
}

fn stroke_key(
    rect: PixelRect,
    from: (f32, f32),
    to: (f32, f32),
    width: f32,
    colour: Argb,
    yuv: bool,
) -> Key {
    Key::Stroke {
        rect: (rect.x, rect.y, rect.width, rect.height),
        line: [
            from.0.to_bits(),
            from.1.to_bits(),
            to.0.to_bits(),
            to.1.to_bits(),
            width.to_bits(),
        ],
        colour,
        yuv,
    }
}

/// A shape ready to be blended.
#[derive(Debug, Clone)]
pub enum Drawn {
    Solid {
        rect: PixelRect,
        colour: Argb,
    },
    /// `rect`-sized pixels in the frame's colour space: native ARGB for RGB frames, A, Y, U,
    /// V bytes for YUV ones.
    Bitmap {
        rect: PixelRect,
        pixels: Pixels,
    },
}

/// Cached pixels, shared with the frames that draw them.
#[derive(Debug, Clone)]
pub enum Pixels {
    /// Native-endian ARGB with the video meta an overlay rectangle needs.
    Argb(gst::Buffer),
    Ayuv(Arc<[u8]>),
}

impl Pixels {
    fn bytes(&self) -> usize {
        match self {
            Pixels::Argb(b) => b.size(),
            Pixels::Ayuv(v) => v.len(),
        }
    }
}

/// Renders and keeps the pixels shapes need.
pub struct Renderer {
    cache: Lru<Key, Pixels>,
}

impl Default for Renderer {
    fn default() -> Self {
        Renderer::new(MAX_CACHED_LABELS, MAX_CACHED_BYTES)
    }
}

impl Renderer {
    /// A renderer keeping at most `max_entries` pixel buffers of `max_bytes` in all.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Renderer {
            cache: Lru::new(max_entries, max_bytes),
        }
    }

    /// Lookups of cached pixels so far: hits, misses (renders) and evictions.
    pub fn stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Pixel buffers held now, and their bytes.
    pub fn held(&self) -> (usize, usize) {
        (self.cache.len(), self.cache.bytes())
    }

    /// The overlay rectangles showing `shapes`, for a downstream renderer.
    pub fn rectangles(
        &mut self,
        shapes: Vec<Shape>,
        font: &Font,
        font_px: f32,
    ) -> Result<Vec<gst_video::VideoOverlayRectangle>, glib::BoolError> {
        let mut out = Vec::with_capacity(shapes.len());
        for shape in shapes {
            let r = shape.rect();
            let key = match shape {
                Shape::Fill { colour, .. } => Key::Solid(colour),
                Shape::Label { text, fg, bg, .. } => label_key(text, fg, bg, r, font_px, false),
                Shape::Stroke {
                    from,
                    to,
                    width,
                    colour,
                    ..
                } => stroke_key(r, from, to, width, colour, false),
            };
            let Pixels::Argb(pixels) = self.pixels(key, font, font_px)? else {
                unreachable!("attached pixels are ARGB");
            };
            out.push(gst_video::VideoOverlayRectangle::new_raw(
                &pixels,
                r.x as i32,
                r.y as i32,
                r.width,
                r.height,
                gst_video::VideoOverlayFormatFlags::empty(),
            ));
        }
        Ok(out)
    }

    /// What to blend for `shapes` into a frame of `target` (`Rgb` or `Yuv`).
    pub fn drawn(
        &mut self,
        shapes: Vec<Shape>,
        font: &Font,
        font_px: f32,
        target: Target,
    ) -> Result<Vec<Drawn>, glib::BoolError> {
        let yuv = target == Target::Yuv;
        let mut out = Vec::with_capacity(shapes.len());
        for shape in shapes {
            match shape {
                Shape::Fill { rect, colour } => out.push(Drawn::Solid { rect, colour }),
                Shape::Label {
                    rect, text, fg, bg, ..
                } => {
                    let key = label_key(text, fg, bg, rect, font_px, yuv);
                    let pixels = self.pixels(key, font, font_px)?;
                    out.push(Drawn::Bitmap { rect, pixels });
                }
                Shape::Stroke {
                    rect,
                    from,
                    to,
                    width,
                    colour,
                } => {
                    let key = stroke_key(rect, from, to, width, colour, yuv);
                    let pixels = self.pixels(key, font, font_px)?;
                    out.push(Drawn::Bitmap { rect, pixels });
                }
            }
        }
        Ok(out)
    }

    /// The pixels for `key`, from the cache or rendered now (and kept).
    fn pixels(&mut self, key: Key, font: &Font, font_px: f32) -> Result<Pixels, glib::BoolError> {
        if let Some(p) = self.cache.get(&key) {
            return Ok(p.clone());
        }
        let pixels = match &key {
            Key::Solid(colour) => {
                Pixels::Argb(overlay_pixels(colour.0.to_ne_bytes().to_vec(), 1, 1)?)
            }
            Key::Label {
                text,
                fg,
                bg,
                width,
                height,
                yuv,
                ..
            } => {
                let argb = bgra_to_native(font.render(text, font_px, *fg, *bg, *width, *height));
                if *yuv {
                    Pixels::Ayuv(blend::argb_to_ayuv(&argb).into())
                } else {
                    Pixels::Argb(overlay_pixels(argb, *width, *height)?)
                }
            }
            Key::Stroke {
                rect: (x, y, width, height),
                line,
                colour,
                yuv,
            } => {
                let rect = PixelRect {
                    x: *x,
                    y: *y,
                    width: *width,
                    height: *height,
                };
                let f = |i: usize| f32::from_bits(line[i]);
                let argb =
                    super::zones::stroke_pixels(rect, (f(0), f(1)), (f(2), f(3)), f(4), *colour);
                if *yuv {
                    Pixels::Ayuv(blend::argb_to_ayuv(&argb).into())
                } else {
                    Pixels::Argb(overlay_pixels(argb, *width, *height)?)
                }
            }
        };
        let bytes = pixels.bytes();
        self.cache.insert(key, pixels.clone(), bytes);
        Ok(pixels)
    }
}

fn label_key(text: String, fg: Argb, bg: Argb, r: PixelRect, font_px: f32, yuv: bool) -> Key {
    Key::Label {
        text,
        fg,
        bg,
        width: r.width,
        height: r.height,
        font_size_bits: font_px.to_bits(),
        yuv,
    }
}

/// Blends `drawn` into `frame` (mapped writable), in order.
pub fn paint(
    drawn: &[Drawn],
    frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
) -> Result<(), BlendError> {
    let mut canvas = Canvas::new(frame)?;
    for d in drawn {
        match d {
            Drawn::Solid { rect, colour } => canvas.fill(*rect, *colour)?,
            Drawn::Bitmap { rect, pixels } => {
                let at = (rect.x as i32, rect.y as i32);
                let bitmap = |data, layout| Bitmap {
                    data,
                    width: rect.width,
                    height: rect.height,
                    stride: rect.width as usize * 4,
                    layout,
                };
                match pixels {
                    Pixels::Ayuv(data) => canvas.draw(at, bitmap(data, Layout::AXXX))?,
                    Pixels::Argb(buf) => {
                        let map = buf
                            .map_readable()
                            .map_err(|e| BlendError::Pixels(e.to_string()))?;
                        canvas.draw(at, bitmap(map.as_slice(), Layout::NATIVE_ARGB))?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// A buffer of `width` x `height` overlay pixels (`0xAARRGGBB` in native byte order, the
/// composition's BGRA on little-endian machines) with the video meta the rectangle needs.
pub fn overlay_pixels(
    data: Vec<u8>,
    width: u32,
    height: u32,
) -> Result<gst::Buffer, glib::BoolError> {
    let format = if cfg!(target_endian = "little") {
        gst_video::VideoFormat::Bgra
    } else {
        gst_video::VideoFormat::Argb
    };
    let mut buf = gst::Buffer::from_mut_slice(data);
    gst_video::VideoMeta::add(
        buf.get_mut().expect("a new buffer is writable"),
        gst_video::VideoFrameFlags::empty(),
        format,
        width,
        height,
    )?;
    Ok(buf)
}

/// The label pixels are BGRA; the composition wants native-endian ARGB words.
pub fn bgra_to_native(mut data: Vec<u8>) -> Vec<u8> {
    if cfg!(target_endian = "big") {
        for px in data.chunks_exact_mut(4) {
            px.reverse();
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::iguardoverlay::text::DEFAULT_FONT_FILE;

    fn dejavu() -> Font {
        Font::load(Path::new(DEFAULT_FONT_FILE)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn px(x: u32, y: u32, width: u32, height: u32) -> PixelRect {
        PixelRect {
            x,
            y,
            width,
            height,
        }
    }

    /// Frame `t` of `n` boxes that move and grow: four sides and a label each.
    fn boxes(font: &Font, t: u32, n: u32) -> Vec<Shape> {
        let mut out = Vec::new();
        for k in 0..n {
            let (x, y) = (10 + 60 * k + 3 * t, 40 + 2 * t);
            let (w, h) = (30 + t, 50 + 3 * t);
            let colour = Argb(if k.is_multiple_of(2) {
                0xFFFF_2020
            } else {
                0xFF20_D020
            });
            for side in crate::iguardoverlay::layout::outline(px(x, y, w, h), 2) {
                out.push(Shape::Fill { rect: side, colour });
            }
            let text = format!("person #{k}: verified 0.91");
            let (lw, lh) = font.measure(&text, 14.0);
            out.push(Shape::Label {
                rect: px(x, y - lh, lw, lh),
                text,
                fg: Argb(0xFF00_0000),
                bg: colour,
            });
        }
        out
    }

    #[test]
    fn moving_boxes_render_each_label_once_and_fills_need_no_pixels() {
        gst::init().unwrap();
        let font = dejavu();
        for target in [Target::Rgb, Target::Yuv] {
            let mut r = Renderer::default();
            for t in 0..20 {
                let drawn = r.drawn(boxes(&font, t, 16), &font, 14.0, target).unwrap();
                assert_eq!(drawn.len(), 16 * 5);
                let solids = drawn
                    .iter()
                    .filter(|d| matches!(d, Drawn::Solid { .. }))
                    .count();
                assert_eq!(solids, 16 * 4, "{target:?}: sides are solid colours");
            }
            let s = r.stats();
            assert_eq!(s.misses, 16, "{target:?}: one render per label, {s:?}");
            assert_eq!(s.hits, 16 * 19, "{target:?}: {s:?}");
            assert_eq!(r.held().0, 16);
        }
        // Attached: the sides share one 1x1 pixel buffer per colour.
        let mut r = Renderer::default();
        for t in 0..20 {
            let rects = r.rectangles(boxes(&font, t, 16), &font, 14.0).unwrap();
            assert_eq!(rects.len(), 16 * 5);
        }
        assert_eq!(r.stats().misses, 16 + 2, "16 labels and 2 colours");
    }

    #[test]
    fn the_cache_stays_within_its_entries_and_bytes() {
        gst::init().unwrap();
        let font = dejavu();
        let mut r = Renderer::new(32, 64 * 1024);
        for i in 0..300u32 {
            let text = format!("object #{i}");
            let (w, h) = font.measure(&text, 14.0);
            let shapes = vec![Shape::Label {
                rect: px(0, 0, w, h),
                text,
                fg: Argb(0xFF00_0000),
                bg: Argb(0xFFFF_FFFF),
            }];
            r.drawn(shapes, &font, 14.0, Target::Yuv).unwrap();
            let (n, bytes) = r.held();
            assert!(n <= 32 && bytes <= 64 * 1024, "{n} entries, {bytes} bytes");
        }
        assert!(r.stats().evictions > 0);
    }

    #[test]
    fn painted_labels_in_yuv_are_the_converted_argb_ones() {
        gst::init().unwrap();
        let font = dejavu();
        let text = "person #3: rejected 0.12".to_string();
        let (w, h) = font.measure(&text, 14.0);
        let shape = || Shape::Label {
            rect: px(4, 4, w, h),
            text: text.clone(),
            fg: Argb(0xFF00_0000),
            bg: Argb(0xFF20_D020),
        };
        let mut r = Renderer::default();
        let yuv = r.drawn(vec![shape()], &font, 14.0, Target::Yuv).unwrap();
        let rgb = r.drawn(vec![shape()], &font, 14.0, Target::Rgb).unwrap();
        let (
            Drawn::Bitmap {
                pixels: Pixels::Ayuv(ayuv),
                ..
            },
            Drawn::Bitmap {
                pixels: Pixels::Argb(argb),
                ..
            },
        ) = (&yuv[0], &rgb[0])
        else {
            panic!("{yuv:?} {rgb:?}");
        };
        let map = argb.map_readable().unwrap();
        assert_eq!(&ayuv[..], &blend::argb_to_ayuv(&map)[..]);
    }
}
