// SPDX-License-Identifier: MIT OR Apache-2.0
//! Crop a region of a system-memory video frame and resize it into an RGB tile.
//!
//! Bilinear sampling (like OpenCV's `INTER_LINEAR`): every tile pixel mixes the 2×2 frame
//! pixels around its centre. A tile row mixes the two frame rows it falls between over the span
//! the tile reads, gathers the two neighbours of every tile column from that, and mixes them:
//! element-wise 8-bit fixed-point arithmetic on contiguous rows, which the compiler vectorises
//! (with AVX2 when the CPU has it). Packed RGB formats are sampled in their own layout and the
//! three colour bytes picked out per row; YUV formats sample luma and chroma to the tile size
//! separately and convert each tile pixel with the frame's matrix. The rounding of the two
//! mixing steps keeps a tile within one level of exact bilinear interpolation.
//!
//! 4-byte pixels (RGBA and its orders) take a hand-written AVX2 kernel when the CPU has AVX2
//! (`x86`, chosen at run time; the same arithmetic, so the same bytes as the portable path,
//! which stays the fallback on other CPUs and architectures).
//!
//! The tile samples the region as a window into the frame: when the region is enlarged, the
//! filter may weigh in the pixels just outside its border, as it would anywhere inside; at the
//! frame's edges it repeats the edge pixel. Row padding is never read.

use gst_video::prelude::*;
use gst_video::{VideoColorMatrix, VideoColorRange, VideoColorimetry, VideoFormat};

use crate::geometry::PixelRect;

#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_planes;

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("unsupported video format {0}")]
    UnsupportedFormat(String),
    #[error("{0}")]
    Resize(String),
}

/// Fixed-point weights are in 1/256: a mix of two bytes stays within 16 bits.
const ONE: u16 = 256;

/// Reusable scratch state for sampling; one per element, used on the streaming thread.
#[derive(Default)]
pub struct Sampler {
    /// The tile's columns and rows in the plane being sampled.
    columns: Taps,
    rows: Taps,
    /// Per-row work buffers.
    row: RowScratch,
    /// The sampled 4-byte tile, or the sampled luma tile.
    tile: Vec<u8>,
    /// The sampled chroma: interleaved UV, or all U followed by all V.
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
            columns,
            rows,
            row,
            tile,
            chroma,
        } = self;
        let (tw, th) = (out_width, out_height);
        let full = Window {
            left: region.x.into(),
            top: region.y.into(),
            width: region.width.into(),
            height: region.height.into(),
        };

        match layout {
            Layout::Packed { bytes, pick } => {
                let src = plane(frame, 0, frame.width(), frame.height(), bytes)?;
                let (columns, rows) = fit(columns, rows, &src, full, tw, th);
                // Monomorphised per layout, so the gather's byte offsets are constants.
                match (bytes, pick) {
                    (3, RGB) => resample_plane::<3, 3, RGB>(&src, columns, rows, row, out),
                    (3, BGR) => resample_plane::<3, 3, BGR>(&src, columns, rows, row, out),
                    (4, RGB) => resample_4::<RGB>(&src, columns, rows, row, out),
                    (4, BGR) => resample_4::<BGR>(&src, columns, rows, row, out),
                    (4, XRGB) => resample_4::<XRGB>(&src, columns, rows, row, out),
                    _ => resample_4::<XBGR>(&src, columns, rows, row, out),
                }
            }
            Layout::SemiPlanar | Layout::Planar { .. } => {
                let info = frame.info();
                let (cw, ch) = (info.comp_width(1), info.comp_height(1));
                // 4:2:0: a chroma sample covers 2×2 luma pixels, so odd offsets and sizes map
                // to half-pixel windows.
                let half = Window {
                    left: full.left / 2.0,
                    top: full.top / 2.0,
                    width: full.width / 2.0,
                    height: full.height / 2.0,
                };
                let luma = plane(frame, 0, frame.width(), frame.height(), 1)?;
                let y_tile = scratch(tile, pixels);
                let (c, r) = fit(columns, rows, &luma, full, tw, th);
                resample_narrow::<1>(&luma, c, r, row, y_tile);

                let matrix = YuvToRgb::new(&info.colorimetry());
                let c_tile = scratch(chroma, pixels * 2);
                if let Layout::Planar { u, v } = layout {
                    let (u_tile, v_tile) = c_tile.split_at_mut(pixels);
                    for (index, dst_tile) in [(u, u_tile), (v, v_tile)] {
                        let src = plane(frame, index, cw, ch, 1)?;
                        let (c, r) = fit(columns, rows, &src, half, tw, th);
                        resample_narrow::<1>(&src, c, r, row, dst_tile);
                    }
                    let (u_tile, v_tile) = c_tile.split_at(pixels);
                    matrix.convert_planar(y_tile, u_tile, v_tile, out);
                } else {
                    let src = plane(frame, 1, cw, ch, 2)?;
                    let (c, r) = fit(columns, rows, &src, half, tw, th);
                    resample_narrow::<2>(&src, c, r, row, c_tile);
                    matrix.convert_semi_planar(y_tile, c_tile, out);
                }
            }
        }
        Ok(())
    }
}

