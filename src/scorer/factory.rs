// SPDX-License-Identifier: MIT OR Apache-2.0
//! The scorer for a run, from the element's settings in plain types: a local ONNX model, a
//! model on an inference server, or the label-based fallback (when no model is asked for, or
//! it cannot be used and `fallback-on-error` allows). Also the clip shape the model leaves.
//!
//! Messages name properties as the application sets them (`model-path=...`); the element
//! turns a [`Problem`] into its GStreamer error domain and posts the warnings itself, after
//! releasing its locks.
//!
//! The spec itself, its defaults and its comparison live in [`super::spec`]; this module must not
//! know GObject or the element's property names beyond those messages.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::Scorer;
use super::fallback::FallbackScorer;
use super::model_io::{ClassRef, ColorOrder, Layout, ModelIo, TAO_INPUT, TAO_OUTPUT};
use super::onnx::{OnnxConfig, OnnxScorer};
use super::triton::{TlsConfig, TritonConfig, TritonScorer};

pub use super::spec::{ModelKind, ScorerSpec, TlsFiles};

/// Frames, height and width a model fixes (`None` where it leaves them free).
pub type Dims = [Option<u32>; 3];

/// How much later than `worker-timeout` the remote scorer's own deadline falls. The pool answers
/// `timeout` at `worker-timeout` and cancels the call; were the scorer's deadline first (the
/// pool's supervisor thread delayed on a busy machine), the verdict would read `dropped`.
const REMOTE_DEADLINE_GRACE: Duration = Duration::from_secs(1);

/// Which side a message is about: the model (GStreamer's library domain) or the inference
/// server (the resource domain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    Model,
    Server,
}

/// Something the application should hear about; the scorer was built anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub problem: Problem,
    pub message: String,
}

/// A scorer ready for a pool.
pub struct Built {
    pub scorer: Arc<dyn Scorer>,
    /// Clip dims the model fixes: frames, height, width.
    pub dims: Dims,
    pub warnings: Vec<Warning>,
    /// What was built, for the log.
    pub description: String,
}

impl std::fmt::Debug for Built {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Built")
            .field("scorer", &self.scorer.name())
            .field("dims", &self.dims)
            .field("warnings", &self.warnings)
            .field("description", &self.description)
            .finish()
    }
}

/// No scorer: the model cannot be used and `fallback-on-error=false`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BuildError {
    pub problem: Problem,
    pub message: String,
}

fn given_path(p: &Option<PathBuf>) -> Option<&Path> {
    p.as_deref().filter(|p| !p.as_os_str().is_empty())
}

