// SPDX-License-Identifier: MIT OR Apache-2.0
//! Crop a region of a system-memory video frame and resize it into an RGB tile.
//!
//! Every plane is resized with `fast_image_resize` straight from the mapped frame when its
//! padded rows can be viewed as a wider image (see [`resize_plane`]); otherwise the cropped rows
//! are copied into a reused scratch buffer first. Packed RGB formats are resized in their own
//! layout and the three colour bytes picked out afterwards; YUV formats resize luma and chroma to
//! the tile size separately and convert each output pixel to RGB with the frame's matrix.
//!
//! The tile samples the region as a window into the frame: when the region is enlarged, the
//! bilinear filter may weigh in the pixels just outside its border, as it would anywhere inside.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{CropBox, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use gst_video::prelude::*;
use gst_video::{VideoColorMatrix, VideoColorRange, VideoColorimetry, VideoFormat};

use crate::geometry::PixelRect;

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("unsupported video format {0}")]
    UnsupportedFormat(String),
    #[error("{0}")]
    Resize(String),
}

/// Bilinear with a fixed 2-tap kernel, like OpenCV's `INTER_LINEAR`.
const ALGORITHM: ResizeAlg = ResizeAlg::Interpolation(FilterType::Bilinear);

/// How many source pixels beyond the crop box the resizer may read on each side. With
/// `ALGORITHM` it reads at most one; the extra one is a safety margin.
const FILTER_REACH: u32 = 2;

/// Reusable scratch state for sampling; one per element, used on the streaming thread.
#[derive(Default)]
pub struct Sampler {
    resizer: Resizer,
    /// Cropped rows of a plane that cannot be viewed in place.
    crop: Vec<u8>,
    /// The resized 4-byte tile, or the resized luma tile.
    tile: Vec<u8>,
    /// The resized chroma: interleaved UV, or all U followed by all V.
    chroma: Vec<u8>,
}

impl Sampler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Crops `region` of `frame` and resizes it into `out`, a `out_width`×`out_height` tile of
    /// packed RGB bytes (`out.len() == out_width * out_height * 3`).
    pub fn sample(
        &mut self,
        frame: &gst_video::VideoFrameRef<&gst::BufferRef>,
        region: PixelRect,
        out_width: u32,
        out_height: u32,
        out: &mut [u8],
    ) -> Result<(), SampleError> {
        let format = frame.format();
        let layout = Layout::of(format)
            .ok_or_else(|| SampleError::UnsupportedFormat(format.to_str().to_string()))?;
        check_region(region, frame.width(), frame.height())?;
        let pixels = check_output(out_width, out_height, out.len())?;

        let Sampler {
            resizer,
            crop,
            tile,
            chroma,
        } = self;
        let full = CropBox {
            left: region.x as f64,
            top: region.y as f64,
            width: region.width as f64,
            height: region.height as f64,
        };

        match layout {
            Layout::Packed3 { bgr } => {
                let src = plane(frame, 0, frame.width(), frame.height(), PixelType::U8x3)?;
                let mut dst = dst_image(out_width, out_height, out, PixelType::U8x3)?;
                resize_plane(resizer, crop, &src, full, &mut dst)?;
                if bgr {
                    out.chunks_exact_mut(3).for_each(|p| p.swap(0, 2));
                }
            }
            Layout::Packed4 { r, g, b } => {
                let src = plane(frame, 0, frame.width(), frame.height(), PixelType::U8x4)?;
                let tile = scratch(tile, pixels * 4);
                let mut dst = dst_image(out_width, out_height, tile, PixelType::U8x4)?;
                resize_plane(resizer, crop, &src, full, &mut dst)?;
                for (o, p) in out.chunks_exact_mut(3).zip(tile.chunks_exact(4)) {
                    o[0] = p[r];
                    o[1] = p[g];
                    o[2] = p[b];
                }
            }
            Layout::SemiPlanar | Layout::Planar { .. } => {
                let info = frame.info();
                let (cw, ch) = (info.comp_width(1), info.comp_height(1));
                // 4:2:0: a chroma sample covers 2×2 luma pixels, so odd offsets and sizes map
                // to half-pixel crop boxes, which the resizer handles as such.
                let half = CropBox {
                    left: full.left / 2.0,
                    top: full.top / 2.0,
                    width: full.width / 2.0,
                    height: full.height / 2.0,
                };
                let luma = plane(frame, 0, frame.width(), frame.height(), PixelType::U8)?;
                let y_tile = scratch(tile, pixels);
                let mut dst = dst_image(out_width, out_height, y_tile, PixelType::U8)?;
                resize_plane(resizer, crop, &luma, full, &mut dst)?;

                let matrix = YuvToRgb::new(&info.colorimetry());
                let c_tile = scratch(chroma, pixels * 2);
                if let Layout::Planar { u, v } = layout {
                    let (u_tile, v_tile) = c_tile.split_at_mut(pixels);
                    for (index, dst_tile) in [(u, u_tile), (v, v_tile)] {
                        let src = plane(frame, index, cw, ch, PixelType::U8)?;
                        let mut dst = dst_image(out_width, out_height, dst_tile, PixelType::U8)?;
                        resize_plane(resizer, crop, &src, half, &mut dst)?;
                    }
                    let (u_tile, v_tile) = c_tile.split_at(pixels);
                    let yuv = y_tile.iter().zip(u_tile).zip(v_tile);
                    for (o, ((&y, &u), &v)) in out.chunks_exact_mut(3).zip(yuv) {
                        o.copy_from_slice(&matrix.rgb(y, u, v));
                    }
                } else {
                    let src = plane(frame, 1, cw, ch, PixelType::U8x2)?;
                    let mut dst = dst_image(out_width, out_height, c_tile, PixelType::U8x2)?;
                    resize_plane(resizer, crop, &src, half, &mut dst)?;
                    let yuv = y_tile.iter().zip(c_tile.chunks_exact(2));
                    for (o, (&y, uv)) in out.chunks_exact_mut(3).zip(yuv) {
                        o.copy_from_slice(&matrix.rgb(y, uv[0], uv[1]));
                    }
                }
            }
        }
        Ok(())
    }
}

