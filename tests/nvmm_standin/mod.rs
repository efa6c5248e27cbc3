// SPDX-License-Identifier: MIT OR Apache-2.0
//! NVMM-like buffers for the tests, made with a CPU STAND-IN of NVIDIA's `libnvbufsurface.so` /
//! `libnvbufsurftransform.so` (`nvbufsurface_standin.c`, compiled here with `cc` into the
//! test's target folder). It is not NVIDIA's code; see the C file for what it enforces.
//!
//! A test buffer is what `nvstreammux`'s pool gives: one 72-byte memory whose bytes are the
//! `NvBufSurface` (DeepStream 8.0+ layout), its `surfaceList` owned by the stand-in. The test
//! process opens the stand-in by path before the element looks for it; the element finds that
//! copy first ("already loaded"), and `IGUARD_NVBUFSURFACE_LIB_DIR` names the folder too.
#![allow(dead_code)]

use std::ffi::c_void;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};

pub const NV12: u32 = 6;
pub const RGBA: u32 = 19;
pub const BGRA: u32 = 20;
pub const GRAY8: u32 = 1;
pub const CUDA_DEVICE: u32 = 2;

// Offsets in the stand-in's (8.0+) structs, written out here as in NVMM-FACTS.md.
const SURFACE_NUM_FILLED: usize = 8;
const SURFACE_LIST: usize = 24;
const PARAMS_SIZE: usize = 416;
const PARAMS_LAYOUT: usize = 16;
const PARAMS_DATA_PTR: usize = 40;
const PLANE_PITCH: usize = 48 + 36;
const PLANE_OFFSET: usize = 48 + 52;

type CreateFn = unsafe extern "C" fn(*mut *mut c_void, u32, *mut c_void) -> i32;
type DestroyFn = unsafe extern "C" fn(*mut c_void) -> i32;
type CountFn = unsafe extern "C" fn() -> i32;

pub struct Standin {
    _surface: Library,
    _transform: Library,
    pub dir: PathBuf,
    create: CreateFn,
    destroy: DestroyFn,
    live: CountFn,
    maps: CountFn,
    transforms: CountFn,
    transform_calls: CountFn,
    fail_next: unsafe extern "C" fn(i32, i32),
    transform_ns: unsafe extern "C" fn() -> u64,
    pub map: unsafe extern "C" fn(*mut c_void, i32, i32, i32) -> i32,
    pub transform: unsafe extern "C" fn(*mut c_void, *mut c_void, *mut c_void) -> i32,
    pub set_session: unsafe extern "C" fn(*mut c_void) -> i32,
}

