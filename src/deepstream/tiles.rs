// SPDX-License-Identifier: MIT OR Apache-2.0
//! Tiles cut out of NVMM surfaces by NVIDIA's `NvBufSurfTransform`, then mapped and copied on
//! the CPU, in two forms:
//!
//! - **one call per tile** ([`TileReader::read_tile`]), the recipe of NVIDIA's sample plugin
//!   dsexample: a single-frame view of the buffer's surface (its header copied with
//!   `batchSize = numFilled = 1` and `surfaceList` at the frame's entry), session parameters,
//!   one transform into a one-entry RGBA surface we own, map, copy, unmap. The reference, and
//!   the fallback of the second form.
//! - **one call per buffer** ([`TileReader::defer`], then [`TileReader::cut_deferred`]), the
//!   recipe of `nvinfer`'s batched conversion: each tile is checked when it is asked for and
//!   cut later with every other tile of the buffer (all frames of the batch, all objects) in
//!   one transform. The source is a view whose `surfaceList` is our own array holding one copy
//!   of the frame's `NvBufSurfaceParams` per tile (a frame with four objects appears four
//!   times; `batchSize = numFilled` = the tiles), with `src_rect[i]` / `dst_rect[i]` arrays of
//!   the same length; the destination is a batched RGBA surface with one entry per tile. Then
//!   one map of all its entries, the copies, one unmap.
//!
//! The batched destination is made for the batch and grows to the largest batch seen (rounded
//! up to a power of two), never past the per-buffer tile budget the caller passes
//! (`max-tiles-per-buffer`) nor [`MAX_BATCH_BYTES`] of RGBA; a buffer needing more is cut in
//! several calls of that size.
//!
//! Session parameters are set on every transform call, i.e. once per buffer in the batched
//! form. They belong to the calling thread, and other DeepStream elements on the same streaming
//! thread (`nvinfer` with its own CUDA stream, `nvvideoconvert`) set theirs between our buffers:
//! parameters set once per thread would be someone else's by the next buffer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::field;
use super::surface::{
    LAYOUT_PITCH, Platform, Surface, SurfaceError, SurfaceHeader, SurfaceLib, color, even_crop,
    layout, put, put_ptr,
};
use crate::geometry::PixelRect;

const TRANSFORM_CROP_SRC: u32 = 1;
const TRANSFORM_CROP_DST: u32 = 2;
const TRANSFORM_FILTER: u32 = 4;
const FILTER_BILINEAR: u32 = 1;
const MAP_READ: i32 = 0;
/// `index` / `plane` meaning every entry of a surface.
const ALL: i32 = -1;

/// The most RGBA bytes a batched destination surface holds (our bound, not NVIDIA's): 32 MiB
/// is 668 tiles of 112², 167 of 224². The per-buffer tile budget (64 by default) stays under it
/// at these sizes, so a buffer is one call.
pub const MAX_BATCH_BYTES: usize = 32 << 20;

/// What the transform did, readable from any thread (the element's `stats`).
#[derive(Debug, Default)]
pub struct TransformCounters {
    /// `NvBufSurfTransform` calls made.
    pub calls: AtomicU64,
    /// Tiles those calls cut.
    pub tiles: AtomicU64,
    /// Batched calls (or the map after one) that failed; their tiles were cut again one call
    /// each.
    pub batch_failures: AtomicU64,
}

/// Where [`TileReader::cut_deferred`] puts deferred tile `i`: called with `i` and a writer that
/// fills a `tw`×`th` RGB slice straight from the mapped surface; a sink with no place for the
/// tile (its clip is gone) returns without calling it. An error stops the cut.
pub type TileSink<'a> = dyn FnMut(usize, &mut dyn FnMut(&mut [u8]) -> Result<(), SurfaceError>) -> Result<(), SurfaceError>
    + 'a;

/// A tile asked for and not cut yet: frame `index` of the buffer (its `batch_id`), `region`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileRequest {
    pub index: u32,
    pub region: PixelRect,
}

