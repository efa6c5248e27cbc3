// SPDX-License-Identifier: MIT OR Apache-2.0
//! Finding and opening NVIDIA's DeepStream libraries at run time.
//!
//! Nothing links against them, so the plugin builds and loads where DeepStream is absent; a
//! library is opened the first time something needs it. Places are tried in this order:
//!
//! 1. a copy already loaded in this process (`RTLD_NOLOAD`): inside a DeepStream pipeline that
//!    is the one `nvinfer` and `nvstreammux` use, and it must be, since each copy keeps its own
//!    registry of user meta types;
//! 2. the folder named by [`LIB_DIR_ENV`] (`IGUARD_DEEPSTREAM_LIB_DIR`);
//! 3. the dynamic loader's usual search (`LD_LIBRARY_PATH`, `ld.so.cache`) by file name;
//! 4. DeepStream's usual folders ([`DEEPSTREAM_DIRS`]).
//!
//! A failure is a [`LoadError`] naming the library, every place tried with the loader's reason,
//! and what to install.

use std::fmt;
use std::path::{Path, PathBuf};

use libloading::os::unix::{Library, RTLD_LAZY, RTLD_LOCAL};

/// The environment variable naming a folder searched before the usual places.
pub const LIB_DIR_ENV: &str = "IGUARD_DEEPSTREAM_LIB_DIR";

/// Where DeepStream installs its libraries: dGPU, Jetson JetPack 6, Jetson JetPack 5.
pub const DEEPSTREAM_DIRS: &[&str] = &[
    "/opt/nvidia/deepstream/deepstream/lib",
    "/usr/lib/aarch64-linux-gnu/nvidia",
    "/usr/lib/aarch64-linux-gnu/tegra",
];

/// What to tell a user who has none of them.
const INSTALL_HINT: &str = "install DeepStream (its libraries live in \
     /opt/nvidia/deepstream/deepstream/lib), or `pip install --no-deps --target DIR \
     nvidia-deepstream-videodecode-cu13` and set IGUARD_DEEPSTREAM_LIB_DIR to \
     DIR/nvidia/deepstream_videodecode/_libs";

/// One of NVIDIA's libraries we open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NvLib {
    /// `libnvds_meta.so`: batch/frame/object/classifier/user meta pools and lists.
    NvdsMeta,
    /// `libnvdsgst_meta.so`: the `NvDsMeta` GstMeta (`gst_buffer_add_nvds_meta`).
    NvdsGstMeta,
    /// `libnvbufsurface.so`: NVMM surfaces (needs CUDA and a driver).
    NvBufSurface,
    /// `libnvbufsurftransform.so`: crop and scale between surfaces (needs CUDA, NPP).
    NvBufSurfTransform,
}

impl NvLib {
    /// File names to try, most usual first (Jetson ships versioned names with links).
    pub fn file_names(self) -> &'static [&'static str] {
        match self {
            NvLib::NvdsMeta => &["libnvds_meta.so"],
            NvLib::NvdsGstMeta => &["libnvdsgst_meta.so"],
            NvLib::NvBufSurface => &["libnvbufsurface.so", "libnvbufsurface.so.1"],
            NvLib::NvBufSurfTransform => {
                &["libnvbufsurftransform.so", "libnvbufsurftransform.so.1"]
            }
        }
    }

    pub fn name(self) -> &'static str {
        self.file_names()[0]
    }

    /// What the library is for, for messages.
    pub fn purpose(self) -> &'static str {
        match self {
            NvLib::NvdsMeta => "DeepStream's metadata library",
            NvLib::NvdsGstMeta => "DeepStream's GStreamer metadata library",
            NvLib::NvBufSurface => "NVIDIA's NVMM surface library (needs CUDA and its driver)",
            NvLib::NvBufSurfTransform => "NVIDIA's surface transform library (needs CUDA and NPP)",
        }
    }
}

