// SPDX-License-Identifier: MIT OR Apache-2.0
//! Where the pixels of one frame come from: a system-memory video frame (mapped and sampled on
//! the CPU by [`Sampler`]) or an NVMM `NvBufSurface` batch (each frame's surface cropped and
//! scaled by NVIDIA's transform into a surface we own, then read; see
//! [`crate::deepstream::tiles`]). `collect()` asks [`Pixels::tile`] for a tile and does not
//! care which.
//!
//! On NVMM, [`FrameSource::pixels`] with `batch` defers the tiles instead: [`Pixels::tile`]
//! checks each and fills nothing, and once every frame of the buffer has asked,
//! [`Pixels::cut_deferred`] cuts them all with one transform call and copies each from the
//! mapped surface to where the caller's sink says, or, when that call failed, the caller cuts
//! them one call each ([`Pixels::cut_one`]).

use std::sync::Arc;

use gst_video::VideoInfo;

use crate::deepstream::surface;
use crate::deepstream::tiles::{TileReader, TileSink, TransformCounters};
use crate::geometry::PixelRect;
use crate::sampler::Sampler;

/// The kind of memory the negotiated caps carry.
pub const NVMM_FEATURE: &str = "memory:NVMM";

/// Whether `caps` are NVMM caps (`video/x-raw(memory:NVMM)`).
pub fn is_nvmm(caps: &gst::CapsRef) -> bool {
    caps.features(0).is_some_and(|f| f.contains(NVMM_FEATURE))
}

/// One element's way of reading frames, chosen in `set_caps`.
pub enum FrameSource {
    /// System memory: map the buffer as a video frame and sample it.
    System(Box<Sampler>),
    /// NVMM: crop and scale `surfaceList[batch_id]` with NVIDIA's transform.
    Nvmm(Box<TileReader>),
}

impl FrameSource {
    pub fn system() -> Self {
        FrameSource::System(Box::default())
    }

    /// The NVMM source, counting its transform calls in `counters`, or why NVIDIA's surface
    /// libraries cannot be used (names the library, the places tried and what to install).
    pub fn nvmm(counters: Arc<TransformCounters>) -> Result<Self, String> {
        let lib = surface::surface_lib().map_err(|e| e.to_string())?;
        Ok(FrameSource::Nvmm(Box::new(TileReader::new(lib, counters))))
    }

    pub fn is_nvmm(&self) -> bool {
        matches!(self, FrameSource::Nvmm(_))
    }

    /// Frame access for one buffer; the buffer is mapped on the first tile and unmapped when
    /// the returned value goes. With `batch`, NVMM tiles are deferred to one transform call
    /// per buffer ([`Pixels::cut_deferred`]); system memory ignores it.
    pub fn pixels<'a>(
        &'a mut self,
        buf: &'a gst::BufferRef,
        info: &'a VideoInfo,
        batch: bool,
    ) -> Pixels<'a> {
        if let FrameSource::Nvmm(reader) = self {
            reader.begin_buffer();
        }
        Pixels {
            defer: batch && self.is_nvmm(),
            source: self,
            buf,
            info,
            frame: None,
            map: None,
            error: None,
        }
    }
}

/// One buffer's pixels, mapped on demand.
pub struct Pixels<'a> {
    source: &'a mut FrameSource,
    buf: &'a gst::BufferRef,
    info: &'a VideoInfo,
    frame: Option<gst_video::VideoFrameRef<&'a gst::BufferRef>>,
    map: Option<gst::BufferMap<'a, gst::buffer::Readable>>,
    /// A failed map, kept so every tile of the buffer reports it without retrying.
    error: Option<String>,
    /// NVMM tiles are checked and deferred, then cut together ([`Pixels::cut_deferred`]).
    defer: bool,
}