/// Compiles (once per test binary) and opens the stand-in; sets `IGUARD_NVBUFSURFACE_LIB_DIR`.
pub fn standin() -> &'static Standin {
    static S: OnceLock<Standin> = OnceLock::new();
    S.get_or_init(|| {
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/nvmm_standin/nvbufsurface_standin.c");
        // CARGO_TARGET_TMPDIR is set for integration tests; examples use target/tmp.
        let tmp = option_env!("CARGO_TARGET_TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tmp"));
        let dir = tmp.join("nvbufsurface-standin");
        std::fs::create_dir_all(&dir).unwrap();
        let surface = dir.join("libnvbufsurface.so");
        let transform = dir.join("libnvbufsurftransform.so");
        let cc = |args: &[&str]| {
            let out = Command::new("cc")
                .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror"])
                .args(args)
                .output()
                .expect("run cc (the C compiler) to build the NVMM stand-in");
            assert!(
                out.status.success(),
                "building the NVMM stand-in failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        cc(&[
            "-DSTANDIN_SURFACE",
            "-Wl,-soname,libnvbufsurface.so",
            "-o",
            surface.to_str().unwrap(),
            src.to_str().unwrap(),
            "-lpthread",
        ]);
        cc(&[
            "-DSTANDIN_TRANSFORM",
            "-Wl,-soname,libnvbufsurftransform.so",
            "-o",
            transform.to_str().unwrap(),
            src.to_str().unwrap(),
            &format!("-L{}", dir.display()),
            "-lnvbufsurface",
            "-Wl,-rpath,$ORIGIN",
        ]);
        // SAFETY: setting the variable before any element reads it; the test binaries read
        // no other variable concurrently at this point (the first test to get here holds the
        // OnceLock).
        unsafe { std::env::set_var("IGUARD_NVBUFSURFACE_LIB_DIR", &dir) };
        // SAFETY: the stand-in's initialisers do nothing; kept loaded for the process.
        let s = unsafe { Library::open(Some(&surface), RTLD_NOW | RTLD_GLOBAL) }.unwrap();
        let t = unsafe { Library::open(Some(&transform), RTLD_NOW | RTLD_GLOBAL) }.unwrap();
        // SAFETY: the signatures of the C file.
        unsafe {
            Standin {
                create: *s.get(b"NvBufSurfaceCreate").unwrap(),
                destroy: *s.get(b"NvBufSurfaceDestroy").unwrap(),
                live: *s.get(b"standin_live_surfaces").unwrap(),
                maps: *s.get(b"standin_maps_held").unwrap(),
                transforms: *t.get(b"standin_transforms").unwrap(),
                transform_calls: *t.get(b"standin_transform_calls").unwrap(),
                fail_next: *t.get(b"standin_fail_next").unwrap(),
                transform_ns: *t.get(b"standin_transform_ns").unwrap(),
                map: *s.get(b"NvBufSurfaceMap").unwrap(),
                transform: *t.get(b"NvBufSurfTransform").unwrap(),
                set_session: *t.get(b"NvBufSurfTransformSetSessionParams").unwrap(),
                _surface: s,
                _transform: t,
                dir,
            }
        }
    })
}

impl Standin {
    pub fn live_surfaces(&self) -> i32 {
        unsafe { (self.live)() }
    }
    pub fn maps_held(&self) -> i32 {
        unsafe { (self.maps)() }
    }
    /// Tiles (destination entries) transformed so far.
    pub fn transforms(&self) -> i32 {
        unsafe { (self.transforms)() }
    }
    /// Successful `NvBufSurfTransform` calls so far (one per tile, or one per batch).
    pub fn transform_calls(&self) -> i32 {
        unsafe { (self.transform_calls)() }
    }
    /// Makes the next `batched` calls of several entries and the next `single` calls of one
    /// entry fail with Execution_Error (-2); `(0, 0)` stops injecting.
    pub fn fail_next(&self, batched: i32, single: i32) {
        unsafe { (self.fail_next)(batched, single) }
    }
    /// Thread CPU time spent in the stand-in's transform so far, all threads summed.
    pub fn transform_ns(&self) -> u64 {
        unsafe { (self.transform_ns)() }
    }
}

/// The surface behind a test buffer; destroyed with the buffer's memory.
pub struct Surf {
    ptr: *mut c_void,
    /// The bytes the buffer's memory shows: the header, or a mangled copy of it.
    header: Vec<u8>,
}

// SAFETY: the surface is only freed once, by whichever thread drops the memory.
unsafe impl Send for Surf {}

impl AsRef<[u8]> for Surf {
    fn as_ref(&self) -> &[u8] {
        &self.header
    }
}

impl Drop for Surf {
    fn drop(&mut self) {
        unsafe { (standin().destroy)(self.ptr) };
    }
}

/// Pixels of one entry as the test writes them (the stand-in's "device" memory is host memory).
pub struct Plane {
    pub data: *mut u8,
    pub pitch: usize,
}

/// An `NvBufSurface` of `batch` entries (`filled` of them valid), `width`×`height` in `format`,
/// device memory (CUDA_DEVICE: the stand-in refuses to map it, as a dGPU would).
pub struct Batch {
    surf: Surf,
    pub width: u32,
    pub height: u32,
    pub format: u32,
}

impl Batch {
    pub fn new(batch: u32, filled: u32, width: u32, height: u32, format: u32) -> Self {
        Self::with_memory(batch, filled, width, height, format, CUDA_DEVICE)
    }

