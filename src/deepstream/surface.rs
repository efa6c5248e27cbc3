// SPDX-License-Identifier: MIT OR Apache-2.0
//! NVMM surfaces: NVIDIA's `libnvbufsurface.so` and `libnvbufsurftransform.so`, opened at run
//! time, their layouts, and the checks a buffer's `NvBufSurface` passes before it is read. The
//! tiles themselves are cut in [`super::tiles`].
//!
//! Layouts (LP64, from NVMM-FACTS.md; DeepStream 8.0 grew the structs):
//!
//! | struct | ≤ 7.1 | ≥ 8.0 |
//! | --- | --- | --- |
//! | `NvBufSurface` | 64 | 72 |
//! | `NvBufSurfaceParams` (the `surfaceList` stride) | 384 | 416 |
//! | `NvBufSurfaceCreateParams` | 32 | 64 |
//! | `NvBufSurfTransformParams` | 32 | 64 |
//! | `NvBufSurfTransformRect` | 16 | 48 |
//! | `NvBufSurfTransformConfigParams` | 16 | 48 |
//!
//! The fields we use sit at the same offsets in both; the later structs only append reserved
//! bytes. So the structs we *pass* are always the larger size, zero-filled (an older library
//! reads the leading part). The two we *read* are decided at run time, never guessed:
//! - the `surfaceList` stride is measured from the running library: [`SurfaceLib::load`]
//!   creates a two-entry surface and takes `&surfaceList[1] - &surfaceList[0]` (it must be 384
//!   or 416);
//! - the `NvBufSurface` header size is the size of the buffer's memory (`gst_buffer_map` gives
//!   the struct itself: 72 bytes in 9.0.2's pool), and it must agree with the stride (64 with
//!   384, 72 with 416). Anything else is refused with both values named.
//!
//! Nothing is read through a buffer's memory before it is known to be a surface: the buffer
//! holds one memory, from one of NVIDIA's NVMM allocators ([`allocator`], [`check_memory`]); its
//! header is then checked field by field ([`SurfaceHeader::parse`]: `memType`, `batchSize`,
//! `numFilled`, `surfaceList`) before `surfaceList[batch_id]` is touched. A system-memory buffer
//! under `memory:NVMM` caps is refused with the allocator it came from named.

use std::ffi::c_void;
use std::sync::OnceLock;

use super::field;
use super::loader::{self, LoadError, NvLib, Opened, Place};
use crate::geometry::PixelRect;

/// Byte offsets and sizes of NVIDIA's surface structs (see the module table).
pub mod layout {
    /// `NvBufSurface`.
    pub mod surface {
        pub const GPU_ID: usize = 0;
        pub const BATCH_SIZE: usize = 4;
        pub const NUM_FILLED: usize = 8;
        /// `bool isContiguous` (one byte).
        pub const IS_CONTIGUOUS: usize = 12;
        pub const MEM_TYPE: usize = 16;
        pub const SURFACE_LIST: usize = 24;
        pub const SIZE_V7: usize = 64;
        pub const SIZE_V8: usize = 72;
    }
    /// `NvBufSurfaceParams`.
    pub mod params {
        pub const WIDTH: usize = 0;
        pub const HEIGHT: usize = 4;
        pub const PITCH: usize = 8;
        pub const COLOR_FORMAT: usize = 12;
        pub const LAYOUT: usize = 16;
        /// `mappedAddr.addr[0]`.
        pub const MAPPED_ADDR: usize = 280;
        pub const SIZE_V7: usize = 384;
        pub const SIZE_V8: usize = 416;
    }
    /// `NvBufSurfaceCreateParams` (passed at the 8.0+ size, zero-filled).
    pub mod create {
        pub const GPU_ID: usize = 0;
        pub const WIDTH: usize = 4;
        pub const HEIGHT: usize = 8;
        pub const IS_CONTIGUOUS: usize = 16;
        pub const COLOR_FORMAT: usize = 20;
        pub const LAYOUT: usize = 24;
        pub const MEM_TYPE: usize = 28;
        pub const SIZE: usize = 64;
    }
    /// `NvBufSurfTransformConfigParams`.
    pub mod config {
        pub const COMPUTE_MODE: usize = 0;
        pub const GPU_ID: usize = 4;
        pub const SIZE: usize = 48;
    }
    /// `NvBufSurfTransformParams`.
    pub mod transform {
        pub const FLAG: usize = 0;
        pub const FILTER: usize = 8;
        pub const SRC_RECT: usize = 16;
        pub const DST_RECT: usize = 24;
        pub const SIZE: usize = 64;
    }
    /// `NvBufSurfTransformRect`: top, left, width, height (top first).
    pub mod rect {
        pub const SIZE: usize = 48;
    }
}