/// Sets `columns` and `rows` to sample `window` of `plane` into a `width`×`height` tile.
fn fit<'t>(
    columns: &'t mut Taps,
    rows: &'t mut Taps,
    plane: &Plane,
    window: Window,
    width: u32,
    height: u32,
) -> (&'t Taps, &'t Taps) {
    columns.set(window.left, window.width, plane.width, width);
    rows.set(window.top, window.height, plane.height, height);
    (columns, rows)
}

/// Which bytes of a source pixel make a tile pixel, one byte offset per 8 bits (lowest first);
/// a const generic, so the gather's offsets are constants.
const SAME: u32 = 0x0302_0100;
const RGB: u32 = SAME;
const BGR: u32 = 0x0000_0102;
const XRGB: u32 = 0x0003_0201;
const XBGR: u32 = 0x0001_0203;

/// How the supported formats store their pixels.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// `bytes` (3 or 4) a pixel; `pick` gives the offsets of red, green and blue.
    Packed { bytes: usize, pick: u32 },
    /// 4:2:0 luma plane and an interleaved UV plane (NV12).
    SemiPlanar,
    /// 4:2:0 luma plane and separate U and V planes, by plane index.
    Planar { u: u32, v: u32 },
}

impl Layout {
    fn of(format: VideoFormat) -> Option<Self> {
        use VideoFormat as F;
        let packed = |bytes, pick| Layout::Packed { bytes, pick };
        Some(match format {
            F::Rgba | F::Rgbx => packed(4, RGB),
            F::Bgra | F::Bgrx => packed(4, BGR),
            F::Argb | F::Xrgb => packed(4, XRGB),
            F::Abgr | F::Xbgr => packed(4, XBGR),
            F::Rgb => packed(3, RGB),
            F::Bgr => packed(3, BGR),
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
fn scratch<T: Copy + Default>(buf: &mut Vec<T>, len: usize) -> &mut [T] {
    if buf.len() < len {
        buf.resize(len, T::default());
    }
    &mut buf[..len]
}

/// The part of a plane a tile covers, in plane pixels (fractional for subsampled chroma).
#[derive(Debug, Clone, Copy)]
struct Window {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
}

/// One plane of a mapped frame: `height` rows `stride` bytes apart, of which the first
/// `width` pixels are picture and the rest padding.
struct Plane<'a> {
    data: &'a [u8],
    stride: usize,
    width: u32,
    height: u32,
    bytes_per_pixel: usize,
}

impl Plane<'_> {
    /// The picture part of row `y` (checked against the plane's size when it was made).
    fn row(&self, y: u32) -> &[u8] {
        let start = y as usize * self.stride;
        &self.data[start..start + self.width as usize * self.bytes_per_pixel]
    }
}

fn plane<'a>(
    frame: &'a gst_video::VideoFrameRef<&gst::BufferRef>,
    index: u32,
    width: u32,
    height: u32,
    bytes_per_pixel: usize,
) -> Result<Plane<'a>, SampleError> {
    let data = frame
        .plane_data(index)
        .map_err(|err| SampleError::Resize(err.to_string()))?;
    let stride = frame
        .plane_stride()
        .get(index as usize)
        .and_then(|&s| usize::try_from(s).ok())
        .unwrap_or(0);
    let row = width as usize * bytes_per_pixel;
    let rows_end = stride
        .checked_mul(height.saturating_sub(1) as usize)
        .and_then(|n| n.checked_add(row));
    if stride < row || rows_end.is_none_or(|end| data.len() < end) {
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
        bytes_per_pixel,
    })
}