fn given_str(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// The scorer `spec` asks for (see the module doc).
pub fn build(spec: &ScorerSpec) -> Result<Built, BuildError> {
    let fallback = |description: String, warnings: Vec<Warning>| Built {
        scorer: Arc::new(FallbackScorer::new(spec.weapon_labels.clone())),
        dims: [None; 3],
        warnings,
        description,
    };
    // The fallback in place of a model that cannot be used, or the error.
    let instead = |problem: Problem, message: String| {
        if spec.fallback_on_error {
            let message = format!(
                "{message}; verifying with the label-based fallback instead (fallback-on-error=true)"
            );
            Ok(fallback(
                "the label-based fallback (the model cannot be used)".into(),
                vec![Warning { problem, message }],
            ))
        } else {
            Err(BuildError { problem, message })
        }
    };
    match spec.kind {
        ModelKind::Fallback => Ok(fallback("the label-based fallback".into(), vec![])),
        ModelKind::Triton => {
            let name = given_str(&spec.model_name).unwrap_or("");
            match connect_triton(spec, name) {
                Ok(scorer) => {
                    let i = scorer.info().clone();
                    Ok(Built {
                        description: format!("Triton model {name:?} at {}: {i:?}", spec.server_url),
                        scorer: Arc::new(scorer),
                        dims: [i.frames, i.height, i.width],
                        warnings: vec![],
                    })
                }
                Err(e) => instead(
                    Problem::Server,
                    format!(
                        "Cannot use server-url={:?} model-name={name:?}: {e}",
                        spec.server_url
                    ),
                ),
            }
        }
        ModelKind::Onnx | ModelKind::Tao => {
            let Some(model) = given_path(&spec.model_path) else {
                return Ok(fallback(
                    "no model-path: verifying with the label-based fallback".into(),
                    vec![],
                ));
            };
            let loaded = onnx_config(spec, model)
                .and_then(|config| OnnxScorer::load(config).map_err(|e| e.to_string()));
            match loaded {
                Ok(scorer) => {
                    let i = scorer.info().clone();
                    Ok(Built {
                        description: format!(
                            "model {model:?} loaded: {i:?}, provider {}",
                            scorer.provider().as_str()
                        ),
                        warnings: scorer
                            .warnings
                            .iter()
                            .map(|w| Warning {
                                problem: Problem::Model,
                                message: w.clone(),
                            })
                            .collect(),
                        dims: [i.frames, i.height, i.width],
                        scorer: Arc::new(scorer),
                    })
                }
                Err(e) => instead(
                    Problem::Model,
                    format!("Cannot use model-path={model:?}: {e}"),
                ),
            }
        }
    }
}

/// The model I/O: names, layout, normalisation, labels, positive classes. Errors name the bad
/// value.
pub fn model_io(spec: &ScorerSpec) -> Result<ModelIo, String> {
    let bad =
        |what: &str, value: &str, hint: &str| format!("{what} {value:?} is not valid: {hint}");
    let triple = |name: &str, value: &str| -> Result<[f32; 3], String> {
        let v: Result<Vec<f32>, _> = value.split(',').map(|x| x.trim().parse::<f32>()).collect();
        match v.as_deref() {
            Ok([a]) if a.is_finite() => Ok([*a; 3]),
            Ok([a, b, c]) if [a, b, c].iter().all(|x| x.is_finite()) => Ok([*a, *b, *c]),
            _ => Err(bad(
                name,
                value,
                "give one number, or three comma-separated (R,G,B)",
            )),
        }
    };
    let tao = spec.kind == ModelKind::Tao;
    let labels = match given_path(&spec.labels_file) {
        Some(path) => {
            let labels = crate::labels::read_labels_file(path).map_err(|e| e.to_string())?;
            if labels.is_empty() {
                return Err(format!("labels file {path:?}: it is empty"));
            }
            labels
        }
        None => Vec::new(),
    };
    let name = |n: &Option<String>, tao_name: &str| match given_str(n) {
        Some(n) => Some(n.to_string()),
        None if tao => Some(tao_name.to_string()),
        None => None,
    };
    Ok(ModelIo {
        input_name: name(&spec.input_name, TAO_INPUT),
        output_name: name(&spec.output_name, TAO_OUTPUT),
        layout: if tao { Layout::Ncdhw } else { spec.layout },
        mean: if tao {
            [127.5; 3]
        } else {
            triple("mean", &spec.mean)?
        },
        scale: if tao {
            [1.0 / 127.5; 3]
        } else {
            triple("scale", &spec.scale)?
        },
        color: if tao { ColorOrder::Rgb } else { spec.color },
        activation: spec.activation,
        labels,
        positive: ClassRef::parse_list(&spec.positive_classes),
    })
}

fn onnx_config(spec: &ScorerSpec, model: &Path) -> Result<OnnxConfig, String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = match spec.inference_threads {
        0 => (cores / spec.max_workers.max(1) as usize).max(1),
        n => n as usize,
    };
    Ok(OnnxConfig {
        model_path: model.to_path_buf(),
        io: model_io(spec)?,
        provider: spec.provider,
        trt_cache_dir: given_path(&spec.engine_cache_dir).map(Path::to_path_buf),
        threads,
        sessions: spec.max_workers as usize,
        max_batch: spec.batch_size as usize,
    })
}