/// `NvBufSurfaceMemType`.
pub mod mem_type {
    pub const DEFAULT: u32 = 0;
    pub const CUDA_PINNED: u32 = 1;
    pub const CUDA_DEVICE: u32 = 2;
    pub const CUDA_UNIFIED: u32 = 3;
    pub const SURFACE_ARRAY: u32 = 4;
    pub const HANDLE: u32 = 5;
    pub const SYSTEM: u32 = 6;
}

/// The `mem_type` names of the GstAllocators whose memory is an `NvBufSurface` (what
/// `gst_buffer_map` gives on NVMM buffers). NVIDIA's own plugins tell NVMM memory apart the same
/// way, by comparing the memory's `allocator->mem_type` with such names.
pub mod allocator {
    /// DeepStream's buffer pool (`GstNvDsMemoryAllocator`, `libnvdsbufferpool.so`), behind
    /// `nvstreammux`, `nvvideoconvert` and the other DeepStream elements that allocate
    /// surfaces. Checked in 9.0.2's library: the allocator's instance init stores this string as
    /// `mem_type`, and the pool compares memory against it.
    pub const NVDS: &str = "nvds";
    /// `nvv4l2decoder` (`GstNvV4l2Allocator`, `libgstnvvideo4linux2.so`; checked in 9.0.2's
    /// library, where its instance init stores this string).
    pub const NV_V4L2: &str = "V4l2Memory";
    /// Jetson's `nvvidconv` (NVIDIA's public gst-nvvidconv source).
    pub const NV_FILTER: &str = "nvfilter";
    /// Jetson's `nvarguscamerasrc` (NVIDIA's public source).
    pub const NV_ARGUS: &str = "nvarguscam";
    /// Every name accepted.
    pub const KNOWN: [&str; 4] = [NVDS, NV_V4L2, NV_FILTER, NV_ARGUS];
}

/// The largest `batchSize` taken for a surface (ours, not NVIDIA's: a batch holds one frame per
/// source, and no pipeline batches thousands of them). A larger value is garbage, not a batch.
pub const MAX_BATCH_SIZE: u32 = 4096;

/// `NvBufSurfaceLayout`.
pub const LAYOUT_PITCH: u32 = 0;
pub const LAYOUT_BLOCK_LINEAR: u32 = 1;

/// `NvBufSurfaceColorFormat` values we name or accept.
pub mod color {
    pub const GRAY8: u32 = 1;
    pub const YUV420: u32 = 2;
    pub const NV12: u32 = 6;
    pub const NV12_ER: u32 = 7;
    pub const RGBA: u32 = 19;
    pub const BGRA: u32 = 20;
    pub const RGBX: u32 = 23;
    pub const BGRX: u32 = 24;
    pub const RGB: u32 = 27;
    pub const BGR: u32 = 28;

    /// A name for messages.
    pub fn name(v: u32) -> &'static str {
        match v {
            GRAY8 => "GRAY8",
            YUV420 => "YUV420",
            NV12 => "NV12",
            NV12_ER => "NV12_ER",
            RGBA => "RGBA",
            BGRA => "BGRA",
            RGBX => "RGBx",
            BGRX => "BGRx",
            RGB => "RGB",
            BGR => "BGR",
            _ => "unknown",
        }
    }

    /// The source formats we hand to the transform (those `nvstreammux` and `nvvideoconvert`
    /// give after `nvinfer`, and that the transform converts to RGBA).
    pub fn supported_source(v: u32) -> bool {
        matches!(v, NV12 | NV12_ER | RGBA | BGRA | RGBX | BGRX)
    }
}