/// Where the tile's pixels fall along one axis of a plane: for tile pixel `i`, the plane
/// pixels `near[i]` and `far[i]` around its centre and the weight of `far[i]` in 1/256.
#[derive(Default)]
struct Taps {
    near: Vec<u32>,
    far: Vec<u32>,
    weight: Vec<u16>,
}

impl Taps {
    /// Maps `out` tile pixels evenly onto the span `start..start + len` of an axis `size`
    /// pixels long (pixel centres at half-integers, as in OpenCV and GStreamer's scalers);
    /// positions beyond the axis repeat its edge pixel.
    fn set(&mut self, start: f64, len: f64, size: u32, out: u32) {
        self.near.clear();
        self.far.clear();
        self.weight.clear();
        let scale = len / f64::from(out);
        let last = size.saturating_sub(1);
        for i in 0..out {
            let at = (start + (f64::from(i) + 0.5) * scale - 0.5).clamp(0.0, f64::from(last));
            let near = at.floor() as u32;
            // Rounding may give a whole 256: that is the next pixel at full weight.
            let weight = ((at - f64::from(near)) * f64::from(ONE)).round() as u16;
            let (near, weight) = if weight >= ONE {
                ((near + 1).min(last), 0)
            } else {
                (near, weight)
            };
            self.near.push(near);
            self.far.push((near + 1).min(last));
            self.weight.push(weight);
        }
    }

    /// The first and one past the last plane pixel any tile pixel reads.
    fn span(&self) -> (u32, u32) {
        let first = self.near.iter().copied().min().unwrap_or(0);
        let end = self.far.iter().copied().max().map_or(0, |p| p + 1);
        (first, end)
    }
}

/// Work buffers for one tile row.
#[derive(Default)]
struct RowScratch {
    /// The byte offsets of each tile column's near and far neighbours in the mixed row.
    near_at: Vec<u32>,
    far_at: Vec<u32>,
    /// The column weights, repeated for each byte of a pixel.
    weights: Vec<u16>,
    /// The span of the two plane rows a tile row reads, mixed.
    mixed: Vec<u8>,
    /// Each tile column's near and far neighbours, gathered from the mixed row (or, gathering
    /// first, from the upper plane row).
    near: Vec<u8>,
    far: Vec<u8>,
    /// Gathering first: the same neighbours in the lower plane row.
    near_lower: Vec<u8>,
    far_lower: Vec<u8>,
    /// A tile row of whole source pixels, when only some of their bytes are kept.
    wide: Vec<u8>,
    /// The column taps in the layout of the 4-byte kernel.
    #[cfg(target_arch = "x86_64")]
    pairs: x86::PairTaps,
    /// The column taps in the layout of the 1- and 2-byte kernel.
    #[cfg(target_arch = "x86_64")]
    narrow: x86_planes::NarrowTaps,
}