    /// As [`Batch::new`] in memory type `mem` (3: CUDA_UNIFIED, which the stand-in maps).
    pub fn with_memory(
        batch: u32,
        filled: u32,
        width: u32,
        height: u32,
        format: u32,
        mem: u32,
    ) -> Self {
        let s = standin();
        let mut p = [0u8; 64];
        p[4..8].copy_from_slice(&width.to_ne_bytes());
        p[8..12].copy_from_slice(&height.to_ne_bytes());
        p[20..24].copy_from_slice(&format.to_ne_bytes());
        p[28..32].copy_from_slice(&mem.to_ne_bytes());
        let mut ptr = std::ptr::null_mut();
        let code = unsafe { (s.create)(&mut ptr, batch, p.as_mut_ptr().cast()) };
        assert_eq!(code, 0, "stand-in NvBufSurfaceCreate");
        unsafe {
            ptr.cast::<u8>()
                .add(SURFACE_NUM_FILLED)
                .cast::<u32>()
                .write(filled)
        };
        let header = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), 72) }.to_vec();
        Batch {
            surf: Surf { ptr, header },
            width,
            height,
            format,
        }
    }

    /// The stand-in's own `NvBufSurface *`.
    pub fn ptr(&self) -> *mut c_void {
        self.surf.ptr
    }

    /// The header bytes the buffer's memory will show (what the element maps).
    pub fn header(&self) -> &[u8] {
        &self.surf.header
    }

    /// A copy of the header with batchSize = numFilled = 1 and the list at `list`.
    pub fn view(&self, list: *mut u8) -> Vec<u8> {
        let mut v = self.surf.header.clone();
        v[4..8].copy_from_slice(&1u32.to_ne_bytes());
        v[8..12].copy_from_slice(&1u32.to_ne_bytes());
        v[24..32].copy_from_slice(&(list as usize as u64).to_ne_bytes());
        v
    }

    pub fn entry(&self, i: u32) -> *mut u8 {
        unsafe {
            let list = self
                .surf
                .ptr
                .cast::<u8>()
                .add(SURFACE_LIST)
                .cast::<*mut u8>()
                .read();
            list.add(i as usize * PARAMS_SIZE)
        }
    }

    pub fn plane(&self, i: u32, p: usize) -> Plane {
        unsafe {
            let e = self.entry(i);
            let data = e.add(PARAMS_DATA_PTR).cast::<*mut u8>().read();
            let pitch = e.add(PLANE_PITCH + 4 * p).cast::<u32>().read() as usize;
            let offset = e.add(PLANE_OFFSET + 4 * p).cast::<u32>().read() as usize;
            Plane {
                data: data.add(offset),
                pitch,
            }
        }
    }

    /// Paints entry `i` with `rgb(x, y)`, in the surface's own format.
    pub fn paint(&self, i: u32, rgb: impl Fn(u32, u32) -> [u8; 3]) {
        match self.format {
            NV12 => {
                let (y, uv) = (self.plane(i, 0), self.plane(i, 1));
                for row in 0..self.height {
                    for col in 0..self.width {
                        let (l, _, _) = yuv(rgb(col, row));
                        unsafe { *y.data.add(row as usize * y.pitch + col as usize) = l };
                    }
                }
                for row in 0..self.height / 2 {
                    for col in 0..self.width / 2 {
                        // The chroma of the 2×2 block's top-left pixel.
                        let (_, u, v) = yuv(rgb(col * 2, row * 2));
                        unsafe {
                            let o = uv.data.add(row as usize * uv.pitch + col as usize * 2);
                            *o = u;
                            *o.add(1) = v;
                        }
                    }
                }
            }
            _ => {
                let p = self.plane(i, 0);
                let bgr = self.format == BGRA;
                for row in 0..self.height {
                    for col in 0..self.width {
                        let c = rgb(col, row);
                        let px = [
                            if bgr { c[2] } else { c[0] },
                            c[1],
                            if bgr { c[0] } else { c[2] },
                            255,
                        ];
                        unsafe {
                            std::ptr::copy_nonoverlapping(
                                px.as_ptr(),
                                p.data.add(row as usize * p.pitch + col as usize * 4),
                                4,
                            )
                        };
                    }
                }
            }
        }
    }

    /// Entry `i` as a tightly packed system-memory frame of the same format (the comparison
    /// path: what `nvvideoconvert ! video/x-raw` would give).
    pub fn system_copy(&self, i: u32) -> Vec<u8> {
        let (w, h) = (self.width as usize, self.height as usize);
        let mut out = Vec::new();
        let rows = |p: Plane, n: usize, bytes: usize, out: &mut Vec<u8>| {
            for r in 0..n {
                out.extend_from_slice(unsafe {
                    std::slice::from_raw_parts(p.data.add(r * p.pitch), bytes)
                });
            }
        };
        match self.format {
            NV12 => {
                rows(self.plane(i, 0), h, w, &mut out);
                rows(self.plane(i, 1), h / 2, w, &mut out);
            }
            _ => rows(self.plane(i, 0), h, w * 4, &mut out),
        }
        out
    }

    /// Sets entry `i`'s layout field (0 pitch, 1 block-linear).
    pub fn set_layout(&self, i: u32, layout: u32) {
        unsafe { self.entry(i).add(PARAMS_LAYOUT).cast::<u32>().write(layout) };
    }

    /// Overwrites header bytes the buffer will show (a null list, a wrong numFilled).
    pub fn mangle_header(mut self, f: impl FnOnce(&mut Vec<u8>)) -> Self {
        f(&mut self.surf.header);
        self
    }

    /// The buffer `nvstreammux` would push: its one memory is the `NvBufSurface`, from an
    /// allocator of DeepStream's memory type (`nvds`; see [`standin_memory`]).
    pub fn into_buffer(self, pts_ms: u64) -> gst::Buffer {
        let mut b = gst::Buffer::new();
        {
            let b = b.get_mut().unwrap();
            b.append_memory(standin_memory(self.surf));
            b.set_pts(gst::ClockTime::from_mseconds(pts_ms));
        }
        b
    }

    /// The same bytes in plain system memory (GStreamer-rs's wrapped memory): what a buffer
    /// under `memory:NVMM` caps that is not NVIDIA's looks like.
    pub fn into_system_buffer(self, pts_ms: u64) -> gst::Buffer {
        let mut b = gst::Buffer::from_slice(self.surf);
        b.get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(pts_ms));
        b
    }
}