/// Which NVIDIA platform: decides the memory type a CPU can map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// A discrete GPU: CUDA_UNIFIED surfaces map (CUDA_DEVICE, the DEFAULT there, do not).
    DGpu,
    /// Jetson: DEFAULT (SURFACE_ARRAY) surfaces map, after `NvBufSurfaceSyncForCpu`.
    Jetson,
}

impl Platform {
    /// Jetson when `/etc/nv_tegra_release` exists (JetPack writes it on every Jetson);
    /// otherwise a dGPU, aarch64 servers (Grace) included.
    pub fn detect() -> Self {
        if std::path::Path::new("/etc/nv_tegra_release").exists() {
            Platform::Jetson
        } else {
            Platform::DGpu
        }
    }

    /// The memory type of our own destination surface.
    pub fn mappable_mem_type(self) -> u32 {
        match self {
            Platform::DGpu => mem_type::CUDA_UNIFIED,
            Platform::Jetson => mem_type::DEFAULT,
        }
    }
}

/// The header size and `surfaceList` stride of one DeepStream ABI generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SurfaceAbi {
    pub header: usize,
    pub stride: usize,
}

impl SurfaceAbi {
    pub const V7: SurfaceAbi = SurfaceAbi {
        header: layout::surface::SIZE_V7,
        stride: layout::params::SIZE_V7,
    };
    pub const V8: SurfaceAbi = SurfaceAbi {
        header: layout::surface::SIZE_V8,
        stride: layout::params::SIZE_V8,
    };

    /// The ABI of a library whose `surfaceList` entries are `stride` bytes apart.
    pub fn from_stride(stride: usize) -> Result<Self, SurfaceError> {
        match stride {
            layout::params::SIZE_V7 => Ok(Self::V7),
            layout::params::SIZE_V8 => Ok(Self::V8),
            _ => Err(SurfaceError::UnknownStride(stride)),
        }
    }

    /// Checks the size of a buffer's `NvBufSurface` memory against this ABI.
    pub fn check_header(self, size: usize) -> Result<(), SurfaceError> {
        if size == self.header {
            return Ok(());
        }
        Err(SurfaceError::HeaderSize {
            size,
            expected: self.header,
            stride: self.stride,
        })
    }
}

/// Checks that `buffer`'s memory is an `NvBufSurface` before anything maps or reads it: one
/// memory, made by one of NVIDIA's NVMM allocators ([`allocator::KNOWN`]). Anything else (a
/// system-memory buffer under `memory:NVMM` caps) is refused with its allocator named.
pub fn check_memory(buffer: &gst::BufferRef) -> Result<(), SurfaceError> {
    use gst::prelude::ObjectExt;
    if buffer.n_memory() != 1 {
        return Err(SurfaceError::MemoryCount(buffer.n_memory()));
    }
    let mem = buffer.peek_memory(0);
    let found = match mem.allocator() {
        None => "no allocator".to_string(),
        Some(a) => {
            let mem_type = a.memory_type().as_str();
            if allocator::KNOWN.contains(&mem_type) {
                return Ok(());
            }
            format!("allocator {} of memory type '{mem_type}'", a.type_().name())
        }
    };
    Err(SurfaceError::NotNvidiaMemory {
        found,
        size: mem.size(),
    })
}

/// The fields of an `NvBufSurface` header that decide whether and where to read, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SurfaceHeader {
    pub gpu_id: u32,
    pub batch_size: u32,
    pub num_filled: u32,
    pub mem_type: u32,
    /// `surfaceList`: non-null and aligned (never dereferenced here).
    pub surface_list: usize,
}