/// A frame's entry in a buffer's `surfaceList`, checked, and the crop to cut from it.
#[derive(Debug, Clone, Copy)]
struct Located {
    entry: *const u8,
    width: u32,
    height: u32,
    format: u32,
    gpu: u32,
    crop: PixelRect,
}

/// An `NvBufSurfTransformRect` (top first) at the largest size, zero-filled.
fn rect(top: u32, left: u32, width: u32, height: u32) -> [u8; layout::rect::SIZE] {
    let mut r = [0u8; layout::rect::SIZE];
    put(&mut r, 0, top);
    put(&mut r, 4, left);
    put(&mut r, 8, width);
    put(&mut r, 12, height);
    r
}

/// `NvBufSurfTransformParams` for a crop and bilinear scale with the given rect arrays.
fn transform_params(
    src_rects: *const u8,
    dst_rects: *const u8,
) -> [u64; layout::transform::SIZE / 8] {
    let mut params = [0u64; layout::transform::SIZE / 8];
    let bytes = bytemuck::cast_slice_mut::<u64, u8>(&mut params);
    put(
        bytes,
        layout::transform::FLAG,
        TRANSFORM_CROP_SRC | TRANSFORM_CROP_DST | TRANSFORM_FILTER,
    );
    put(bytes, layout::transform::FILTER, FILTER_BILINEAR);
    put_ptr(bytes, layout::transform::SRC_RECT, src_rects);
    put_ptr(bytes, layout::transform::DST_RECT, dst_rects);
    params
}

/// The RGB bytes of one `width`-pixel row of RGBA.
fn rgba_row_to_rgb(row: &[u8], out: &mut [u8]) {
    for (o, i) in out.chunks_exact_mut(3).zip(row.chunks_exact(4)) {
        o.copy_from_slice(&i[..3]);
    }
}

/// The batched destination: `capacity` pitch-linear RGBA entries of one tile size on one GPU.
struct BatchDest {
    surface: Surface<'static>,
    capacity: u32,
    width: u32,
    height: u32,
    gpu: u32,
}

/// Reads tiles out of NVMM buffers: owns the destination surfaces and the scratch of the
/// batched form (kept between buffers, so a buffer allocates nothing once they have grown).
pub struct TileReader {
    lib: &'static SurfaceLib,
    /// The one-entry destination of the per-tile form: the surface, width, height, GPU.
    dest: Option<(Surface<'static>, u32, u32, u32)>,
    batch: Option<BatchDest>,
    counters: Arc<TransformCounters>,
    /// Tiles asked for since the buffer began ([`TileReader::begin_buffer`]).
    pending: Vec<TileRequest>,
    /// The batched source view: its header and its `surfaceList` (one copy of an entry per
    /// tile), and the rect arrays. `u64` storage keeps NVIDIA's structs 8-byte aligned.
    view: Vec<u64>,
    list: Vec<u64>,
    src_rects: Vec<u64>,
    dst_rects: Vec<u64>,
}

// SAFETY: the surfaces and scratch are only used by the thread that owns the reader; NVIDIA's
// functions may be called from any thread (the session is set on each call's thread).
unsafe impl Send for TileReader {}

impl TileReader {
    pub fn new(lib: &'static SurfaceLib, counters: Arc<TransformCounters>) -> Self {
        TileReader {
            lib,
            dest: None,
            batch: None,
            counters,
            pending: Vec::new(),
            view: Vec::new(),
            list: Vec::new(),
            src_rects: Vec::new(),
            dst_rects: Vec::new(),
        }
    }

    pub fn lib(&self) -> &'static SurfaceLib {
        self.lib
    }

    pub fn counters(&self) -> &Arc<TransformCounters> {
        &self.counters
    }

    /// Forgets the tiles of the last buffer.
    pub fn begin_buffer(&mut self) {
        self.pending.clear();
    }