impl fmt::Display for NvLib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One place a library is looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Already loaded in this process, under one of the library's file names.
    Loaded,
    /// A folder: the library is opened by its full path there.
    Dir(PathBuf),
    /// The dynamic loader's own search, by file name.
    Loader,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Loaded => f.write_str("already loaded in this process"),
            Place::Dir(d) => write!(f, "{}", d.display()),
            Place::Loader => f.write_str("the dynamic loader's search path"),
        }
    }
}

/// The usual search: see the module documentation. `env_dir` is the value of [`LIB_DIR_ENV`].
pub fn usual_places(env_dir: Option<&Path>) -> Vec<Place> {
    let mut places = vec![Place::Loaded];
    if let Some(d) = env_dir.filter(|d| !d.as_os_str().is_empty()) {
        places.push(Place::Dir(d.to_path_buf()));
    }
    places.push(Place::Loader);
    places.extend(DEEPSTREAM_DIRS.iter().map(|d| Place::Dir(PathBuf::from(d))));
    places
}

/// The usual search with [`LIB_DIR_ENV`] read from the environment.
pub fn places_from_env() -> Vec<Place> {
    let dir = std::env::var_os(LIB_DIR_ENV).map(PathBuf::from);
    usual_places(dir.as_deref())
}

/// A library that could not be opened, or lacks a function we need.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error("cannot open {lib} ({purpose}); tried: {tried}; {hint}", purpose = .lib.purpose(), hint = INSTALL_HINT)]
    NotFound {
        lib: NvLib,
        /// Each place tried, with the loader's reason.
        tried: Tried,
    },
    #[error("{lib} from {from} lacks `{symbol}` ({reason}): it is not a DeepStream 5.0 or later build; {hint}", hint = INSTALL_HINT)]
    MissingSymbol {
        lib: NvLib,
        from: String,
        symbol: String,
        reason: String,
    },
}

/// The places tried for a library, in order, with why each failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tried(pub Vec<(String, String)>);

impl fmt::Display for Tried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (place, why)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{place} ({why})")?;
        }
        Ok(())
    }
}

/// An opened library and where it came from.
#[derive(Debug)]
pub struct Opened {
    pub library: Library,
    /// The path or name it was opened by (for messages).
    pub from: String,
}

/// Opens `lib` from the first of `places` that has it.
pub fn open(lib: NvLib, places: &[Place]) -> Result<Opened, LoadError> {
    let mut tried = Tried::default();
    for place in places {
        for name in lib.file_names() {
            let (target, flags) = match place {
                Place::Loaded => (name.to_string(), RTLD_LAZY | RTLD_LOCAL | libc::RTLD_NOLOAD),
                Place::Dir(d) => {
                    let path = d.join(name);
                    // A missing file needs no loader message; it would only repeat the path.
                    if !path.exists() {
                        tried
                            .0
                            .push((path.display().to_string(), "no such file".into()));
                        continue;
                    }
                    (path.display().to_string(), RTLD_LAZY | RTLD_LOCAL)
                }
                Place::Loader => (name.to_string(), RTLD_LAZY | RTLD_LOCAL),
            };
            // SAFETY: opening a library runs its initialisers. NVIDIA's metadata and surface
            // libraries only set up static state there; the library is never closed while a
            // pointer into it may be held (the tables that keep it live for the process).
            match unsafe { Library::open(Some(target.as_str()), flags) } {
                Ok(library) => {
                    let from = match place {
                        Place::Loaded => format!("{name} (already loaded)"),
                        _ => target,
                    };
                    return Ok(Opened { library, from });
                }
                Err(e) => {
                    let label = match place {
                        Place::Dir(_) => target,
                        _ => format!("{name} via {place}"),
                    };
                    let why = match place {
                        Place::Loaded => "not loaded".to_string(),
                        _ => loader_reason(&e),
                    };
                    tried.0.push((label, why));
                }
            }
        }
    }
    Err(LoadError::NotFound { lib, tried })
}