impl SurfaceHeader {
    /// Reads and checks a buffer's `NvBufSurface` bytes: the size of `abi`'s header, a known
    /// `memType`, `1 <= batchSize <= MAX_BATCH_SIZE`, `numFilled <= batchSize`, and a non-null,
    /// 8-byte-aligned `surfaceList`. Reads only `bytes`.
    pub fn parse(bytes: &[u8], abi: SurfaceAbi) -> Result<Self, SurfaceError> {
        use layout::surface as s;
        abi.check_header(bytes.len())?;
        let u32_at = |o: usize| u32::from_ne_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
        let h = SurfaceHeader {
            gpu_id: u32_at(s::GPU_ID),
            batch_size: u32_at(s::BATCH_SIZE),
            num_filled: u32_at(s::NUM_FILLED),
            mem_type: u32_at(s::MEM_TYPE),
            surface_list: u64::from_ne_bytes(
                bytes[s::SURFACE_LIST..s::SURFACE_LIST + 8]
                    .try_into()
                    .expect("8 bytes"),
            ) as usize,
        };
        if h.mem_type > mem_type::SYSTEM {
            return Err(SurfaceError::UnknownMemType(h.mem_type));
        }
        if h.batch_size == 0 || h.batch_size > MAX_BATCH_SIZE {
            return Err(SurfaceError::BatchSize(h.batch_size));
        }
        if h.num_filled > h.batch_size {
            return Err(SurfaceError::FilledBeyondBatch {
                filled: h.num_filled,
                batch: h.batch_size,
            });
        }
        if h.surface_list == 0 {
            return Err(SurfaceError::NullSurfaceList);
        }
        if !h.surface_list.is_multiple_of(8) {
            return Err(SurfaceError::MisalignedSurfaceList(h.surface_list));
        }
        Ok(h)
    }

    /// Checks that frame `index` (a frame meta's `batch_id`) is a filled entry.
    pub fn check_index(&self, index: u32) -> Result<(), SurfaceError> {
        if index < self.num_filled {
            return Ok(());
        }
        Err(SurfaceError::IndexBeyondFilled {
            index,
            filled: self.num_filled,
            batch: self.batch_size,
        })
    }
}

/// Why a tile could not be read from a surface.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SurfaceError {
    #[error(
        "the NVMM buffer's memory is {size} bytes, not an NvBufSurface of the loaded \
         libnvbufsurface.so ({expected} bytes with its {stride}-byte surfaceList entries): the \
         buffer comes from another DeepStream release than the library"
    )]
    HeaderSize {
        size: usize,
        expected: usize,
        stride: usize,
    },
    #[error(
        "libnvbufsurface.so lays out its surfaceList entries {0} bytes apart, neither 384 \
         (DeepStream up to 7.1) nor 416 (8.0 and later): unknown release"
    )]
    UnknownStride(usize),
    #[error(
        "the NVMM buffer holds {0} memories, not one: NVIDIA's NVMM buffers hold exactly one (the \
         NvBufSurface); not read"
    )]
    MemoryCount(usize),
    #[error(
        "the NVMM buffer's memory ({size} bytes) comes from {found}, not from one of NVIDIA's \
         NVMM allocators (memory types {known}): it is not an NvBufSurface and is not read; \
         something upstream puts system memory under memory:NVMM caps",
        known = allocator::KNOWN.join(", ")
    )]
    NotNvidiaMemory { found: String, size: usize },
    #[error(
        "the NvBufSurface's memType is {0}, not an NvBufSurfaceMemType (0 DEFAULT to 6 SYSTEM): \
         not a surface"
    )]
    UnknownMemType(u32),
    #[error("the NvBufSurface's batchSize is {0}, not 1 to {MAX_BATCH_SIZE}: not a surface")]
    BatchSize(u32),
    #[error(
        "the NvBufSurface's numFilled={filled} is more than its batchSize={batch}: not a surface"
    )]
    FilledBeyondBatch { filled: u32, batch: u32 },
    #[error("the NvBufSurface has a null surfaceList")]
    NullSurfaceList,
    #[error(
        "the NvBufSurface's surfaceList {0:#x} is not 8-byte aligned: not an array of \
         NvBufSurfaceParams"
    )]
    MisalignedSurfaceList(usize),
    #[error(
        "frame batch_id {index} is beyond the NvBufSurface's numFilled={filled} (batchSize={batch})"
    )]
    IndexBeyondFilled { index: u32, filled: u32, batch: u32 },
    #[error(
        "surface {index} is block-linear (layout=1): only pitch-linear surfaces are read on a \
         dGPU; put nvvideoconvert (bl-output=false) before this element"
    )]
    BlockLinear { index: u32 },
    #[error(
        "surface {index} has colour format {value} ({name}): NVMM tiles are read from NV12, \
         NV12_ER, RGBA, BGRA, RGBx or BGRx",
        name = color::name(*.value)
    )]
    UnsupportedColor { index: u32, value: u32 },
    #[error("region {region:?} is outside surface {index} ({width}x{height})")]
    RegionOutside {
        index: u32,
        region: PixelRect,
        width: u32,
        height: u32,
    },
    #[error("{function} failed ({code}){what}")]
    Call {
        function: &'static str,
        code: i32,
        what: String,
    },
    #[error("the tile's {out} bytes are not {width}x{height} RGB")]
    TileSize { width: u32, height: u32, out: usize },
}