/// How the supported formats store their pixels.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// 3 bytes a pixel, RGB or BGR order.
    Packed3 { bgr: bool },
    /// 4 bytes a pixel; the byte offsets of red, green and blue.
    Packed4 { r: usize, g: usize, b: usize },
    /// 4:2:0 luma plane and an interleaved UV plane (NV12).
    SemiPlanar,
    /// 4:2:0 luma plane and separate U and V planes, by plane index.
    Planar { u: u32, v: u32 },
}

impl Layout {
    fn of(format: VideoFormat) -> Option<Self> {
        use VideoFormat as F;
        let rgb = |r, g, b| Layout::Packed4 { r, g, b };
        Some(match format {
            F::Rgba | F::Rgbx => rgb(0, 1, 2),
            F::Bgra | F::Bgrx => rgb(2, 1, 0),
            F::Argb | F::Xrgb => rgb(1, 2, 3),
            F::Abgr | F::Xbgr => rgb(3, 2, 1),
            F::Rgb => Layout::Packed3 { bgr: false },
            F::Bgr => Layout::Packed3 { bgr: true },
            F::Nv12 => Layout::SemiPlanar,
            F::I420 => Layout::Planar { u: 1, v: 2 },
            F::Yv12 => Layout::Planar { u: 2, v: 1 },
            _ => return None,
        })
    }
}

fn check_region(region: PixelRect, width: u32, height: u32) -> Result<(), SampleError> {
    let inside = region.width > 0
        && region.height > 0
        && u64::from(region.x) + u64::from(region.width) <= u64::from(width)
        && u64::from(region.y) + u64::from(region.height) <= u64::from(height);
    if inside {
        Ok(())
    } else {
        Err(SampleError::Resize(format!(
            "region {}x{} at ({}, {}) is empty or not inside the {width}x{height} frame",
            region.width, region.height, region.x, region.y
        )))
    }
}

/// Validates the tile size against `out` and returns its pixel count.
fn check_output(width: u32, height: u32, len: usize) -> Result<usize, SampleError> {
    let pixels = (width as usize).checked_mul(height as usize);
    match pixels {
        Some(n) if n > 0 && n.checked_mul(3) == Some(len) => Ok(n),
        _ => Err(SampleError::Resize(format!(
            "output buffer holds {len} bytes, a {width}x{height} RGB tile needs {width}*{height}*3 \
             (and must not be empty)"
        ))),
    }
}

/// `buf` grown to at least `len` bytes (it only reallocates when a larger tile is asked for).
fn scratch(buf: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if buf.len() < len {
        buf.resize(len, 0);
    }
    &mut buf[..len]
}

fn dst_image(
    width: u32,
    height: u32,
    buf: &mut [u8],
    pixel_type: PixelType,
) -> Result<Image<'_>, SampleError> {
    Image::from_slice_u8(width, height, buf, pixel_type).map_err(resize_error)
}

fn resize_error(err: impl std::fmt::Display) -> SampleError {
    SampleError::Resize(err.to_string())
}

/// One plane of a mapped frame: `height` rows `stride` bytes apart, of which the first
/// `width` pixels are picture and the rest padding.
struct Plane<'a> {
    data: &'a [u8],
    stride: usize,
    width: u32,
    height: u32,
    pixel_type: PixelType,
}