/// Copies the function pointer `name` out of `opened`.
///
/// # Safety
/// `T` must be the exact `extern "C"` function pointer type of the symbol, and `opened.library`
/// must stay loaded for as long as the pointer is used.
pub unsafe fn symbol<T: Copy>(opened: &Opened, lib: NvLib, name: &str) -> Result<T, LoadError> {
    // SAFETY: per the caller's contract on `T`.
    unsafe { opened.library.get::<T>(name.as_bytes()) }
        .map(|s| *s)
        .map_err(|e| LoadError::MissingSymbol {
            lib,
            from: opened.from.clone(),
            symbol: name.to_string(),
            reason: loader_reason(&e),
        })
}

/// The loader's own words (`dlerror`), which libloading keeps as the error's source.
fn loader_reason(e: &libloading::Error) -> String {
    match std::error::Error::source(e) {
        Some(s) => s.to_string(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_places_put_the_environment_folder_after_a_loaded_copy() {
        let p = usual_places(Some(Path::new("/x/_libs")));
        assert_eq!(p[0], Place::Loaded);
        assert_eq!(p[1], Place::Dir("/x/_libs".into()));
        assert_eq!(p[2], Place::Loader);
        assert_eq!(
            p[3],
            Place::Dir("/opt/nvidia/deepstream/deepstream/lib".into())
        );
        assert_eq!(p.len(), 3 + DEEPSTREAM_DIRS.len());
        assert_eq!(
            usual_places(Some(Path::new(""))).len(),
            2 + DEEPSTREAM_DIRS.len()
        );
        assert_eq!(usual_places(None)[1], Place::Loader);
    }

    #[test]
    fn a_missing_library_names_itself_every_place_and_what_to_install() {
        let dir = std::env::temp_dir().join(format!("iguard-no-ds-{}", std::process::id()));
        let e = open(
            NvLib::NvBufSurfTransform,
            &[Place::Loaded, Place::Dir(dir.clone()), Place::Loader],
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("cannot open libnvbufsurftransform.so"), "{e}");
        for part in [
            "libnvbufsurftransform.so via already loaded in this process (not loaded)",
            &format!("{}/libnvbufsurftransform.so (no such file)", dir.display()),
            &format!(
                "{}/libnvbufsurftransform.so.1 (no such file)",
                dir.display()
            ),
            "libnvbufsurftransform.so.1 via the dynamic loader's search path (",
            "install DeepStream",
            "IGUARD_DEEPSTREAM_LIB_DIR",
            "nvidia-deepstream-videodecode-cu13",
        ] {
            assert!(e.contains(part), "{part:?} missing from: {e}");
        }
    }

    #[test]
    fn a_library_that_fails_to_load_gives_the_loaders_reason() {
        let dir = std::env::temp_dir().join(format!("iguard-bad-ds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("libnvds_meta.so"), b"not an ELF file").unwrap();
        let e = open(NvLib::NvdsMeta, &[Place::Dir(dir.clone())]).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        let LoadError::NotFound { lib, tried } = &e else {
            panic!("{e}")
        };
        assert_eq!(*lib, NvLib::NvdsMeta);
        assert_eq!(tried.0.len(), 1);
        assert!(tried.0[0].0.ends_with("/libnvds_meta.so"));
        assert!(tried.0[0].1.contains("libnvds_meta.so"), "{e}");
        assert_ne!(tried.0[0].1, "no such file");
    }

    #[test]
    fn a_system_library_opens_and_its_symbols_are_found_or_named() {
        // libc is loaded in every process: proves the loaded-copy place and symbol errors.
        let opened = Opened {
            library: unsafe { Library::open(Some("libc.so.6"), RTLD_LAZY | libc::RTLD_NOLOAD) }
                .expect("libc is loaded"),
            from: "libc.so.6".into(),
        };
        // SAFETY: `getpid` is `pid_t getpid(void)`.
        let getpid: unsafe extern "C" fn() -> libc::pid_t =
            unsafe { symbol(&opened, NvLib::NvdsMeta, "getpid") }.unwrap();
        assert_eq!(unsafe { getpid() } as u32, std::process::id());
        let e = unsafe { symbol::<unsafe extern "C" fn()>(&opened, NvLib::NvdsMeta, "nvds_nope") }
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("libnvds_meta.so from libc.so.6 lacks `nvds_nope`"),
            "{e}"
        );
    }
}