    /// Checks frame `index` of the `NvBufSurface` whose bytes are `header` and `region` inside
    /// it: the header ([`SurfaceHeader::parse`], [`SurfaceHeader::check_index`]), then the
    /// entry's layout, colour format and size.
    ///
    /// # Safety
    /// As [`TileReader::read_tile`].
    unsafe fn locate(
        &self,
        header: &[u8],
        index: u32,
        region: PixelRect,
    ) -> Result<Located, SurfaceError> {
        use layout::params as p;
        let abi = self.lib.abi;
        let h = SurfaceHeader::parse(header, abi)?;
        h.check_index(index)?;
        let list = h.surface_list as *const u8;
        // SAFETY: `index < numFilled <= batchSize`: entry `index` is in the list, at the
        // running library's stride (caller: the memory is NVIDIA's surface).
        let entry = unsafe { list.add(index as usize * abi.stride) };
        let (width, height, format, surface_layout): (u32, u32, u32, u32) = unsafe {
            (
                field(entry, p::WIDTH),
                field(entry, p::HEIGHT),
                field(entry, p::COLOR_FORMAT),
                field(entry, p::LAYOUT),
            )
        };
        if surface_layout != LAYOUT_PITCH && self.lib.platform == Platform::DGpu {
            return Err(SurfaceError::BlockLinear { index });
        }
        if !color::supported_source(format) {
            return Err(SurfaceError::UnsupportedColor {
                index,
                value: format,
            });
        }
        let inside = region.width > 0
            && region.height > 0
            && region
                .x
                .checked_add(region.width)
                .is_some_and(|r| r <= width)
            && region
                .y
                .checked_add(region.height)
                .is_some_and(|b| b <= height);
        if !inside {
            return Err(SurfaceError::RegionOutside {
                index,
                region,
                width,
                height,
            });
        }
        Ok(Located {
            entry,
            width,
            height,
            format,
            gpu: h.gpu_id,
            crop: even_crop(region, width, height),
        })
    }