type CreateFn = unsafe extern "C" fn(*mut *mut c_void, u32, *mut c_void) -> i32;
type DestroyFn = unsafe extern "C" fn(*mut c_void) -> i32;
type MapFn = unsafe extern "C" fn(*mut c_void, i32, i32, i32) -> i32;
type UnMapFn = unsafe extern "C" fn(*mut c_void, i32, i32) -> i32;
type TransformFn = unsafe extern "C" fn(*mut c_void, *mut c_void, *mut c_void) -> i32;
type SessionFn = unsafe extern "C" fn(*mut c_void) -> i32;

/// The functions of both surface libraries, and what was measured about them.
pub struct SurfaceLib {
    _surface: Opened,
    _transform: Opened,
    surface_from: String,
    transform_from: String,
    create: CreateFn,
    destroy: DestroyFn,
    pub(super) map: MapFn,
    pub(super) unmap: UnMapFn,
    pub(super) sync_for_cpu: UnMapFn,
    pub(super) transform: TransformFn,
    pub(super) set_session_params: SessionFn,
    /// The running library's layout (measured; see the module documentation).
    pub abi: SurfaceAbi,
    pub platform: Platform,
}

// SAFETY: the table holds function pointers into libraries that stay loaded with it; NVIDIA's
// surface functions may be called from any thread.
unsafe impl Send for SurfaceLib {}
unsafe impl Sync for SurfaceLib {}

/// The environment variable naming a folder searched first for the two surface libraries only
/// (before [`loader::LIB_DIR_ENV`]): tests point it at the CPU stand-in while the metadata
/// libraries still come from NVIDIA's wheel.
pub const SURFACE_LIB_DIR_ENV: &str = "IGUARD_NVBUFSURFACE_LIB_DIR";

/// Where the surface libraries are looked for: a copy already loaded, then
/// [`SURFACE_LIB_DIR_ENV`], then the usual places ([`loader::places_from_env`]).
pub fn surface_places() -> Vec<Place> {
    let mut places = loader::places_from_env();
    if let Some(d) = std::env::var_os(SURFACE_LIB_DIR_ENV).filter(|d| !d.is_empty()) {
        places.insert(1, Place::Dir(d.into()));
    }
    places
}

/// Problems opening the surface libraries: which library and what to install, or a layout we
/// cannot read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Load(#[from] LoadError),
    #[error("{lib} from {from}: {error}")]
    Layout {
        lib: NvLib,
        from: String,
        error: SurfaceError,
    },
}

