// SPDX-License-Identifier: MIT OR Apache-2.0
//! Builds the scorer an element's settings ask for: ONNX Runtime, a Triton server or the
//! label-based fallback, with the clip dims the model fixes and the warnings to post. No
//! GObject types here: the element maps its properties into a [`ScorerSpec`] and posts the
//! warnings itself, with no lock held.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::Scorer;
use super::fallback::FallbackScorer;
use super::onnx::{
    self, Activation, ClassRef, ColorOrder, Layout, OnnxConfig, OnnxScorer, Provider,
};
use super::triton::{TlsConfig, TritonConfig, TritonScorer};

/// Frames, height and width a model fixes (`None` where it leaves them free).
pub type Dims = [Option<u32>; 3];

/// How much later than `worker-timeout` the remote scorer's own deadline falls. The pool answers
/// `timeout` at `worker-timeout` and cancels the call; were the scorer's deadline first (the
/// pool's supervisor thread delayed on a busy machine), the verdict would read `dropped`.
const REMOTE_DEADLINE_GRACE: Duration = Duration::from_secs(1);

/// Which scorer verifies clips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelKind {
    #[default]
    Onnx,
    Tao,
    Fallback,
    Triton,
}

/// TLS files for an `https://` server.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TlsFiles {
    pub ca_file: Option<PathBuf>,
    pub domain: Option<String>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// Everything that decides which scorer is built and how.
#[derive(Debug, Clone, PartialEq)]
pub struct ScorerSpec {
    pub kind: ModelKind,
    pub model_path: Option<PathBuf>,
    pub fallback_on_error: bool,
    pub weapon_labels: Vec<String>,
    pub labels_file: Option<PathBuf>,
    /// Names or indices, comma-separated; empty = every class but the first.
    pub positive_classes: String,
    pub layout: Layout,
    /// One number, or three comma-separated in the model's channel order.
    pub mean: String,
    pub scale: String,
    pub color: ColorOrder,
    pub activation: Activation,
    pub input_name: Option<String>,
    pub output_name: Option<String>,
    pub provider: Provider,
    pub engine_cache_dir: Option<PathBuf>,
    /// Threads per session; 0 = cores / max_workers, at least 1.
    pub inference_threads: u32,
    pub max_workers: u32,
    pub batch_size: u32,
    pub worker_timeout: Duration,
    pub server_url: String,
    pub model_name: Option<String>,
    pub model_version: Option<String>,
    pub connect_timeout: Duration,
    pub tls: TlsFiles,
}

impl Default for ScorerSpec {
    fn default() -> Self {
        ScorerSpec {
            kind: ModelKind::Onnx,
            model_path: None,
            fallback_on_error: true,
            weapon_labels: ["weapon", "gun", "pistol", "rifle", "knife"]
                .map(String::from)
                .to_vec(),
            labels_file: None,
            positive_classes: String::new(),
            layout: Layout::Ncdhw,
            mean: "127.5".into(),
            scale: "0.00784313725490196".into(),
            color: ColorOrder::Rgb,
            activation: Activation::Softmax,
            input_name: None,
            output_name: None,
            provider: Provider::Cpu,
            engine_cache_dir: None,
            inference_threads: 0,
            max_workers: 2,
            batch_size: 1,
            worker_timeout: Duration::from_secs(10),
            server_url: "http://127.0.0.1:8001".into(),
            model_name: None,
            model_version: None,
            connect_timeout: Duration::from_secs(5),
            tls: TlsFiles::default(),
        }
    }
}