fn plane<'a>(
    frame: &'a gst_video::VideoFrameRef<&gst::BufferRef>,
    index: u32,
    width: u32,
    height: u32,
    pixel_type: PixelType,
) -> Result<Plane<'a>, SampleError> {
    let data = frame.plane_data(index).map_err(resize_error)?;
    let stride = frame
        .plane_stride()
        .get(index as usize)
        .and_then(|&s| usize::try_from(s).ok())
        .unwrap_or(0);
    let row = width as usize * pixel_type.size();
    if stride < row || data.len() < stride * height as usize {
        return Err(SampleError::Resize(format!(
            "plane {index} of a {} frame is too small: stride {stride}, {} bytes for {height} \
             rows of {row} bytes",
            frame.format().to_str(),
            data.len()
        )));
    }
    Ok(Plane {
        data,
        stride,
        width,
        height,
        pixel_type,
    })
}

/// Resizes `crop` (in plane pixels, possibly fractional) of `src` to fill `dst`.
///
/// The resizer wants tightly packed rows. When the stride is a whole number of pixels, the
/// padded plane is a valid wider image and is used in place, unless the filter could reach
/// into the padding, which holds garbage: that happens only when the crop ends within
/// `FILTER_REACH` pixels of the right edge. Otherwise the crop, plus the margin the filter may
/// read around it, is copied into `scratch`, so both ways produce the same pixels.
fn resize_plane(
    resizer: &mut Resizer,
    scratch: &mut Vec<u8>,
    src: &Plane,
    crop: CropBox,
    dst: &mut Image,
) -> Result<(), SampleError> {
    let bpp = src.pixel_type.size();
    let row_pixels = src.stride / bpp;
    let right = crop.left + crop.width;
    let bottom = crop.top + crop.height;
    let in_place = src.stride.is_multiple_of(bpp)
        && (row_pixels == src.width as usize
            || right + f64::from(FILTER_REACH) <= src.width.into());
    let options = ResizeOptions::new().resize_alg(ALGORITHM).use_alpha(false);

    if in_place {
        let image = ImageRef::new(row_pixels as u32, src.height, src.data, src.pixel_type)
            .map_err(resize_error)?;
        let options = options.crop(crop.left, crop.top, crop.width, crop.height);
        return resizer.resize(&image, dst, &options).map_err(resize_error);
    }

    let x0 = (crop.left.floor() as u32).saturating_sub(FILTER_REACH);
    let y0 = (crop.top.floor() as u32).saturating_sub(FILTER_REACH);
    let x1 = (right.ceil() as u32)
        .saturating_add(FILTER_REACH)
        .min(src.width);
    let y1 = (bottom.ceil() as u32)
        .saturating_add(FILTER_REACH)
        .min(src.height);
    if x1 <= x0 || y1 <= y0 {
        return Err(SampleError::Resize(format!(
            "crop {crop:?} is outside a {}x{} plane",
            src.width, src.height
        )));
    }
    let (start, len) = (x0 as usize * bpp, (x1 - x0) as usize * bpp);
    scratch.clear();
    for y in y0 as usize..y1 as usize {
        let offset = y * src.stride + start;
        let row = src
            .data
            .get(offset..offset + len)
            .ok_or_else(|| SampleError::Resize(format!("plane row {y} is out of bounds")))?;
        scratch.extend_from_slice(row);
    }
    let image = ImageRef::new(x1 - x0, y1 - y0, scratch, src.pixel_type).map_err(resize_error)?;
    let options = options.crop(
        crop.left - f64::from(x0),
        crop.top - f64::from(y0),
        crop.width,
        crop.height,
    );
    resizer.resize(&image, dst, &options).map_err(resize_error)
}

/// Y'CbCr to R'G'B' in 16-bit fixed point.
struct YuvToRgb {
    y_offset: i32,
    y_gain: i32,
    r_v: i32,
    g_u: i32,
    g_v: i32,
    b_u: i32,
}

impl YuvToRgb {
    const SHIFT: u32 = 16;

    /// The frame's matrix and range; BT.601 and limited range when unknown.
    fn new(colorimetry: &VideoColorimetry) -> Self {
        let (kr, kb) = match colorimetry.matrix() {
            VideoColorMatrix::Bt709 => (0.2126, 0.0722),
            VideoColorMatrix::Bt2020 => (0.2627, 0.0593),
            VideoColorMatrix::Smpte240m => (0.212, 0.087),
            VideoColorMatrix::Fcc => (0.30, 0.11),
            _ => (0.299, 0.114),
        };
        let (y_offset, y_scale, c_scale) = match colorimetry.range() {
            VideoColorRange::Range0_255 => (0, 1.0, 1.0),
            _ => (16, 255.0 / 219.0, 255.0 / 224.0),
        };
        let kg = 1.0 - kr - kb;
        let fixed = |v: f64| (v * f64::from(1u32 << Self::SHIFT)).round() as i32;
        YuvToRgb {
            y_offset,
            y_gain: fixed(y_scale),
            r_v: fixed(2.0 * (1.0 - kr) * c_scale),
            g_u: fixed(2.0 * kb * (1.0 - kb) / kg * c_scale),
            g_v: fixed(2.0 * kr * (1.0 - kr) / kg * c_scale),
            b_u: fixed(2.0 * (1.0 - kb) * c_scale),
        }
    }