/// Defines `fn $name` to run `$body` compiled for AVX2 when the CPU has it, else as built.
/// The bodies are plain loops written to vectorise; AVX2 doubles the lanes of baseline SSE2
/// and adds byte shuffles and 32-bit multiplies.
macro_rules! vectorised {
    (
        $(#[$doc:meta])*
        fn $name:ident<$(const $g:ident: $gt:ty),*>($($arg:ident: $ty:ty),* $(,)?) $body:block
    ) => {
        $(#[$doc])*
        fn $name<$(const $g: $gt),*>($($arg: $ty),*) {
            #[inline(always)]
            fn body<$(const $g: $gt),*>($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                #[target_feature(enable = "avx2")]
                fn avx2<$(const $g: $gt),*>($($arg: $ty),*) {
                    body::<$($g),*>($($arg),*)
                }
                // SAFETY: the CPU was just found to support AVX2.
                return unsafe { avx2::<$($g),*>($($arg),*) };
            }
            body::<$($g),*>($($arg),*)
        }
    };
}

vectorised! {
    /// Samples `plane` (`S` bytes a pixel) at the tile pixels given by `columns` and `rows`
    /// into `dst`, a tile of tightly packed `M`-byte pixels made of the source bytes `PICK`
    /// names. Per tile row: the two plane rows mixed over the span the columns read
    /// (contiguous, so it vectorises), then each column's two neighbours gathered from that
    /// and mixed. For 4-byte pixels and a tile that reads under a sixth of the span (a downscale
    /// of more than 6×) the neighbours are gathered from both rows first and only they are
    /// mixed: the same arithmetic on the same bytes, so the same tile, for less work.
    fn resample_plane<const S: usize, const M: usize, const PICK: u32>(
        plane: &Plane,
        columns: &Taps,
        rows: &Taps,
        scratch_rows: &mut RowScratch,
        dst: &mut [u8],
    ) {
        let width = columns.near.len();
        let (first, end) = columns.span();
        let (lo, hi) = (first as usize * S, end as usize * S);
        let RowScratch {
            near_at,
            far_at,
            weights,
            mixed,
            near,
            far,
            near_lower,
            far_lower,
            wide,
            ..
        } = scratch_rows;
        near_at.clear();
        near_at.extend(columns.near.iter().map(|&p| (p - first) * S as u32));
        far_at.clear();
        far_at.extend(columns.far.iter().map(|&p| (p - first) * S as u32));
        weights.clear();
        weights.extend(columns.weight.iter().flat_map(|&w| [w; S]));
        let (mixed, near, far, wide) = (
            scratch(mixed, hi - lo),
            scratch(near, width * S),
            scratch(far, width * S),
            scratch(wide, width * S),
        );
        // Measured (issue 24): for 4-byte pixels gathering first pays from about a 6×
        // downscale (1080p → 112²: a third less time; a 4.3× downscale: a tenth more); for 1-
        // and 2-byte planes the byte-wise gathers cost more than the mixing they save.
        let gather_first = S == 4 && hi - lo > 6 * width * S;
        let (near_lower, far_lower) = if gather_first {
            (scratch(near_lower, width * S), scratch(far_lower, width * S))
        } else {
            (&mut near_lower[..0], &mut far_lower[..0])
        };
        let direct = S == M && PICK == SAME;
        let rows = rows.near.iter().zip(&rows.far).zip(&rows.weight);
        for (out, ((&top, &bottom), &weight)) in dst.chunks_exact_mut(width * M).zip(rows) {
            let upper = &plane.row(top)[lo..hi];
            if gather_first {
                gather::<S>(upper, near_at, far_at, near, far);
                if weight != 0 {
                    let lower = &plane.row(bottom)[lo..hi];
                    gather::<S>(lower, near_at, far_at, near_lower, far_lower);
                    mix_rows_in_place(near, near_lower, weight);
                    mix_rows_in_place(far, far_lower, weight);
                }
            } else {
                let span = if weight == 0 {
                    upper
                } else {
                    mix_rows(upper, &plane.row(bottom)[lo..hi], weight, mixed);
                    &*mixed
                };
                gather::<S>(span, near_at, far_at, near, far);
            }
            if direct {
                mix_columns(near, far, weights, out);
            } else {
                mix_columns(near, far, weights, wide);
                pick::<S, M, PICK>(wide, out);
            }
        }
    }
}

/// `resample_plane::<4, 3, PICK>` with the CPU's kernel where there is one (the same bytes).
fn resample_4<const PICK: u32>(
    plane: &Plane,
    columns: &Taps,
    rows: &Taps,
    scratch_rows: &mut RowScratch,
    dst: &mut [u8],
) {
    #[cfg(target_arch = "x86_64")]
    if x86::resample::<PICK>(plane, columns, rows, &mut scratch_rows.pairs, dst) {
        return;
    }
    resample_plane::<4, 3, PICK>(plane, columns, rows, scratch_rows, dst)
}

/// `resample_plane::<S, S, SAME>` for a 1- or 2-byte plane (luma, U, V; NV12's UV) with the
/// CPU's kernel where there is one (the same bytes).
fn resample_narrow<const S: usize>(
    plane: &Plane,
    columns: &Taps,
    rows: &Taps,
    scratch_rows: &mut RowScratch,
    dst: &mut [u8],
) {
    #[cfg(target_arch = "x86_64")]
    if x86_planes::resample::<S>(plane, columns, rows, &mut scratch_rows.narrow, dst) {
        return;
    }
    resample_plane::<S, S, SAME>(plane, columns, rows, scratch_rows, dst)
}

/// Copies every tile column's near and far neighbours out of a (mixed) plane row.
#[inline(always)]
fn gather<const S: usize>(
    row: &[u8],
    near_at: &[u32],
    far_at: &[u32],
    near: &mut [u8],
    far: &mut [u8],
) {
    let taps = near_at.iter().zip(far_at);
    let outs = near.chunks_exact_mut(S).zip(far.chunks_exact_mut(S));
    for ((&a, &b), (n, f)) in taps.zip(outs) {
        n.copy_from_slice(&row[a as usize..][..S]);
        f.copy_from_slice(&row[b as usize..][..S]);
    }
}

/// The bytes `PICK` names of each `S`-byte pixel of `wide`, as `M`-byte pixels in `out`.
#[inline(always)]
fn pick<const S: usize, const M: usize, const PICK: u32>(wide: &[u8], out: &mut [u8]) {
    for (o, p) in out.chunks_exact_mut(M).zip(wide.chunks_exact(S)) {
        for (k, o) in o.iter_mut().enumerate() {
            *o = p[(PICK >> (8 * k)) as usize & 0xff];
        }
    }
}

/// `out = near + (far - near) × weight`, rounded, element by element.
#[inline(always)]
fn mix_columns(near: &[u8], far: &[u8], weights: &[u16], out: &mut [u8]) {
    for (((o, &a), &b), &w) in out.iter_mut().zip(near).zip(far).zip(weights) {
        *o = mix(a, b, w);
    }
}

/// `out = upper + (lower - upper) × weight`, rounded, element by element.
#[inline(always)]
fn mix_rows(upper: &[u8], lower: &[u8], weight: u16, out: &mut [u8]) {
    for ((o, &a), &b) in out.iter_mut().zip(upper).zip(lower) {
        *o = mix(a, b, weight);
    }
}

/// `upper = upper + (lower - upper) × weight`, rounded, element by element.
#[inline(always)]
fn mix_rows_in_place(upper: &mut [u8], lower: &[u8], weight: u16) {
    for (a, &b) in upper.iter_mut().zip(lower) {
        *a = mix(*a, b, weight);
    }
}

/// `a` and `b` mixed with `b`'s weight `w` in 1/256 (`w <= 256`), rounded to nearest.
#[inline(always)]
fn mix(a: u8, b: u8, w: u16) -> u8 {
    // At most 255 × 256 + 128: fits in 16 bits, so a vector holds 8 (SSE2) or 16 (AVX2).
    ((u16::from(a) * (ONE - w) + u16::from(b) * w + ONE / 2) >> 8) as u8
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

    /// Converts a luma tile and separate U and V tiles into packed RGB.
    fn convert_planar(&self, y: &[u8], u: &[u8], v: &[u8], out: &mut [u8]) {
        yuv_planar(self, y, u, v, out)
    }

    /// Converts a luma tile and an interleaved UV tile into packed RGB.
    fn convert_semi_planar(&self, y: &[u8], uv: &[u8], out: &mut [u8]) {
        yuv_semi_planar(self, y, uv, out)
    }

    #[inline(always)]
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

vectorised! {
    fn yuv_planar<>(m: &YuvToRgb, y: &[u8], u: &[u8], v: &[u8], out: &mut [u8]) {
        let yuv = y.iter().zip(u).zip(v);
        for (o, ((&y, &u), &v)) in out.chunks_exact_mut(3).zip(yuv) {
            o.copy_from_slice(&m.rgb(y, u, v));
        }
    }
}

vectorised! {
    fn yuv_semi_planar<>(m: &YuvToRgb, y: &[u8], uv: &[u8], out: &mut [u8]) {
        let yuv = y.iter().zip(uv.chunks_exact(2));
        for (o, (&y, uv)) in out.chunks_exact_mut(3).zip(yuv) {
            o.copy_from_slice(&m.rgb(y, uv[0], uv[1]));
        }
    }
}

/// Reproducible noise (xorshift) for the kernels' tests: the sharpest test of where a sample
/// is taken, as a pixel off shows as tens of levels.
#[cfg(test)]
fn test_noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
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

    /// A tile equals a floating-point bilinear reference written here independently (pixel
    /// centres at half-integers, edge pixels repeated) to within one level, for random content,
    /// every packed format, regions inside, at the edges and enlarged, and up- and downscaling.
    #[test]
    fn tiles_match_a_floating_point_bilinear_reference() {
        let mut sampler = Sampler::new();
        let (fw, fh) = (37u32, 23u32);
        let mut seed = 12345u32;
        let noise: Vec<[u8; 3]> = (0..fw * fh)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let v = seed.to_le_bytes();
                [v[1], v[2], v[3]]
            })
            .collect();
        let at = |x: f64, y: f64| -> [f64; 3] {
            let px = |x: i64, y: i64| {
                let (x, y) = (x.clamp(0, fw as i64 - 1), y.clamp(0, fh as i64 - 1));
                noise[(y * fw as i64 + x) as usize].map(f64::from)
            };
            let (x, y) = (
                x.clamp(0.0, f64::from(fw - 1)),
                y.clamp(0.0, f64::from(fh - 1)),
            );
            let (x0, y0) = (x.floor(), y.floor());
            let (fx, fy) = (x - x0, y - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let (a, b, c, d) = (
                px(x0, y0),
                px(x0 + 1, y0),
                px(x0, y0 + 1),
                px(x0 + 1, y0 + 1),
            );
            std::array::from_fn(|i| {
                let top = a[i] + (b[i] - a[i]) * fx;
                let bottom = c[i] + (d[i] - c[i]) * fx;
                top + (bottom - top) * fy
            })
        };
        for format in PACKED {
            let frame = make_frame(format, fw, fh, 0x5a, |x, y| noise[(y * fw + x) as usize]);
            for region in [
                PixelRect::full(fw, fh),
                rect(3, 2, 17, 11),
                rect(30, 15, 7, 8),
                rect(0, 20, 5, 3),
            ] {
                // (4, 3) of the whole frame: a 9× downscale, where 4-byte pixels are gathered
                // before the rows are mixed.
                for (w, h) in [(8u32, 5u32), (24, 16), (64, 40), (4, 3), (1, 1)] {
                    let tile = sample(&mut sampler, &frame, region, w, h).unwrap();
                    let (sx, sy) = (
                        f64::from(region.width) / f64::from(w),
                        f64::from(region.height) / f64::from(h),
                    );
                    for (i, px) in tile.chunks_exact(3).enumerate() {
                        let (tx, ty) = ((i as u32 % w) as f64, (i as u32 / w) as f64);
                        let x = f64::from(region.x) + (tx + 0.5) * sx - 0.5;
                        let y = f64::from(region.y) + (ty + 0.5) * sy - 0.5;
                        let want = at(x, y);
                        for c in 0..3 {
                            assert!(
                                (f64::from(px[c]) - want[c]).abs() <= 1.5,
                                "{format:?} {region:?} -> {w}x{h}: pixel ({tx}, {ty}) channel \
                                 {c} is {}, reference {:.2}",
                                px[c],
                                want[c]
                            );
                        }
                    }
                }
            }
        }
    }

    /// The same plane content in tight rows and in padded rows full of garbage gives identical
    /// bytes, for every pixel size and windows that touch the right edge.
    #[test]
    fn padded_and_tight_planes_agree() {
        let (width, height) = (10u32, 6u32);
        let mut columns = Taps::default();
        let mut rows = Taps::default();
        let mut scratch_rows = RowScratch::default();
        for bpp in 1..=4usize {
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
            let plane = |data, stride| Plane {
                data,
                stride,
                width,
                height,
                bytes_per_pixel: bpp,
            };
            let (tight, padded) = (plane(&content, row), plane(&padded, row + 7));
            for (left, top, w, h) in [
                (0.0, 0.0, 10.0, 6.0),
                (3.0, 1.0, 7.0, 5.0),
                (1.5, 0.5, 4.0, 3.0),
                (9.5, 5.5, 0.5, 0.5),
            ] {
                for (ow, oh) in [(13u32, 7u32), (4, 3), (1, 1)] {
                    columns.set(left, w, width, ow);
                    rows.set(top, h, height, oh);
                    let mut out = [vec![0u8; ow as usize * oh as usize * bpp], vec![]];
                    out[1] = out[0].clone();
                    for (plane, dst) in [&tight, &padded].into_iter().zip(&mut out) {
                        match bpp {
                            1 => resample_plane::<1, 1, SAME>(
                                plane,
                                &columns,
                                &rows,
                                &mut scratch_rows,
                                dst,
                            ),
                            2 => resample_plane::<2, 2, SAME>(
                                plane,
                                &columns,
                                &rows,
                                &mut scratch_rows,
                                dst,
                            ),
                            3 => resample_plane::<3, 3, SAME>(
                                plane,
                                &columns,
                                &rows,
                                &mut scratch_rows,
                                dst,
                            ),
                            _ => resample_plane::<4, 4, SAME>(
                                plane,
                                &columns,
                                &rows,
                                &mut scratch_rows,
                                dst,
                            ),
                        }
                    }
                    assert_eq!(
                        out[0], out[1],
                        "{bpp} bytes {left},{top} {w}x{h} -> {ow}x{oh}"
                    );
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
        let pointers = |s: &Sampler| {
            (
                s.tile.as_ptr(),
                s.chroma.as_ptr(),
                s.row.near.as_ptr(),
                s.row.mixed.as_ptr(),
                s.columns.near.as_ptr(),
            )
        };
        let before = pointers(&sampler);
        sample(&mut sampler, &frame, edge, 24, 24).unwrap();
        sample(&mut sampler, &frame, rect(0, 0, 8, 8), 16, 16).unwrap();
        assert_eq!(before, pointers(&sampler));
    }
}