/// The memory type of DeepStream's own buffer pool allocator (`GstNvDsMemoryAllocator`),
/// which the stand-in allocator takes on so the element treats its memory as NVIDIA's.
pub const NVDS_MEMORY_TYPE: &str = "nvds";

/// A STAND-IN of DeepStream's buffer-pool allocator: a GstAllocator whose `mem_type` is
/// `nvds` and whose memory maps to the `NvBufSurface` header bytes it wraps. Not NVIDIA's code.
mod allocator_imp {
    use gst::glib;
    use gst::prelude::*;
    use gst::subclass::prelude::*;

    use super::Surf;

    /// One memory: the GstMemory header, then what it wraps.
    #[repr(C)]
    pub(super) struct StandinMemory {
        pub mem: gst::ffi::GstMemory,
        pub surf: Surf,
    }

    #[derive(Default)]
    pub struct NvDsStandinAllocator;

    #[glib::object_subclass]
    impl ObjectSubclass for NvDsStandinAllocator {
        const NAME: &'static str = "IGuardStandinNvDsMemoryAllocator";
        type Type = super::NvDsStandinAllocator;
        type ParentType = gst::Allocator;
    }

    unsafe extern "C" fn mem_map(
        mem: *mut gst::ffi::GstMemory,
        _maxsize: usize,
        _flags: gst::ffi::GstMapFlags,
    ) -> glib::ffi::gpointer {
        // SAFETY: every memory of this allocator is a `StandinMemory`; its header bytes stay
        // put while the memory lives.
        unsafe {
            let m = mem.cast::<StandinMemory>();
            (*m).surf.header.as_ptr().cast_mut().cast()
        }
    }

    unsafe extern "C" fn mem_unmap(_mem: *mut gst::ffi::GstMemory) {}

    unsafe extern "C" fn mem_share(
        _mem: *mut gst::ffi::GstMemory,
        _offset: isize,
        _size: isize,
    ) -> *mut gst::ffi::GstMemory {
        // As NVIDIA's pool memory (flag NO_SHARE): never shared; a buffer copy copies it.
        std::ptr::null_mut()
    }