/// Which part failed: the element reports a model as a library problem and a server as a
/// resource it could not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    Model,
    Server,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Warning {
    pub problem: Problem,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BuildError {
    pub problem: Problem,
    pub message: String,
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

pub struct Built {
    pub scorer: Arc<dyn Scorer>,
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

fn non_empty<T: AsRef<std::ffi::OsStr> + Clone>(v: &Option<T>) -> Option<T> {
    v.clone().filter(|v| !v.as_ref().is_empty())
}

/// The ONNX scorer settings, or an error naming the bad value.
fn onnx_config(spec: &ScorerSpec) -> Result<OnnxConfig, String> {
    let triple = |name: &str, value: &str| -> Result<[f32; 3], String> {
        let v: Result<Vec<f32>, _> = value.split(',').map(|x| x.trim().parse::<f32>()).collect();
        match v.as_deref() {
            Ok([a]) if a.is_finite() => Ok([*a; 3]),
            Ok([a, b, c]) if [a, b, c].iter().all(|x| x.is_finite()) => Ok([*a, *b, *c]),
            _ => Err(format!(
                "{name} {value:?} is not valid: give one number, or three comma-separated (R,G,B)"
            )),
        }
    };
    let tao = spec.kind == ModelKind::Tao;
    let labels = match non_empty(&spec.labels_file) {
        Some(path) => onnx::read_labels(&path).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = match spec.inference_threads {
        0 => (cores / spec.max_workers.max(1) as usize).max(1),
        n => n as usize,
    };
    let name = |n: &Option<String>, tao_name: &str| match non_empty(n) {
        Some(n) => Some(n),
        None if tao => Some(tao_name.to_string()),
        None => None,
    };
    Ok(OnnxConfig {
        model_path: spec.model_path.clone().unwrap_or_default(),
        input_name: name(&spec.input_name, onnx::TAO_INPUT),
        output_name: name(&spec.output_name, onnx::TAO_OUTPUT),
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
        provider: spec.provider,
        trt_cache_dir: non_empty(&spec.engine_cache_dir),
        threads,
        sessions: spec.max_workers as usize,
        max_batch: spec.batch_size as usize,
    })
}

/// The scorer `spec` asks for, or the label-based fallback (no model asked for, or one that
/// cannot be used while `fallback_on_error` allows it).
pub fn build(spec: &ScorerSpec) -> Result<Built, BuildError> {
    let fallback = |warnings: Vec<Warning>, description: &str| Built {
        scorer: Arc::new(FallbackScorer::new(spec.weapon_labels.clone())),
        dims: [None; 3],
        warnings,
        description: description.to_string(),
    };
    if spec.kind == ModelKind::Triton {
        return connect_triton(spec, &fallback);
    }
    let model = spec.model_path.clone().unwrap_or_default();
    if spec.kind == ModelKind::Fallback || model.as_os_str().is_empty() {
        return Ok(fallback(
            Vec::new(),
            if spec.kind == ModelKind::Fallback {
                "label-based fallback (model-type=fallback)"
            } else {
                "label-based fallback (no model-path)"
            },
        ));
    }
    let model = model.display().to_string();
    let loaded = onnx_config(spec)
        .and_then(|config| OnnxScorer::load(config).map_err(|e| e.to_string()))
        .map_err(|e| format!("Cannot use model-path={model:?}: {e}"));
    match loaded {
        Ok(scorer) => {
            let warnings = scorer
                .warnings
                .iter()
                .map(|w| Warning {
                    problem: Problem::Model,
                    message: w.clone(),
                })
                .collect();
            let i = scorer.info().clone();
            let description = format!(
                "model {model:?} loaded: {i:?}, provider {}",
                scorer.provider().as_str()
            );
            Ok(Built {
                dims: [i.frames, i.height, i.width],
                scorer: Arc::new(scorer),
                warnings,
                description,
            })
        }
        Err(e) if spec.fallback_on_error => {
            let w = Warning {
                problem: Problem::Model,
                message: format!(
                    "{e}; verifying with the label-based fallback instead (fallback-on-error=true)"
                ),
            };
            Ok(fallback(vec![w], "label-based fallback (the model failed)"))
        }
        Err(message) => Err(BuildError {
            problem: Problem::Model,
            message,
        }),
    }
}

/// The remote scorer, or the fallback when the server cannot be used and `fallback_on_error`
/// allows.
fn connect_triton(
    spec: &ScorerSpec,
    fallback: &dyn Fn(Vec<Warning>, &str) -> Built,
) -> Result<Built, BuildError> {
    let t = &spec.tls;
    let tls = (non_empty(&t.ca_file).is_some()
        || non_empty(&t.domain).is_some()
        || non_empty(&t.cert_file).is_some()
        || non_empty(&t.key_file).is_some())
    .then(|| TlsConfig {
        ca_file: non_empty(&t.ca_file),
        domain: non_empty(&t.domain),
        cert_file: non_empty(&t.cert_file),
        key_file: non_empty(&t.key_file),
    });
    let name = spec.model_name.clone().unwrap_or_default();
    let connected = onnx_config(spec).and_then(|o| {
        if name.is_empty() {
            return Err(
                "model-type=triton needs model-name (the model's name on the server)".into(),
            );
        }
        TritonScorer::connect(TritonConfig {
            url: spec.server_url.clone(),
            model_name: name.clone(),
            model_version: spec.model_version.clone().unwrap_or_default(),
            connect_timeout: spec.connect_timeout,
            request_timeout: spec.worker_timeout + REMOTE_DEADLINE_GRACE,
            tls,
            model: o,
            max_batch: spec.batch_size as usize,
            // One RPC in flight per worker: the workers are the concurrency.
            in_flight: spec.max_workers.max(1) as usize,
        })
        .map_err(|e| e.to_string())
    });
    let what = format!(
        "Cannot use server-url={:?} model-name={:?}",
        spec.server_url, name
    );
    match connected {
        Ok(scorer) => {
            let i = scorer.info().clone();
            let description = format!("Triton model {name:?} at {}: {i:?}", spec.server_url);
            Ok(Built {
                dims: [i.frames, i.height, i.width],
                scorer: Arc::new(scorer),
                warnings: Vec::new(),
                description,
            })
        }
        Err(e) if spec.fallback_on_error => {
            let w = Warning {
                problem: Problem::Server,
                message: format!(
                    "{what}: {e}; verifying with the label-based fallback instead \
                     (fallback-on-error=true)"
                ),
            };
            Ok(fallback(
                vec![w],
                "label-based fallback (the server failed)",
            ))
        }
        Err(e) => Err(BuildError {
            problem: Problem::Server,
            message: format!("{what}: {e}"),
        }),
    }
}

/// The clip shape `[temporal-size, input-height, input-width]`: what the model fixes wins over
/// the requested values, unless the application set that value itself (`explicit`) to something
/// else, which is an error naming both.
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
                return Err(format!(
                    "{name}={value} conflicts with the model, which takes {f}; unset {name} or use \
                     a model exported for {value}",
                    name = NAMES[i],
                    value = requested[i],
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

    #[test]
    fn no_model_is_the_fallback_without_a_word() {
        let b = build(&ScorerSpec::default()).unwrap();
        assert_eq!(b.scorer.name(), "fallback");
        assert!(b.warnings.is_empty());
        assert_eq!(b.dims, [None; 3]);
    }

    #[test]
    fn a_missing_model_warns_or_fails_by_fallback_on_error() {
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
                .contains("Cannot use model-path=\"/nonexistent/model.onnx\"")
        );
        assert!(
            w.message.contains("fallback-on-error=true"),
            "{}",
            w.message
        );
        let e = build(&ScorerSpec {
            fallback_on_error: false,
            ..spec
        })
        .unwrap_err();
        assert!(e.message.contains("/nonexistent/model.onnx"), "{e}");
        assert!(!e.message.contains("fallback"), "{e}");
    }

    #[test]
    fn bad_mean_and_triton_without_a_name_are_named() {
        let spec = ScorerSpec {
            mean: "1,2".into(),
            model_path: Some("/x.onnx".into()),
            fallback_on_error: false,
            ..Default::default()
        };
        let e = build(&spec).unwrap_err();
        assert!(e.message.contains("mean \"1,2\" is not valid"), "{e}");
        let e = build(&ScorerSpec {
            kind: ModelKind::Triton,
            fallback_on_error: false,
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.problem, Problem::Server);
        assert!(e.message.contains("needs model-name"), "{e}");
    }

    #[test]
    fn tao_uses_its_names_and_normalisation() {
        let c = onnx_config(&ScorerSpec {
            kind: ModelKind::Tao,
            mean: "0".into(),
            color: ColorOrder::Bgr,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.input_name.as_deref(), Some("input_rgb"));
        assert_eq!(c.output_name.as_deref(), Some("fc_pred"));
        assert_eq!((c.mean, c.color), ([127.5; 3], ColorOrder::Rgb));
    }

    #[test]
    fn the_model_wins_unless_a_value_was_set_explicitly() {
        let dims = [Some(8), None, Some(112)];
        assert_eq!(
            clip_shape([16, 224, 224], [false; 3], dims),
            Ok([8, 224, 112])
        );
        assert_eq!(
            clip_shape([8, 224, 224], [true, true, false], dims),
            Ok([8, 224, 112])
        );
        let e = clip_shape([16, 224, 224], [true, false, false], dims).unwrap_err();
        assert!(
            e.contains("temporal-size=16 conflicts with the model, which takes 8"),
            "{e}"
        );
    }
}