    fn dest(
        &mut self,
        width: u32,
        height: u32,
        gpu: u32,
    ) -> Result<&Surface<'static>, SurfaceError> {
        let fits = matches!(&self.dest, Some((_, w, h, g)) if (*w, *h, *g) == (width, height, gpu));
        if !fits {
            self.dest = None;
            let s = Surface::create(
                self.lib,
                1,
                width,
                height,
                gpu,
                self.lib.platform.mappable_mem_type(),
            )?;
            self.dest = Some((s, width, height, gpu));
        }
        Ok(&self.dest.as_ref().expect("just made").0)
    }

    /// Sets the transform's session parameters on the calling thread.
    fn set_session(&self, gpu: u32) -> Result<(), SurfaceError> {
        let mut config = [0u64; layout::config::SIZE / 8];
        let bytes = bytemuck::cast_slice_mut::<u64, u8>(&mut config);
        put(bytes, layout::config::COMPUTE_MODE, 0);
        put(bytes, layout::config::GPU_ID, gpu);
        // SAFETY: a zero-filled NvBufSurfTransformConfigParams of the largest size.
        let code = unsafe { (self.lib.set_session_params)(config.as_mut_ptr().cast()) };
        if code != 0 {
            return Err(SurfaceError::Call {
                function: "NvBufSurfTransformSetSessionParams",
                code,
                what: format!(" on GPU {gpu}"),
            });
        }
        Ok(())
    }

    /// Crops `region` of `surfaceList[index]` of the `NvBufSurface` whose bytes are `header` (a
    /// buffer's mapped memory) and scales it into `out`, a `tw`×`th` RGB tile, with one
    /// transform call of its own. The header is checked first ([`SurfaceHeader::parse`],
    /// [`SurfaceHeader::check_index`]).
    ///
    /// # Safety
    /// `header` must be the mapped memory of a live NVMM buffer that
    /// [`super::surface::check_memory`] accepted: once its fields pass the checks, its
    /// `surfaceList` is taken to point at `numFilled` entries of the library's stride, valid
    /// for the call.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn read_tile(
        &mut self,
        header: &[u8],
        index: u32,
        region: PixelRect,
        tw: u32,
        th: u32,
        out: &mut [u8],
    ) -> Result<(), SurfaceError> {
        use layout::surface as s;
        if out.len() != tw as usize * th as usize * 3 {
            return Err(SurfaceError::TileSize {
                width: tw,
                height: th,
                out: out.len(),
            });
        }
        // SAFETY: the caller's contract.
        let at = unsafe { self.locate(header, index, region) }?;
        let crop = at.crop;

        // The single-frame view: the header copied with batchSize = numFilled = 1 and the list
        // pointing at our entry. A whole batch into a batch-1 destination is refused (or
        // crashes) in NVIDIA's transform.
        let mut view = header.to_vec();
        put(&mut view, s::BATCH_SIZE, 1);
        put(&mut view, s::NUM_FILLED, 1);
        put_ptr(&mut view, s::SURFACE_LIST, at.entry);

        // Session parameters belong to the calling thread: set them on every call.
        self.set_session(at.gpu)?;
        let lib = self.lib;
        let dest = self.dest(tw, th, at.gpu)?;
        let (dest_ptr, dest_params) = (dest.ptr, dest.params());
        let src_rect = rect(crop.y, crop.x, crop.width, crop.height);
        let dst_rect = rect(0, 0, tw, th);
        let mut params = transform_params(src_rect.as_ptr(), dst_rect.as_ptr());
        // SAFETY: `view` is a one-entry NvBufSurface pointing into the buffer's live list;
        // `dest_ptr` is our surface; the rects and params outlive the call.
        let code = unsafe {
            (lib.transform)(
                view.as_mut_ptr().cast(),
                dest_ptr,
                params.as_mut_ptr().cast(),
            )
        };
        self.counters.calls.fetch_add(1, Ordering::Relaxed);
        if code != 0 {
            return Err(SurfaceError::Call {
                function: "NvBufSurfTransform",
                code,
                what: format!(
                    " cropping {}x{} at ({}, {}) of surface {index} ({}x{} {}) to {tw}x{th} RGBA",
                    crop.width,
                    crop.height,
                    crop.x,
                    crop.y,
                    at.width,
                    at.height,
                    color::name(at.format)
                ),
            });
        }
        self.counters.tiles.fetch_add(1, Ordering::Relaxed);

        // SAFETY: entry 0 of our surface, mapped while `read_mapped` runs this: `th` rows of
        // `tw` RGBA pixels.
        let copy = || unsafe { copy_entry(dest_params, tw, th, out) };
        // SAFETY: our one-entry surface, alive while `self` is.
        unsafe { read_mapped(lib, dest_ptr, 0, tw, th, copy) }
    }

    /// Checks a tile of frame `index` (as [`TileReader::read_tile`] does) and keeps it to be
    /// cut with the buffer's other tiles by [`TileReader::cut_deferred`]. A tile that cannot
    /// be read is refused here, at once, with the same reason the per-tile form gives.
    ///
    /// # Safety
    /// As [`TileReader::read_tile`].
    pub unsafe fn defer(
        &mut self,
        header: &[u8],
        index: u32,
        region: PixelRect,
    ) -> Result<(), SurfaceError> {
        // SAFETY: the caller's contract.
        unsafe { self.locate(header, index, region) }?;
        self.pending.push(TileRequest { index, region });
        Ok(())
    }

    /// The tiles deferred since the buffer began, in the order they were asked for.
    pub fn deferred(&self) -> &[TileRequest] {
        &self.pending
    }

    /// The tiles one batched call takes at most: the caller's `budget` (the per-buffer tile
    /// budget) and [`MAX_BATCH_BYTES`] of `tw`×`th` RGBA.
    pub fn per_call(budget: u32, tw: u32, th: u32) -> usize {
        let by_bytes = MAX_BATCH_BYTES / (tw as usize * th as usize * 4).max(1);
        (budget as usize).min(by_bytes).max(1)
    }

    /// Cuts every deferred tile of the buffer whose `NvBufSurface` bytes are `header` into
    /// `tw`×`th` RGB tiles, each copied from the mapped surface straight to where `sink` says:
    /// one transform call for up to [`TileReader::per_call`] tiles, so one per buffer within
    /// the budget. On an error some tiles may have been delivered and others not; the caller
    /// may cut them all again one call each ([`TileReader::read_tile`]).
    ///
    /// # Safety
    /// As [`TileReader::read_tile`], and `header` must be the memory the tiles were deferred
    /// from.
    pub unsafe fn cut_deferred(
        &mut self,
        header: &[u8],
        tw: u32,
        th: u32,
        budget: u32,
        sink: &mut TileSink<'_>,
    ) -> Result<(), SurfaceError> {
        let n = self.pending.len();
        let per_call = Self::per_call(budget, tw, th);
        let mut start = 0;
        while start < n {
            let end = (start + per_call).min(n);
            // SAFETY: the caller's contract.
            let cut = unsafe { self.cut_chunk(header, start, end, tw, th, sink) };
            if let Err(e) = cut {
                self.counters.batch_failures.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
            start = end;
        }
        Ok(())
    }

    /// Deferred tiles `start..end` with one transform call, delivered to `sink`.
    ///
    /// # Safety
    /// As [`TileReader::cut_deferred`].
    unsafe fn cut_chunk(
        &mut self,
        header: &[u8],
        start: usize,
        end: usize,
        tw: u32,
        th: u32,
        sink: &mut TileSink<'_>,
    ) -> Result<(), SurfaceError> {
        use layout::surface as s;
        let k = end - start;
        let stride = self.lib.abi.stride;
        let words = stride / 8;
        self.list.clear();
        self.list.resize(k * words, 0);
        self.src_rects.clear();
        self.src_rects.resize(k * layout::rect::SIZE / 8, 0);
        self.dst_rects.clear();
        self.dst_rects.resize(k * layout::rect::SIZE / 8, 0);
        // One header, so one GPU for every tile.
        let mut gpu = 0;
        for j in 0..k {
            let req = self.pending[start + j];
            // Checked again: the same header the tile was deferred from, a few field reads.
            // SAFETY: the caller's contract.
            let at = unsafe { self.locate(header, req.index, req.region) }?;
            gpu = at.gpu;
            // SAFETY: entry `req.index` is `stride` readable bytes of the buffer's live list
            // (`locate` checked the index against numFilled).
            let entry = unsafe { std::slice::from_raw_parts(at.entry, stride) };
            bytemuck::cast_slice_mut::<u64, u8>(&mut self.list[j * words..(j + 1) * words])
                .copy_from_slice(entry);
            let c = at.crop;
            let r = layout::rect::SIZE / 8;
            bytemuck::cast_slice_mut::<u64, u8>(&mut self.src_rects[j * r..(j + 1) * r])
                .copy_from_slice(&rect(c.y, c.x, c.width, c.height));
            bytemuck::cast_slice_mut::<u64, u8>(&mut self.dst_rects[j * r..(j + 1) * r])
                .copy_from_slice(&rect(0, 0, tw, th));
        }

        // The source view: the buffer's header with batchSize = numFilled = k, not contiguous,
        // its list ours.
        self.view.clear();
        self.view.resize(header.len().div_ceil(8), 0);
        {
            let view = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut self.view)[..header.len()];
            view.copy_from_slice(header);
            put(view, s::BATCH_SIZE, k as u32);
            put(view, s::NUM_FILLED, k as u32);
            view[s::IS_CONTIGUOUS] = 0;
            put_ptr(view, s::SURFACE_LIST, self.list.as_ptr().cast());
        }
        self.set_session(gpu)?;
        let lib = self.lib;
        let per_call = k as u32;
        let dest = self.batch_dest(per_call, tw, th, gpu)?;
        let dest_ptr = dest.ptr;
        // SAFETY: our own surface's header: numFilled = the entries this call fills.
        unsafe {
            dest_ptr
                .cast::<u8>()
                .add(s::NUM_FILLED)
                .cast::<u32>()
                .write_unaligned(per_call)
        };
        let mut params = transform_params(
            self.src_rects.as_ptr().cast(),
            self.dst_rects.as_ptr().cast(),
        );
        // SAFETY: `view` is a k-entry NvBufSurface whose list holds copies of live entries of
        // the buffer's surface; `dest_ptr` is our surface of at least k entries; the rect
        // arrays hold k rects each; all outlive the call.
        let code = unsafe {
            (lib.transform)(
                self.view.as_mut_ptr().cast(),
                dest_ptr,
                params.as_mut_ptr().cast(),
            )
        };
        self.counters.calls.fetch_add(1, Ordering::Relaxed);
        if code != 0 {
            let chunk = &self.pending[start..end];
            let frames = chunk
                .iter()
                .enumerate()
                .filter(|(i, r)| !chunk[..*i].iter().any(|p| p.index == r.index))
                .count();
            return Err(SurfaceError::Call {
                function: "NvBufSurfTransform",
                code,
                what: format!(
                    " cutting {k} tiles of {frames} frame(s) in one call (a {k}-entry view \
                     into a {}-entry {tw}x{th} RGBA surface)",
                    self.batch.as_ref().map_or(0, |b| b.capacity)
                ),
            });
        }
        self.counters.tiles.fetch_add(k as u64, Ordering::Relaxed);

        let tile = tw as usize * th as usize * 3;
        let list = self.batch.as_ref().expect("made above").surface.params();
        let copies = || {
            for j in 0..k {
                // SAFETY: entry j < k <= capacity of our surface, at the library's stride.
                let params = unsafe { list.add(j * stride) };
                sink(start + j, &mut |out: &mut [u8]| {
                    if out.len() != tile {
                        return Err(SurfaceError::TileSize {
                            width: tw,
                            height: th,
                            out: out.len(),
                        });
                    }
                    // SAFETY: a mapped entry of `th` rows of `tw` RGBA pixels, mapped while
                    // `read_mapped` runs this (the sink only runs inside this loop).
                    unsafe { copy_entry(params, tw, th, out) }
                })?;
            }
            Ok(())
        };
        // SAFETY: our surface, alive while `self` is; every entry mapped for the copies.
        unsafe { read_mapped(lib, dest_ptr, ALL, tw, th, copies) }
    }

    /// The batched destination, made (or made larger) for `k` tiles of `tw`×`th` on `gpu`.
    fn batch_dest(
        &mut self,
        k: u32,
        tw: u32,
        th: u32,
        gpu: u32,
    ) -> Result<&Surface<'static>, SurfaceError> {
        let fits = matches!(&self.batch, Some(b) if b.capacity >= k
            && (b.width, b.height, b.gpu) == (tw, th, gpu));
        if !fits {
            let grown = self.batch.as_ref().map_or(0, |b| b.capacity);
            let most = Self::per_call(u32::MAX, tw, th) as u32;
            let capacity = k.next_power_of_two().max(grown).min(most).max(k);
            self.batch = None;
            let surface = Surface::create(
                self.lib,
                capacity,
                tw,
                th,
                gpu,
                self.lib.platform.mappable_mem_type(),
            )?;
            self.batch = Some(BatchDest {
                surface,
                capacity,
                width: tw,
                height: th,
                gpu,
            });
        }
        Ok(&self.batch.as_ref().expect("just made").surface)
    }
}