    impl ObjectImpl for NvDsStandinAllocator {
        fn constructed(&self) {
            self.parent_constructed();
            let a: *mut gst::ffi::GstAllocator = self.obj().upcast_ref::<gst::Allocator>().as_ptr();
            // SAFETY: our own, just constructed allocator; the strings are static.
            unsafe {
                (*a).mem_type = c"nvds".as_ptr();
                (*a).mem_map = Some(mem_map);
                (*a).mem_unmap = Some(mem_unmap);
                (*a).mem_share = Some(mem_share);
                // mem_copy stays GStreamer's fallback (a system-memory copy).
                (*a).object.flags |= gst::ffi::GST_ALLOCATOR_FLAG_CUSTOM_ALLOC
                    | gst::ffi::GST_OBJECT_FLAG_MAY_BE_LEAKED;
            }
        }
    }

    impl GstObjectImpl for NvDsStandinAllocator {}

    unsafe impl AllocatorImpl for NvDsStandinAllocator {
        unsafe fn alloc(
            &self,
            _size: usize,
            _params: &gst::AllocationParams,
        ) -> *mut gst::ffi::GstMemory {
            // Memory is only made around a surface (`standin_memory`).
            std::ptr::null_mut()
        }

        unsafe fn free(&self, memory: *mut gst::ffi::GstMemory) {
            // SAFETY: made by `standin_memory` with `Box::into_raw`, freed once, here.
            drop(unsafe { Box::from_raw(memory.cast::<StandinMemory>()) });
        }
    }
}

gst::glib::wrapper! {
    pub struct NvDsStandinAllocator(ObjectSubclass<allocator_imp::NvDsStandinAllocator>)
        @extends gst::Allocator, gst::Object;
}

fn nvds_allocator() -> &'static NvDsStandinAllocator {
    static A: OnceLock<NvDsStandinAllocator> = OnceLock::new();
    A.get_or_init(gst::glib::Object::new)
}

/// A memory of the stand-in `nvds` allocator showing `surf`'s header bytes.
fn standin_memory(surf: Surf) -> gst::Memory {
    use gst::glib::translate::ToGlibPtr;
    use gst::prelude::Cast;
    let size = surf.header.len();
    let m = Box::into_raw(Box::new(allocator_imp::StandinMemory {
        // SAFETY: a plain C struct; `gst_memory_init` fills it below.
        mem: unsafe { std::mem::zeroed() },
        surf,
    }));
    let allocator: *mut gst::ffi::GstAllocator = nvds_allocator()
        .upcast_ref::<gst::Allocator>()
        .to_glib_none()
        .0;
    // SAFETY: `m` starts with a GstMemory; `gst_memory_init` takes a reference on the
    // allocator, whose `free` gives the box back.
    unsafe {
        gst::ffi::gst_memory_init(
            m.cast(),
            gst::ffi::GST_MEMORY_FLAG_NO_SHARE,
            allocator,
            std::ptr::null_mut(),
            size,
            7,
            0,
            size,
        );
        gst::Memory::from_glib_full(m.cast())
    }
}

/// BT.601 limited-range YUV of an RGB colour (what NV12 caps without colorimetry mean for SD).
pub fn yuv(c: [u8; 3]) -> (u8, u8, u8) {
    let [r, g, b] = c.map(|v| v as f32);
    let y = 16.0 + 0.257 * r + 0.504 * g + 0.098 * b;
    let u = 128.0 - 0.148 * r - 0.291 * g + 0.439 * b;
    let v = 128.0 + 0.439 * r - 0.368 * g - 0.071 * b;
    let q = |x: f32| x.round().clamp(0.0, 255.0) as u8;
    (q(y), q(u), q(v))
}

/// NVMM caps of `format` (`"RGBA"`, `"NV12"`), `width`×`height`.
pub fn nvmm_caps(format: &str, width: u32, height: u32) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .features(["memory:NVMM"])
        .field("format", format)
        .field("width", width as i32)
        .field("height", height as i32)
        .field("framerate", gst::Fraction::new(30, 1))
        .build()
}