    #[inline]
    fn rgb(&self, y: u8, u: u8, v: u8) -> [u8; 3] {
        let y = (i32::from(y) - self.y_offset) * self.y_gain + (1 << (Self::SHIFT - 1));
        let u = i32::from(u) - 128;
        let v = i32::from(v) - 128;
        let clamp = |x: i32| (x >> Self::SHIFT).clamp(0, 255) as u8;
        [
            clamp(y + self.r_v * v),
            clamp(y - self.g_u * u - self.g_v * v),
            clamp(y + self.b_u * u),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gst_video::{VideoColorPrimaries, VideoFrameRef, VideoInfo, VideoTransferFunction};

    const RED: [u8; 3] = [255, 0, 0];
    const BLUE: [u8; 3] = [0, 0, 255];
    const GREEN: [u8; 3] = [0, 255, 0];
    const WHITE: [u8; 3] = [255, 255, 255];
    const ODD: [u8; 3] = [200, 100, 50];
    /// Far enough from grey that BT.601 vs BT.709 or limited vs full moves it by 13 levels.
    const TEAL: [u8; 3] = [50, 200, 100];

    const PACKED: [VideoFormat; 10] = [
        VideoFormat::Rgba,
        VideoFormat::Bgra,
        VideoFormat::Rgbx,
        VideoFormat::Bgrx,
        VideoFormat::Argb,
        VideoFormat::Abgr,
        VideoFormat::Xrgb,
        VideoFormat::Xbgr,
        VideoFormat::Rgb,
        VideoFormat::Bgr,
    ];
    const YUV: [VideoFormat; 3] = [VideoFormat::Nv12, VideoFormat::I420, VideoFormat::Yv12];

    fn all_formats() -> impl Iterator<Item = VideoFormat> {
        PACKED.into_iter().chain(YUV)
    }

    fn is_yuv(format: VideoFormat) -> bool {
        YUV.contains(&format)
    }

    /// Colour error allowed: exact maths for RGB; for YUV the 8-bit rounding of the test's
    /// encoding plus the sampler's decoding stays within a few levels.
    fn tolerance(format: VideoFormat) -> i32 {
        if is_yuv(format) { 6 } else { 2 }
    }

    /// Byte order of the packed formats, written out independently of `Layout::of`.
    fn byte_order(format: VideoFormat) -> &'static [u8] {
        match format {
            VideoFormat::Rgba => b"RGBA",
            VideoFormat::Bgra => b"BGRA",
            VideoFormat::Rgbx => b"RGBx",
            VideoFormat::Bgrx => b"BGRx",
            VideoFormat::Argb => b"ARGB",
            VideoFormat::Abgr => b"ABGR",
            VideoFormat::Xrgb => b"xRGB",
            VideoFormat::Xbgr => b"xBGR",
            VideoFormat::Rgb => b"RGB",
            VideoFormat::Bgr => b"BGR",
            other => panic!("no byte order for {other:?}"),
        }
    }

    fn colorimetry(range: VideoColorRange, matrix: VideoColorMatrix) -> VideoColorimetry {
        VideoColorimetry::new(
            range,
            matrix,
            VideoTransferFunction::Bt709,
            VideoColorPrimaries::Bt709,
        )
    }

    /// (Kr, Kb, full range) to encode with; the test's own reference, not `YuvToRgb`.
    fn encoding(c: &VideoColorimetry) -> (f64, f64, bool) {
        let (kr, kb) = match c.matrix() {
            VideoColorMatrix::Bt709 => (0.2126, 0.0722),
            _ => (0.299, 0.114),
        };
        (kr, kb, c.range() == VideoColorRange::Range0_255)
    }

    fn rgb_to_yuv(rgb: [u8; 3], (kr, kb, full): (f64, f64, bool)) -> [f64; 3] {
        let [r, g, b] = rgb.map(|c| f64::from(c) / 255.0);
        let y = kr * r + (1.0 - kr - kb) * g + kb * b;
        let u = (b - y) / (2.0 * (1.0 - kb));
        let v = (r - y) / (2.0 * (1.0 - kr));
        if full {
            [y * 255.0, 128.0 + u * 255.0, 128.0 + v * 255.0]
        } else {
            [16.0 + y * 219.0, 128.0 + u * 224.0, 128.0 + v * 224.0]
        }
    }

    fn to_u8(v: f64) -> u8 {
        v.round().clamp(0.0, 255.0) as u8
    }

    /// A `width`×`height` frame of `format` with `pixel(x, y)` as colour. Every byte of every
    /// plane is first set to `poison`, so row padding holds a value a sampler must not read.
    /// YUV frames are encoded with `encode` colorimetry but labelled with `label`.
    fn make_frame_labelled(
        format: VideoFormat,
        width: u32,
        height: u32,
        encode: VideoColorimetry,
        label: VideoColorimetry,
        poison: u8,
        pixel: impl Fn(u32, u32) -> [u8; 3],
    ) -> (gst::Buffer, VideoInfo) {
        gst::init().unwrap();
        let info = VideoInfo::builder(format, width, height)
            .colorimetry(&label)
            .build()
            .unwrap();
        let mut buffer = gst::Buffer::with_size(info.size()).unwrap();
        {
            let buf = buffer.get_mut().unwrap();
            let mut frame = VideoFrameRef::from_buffer_ref_writable(buf, &info).unwrap();
            for p in 0..frame.n_planes() {
                frame.plane_data_mut(p).unwrap().fill(poison);
            }
            let strides: Vec<usize> = frame.plane_stride().iter().map(|&s| s as usize).collect();
            if is_yuv(format) {
                let enc = encoding(&encode);
                let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
                let luma = frame.plane_data_mut(0).unwrap();
                for y in 0..height {
                    for x in 0..width {
                        luma[y as usize * strides[0] + x as usize] =
                            to_u8(rgb_to_yuv(pixel(x, y), enc)[0]);
                    }
                }
                for cy in 0..ch {
                    for cx in 0..cw {
                        // Average the chroma of the (up to) 2×2 pixels this sample covers.
                        let (mut u, mut v, mut n) = (0.0, 0.0, 0.0);
                        for y in 2 * cy..(2 * cy + 2).min(height) {
                            for x in 2 * cx..(2 * cx + 2).min(width) {
                                let yuv = rgb_to_yuv(pixel(x, y), enc);
                                u += yuv[1];
                                v += yuv[2];
                                n += 1.0;
                            }
                        }
                        let (u, v) = (to_u8(u / n), to_u8(v / n));
                        let (cx, cy) = (cx as usize, cy as usize);
                        match format {
                            VideoFormat::Nv12 => {
                                let uv = frame.plane_data_mut(1).unwrap();
                                uv[cy * strides[1] + 2 * cx] = u;
                                uv[cy * strides[1] + 2 * cx + 1] = v;
                            }
                            _ => {
                                let (up, vp) = if format == VideoFormat::I420 {
                                    (1, 2)
                                } else {
                                    (2, 1)
                                };
                                frame.plane_data_mut(up).unwrap()[cy * strides[up as usize] + cx] =
                                    u;
                                frame.plane_data_mut(vp).unwrap()[cy * strides[vp as usize] + cx] =
                                    v;
                            }
                        }
                    }
                }
            } else {
                let order = byte_order(format);
                let data = frame.plane_data_mut(0).unwrap();
                for y in 0..height {
                    for x in 0..width {
                        let rgb = pixel(x, y);
                        let at = y as usize * strides[0] + x as usize * order.len();
                        for (i, channel) in order.iter().enumerate() {
                            data[at + i] = match channel {
                                b'R' => rgb[0],
                                b'G' => rgb[1],
                                b'B' => rgb[2],
                                _ => 255,
                            };
                        }
                    }
                }
            }
        }
        (buffer, info)
    }

    fn make_frame(
        format: VideoFormat,
        width: u32,
        height: u32,
        poison: u8,
        pixel: impl Fn(u32, u32) -> [u8; 3],
    ) -> (gst::Buffer, VideoInfo) {
        let c = colorimetry(VideoColorRange::Range16_235, VideoColorMatrix::Bt601);
        make_frame_labelled(format, width, height, c, c, poison, pixel)
    }

    fn sample(
        sampler: &mut Sampler,
        (buffer, info): &(gst::Buffer, VideoInfo),
        region: PixelRect,
        out_width: u32,
        out_height: u32,
    ) -> Result<Vec<u8>, SampleError> {
        let frame = VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), info).unwrap();
        let mut out = vec![0u8; (out_width * out_height * 3) as usize];
        sampler.sample(&frame, region, out_width, out_height, &mut out)?;
        Ok(out)
    }

    fn rect(x: u32, y: u32, width: u32, height: u32) -> PixelRect {
        PixelRect {
            x,
            y,
            width,
            height,
        }
    }

    #[track_caller]
    fn assert_all(tile: &[u8], expected: [u8; 3], tol: i32, what: &str) {
        for (i, px) in tile.chunks_exact(3).enumerate() {
            let off = px
                .iter()
                .zip(expected)
                .any(|(&a, b)| (i32::from(a) - i32::from(b)).abs() > tol);
            assert!(
                !off,
                "{what}: pixel {i} is {px:?}, expected {expected:?} ±{tol}"
            );
        }
    }

    /// Each quadrant of a four-coloured frame comes out in its own colour, in every format:
    /// proves the channel order of each format, x and y crop offsets, and for YUV the planes,
    /// their order (I420 vs YV12) and the BT.601 conversion.
    #[test]
    fn quadrants_come_out_in_their_own_colour() {
        let mut sampler = Sampler::new();
        for format in all_formats() {
            let frame = make_frame(format, 64, 48, 0x80, |x, y| match (x < 32, y < 24) {
                (true, true) => RED,
                (false, true) => BLUE,
                (true, false) => GREEN,
                (false, false) => WHITE,
            });
            let tol = tolerance(format);
            for (region, colour, name) in [
                (rect(0, 0, 32, 24), RED, "top left"),
                (rect(32, 0, 32, 24), BLUE, "top right"),
                (rect(0, 24, 32, 24), GREEN, "bottom left"),
                (rect(32, 24, 32, 24), WHITE, "bottom right"),
            ] {
                let tile = sample(&mut sampler, &frame, region, 16, 12).unwrap();
                assert_all(&tile, colour, tol, &format!("{format:?} {name}"));
            }
            // The left half, downscaled by a non-integer factor.
            let tile = sample(&mut sampler, &frame, rect(0, 0, 32, 24), 10, 7).unwrap();
            assert_all(&tile, RED, tol, &format!("{format:?} left half 10x7"));
        }
    }

    /// A colour with three different channels survives every format: catches channel swaps
    /// that red/blue/green/white could hide (e.g. R and G exchanged in ARGB).
    #[test]
    fn uniform_colour_in_every_format() {
        let mut sampler = Sampler::new();
        for format in all_formats() {
            let frame = make_frame(format, 40, 30, 0x00, |_, _| ODD);
            let tile = sample(&mut sampler, &frame, rect(5, 3, 21, 17), 8, 8).unwrap();
            assert_all(&tile, ODD, tolerance(format), &format!("{format:?}"));
        }
    }

    /// A full-frame downscale of a left-to-right ramp stays a ramp: proves columns are not
    /// shuffled or mirrored and the whole width is used.
    #[test]
    fn horizontal_gradient_stays_monotonic() {
        let mut sampler = Sampler::new();
        for format in [
            VideoFormat::Rgb,
            VideoFormat::Bgrx,
            VideoFormat::Nv12,
            VideoFormat::I420,
        ] {
            let frame = make_frame(format, 200, 20, 0x00, |x, _| {
                let v = (x * 255 / 199) as u8;
                [v, v, v]
            });
            let (w, h) = (50, 5);
            let tile = sample(&mut sampler, &frame, PixelRect::full(200, 20), w, h).unwrap();
            for row in tile.chunks_exact(w as usize * 3) {
                let reds: Vec<u8> = row.chunks_exact(3).map(|p| p[0]).collect();
                assert!(
                    reds.windows(2).all(|p| p[0] <= p[1]),
                    "{format:?}: not monotonic: {reds:?}"
                );
                assert!(reds[0] < 12, "{format:?}: starts at {}", reds[0]);
                assert!(reds[w as usize - 1] > 243, "{format:?}: ends at {reds:?}");
            }
        }
    }

    /// Frames whose rows are padded, with the padding poisoned: RGB 5 px wide has stride 16,
    /// I420 5 px wide has luma stride 8 and chroma stride 4. Crops that touch the right edge
    /// and enlarge (so the filter reaches the border) must still show only picture colours.
    #[test]
    fn padded_strides_are_respected() {
        let mut sampler = Sampler::new();
        for format in [
            VideoFormat::Rgb,
            VideoFormat::Bgr,
            VideoFormat::I420,
            VideoFormat::Nv12,
        ] {
            for poison in [0x00, 0xff] {
                let frame = make_frame(format, 5, 4, poison, |x, _| if x < 2 { RED } else { BLUE });
                if format == VideoFormat::Rgb {
                    assert_eq!(frame.1.stride()[0], 16);
                }
                let tol = tolerance(format);
                let what = format!("{format:?} poison {poison:#x}");
                if !is_yuv(format) {
                    // Chroma of a 2-column half in 4:2:0 is shared with its neighbour; only
                    // the packed formats have clean halves this narrow.
                    let tile = sample(&mut sampler, &frame, rect(0, 0, 2, 4), 2, 4).unwrap();
                    assert_all(&tile, RED, tol, &format!("{what} left"));
                }
                let tile = sample(&mut sampler, &frame, rect(3, 0, 2, 4), 8, 8).unwrap();
                assert_all(&tile, BLUE, tol, &format!("{what} right edge enlarged"));
                let tile = sample(&mut sampler, &frame, rect(4, 0, 1, 4), 3, 3).unwrap();
                assert_all(&tile, BLUE, tol, &format!("{what} last column"));
            }
        }
    }

    /// The same plane content read in place (tight rows, or padded rows away from the edge)
    /// and through the scratch copy (padded rows at the edge, strides that are no whole
    /// number of pixels) gives identical bytes.
    #[test]
    fn in_place_and_copied_planes_agree() {
        let (width, height) = (10u32, 6u32);
        let mut resizer = Resizer::new();
        let mut scratch = Vec::new();
        for pixel_type in [PixelType::U8, PixelType::U8x2, PixelType::U8x3] {
            let bpp = pixel_type.size();
            let row = width as usize * bpp;
            let mut seed = 12345u32;
            let content: Vec<u8> = (0..row * height as usize)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (seed >> 16) as u8
                })
                .collect();
            let mut padded = vec![0xffu8; (row + 7) * height as usize];
            for (dst, src) in padded
                .chunks_exact_mut(row + 7)
                .zip(content.chunks_exact(row))
            {
                dst[..row].copy_from_slice(src);
            }
            let tight = Plane {
                data: &content,
                stride: row,
                width,
                height,
                pixel_type,
            };
            let padded = Plane {
                data: &padded,
                stride: row + 7,
                width,
                height,
                pixel_type,
            };
            for crop in [
                (0.0, 0.0, 10.0, 6.0),
                (3.0, 1.0, 7.0, 5.0),
                (1.5, 0.5, 4.0, 3.0),
                (9.5, 5.5, 0.5, 0.5),
            ] {
                let crop = CropBox {
                    left: crop.0,
                    top: crop.1,
                    width: crop.2,
                    height: crop.3,
                };
                for (w, h) in [(13u32, 7u32), (4, 3), (1, 1)] {
                    let mut a = vec![0u8; w as usize * h as usize * bpp];
                    let mut b = a.clone();
                    let mut dst = dst_image(w, h, &mut a, pixel_type).unwrap();
                    resize_plane(&mut resizer, &mut scratch, &tight, crop, &mut dst).unwrap();
                    let mut dst = dst_image(w, h, &mut b, pixel_type).unwrap();
                    resize_plane(&mut resizer, &mut scratch, &padded, crop, &mut dst).unwrap();
                    assert_eq!(a, b, "{pixel_type:?} {crop:?} -> {w}x{h}");
                }
            }
        }
    }

    /// Odd frame sizes, odd offsets and 1×1 regions (half a chroma sample) neither panic nor
    /// change the colour, in every format.
    #[test]
    fn odd_sizes_offsets_and_tiny_regions() {
        let mut sampler = Sampler::new();
        for format in all_formats() {
            for (fw, fh) in [(1, 1), (7, 5), (9, 7), (2, 3)] {
                let frame = make_frame(format, fw, fh, 0x33, |_, _| ODD);
                let mut regions = vec![
                    PixelRect::full(fw, fh),
                    rect(fw - 1, fh - 1, 1, 1),
                    rect(0, 0, 1, 1),
                ];
                if fw > 4 {
                    regions.push(rect(3, 1, fw - 4, fh - 2));
                    regions.push(rect(1, 3, 3, 1));
                }
                for region in regions {
                    for (w, h) in [(1, 1), (3, 3), (5, 2)] {
                        let tile = sample(&mut sampler, &frame, region, w, h).unwrap();
                        let what = format!("{format:?} {fw}x{fh} {region:?} -> {w}x{h}");
                        assert_all(&tile, ODD, tolerance(format), &what);
                    }
                }
            }
        }
    }

    /// The frame's matrix and range are honoured (BT.601/BT.709, limited/full), unknown means
    /// BT.601 limited, and a mislabelled frame really comes out wrong, so the checks have teeth.
    #[test]
    fn colorimetry_is_respected() {
        use VideoColorMatrix::{Bt601, Bt709, Unknown as UnknownMatrix};
        use VideoColorRange::{Range0_255, Range16_235, Unknown as UnknownRange};
        let mut sampler = Sampler::new();
        for format in YUV {
            for (range, matrix) in [
                (Range16_235, Bt601),
                (Range16_235, Bt709),
                (Range0_255, Bt601),
                (Range0_255, Bt709),
            ] {
                let c = colorimetry(range, matrix);
                for colour in [ODD, TEAL] {
                    let frame = make_frame_labelled(format, 16, 8, c, c, 0, |_, _| colour);
                    let tile = sample(&mut sampler, &frame, rect(2, 2, 8, 4), 4, 4).unwrap();
                    assert_all(
                        &tile,
                        colour,
                        6,
                        &format!("{format:?} {range:?} {matrix:?}"),
                    );
                }
            }

            let bt601 = colorimetry(Range16_235, Bt601);
            let unknown = colorimetry(UnknownRange, UnknownMatrix);
            let frame = make_frame_labelled(format, 16, 8, bt601, unknown, 0, |_, _| ODD);
            let tile = sample(&mut sampler, &frame, rect(0, 0, 16, 8), 4, 4).unwrap();
            assert_all(&tile, ODD, 6, &format!("{format:?} unknown colorimetry"));

            let bt709 = colorimetry(Range16_235, Bt709);
            let full = colorimetry(Range0_255, Bt601);
            for (encode, label) in [(bt709, bt601), (full, bt601)] {
                let frame = make_frame_labelled(format, 16, 8, encode, label, 0, |_, _| TEAL);
                let tile = sample(&mut sampler, &frame, rect(0, 0, 16, 8), 2, 2).unwrap();
                let worst = tile[..3]
                    .iter()
                    .zip(TEAL)
                    .map(|(&a, b)| (i32::from(a) - i32::from(b)).abs())
                    .max()
                    .unwrap();
                assert!(worst > 10, "{format:?}: mislabelled frame decoded too well");
            }
        }
    }

    #[test]
    fn unsupported_format_is_an_error() {
        let mut sampler = Sampler::new();
        for format in [VideoFormat::Gray16Le, VideoFormat::Gray8, VideoFormat::Yuy2] {
            gst::init().unwrap();
            let info = VideoInfo::builder(format, 8, 8).build().unwrap();
            let buffer = gst::Buffer::with_size(info.size()).unwrap();
            let err = sample(&mut sampler, &(buffer, info), rect(0, 0, 8, 8), 4, 4).unwrap_err();
            match err {
                SampleError::UnsupportedFormat(name) => assert_eq!(name, format.to_str().as_str()),
                other => panic!("{format:?}: unexpected {other:?}"),
            }
        }
    }

    /// A wrong output length, an empty tile and regions that are empty or leave the frame are
    /// errors, not panics.
    #[test]
    fn bad_output_and_regions_are_errors() {
        let mut sampler = Sampler::new();
        let frame = make_frame(VideoFormat::I420, 8, 6, 0, |_, _| ODD);
        let readable = VideoFrameRef::from_buffer_ref_readable(frame.0.as_ref(), &frame.1).unwrap();
        let region = rect(0, 0, 8, 6);
        for (w, h, len) in [(4, 4, 47), (4, 4, 49), (4, 4, 0), (0, 4, 0), (4, 0, 0)] {
            let mut out = vec![0u8; len];
            let res = sampler.sample(&readable, region, w, h, &mut out);
            assert!(
                matches!(res, Err(SampleError::Resize(_))),
                "{w}x{h} into {len} bytes: {res:?}"
            );
        }
        let mut out = vec![0u8; 4 * 4 * 3];
        for region in [
            rect(0, 0, 0, 6),
            rect(0, 0, 8, 0),
            rect(1, 0, 8, 6),
            rect(0, 6, 1, 1),
            rect(u32::MAX, 0, 2, 2),
        ] {
            let res = sampler.sample(&readable, region, 4, 4, &mut out);
            assert!(
                matches!(res, Err(SampleError::Resize(_))),
                "{region:?}: {res:?}"
            );
        }
    }

    /// The scratch buffers are reused: a second frame of the same shape does not reallocate.
    #[test]
    fn scratch_is_reused() {
        let mut sampler = Sampler::new();
        let frame = make_frame(VideoFormat::I420, 33, 17, 0, |_, _| ODD);
        let edge = rect(20, 3, 13, 10);
        sample(&mut sampler, &frame, edge, 24, 24).unwrap();
        let before = (
            sampler.tile.as_ptr(),
            sampler.chroma.as_ptr(),
            sampler.crop.as_ptr(),
        );
        sample(&mut sampler, &frame, edge, 24, 24).unwrap();
        sample(&mut sampler, &frame, rect(0, 0, 8, 8), 16, 16).unwrap();
        let after = (
            sampler.tile.as_ptr(),
            sampler.chroma.as_ptr(),
            sampler.crop.as_ptr(),
        );
        assert_eq!(before, after);
    }
}