/// Maps entry `index` (`ALL`: every entry) of our `tw`×`th` surface `dest` for reading,
/// syncs it for the CPU on Jetson, runs `read`, and unmaps it whatever `read` gave (a Jetson
/// map never unmapped leaks).
///
/// # Safety
/// `dest` must be a surface of `lib` this reader made, alive for the call.
unsafe fn read_mapped(
    lib: &SurfaceLib,
    dest: *mut std::ffi::c_void,
    index: i32,
    tw: u32,
    th: u32,
    read: impl FnOnce() -> Result<(), SurfaceError>,
) -> Result<(), SurfaceError> {
    // SAFETY: the caller's contract: our live surface.
    let code = unsafe { (lib.map)(dest, index, 0, MAP_READ) };
    if code != 0 {
        return Err(map_failed(lib, code, tw, th));
    }
    let result = if lib.platform == Platform::Jetson {
        // SAFETY: mapped above.
        match unsafe { (lib.sync_for_cpu)(dest, index, 0) } {
            0 => read(),
            code => Err(sync_failed(code)),
        }
    } else {
        read()
    };
    // SAFETY: mapped above.
    unsafe { (lib.unmap)(dest, index, 0) };
    result
}

fn map_failed(lib: &SurfaceLib, code: i32, tw: u32, th: u32) -> SurfaceError {
    SurfaceError::Call {
        function: "NvBufSurfaceMap",
        code,
        what: format!(
            " of the {tw}x{th} tile surface (memory type {})",
            lib.platform.mappable_mem_type()
        ),
    }
}