impl SurfaceLib {
    /// Opens both libraries from `places` and measures the `surfaceList` stride.
    pub fn load(places: &[Place]) -> Result<Self, OpenError> {
        let s = loader::open(NvLib::NvBufSurface, places)?;
        let t = loader::open(NvLib::NvBufSurfTransform, places)?;
        let (sl, tl) = (NvLib::NvBufSurface, NvLib::NvBufSurfTransform);
        // SAFETY: each type is the function's signature in nvbufsurface.h /
        // nvbufsurftransform.h (pointers to the structs as `void *`); the libraries are stored
        // with the pointers.
        let mut lib = unsafe {
            SurfaceLib {
                create: loader::symbol(&s, sl, "NvBufSurfaceCreate")?,
                destroy: loader::symbol(&s, sl, "NvBufSurfaceDestroy")?,
                map: loader::symbol(&s, sl, "NvBufSurfaceMap")?,
                unmap: loader::symbol(&s, sl, "NvBufSurfaceUnMap")?,
                sync_for_cpu: loader::symbol(&s, sl, "NvBufSurfaceSyncForCpu")?,
                transform: loader::symbol(&t, tl, "NvBufSurfTransform")?,
                set_session_params: loader::symbol(&t, tl, "NvBufSurfTransformSetSessionParams")?,
                surface_from: s.from.clone(),
                transform_from: t.from.clone(),
                _surface: s,
                _transform: t,
                abi: SurfaceAbi::V8,
                platform: Platform::detect(),
            }
        };
        let stride = lib.measured_stride().map_err(|error| OpenError::Layout {
            lib: NvLib::NvBufSurface,
            from: lib.surface_from.clone(),
            error,
        })?;
        lib.abi = SurfaceAbi::from_stride(stride).map_err(|error| OpenError::Layout {
            lib: NvLib::NvBufSurface,
            from: lib.surface_from.clone(),
            error,
        })?;
        Ok(lib)
    }

    /// `&surfaceList[1] - &surfaceList[0]` of a fresh two-entry surface (0 when neither
    /// known size fits).
    fn measured_stride(&self) -> Result<usize, SurfaceError> {
        let probe = Surface::create(self, 2, 16, 16, 0, self.platform.mappable_mem_type())?;
        if probe.params().is_null() {
            return Err(SurfaceError::NullSurfaceList);
        }
        Ok(probe.entry_distance())
    }

    pub fn describe(&self) -> String {
        format!(
            "{} and {} ({}-byte surface entries, {:?})",
            self.surface_from, self.transform_from, self.abi.stride, self.platform
        )
    }
}

/// A surface this element created (and destroys).
pub struct Surface<'a> {
    lib: &'a SurfaceLib,
    pub(super) ptr: *mut c_void,
}

impl<'a> Surface<'a> {
    pub(super) fn create(
        lib: &'a SurfaceLib,
        batch: u32,
        width: u32,
        height: u32,
        gpu_id: u32,
        mem: u32,
    ) -> Result<Self, SurfaceError> {
        let mut p = [0u8; layout::create::SIZE];
        put(&mut p, layout::create::GPU_ID, gpu_id);
        put(&mut p, layout::create::WIDTH, width);
        put(&mut p, layout::create::HEIGHT, height);
        p[layout::create::IS_CONTIGUOUS] = 0;
        put(&mut p, layout::create::COLOR_FORMAT, color::RGBA);
        put(&mut p, layout::create::LAYOUT, LAYOUT_PITCH);
        put(&mut p, layout::create::MEM_TYPE, mem);
        let mut ptr: *mut c_void = std::ptr::null_mut();
        // SAFETY: `p` is a zero-filled NvBufSurfaceCreateParams of the largest size; the
        // library writes the new surface's pointer to `ptr`.
        let code = unsafe { (lib.create)(&mut ptr, batch, p.as_mut_ptr().cast()) };
        if code != 0 || ptr.is_null() {
            return Err(SurfaceError::Call {
                function: "NvBufSurfaceCreate",
                code,
                what: format!(" for a {width}x{height} RGBA surface of memory type {mem}"),
            });
        }
        Ok(Surface { lib, ptr })
    }

