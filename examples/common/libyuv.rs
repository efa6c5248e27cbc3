// SPDX-License-Identifier: MIT OR Apache-2.0
//! libyuv, opened at run time from `libyuv.so.0` (Debian's `libyuv0`), for the benchmark's
//! side-by-side comparison with the crate's sampler. Only the few C functions the comparison
//! calls are declared, by hand, from libyuv's headers (`libyuv-dev`, `/usr/include/libyuv/`).
//!
//! libyuv names packed formats by their order in a little-endian 32-bit word: its "ARGB" is
//! B, G, R, A in memory and its "RGB24" is B, G, R; "RAW" is R, G, B. Its ARGB scaler treats
//! the four bytes alike, so it scales RGBA as well; `ARGBToRGB24` drops the fourth byte and
//! keeps the order of the other three, so RGBA in gives R, G, B out, the sampler's tile.

use std::ffi::c_void;

/// `enum FilterMode` (scale.h): `kFilterBilinear`.
const FILTER_BILINEAR: i32 = 2;

type ArgbScale = unsafe extern "C" fn(*const u8, i32, i32, i32, *mut u8, i32, i32, i32, i32) -> i32;
type ArgbToRgb24 = unsafe extern "C" fn(*const u8, i32, *mut u8, i32, i32, i32) -> i32;
type ScalePlane = unsafe extern "C" fn(*const u8, i32, i32, i32, *mut u8, i32, i32, i32, i32);
type UvScale = unsafe extern "C" fn(*const u8, i32, i32, i32, *mut u8, i32, i32, i32, i32) -> i32;
type SplitUvPlane = unsafe extern "C" fn(*const u8, i32, *mut u8, i32, *mut u8, i32, i32, i32);
type I444ToRgb24Matrix = unsafe extern "C" fn(
    *const u8,
    i32,
    *const u8,
    i32,
    *const u8,
    i32,
    *mut u8,
    i32,
    *const c_void,
    i32,
    i32,
) -> i32;
type Nv12Scale = unsafe extern "C" fn(
    *const u8,
    i32,
    *const u8,
    i32,
    i32,
    i32,
    *mut u8,
    i32,
    *mut u8,
    i32,
    i32,
    i32,
    i32,
) -> i32;
type Nv21ToRgb24Matrix = unsafe extern "C" fn(
    *const u8,
    i32,
    *const u8,
    i32,
    *mut u8,
    i32,
    *const c_void,
    i32,
    i32,
) -> i32;

/// A region of a frame, in its pixels.
#[derive(Clone, Copy, Debug)]
pub struct Crop {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// The libyuv functions the comparison uses; the library stays open as long as this lives.
pub struct LibYuv {
    argb_scale: ArgbScale,
    argb_to_rgb24: ArgbToRgb24,
    scale_plane: ScalePlane,
    uv_scale: UvScale,
    split_uv_plane: SplitUvPlane,
    i444_to_rgb24_matrix: I444ToRgb24Matrix,
    nv12_scale: Nv12Scale,
    nv21_to_rgb24_matrix: Nv21ToRgb24Matrix,
    /// `kYvuH709Constants`: BT.709 limited range with U and V swapped, which (with U and V
    /// swapped in the call too) makes libyuv's "RGB24" writers write R, G, B.
    yvu_709: *const c_void,
    _lib: libloading::Library,
}

/// libyuv's scratch for one tile: the 4-byte tile, or the luma and chroma tiles.
#[derive(Default)]
pub struct Scratch {
    four: Vec<u8>,
    luma: Vec<u8>,
    uv: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

fn sized(buf: &mut Vec<u8>, len: usize) -> &mut [u8] {
    buf.resize(len, 0);
    &mut buf[..len]
}

fn int(v: impl TryInto<i32>) -> i32 {
    v.try_into().unwrap_or(i32::MAX)
}

impl LibYuv {
    /// Opens `libyuv.so.0`; the error says what is missing.
    pub fn open() -> Result<LibYuv, String> {
        // SAFETY: loading libyuv runs no initialisers with preconditions of ours.
        let lib = unsafe { libloading::Library::new("libyuv.so.0") }.map_err(|e| e.to_string())?;
        // SAFETY: each symbol is declared with its signature in libyuv's headers (see the
        // types above); the pointers are used only while `_lib` keeps the library loaded.
        unsafe {
            macro_rules! sym {
                ($t:ty, $name:literal) => {
                    *lib.get::<$t>(concat!($name, "\0").as_bytes())
                        .map_err(|e| format!("{}: {e}", $name))?
                };
            }
            Ok(LibYuv {
                argb_scale: sym!(ArgbScale, "ARGBScale"),
                argb_to_rgb24: sym!(ArgbToRgb24, "ARGBToRGB24"),
                scale_plane: sym!(ScalePlane, "ScalePlane"),
                uv_scale: sym!(UvScale, "UVScale"),
                split_uv_plane: sym!(SplitUvPlane, "SplitUVPlane"),
                i444_to_rgb24_matrix: sym!(I444ToRgb24Matrix, "I444ToRGB24Matrix"),
                nv12_scale: sym!(Nv12Scale, "NV12Scale"),
                nv21_to_rgb24_matrix: sym!(Nv21ToRgb24Matrix, "NV21ToRGB24Matrix"),
                yvu_709: sym!(*const c_void, "kYvuH709Constants"),
                _lib: lib,
            })
        }
    }