fn connect_triton(spec: &ScorerSpec, name: &str) -> Result<TritonScorer, String> {
    let io = model_io(spec)?;
    if name.is_empty() {
        return Err("model-type=triton needs model-name (the model's name on the server)".into());
    }
    let t = &spec.tls;
    let tls = TlsConfig {
        ca_file: given_path(&t.ca_file).map(Path::to_path_buf),
        domain: given_str(&t.domain).map(String::from),
        cert_file: given_path(&t.cert_file).map(Path::to_path_buf),
        key_file: given_path(&t.key_file).map(Path::to_path_buf),
    };
    TritonScorer::connect(TritonConfig {
        url: spec.server_url.clone(),
        model_name: name.to_string(),
        model_version: given_str(&spec.model_version).unwrap_or("").to_string(),
        connect_timeout: spec.connect_timeout,
        request_timeout: spec.worker_timeout + REMOTE_DEADLINE_GRACE,
        tls: (tls != TlsConfig::default()).then_some(tls),
        io,
        max_batch: spec.batch_size as usize,
        // One RPC in flight per worker: the workers are the concurrency.
        in_flight: spec.max_workers.max(1) as usize,
    })
    .map_err(|e| e.to_string())
}

/// The clip shape: what the model fixes wins over the properties, unless the application set
/// a property to something else, which is an error. `requested` = [temporal-size,
/// input-height, input-width]; `explicit` = which of them the application set.
pub fn clip_shape(
    requested: [u32; 3],
    explicit: [bool; 3],
    dims: Dims,
) -> Result<[u32; 3], String> {
    const NAMES: [&str; 3] = ["temporal-size", "input-height", "input-width"];
    let mut shape = requested;
    for i in 0..3 {
        match dims[i] {
            Some(f) if f != requested[i] && explicit[i] => {
                let (name, value) = (NAMES[i], requested[i]);
                return Err(format!(
                    "{name}={value} conflicts with the model, which takes {f}; unset {name} or \
                     use a model exported for {value}"
                ));
            }
            Some(f) => shape[i] = f,
            None => (),
        }
    }
    Ok(shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scorer::model_io::Activation;

    /// The tiny model `make models` generates (copied into the worktree for tests).
    fn tiny_model() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-action.onnx")
    }

    /// Whether ONNX Runtime is there; a test environment that names one must load it.
    fn onnx_runtime() -> bool {
        let loaded = crate::scorer::onnx::runtime();
        if std::env::var_os("ORT_DYLIB_PATH").is_some() {
            loaded.unwrap_or_else(|e| panic!("{e}"));
            return true;
        }
        loaded.is_ok()
    }

    #[test]
    fn no_model_or_fallback_kind_gives_the_fallback() {
        let b = build(&ScorerSpec::default()).unwrap();
        assert_eq!(b.scorer.name(), "fallback");
        assert!(!b.scorer.is_model());
        assert_eq!(b.dims, [None; 3]);
        assert!(b.warnings.is_empty());
        assert!(b.description.contains("no model-path"), "{}", b.description);

        let b = build(&ScorerSpec {
            model_path: Some(PathBuf::new()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(b.scorer.name(), "fallback", "an empty path is no path");

        // model-type=fallback ignores a model path, even a missing one.
        let b = build(&ScorerSpec {
            kind: ModelKind::Fallback,
            model_path: Some("/nonexistent/model.onnx".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(b.scorer.name(), "fallback");
        assert!(b.warnings.is_empty());
    }

    #[test]
    fn a_missing_model_warns_and_falls_back_or_is_an_error() {
        let spec = ScorerSpec {
            model_path: Some("/nonexistent/model.onnx".into()),
            ..Default::default()
        };
        let b = build(&spec).unwrap();
        assert_eq!(b.scorer.name(), "fallback");
        assert_eq!(b.warnings.len(), 1);
        let w = &b.warnings[0];
        assert_eq!(w.problem, Problem::Model);
        assert!(
            w.message
                .starts_with("Cannot use model-path=\"/nonexistent/model.onnx\": ")
                && w.message.ends_with(
                    "; verifying with the label-based fallback instead (fallback-on-error=true)"
                ),
            "{}",
            w.message
        );

        let e = build(&ScorerSpec {
            fallback_on_error: false,
            ..spec
        })
        .unwrap_err();
        assert_eq!(e.problem, Problem::Model);
        assert!(
            e.message
                .starts_with("Cannot use model-path=\"/nonexistent/model.onnx\": ")
                && e.message.contains("does not exist")
                && !e.message.contains("fallback"),
            "{}",
            e.message
        );
    }

    #[test]
    fn bad_mean_or_scale_name_the_value() {
        for (mean, scale, what) in [
            ("1,2", "1", "mean \"1,2\""),
            ("x", "1", "mean \"x\""),
            ("1", "inf", "scale \"inf\""),
            ("1", "1,2,3,4", "scale \"1,2,3,4\""),
        ] {
            let spec = ScorerSpec {
                model_path: Some(tiny_model()),
                mean: mean.into(),
                scale: scale.into(),
                fallback_on_error: false,
                ..Default::default()
            };
            let e = build(&spec).unwrap_err();
            assert_eq!(
                e.message,
                format!(
                    "Cannot use model-path={:?}: {what} is not valid: give one number, or three \
                     comma-separated (R,G,B)",
                    tiny_model()
                )
            );
        }
        let io = model_io(&ScorerSpec {
            mean: " 1, 2 ,3".into(),
            scale: "0.5".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((io.mean, io.scale), ([1.0, 2.0, 3.0], [0.5; 3]));
    }

    #[test]
    fn tao_fixes_names_layout_and_normalisation() {
        let odd = ScorerSpec {
            kind: ModelKind::Tao,
            layout: Layout::Ndhwc,
            mean: "not a number".into(),
            scale: "1".into(),
            color: ColorOrder::Bgr,
            activation: Activation::Sigmoid,
            ..Default::default()
        };
        let io = model_io(&odd).unwrap();
        assert_eq!(io.input_name.as_deref(), Some(TAO_INPUT));
        assert_eq!(io.output_name.as_deref(), Some(TAO_OUTPUT));
        assert_eq!(io.layout, Layout::Ncdhw);
        assert_eq!((io.mean, io.scale), ([127.5; 3], [1.0 / 127.5; 3]));
        assert_eq!(io.color, ColorOrder::Rgb);
        assert_eq!(
            io.activation,
            Activation::Sigmoid,
            "the activation is the spec's"
        );
        // Names the application gives win, also for TAO.
        let io = model_io(&ScorerSpec {
            input_name: Some("clip".into()),
            ..odd.clone()
        })
        .unwrap();
        assert_eq!(io.input_name.as_deref(), Some("clip"));
        // Not TAO: no names unless given; the spec's layout and colours.
        let io = model_io(&ScorerSpec {
            layout: Layout::Ndhwc,
            color: ColorOrder::Bgr,
            input_name: Some(String::new()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((io.input_name, io.output_name), (None, None));
        assert_eq!((io.layout, io.color), (Layout::Ndhwc, ColorOrder::Bgr));
        assert_eq!(io.mean, [127.5; 3]);
        assert!((io.scale[0] - 1.0 / 127.5).abs() < 1e-9);
    }

    #[test]
    fn labels_files_are_read_and_an_empty_one_refused() {
        let dir = std::env::temp_dir().join(format!("iguard-factory-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("labels.txt");
        std::fs::write(&path, "normal\narmed\n").unwrap();
        let spec = ScorerSpec {
            labels_file: Some(path.clone()),
            positive_classes: "armed, 0".into(),
            ..Default::default()
        };
        let io = model_io(&spec).unwrap();
        assert_eq!(io.labels, ["normal", "armed"]);
        assert_eq!(
            io.positive,
            [ClassRef::Name("armed".into()), ClassRef::Index(0)]
        );
        std::fs::write(&path, "\n\n").unwrap();
        let e = model_io(&spec).unwrap_err();
        assert_eq!(e, format!("labels file {path:?}: it is empty"));
        std::fs::remove_dir_all(&dir).unwrap();
        let e = model_io(&spec).unwrap_err();
        assert!(e.starts_with(&format!("labels file {path:?}: ")), "{e}");
    }

    #[test]
    fn the_tiny_model_loads_with_its_dims() {
        if !onnx_runtime() {
            eprintln!("skipped: no ONNX Runtime (set ORT_DYLIB_PATH)");
            return;
        }
        let b = build(&ScorerSpec {
            model_path: Some(tiny_model()),
            kind: ModelKind::Tao,
            fallback_on_error: false,
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.scorer.name(), "onnx");
        assert!(b.dims.iter().all(Option::is_some), "{:?}", b.dims);
        assert!(b.warnings.is_empty(), "{:?}", b.warnings);
        assert!(
            b.description.contains("tiny-action.onnx"),
            "{}",
            b.description
        );
    }

    #[test]
    fn the_model_wins_unless_the_application_asked_otherwise() {
        let dims = [Some(16), Some(112), None];
        assert_eq!(
            clip_shape([8, 224, 320], [false; 3], dims).unwrap(),
            [16, 112, 320]
        );
        assert_eq!(
            clip_shape([16, 224, 320], [true, false, true], dims).unwrap(),
            [16, 112, 320],
            "an explicit value the model agrees with is fine"
        );
        assert_eq!(
            clip_shape([8, 224, 320], [true; 3], [None; 3]).unwrap(),
            [8, 224, 320]
        );
        let e = clip_shape([8, 224, 320], [true, false, false], dims).unwrap_err();
        assert_eq!(
            e,
            "temporal-size=8 conflicts with the model, which takes 16; unset temporal-size or \
             use a model exported for 8"
        );
        let e = clip_shape([16, 224, 320], [false, true, false], dims).unwrap_err();
        assert!(
            e.starts_with("input-height=224 conflicts with the model, which takes 112"),
            "{e}"
        );
    }

    #[test]
    fn triton_without_model_name_says_so() {
        let spec = ScorerSpec {
            kind: ModelKind::Triton,
            server_url: "127.0.0.1:1".into(),
            fallback_on_error: false,
            ..Default::default()
        };
        let e = build(&spec).unwrap_err();
        assert_eq!(e.problem, Problem::Server);
        assert_eq!(
            e.message,
            "Cannot use server-url=\"127.0.0.1:1\" model-name=\"\": model-type=triton needs \
             model-name (the model's name on the server)"
        );
        let b = build(&ScorerSpec {
            fallback_on_error: true,
            model_name: Some(String::new()),
            ..spec
        })
        .unwrap();
        assert_eq!(b.scorer.name(), "fallback");
        assert_eq!(b.warnings.len(), 1);
        assert_eq!(b.warnings[0].problem, Problem::Server);
        assert!(
            b.warnings[0].message.contains("needs model-name")
                && b.warnings[0].message.contains("(fallback-on-error=true)"),
            "{:?}",
            b.warnings
        );
    }

    #[test]
    fn an_unreachable_server_falls_back_with_a_server_warning() {
        // Nothing listens on port 1 of loopback: refused at once.
        let b = build(&ScorerSpec {
            kind: ModelKind::Triton,
            server_url: "127.0.0.1:1".into(),
            model_name: Some("m".into()),
            connect_timeout: Duration::from_secs(2),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(b.scorer.name(), "fallback");
        let w = &b.warnings[0];
        assert_eq!(w.problem, Problem::Server);
        assert!(
            w.message
                .starts_with("Cannot use server-url=\"127.0.0.1:1\" model-name=\"m\": "),
            "{}",
            w.message
        );
    }
}