    /// The distance between entries 0 and 1 of a two-entry surface list. The list is a C array of
    /// `NvBufSurfaceParams`, so entry 1 starts exactly one struct size after entry 0; it is
    /// found as the first known size at which entry 1 holds the `width`/`height`/`pitch` the
    /// library gave entry 0 (both entries were created alike).
    fn entry_distance(&self) -> usize {
        // SAFETY: a surface of two entries made by the library: its list holds at least two
        // entries of the smallest known size, and the larger candidate is only read when the
        // smaller one did not match, i.e. when the entries are larger.
        unsafe {
            let list: *const u8 = field(self.ptr.cast(), layout::surface::SURFACE_LIST);
            let first: [u32; 3] = [
                field(list, layout::params::WIDTH),
                field(list, layout::params::HEIGHT),
                field(list, layout::params::PITCH),
            ];
            for size in [layout::params::SIZE_V7, layout::params::SIZE_V8] {
                let second: [u32; 3] = [
                    field(list, size + layout::params::WIDTH),
                    field(list, size + layout::params::HEIGHT),
                    field(list, size + layout::params::PITCH),
                ];
                if second == first && first[0] != 0 {
                    return size;
                }
            }
        }
        0
    }

    /// `surfaceList`: entry `i` is `i × abi.stride` bytes in.
    pub(super) fn params(&self) -> *const u8 {
        // SAFETY: a live surface made by the library.
        unsafe { field(self.ptr.cast(), layout::surface::SURFACE_LIST) }
    }
}

impl Drop for Surface<'_> {
    fn drop(&mut self) {
        // SAFETY: made by NvBufSurfaceCreate, destroyed once.
        unsafe { (self.lib.destroy)(self.ptr) };
    }
}

pub(super) fn put(buf: &mut [u8], offset: usize, v: u32) {
    buf[offset..offset + 4].copy_from_slice(&v.to_ne_bytes());
}

pub(super) fn put_ptr(buf: &mut [u8], offset: usize, p: *const u8) {
    buf[offset..offset + 8].copy_from_slice(&(p as usize as u64).to_ne_bytes());
}

/// Rounds a crop to even left/top/width/height inside `width`×`height` (NV12's chroma is
/// sampled in 2×2 blocks; NVIDIA's transform wants even crops before 6.3's ALLOW_ODD_CROP,
/// which an older library would not know).
pub fn even_crop(r: PixelRect, width: u32, height: u32) -> PixelRect {
    let axis = |start: u32, len: u32, limit: u32| {
        let s = start & !1;
        let end = (start + len).div_ceil(2) * 2;
        let end = end.min(limit & !1).max(s + 2);
        (s, end - s)
    };
    let (x, w) = axis(r.x, r.width, width);
    let (y, h) = axis(r.y, r.height, height);
    PixelRect {
        x,
        y,
        width: w,
        height: h,
    }
}