fn sync_failed(code: i32) -> SurfaceError {
    SurfaceError::Call {
        function: "NvBufSurfaceSyncForCpu",
        code,
        what: String::new(),
    }
}

/// Copies the RGB of one mapped entry (`NvBufSurfaceParams` at `params`) into `out`.
///
/// # Safety
/// `params` must be an entry of a mapped pitch-linear RGBA surface of at least `th` rows of
/// `tw` pixels.
unsafe fn copy_entry(
    params: *const u8,
    tw: u32,
    th: u32,
    out: &mut [u8],
) -> Result<(), SurfaceError> {
    use layout::params as p;
    // SAFETY: the caller's contract: its pitch and mapped plane 0.
    let (pitch, addr): (u32, *const u8) =
        unsafe { (field(params, p::PITCH), field(params, p::MAPPED_ADDR)) };
    if addr.is_null() || (pitch as usize) < tw as usize * 4 {
        return Err(SurfaceError::Call {
            function: "NvBufSurfaceMap",
            code: 0,
            what: format!(" gave address {addr:?} with pitch {pitch} for a {tw}-wide tile"),
        });
    }
    for (y, row_out) in out
        .chunks_exact_mut(tw as usize * 3)
        .take(th as usize)
        .enumerate()
    {
        // SAFETY: row `y` < th of a mapped pitch-linear RGBA plane of `th` rows.
        let row =
            unsafe { std::slice::from_raw_parts(addr.add(y * pitch as usize), tw as usize * 4) };
        rgba_row_to_rgb(row, row_out);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_takes_the_budget_within_the_byte_bound() {
        assert_eq!(TileReader::per_call(64, 112, 112), 64);
        assert_eq!(TileReader::per_call(64, 224, 224), 64);
        assert_eq!(TileReader::per_call(65_536, 112, 112), 668);
        assert_eq!(TileReader::per_call(65_536, 224, 224), 167);
        assert_eq!(TileReader::per_call(0, 112, 112), 1);
        assert_eq!(TileReader::per_call(64, 4096, 4096), 1);
    }

    #[test]
    fn rects_are_top_first_and_params_point_at_both_arrays() {
        let r = rect(1, 2, 3, 4);
        let w = |o: usize| u32::from_ne_bytes(r[o..o + 4].try_into().unwrap());
        assert_eq!((w(0), w(4), w(8), w(12)), (1, 2, 3, 4));
        assert!(r[16..].iter().all(|&b| b == 0));
        let (a, b) = ([0u8; 48], [0u8; 48]);
        let p = transform_params(a.as_ptr(), b.as_ptr());
        let bytes = bytemuck::cast_slice::<u64, u8>(&p);
        let at = |o: usize| u64::from_ne_bytes(bytes[o..o + 8].try_into().unwrap()) as usize;
        assert_eq!(at(layout::transform::SRC_RECT), a.as_ptr() as usize);
        assert_eq!(at(layout::transform::DST_RECT), b.as_ptr() as usize);
        assert_eq!(u32::from_ne_bytes(bytes[0..4].try_into().unwrap()), 7);
        assert_eq!(u32::from_ne_bytes(bytes[8..12].try_into().unwrap()), 1);
    }
}