    /// `crop` of a 4-byte-per-pixel plane (RGBA here) scaled bilinearly into `out`, a
    /// `tw`×`th` tile of 3-byte pixels (the first three bytes of each, in order).
    pub fn rgba_tile(
        &self,
        plane: &[u8],
        stride: usize,
        crop: Crop,
        (tw, th): (u32, u32),
        scratch: &mut Scratch,
        out: &mut [u8],
    ) -> Result<(), String> {
        let start = crop.y as usize * stride + crop.x as usize * 4;
        let end = start + (crop.height as usize - 1) * stride + crop.width as usize * 4;
        if end > plane.len() || out.len() != (tw * th * 3) as usize {
            return Err(format!(
                "libyuv rgba: {crop:?} or a {tw}x{th} tile does not fit"
            ));
        }
        let four = sized(&mut scratch.four, (tw * th * 4) as usize);
        // SAFETY: the crop's rows lie inside `plane` (checked above), the outputs are sized
        // for the tile.
        let rc = unsafe {
            (self.argb_scale)(
                plane[start..].as_ptr(),
                int(stride),
                int(crop.width),
                int(crop.height),
                four.as_mut_ptr(),
                int(tw * 4),
                int(tw),
                int(th),
                FILTER_BILINEAR,
            ) | (self.argb_to_rgb24)(
                four.as_ptr(),
                int(tw * 4),
                out.as_mut_ptr(),
                int(tw * 3),
                int(tw),
                int(th),
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(format!("libyuv rgba: error {rc}"))
        }
    }

    /// `crop` (even offsets and sizes) of an NV12 frame into the same RGB tile as the
    /// sampler's: luma and interleaved chroma each scaled bilinearly to the tile's size (so
    /// chroma is sampled at every tile pixel, as the sampler does), the chroma split, then
    /// converted with BT.709 limited range (I444 → R, G, B).
    #[allow(clippy::too_many_arguments)]
    pub fn nv12_tile(
        &self,
        (y, y_stride): (&[u8], usize),
        (uv, uv_stride): (&[u8], usize),
        crop: Crop,
        (tw, th): (u32, u32),
        scratch: &mut Scratch,
        out: &mut [u8],
    ) -> Result<(), String> {
        let (ys, uvs) = nv12_starts(y, y_stride, uv, uv_stride, crop, out, tw, th)?;
        let n = (tw * th) as usize;
        let luma = sized(&mut scratch.luma, n);
        let chroma = sized(&mut scratch.uv, 2 * n);
        let u = sized(&mut scratch.u, n);
        let v = sized(&mut scratch.v, n);
        // SAFETY: the crop lies inside both planes (checked by `nv12_starts`); every output is
        // sized for the tile.
        let rc = unsafe {
            (self.scale_plane)(
                y[ys..].as_ptr(),
                int(y_stride),
                int(crop.width),
                int(crop.height),
                luma.as_mut_ptr(),
                int(tw),
                int(tw),
                int(th),
                FILTER_BILINEAR,
            );
            let rc = (self.uv_scale)(
                uv[uvs..].as_ptr(),
                int(uv_stride),
                int(crop.width / 2),
                int(crop.height / 2),
                chroma.as_mut_ptr(),
                int(tw * 2),
                int(tw),
                int(th),
                FILTER_BILINEAR,
            );
            (self.split_uv_plane)(
                chroma.as_ptr(),
                int(tw * 2),
                u.as_mut_ptr(),
                int(tw),
                v.as_mut_ptr(),
                int(tw),
                int(tw),
                int(th),
            );
            // U and V swapped, with the swapped matrix: R, G, B in memory.
            rc | (self.i444_to_rgb24_matrix)(
                luma.as_ptr(),
                int(tw),
                v.as_ptr(),
                int(tw),
                u.as_ptr(),
                int(tw),
                out.as_mut_ptr(),
                int(tw * 3),
                self.yvu_709,
                int(tw),
                int(th),
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(format!("libyuv nv12: error {rc}"))
        }
    }

    /// The cheaper way libyuv is usually used on NV12: `NV12Scale` (chroma stays 4:2:0, at half
    /// the tile's size) then NV12 → R, G, B, each chroma sample shared by 2×2 tile pixels.
    /// Not the sampler's tile: timed for scale, not compared against a bound.
    #[allow(clippy::too_many_arguments)]
    pub fn nv12_tile_420(
        &self,
        (y, y_stride): (&[u8], usize),
        (uv, uv_stride): (&[u8], usize),
        crop: Crop,
        (tw, th): (u32, u32),
        scratch: &mut Scratch,
        out: &mut [u8],
    ) -> Result<(), String> {
        let (ys, uvs) = nv12_starts(y, y_stride, uv, uv_stride, crop, out, tw, th)?;
        let cw = tw.div_ceil(2);
        let luma = sized(&mut scratch.luma, (tw * th) as usize);
        let chroma = sized(&mut scratch.uv, (cw * 2 * th.div_ceil(2)) as usize);
        // SAFETY: as in `nv12_tile`.
        let rc = unsafe {
            (self.nv12_scale)(
                y[ys..].as_ptr(),
                int(y_stride),
                uv[uvs..].as_ptr(),
                int(uv_stride),
                int(crop.width),
                int(crop.height),
                luma.as_mut_ptr(),
                int(tw),
                chroma.as_mut_ptr(),
                int(cw * 2),
                int(tw),
                int(th),
                FILTER_BILINEAR,
            ) | (self.nv21_to_rgb24_matrix)(
                luma.as_ptr(),
                int(tw),
                chroma.as_ptr(),
                int(cw * 2),
                out.as_mut_ptr(),
                int(tw * 3),
                self.yvu_709,
                int(tw),
                int(th),
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(format!("libyuv nv12 4:2:0: error {rc}"))
        }
    }
}

/// The byte offsets of `crop` in the luma and chroma planes, after checking it fits.
#[allow(clippy::too_many_arguments)]
fn nv12_starts(
    y: &[u8],
    y_stride: usize,
    uv: &[u8],
    uv_stride: usize,
    crop: Crop,
    out: &[u8],
    tw: u32,
    th: u32,
) -> Result<(usize, usize), String> {
    let even = [crop.x, crop.y, crop.width, crop.height]
        .iter()
        .all(|v| v.is_multiple_of(2));
    let ys = crop.y as usize * y_stride + crop.x as usize;
    let uvs = (crop.y / 2) as usize * uv_stride + crop.x as usize;
    let y_end = ys + (crop.height as usize - 1) * y_stride + crop.width as usize;
    let uv_end = uvs + (crop.height as usize / 2 - 1) * uv_stride + crop.width as usize;
    if !even || y_end > y.len() || uv_end > uv.len() || out.len() != (tw * th * 3) as usize {
        return Err(format!(
            "libyuv nv12: {crop:?} (must be even) or a {tw}x{th} tile does not fit"
        ));
    }
    Ok((ys, uvs))
}