/// Both surface libraries, opened once for the process from [`surface_places`]; a failure is
/// kept (the places do not change while the process runs).
pub fn surface_lib() -> Result<&'static SurfaceLib, &'static OpenError> {
    static LIB: OnceLock<Result<SurfaceLib, OpenError>> = OnceLock::new();
    LIB.get_or_init(|| SurfaceLib::load(&surface_places()))
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(x: u32, y: u32, width: u32, height: u32) -> PixelRect {
        PixelRect {
            x,
            y,
            width,
            height,
        }
    }

    #[test]
    fn crops_are_rounded_to_even_inside_the_surface() {
        assert_eq!(even_crop(r(10, 20, 30, 40), 64, 64), r(10, 20, 30, 40));
        assert_eq!(even_crop(r(11, 21, 31, 41), 64, 64), r(10, 20, 32, 42));
        assert_eq!(even_crop(r(61, 0, 3, 1), 64, 48), r(60, 0, 4, 2));
        assert_eq!(even_crop(r(0, 0, 1, 1), 64, 48), r(0, 0, 2, 2));
    }

    #[test]
    fn the_abi_follows_the_measured_stride_and_checks_the_header() {
        assert_eq!(SurfaceAbi::from_stride(416), Ok(SurfaceAbi::V8));
        assert_eq!(SurfaceAbi::from_stride(384), Ok(SurfaceAbi::V7));
        let e = SurfaceAbi::from_stride(400).unwrap_err().to_string();
        assert!(e.contains("400 bytes apart"), "{e}");
        assert!(SurfaceAbi::V8.check_header(72).is_ok());
        assert!(SurfaceAbi::V7.check_header(64).is_ok());
        let e = SurfaceAbi::V8.check_header(64).unwrap_err().to_string();
        assert!(e.contains("is 64 bytes") && e.contains("72 bytes"), "{e}");
    }

    /// An 8.0+ header: gpu 0, the given batch / filled / memType, list at `list`.
    fn header(batch: u32, filled: u32, mem: u32, list: u64) -> Vec<u8> {
        let mut h = vec![0u8; layout::surface::SIZE_V8];
        put(&mut h, layout::surface::BATCH_SIZE, batch);
        put(&mut h, layout::surface::NUM_FILLED, filled);
        put(&mut h, layout::surface::MEM_TYPE, mem);
        h[layout::surface::SURFACE_LIST..][..8].copy_from_slice(&list.to_ne_bytes());
        h
    }

    #[test]
    fn header_fields_are_checked_before_the_surface_list_is_followed() {
        let ok = SurfaceHeader::parse(&header(4, 2, mem_type::CUDA_DEVICE, 0x1000), SurfaceAbi::V8)
            .unwrap();
        assert_eq!((ok.batch_size, ok.num_filled, ok.mem_type), (4, 2, 2));
        assert_eq!(ok.surface_list, 0x1000);
        assert!(ok.check_index(1).is_ok());
        let e = ok.check_index(2).unwrap_err().to_string();
        assert!(
            e.contains("batch_id 2 is beyond") && e.contains("numFilled=2"),
            "{e}"
        );
        // numFilled 0 is a surface with nothing to read, not garbage.
        let empty = SurfaceHeader::parse(&header(1, 0, 0, 8), SurfaceAbi::V8).unwrap();
        assert!(empty.check_index(0).is_err());

        let refused = |h: Vec<u8>| {
            SurfaceHeader::parse(&h, SurfaceAbi::V8)
                .unwrap_err()
                .to_string()
        };
        for (h, words) in [
            (
                header(1, 1, 7, 8),
                "memType is 7, not an NvBufSurfaceMemType",
            ),
            (header(1, 1, u32::MAX, 8), "memType is 4294967295"),
            (header(0, 0, 0, 8), "batchSize is 0, not 1 to 4096"),
            (header(4097, 1, 0, 8), "batchSize is 4097"),
            (
                header(2, 3, 0, 8),
                "numFilled=3 is more than its batchSize=2",
            ),
            (header(1, 1, 0, 0), "null surfaceList"),
            (
                header(1, 1, 0, 0x1004),
                "surfaceList 0x1004 is not 8-byte aligned",
            ),
        ] {
            let e = refused(h);
            assert!(e.contains(words), "{words:?} not in {e:?}");
        }
        // The size is checked first: a 7.x header against an 8.0+ library.
        let e = refused(header(1, 1, 0, 8)[..64].to_vec());
        assert!(e.contains("is 64 bytes"), "{e}");
    }

    #[test]
    fn only_memory_of_nvidias_allocators_is_taken_for_a_surface() {
        gst::init().unwrap();
        let b = gst::Buffer::from_slice(vec![0u8; 72]);
        let e = check_memory(&b).unwrap_err().to_string();
        assert!(
            e.contains("memory (72 bytes) comes from allocator")
                && e.contains("memory type 'RustGlobalAllocatorMemory'")
                && e.contains("nvds, V4l2Memory, nvfilter, nvarguscam"),
            "{e}"
        );
        let mut two = gst::Buffer::with_size(64).unwrap();
        two.get_mut()
            .unwrap()
            .append_memory(gst::Memory::with_size(8));
        let e = check_memory(&two).unwrap_err().to_string();
        assert!(e.contains("holds 2 memories"), "{e}");
        let e = check_memory(&gst::Buffer::new()).unwrap_err().to_string();
        assert!(e.contains("holds 0 memories"), "{e}");
    }

    #[test]
    fn unsupported_colours_are_named() {
        let e = SurfaceError::UnsupportedColor {
            index: 2,
            value: 27,
        }
        .to_string();
        assert!(e.contains("surface 2 has colour format 27 (RGB)"), "{e}");
        assert!(!color::supported_source(color::GRAY8));
        assert!(color::supported_source(color::NV12));
    }
}