impl Pixels<'_> {
    /// Fills `out` (`tw`×`th` RGB) from `region` of the frame at `batch_index` of the buffer
    /// (the frame meta's `batch_id`; ignored for system memory, which holds one image). When
    /// deferring, checks the tile and keeps it for [`Pixels::cut_deferred`]: `out` is left as
    /// it is.
    pub fn tile(
        &mut self,
        batch_index: u32,
        region: PixelRect,
        tw: u32,
        th: u32,
        out: &mut [u8],
    ) -> Result<(), String> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        match self.source {
            FrameSource::System(sampler) => {
                if self.frame.is_none() {
                    match gst_video::VideoFrameRef::from_buffer_ref_readable(self.buf, self.info) {
                        Ok(f) => self.frame = Some(f),
                        Err(e) => {
                            let e = format!("cannot map the frame: {e}");
                            self.error = Some(e.clone());
                            return Err(e);
                        }
                    }
                }
                let frame = self.frame.as_ref().expect("mapped above");
                sampler
                    .sample(frame, region, tw, th, out)
                    .map_err(|e| e.to_string())
            }
            FrameSource::Nvmm(reader) => {
                let defer = self.defer;
                if self.map.is_none() {
                    // Only NVIDIA's memory is an NvBufSurface: anything else under NVMM caps
                    // is refused before it is mapped or read.
                    if let Err(e) = surface::check_memory(self.buf) {
                        let e = e.to_string();
                        self.error = Some(e.clone());
                        return Err(e);
                    }
                    match self.buf.map_readable() {
                        Ok(m) => self.map = Some(m),
                        Err(e) => {
                            let e = format!("cannot map the NVMM buffer: {e}");
                            self.error = Some(e.clone());
                            return Err(e);
                        }
                    }
                }
                let header = self.map.as_ref().expect("mapped above").as_slice();
                // SAFETY: the buffer's mapped memory, kept mapped while `map` lives, made by
                // one of NVIDIA's NVMM allocators (`check_memory` above): its NvBufSurface,
                // whose header `defer` / `read_tile` check before following `surfaceList`.
                let read = if defer {
                    unsafe { reader.defer(header, batch_index, region) }
                } else {
                    unsafe { reader.read_tile(header, batch_index, region, tw, th, out) }
                };
                read.map_err(|e| e.to_string())
            }
        }
    }

    /// The tiles deferred so far (0 unless deferring on NVMM).
    pub fn deferred(&self) -> usize {
        match &*self.source {
            FrameSource::Nvmm(reader) if self.defer => reader.deferred().len(),
            _ => 0,
        }
    }

    /// Cuts every deferred tile into `tw`×`th` RGB with one transform call (one per
    /// [`TileReader::per_call`] tiles, `budget` being the per-buffer tile budget), each copied
    /// to where `sink` says ([`TileSink`]).
    pub fn cut_deferred(
        &mut self,
        tw: u32,
        th: u32,
        budget: u32,
        sink: &mut TileSink<'_>,
    ) -> Result<(), String> {
        let (FrameSource::Nvmm(reader), Some(map)) = (&mut *self.source, &self.map) else {
            return Ok(());
        };
        // SAFETY: as in `tile`: the buffer's NvBufSurface, checked, mapped while `map` lives,
        // the one the tiles were deferred from.
        unsafe { reader.cut_deferred(map.as_slice(), tw, th, budget, sink) }
            .map_err(|e| e.to_string())
    }

    /// Cuts deferred tile `i` alone, with its own transform call, into `out`: the fallback
    /// when the batched call failed.
    pub fn cut_one(&mut self, i: usize, tw: u32, th: u32, out: &mut [u8]) -> Result<(), String> {
        let (FrameSource::Nvmm(reader), Some(map)) = (&mut *self.source, &self.map) else {
            return Err("no NVMM buffer is mapped".into());
        };
        let Some(req) = reader.deferred().get(i).copied() else {
            return Err(format!("no deferred tile {i}"));
        };
        // SAFETY: as in `cut_deferred`.
        unsafe { reader.read_tile(map.as_slice(), req.index, req.region, tw, th, out) }
            .map_err(|e| e.to_string())
    }
}
