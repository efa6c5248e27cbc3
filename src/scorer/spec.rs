// SPDX-License-Identifier: MIT OR Apache-2.0
//! What a scorer is made of: [`ScorerSpec`] (the element's scorer properties in plain types) with
//! its defaults, [`ModelKind`] and [`TlsFiles`], and how two specs differ, named as the
//! properties are (elements that share a model instance must agree).
//!
//! Plain data: it must not know how a scorer is built or checked ([`super::factory`]), nor
//! GObject.

use std::path::PathBuf;
use std::time::Duration;

use super::model_io::{Activation, ColorOrder, Layout};
use super::onnx::Provider;

/// Which scorer (`model-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelKind {
    /// An ONNX model, I/O as the spec says.
    #[default]
    Onnx,
    /// An ONNX export of TAO ActionRecognitionNet: TAO names, layout and normalisation.
    Tao,
    Fallback,
    Triton,
}

impl ModelKind {
    /// The `model-type` nick.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Onnx => "onnx",
            ModelKind::Tao => "tao",
            ModelKind::Fallback => "fallback",
            ModelKind::Triton => "triton",
        }
    }
}

/// TLS towards the inference server; all `None` = none asked for (plain, unless `https://`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsFiles {
    pub ca_file: Option<PathBuf>,
    pub domain: Option<String>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// What the scorer is made from: the element's scorer properties. Empty strings and paths
/// count as unset.
#[derive(Debug, Clone, PartialEq)]
pub struct ScorerSpec {
    pub kind: ModelKind,
    pub model_path: Option<PathBuf>,
    pub fallback_on_error: bool,
    /// For the fallback scorer.
    pub weapon_labels: Vec<String>,
    pub labels_file: Option<PathBuf>,
    /// `"armed,2"`: names or indices; empty = every class but the first.
    pub positive_classes: String,
    pub layout: Layout,
    /// One number or three comma-separated (R,G,B).
    pub mean: String,
    pub scale: String,
    pub color: ColorOrder,
    pub activation: Activation,
    pub input_name: Option<String>,
    pub output_name: Option<String>,
    pub provider: Provider,
    pub engine_cache_dir: Option<PathBuf>,
    /// Intra-op threads per session; 0 = the cores shared out among the workers.
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

impl ScorerSpec {
    /// The settings in which `other` differs from this spec, one `"property: ours vs theirs"`
    /// entry each, named as the element's properties are.
    pub fn differences(&self, other: &ScorerSpec) -> Vec<String> {
        fn opt<T: std::fmt::Debug>(v: &Option<T>) -> String {
            v.as_ref().map_or("unset".into(), |v| format!("{v:?}"))
        }
        fn lower<T: std::fmt::Debug>(v: &T) -> String {
            format!("{v:?}").to_lowercase()
        }
        let secs = |d: &Duration| d.as_secs_f64().to_string();
        let (a, b) = (self, other);
        let fields: [(&str, String, String); 27] = [
            ("model-type", a.kind.as_str().into(), b.kind.as_str().into()),
            ("model-path", opt(&a.model_path), opt(&b.model_path)),
            (
                "fallback-on-error",
                a.fallback_on_error.to_string(),
                b.fallback_on_error.to_string(),
            ),
            (
                "weapon-labels",
                format!("{:?}", a.weapon_labels.join(",")),
                format!("{:?}", b.weapon_labels.join(",")),
            ),
            ("labels-file", opt(&a.labels_file), opt(&b.labels_file)),
            (
                "positive-classes",
                format!("{:?}", a.positive_classes),
                format!("{:?}", b.positive_classes),
            ),
            ("tensor-layout", lower(&a.layout), lower(&b.layout)),
            ("mean", format!("{:?}", a.mean), format!("{:?}", b.mean)),
            ("scale", format!("{:?}", a.scale), format!("{:?}", b.scale)),
            ("color-order", lower(&a.color), lower(&b.color)),
            (
                "output-activation",
                lower(&a.activation),
                lower(&b.activation),
            ),
            ("input-name", opt(&a.input_name), opt(&b.input_name)),
            ("output-name", opt(&a.output_name), opt(&b.output_name)),
            (
                "execution-provider",
                a.provider.as_str().into(),
                b.provider.as_str().into(),
            ),
            (
                "engine-cache-dir",
                opt(&a.engine_cache_dir),
                opt(&b.engine_cache_dir),
            ),
            (
                "inference-threads",
                a.inference_threads.to_string(),
                b.inference_threads.to_string(),
            ),
            (
                "max-workers",
                a.max_workers.to_string(),
                b.max_workers.to_string(),
            ),
            (
                "batch-size",
                a.batch_size.to_string(),
                b.batch_size.to_string(),
            ),
            (
                "worker-timeout",
                secs(&a.worker_timeout),
                secs(&b.worker_timeout),
            ),
            (
                "server-url",
                format!("{:?}", a.server_url),
                format!("{:?}", b.server_url),
            ),
            ("model-name", opt(&a.model_name), opt(&b.model_name)),
            (
                "model-version",
                opt(&a.model_version),
                opt(&b.model_version),
            ),
            (
                "connect-timeout",
                secs(&a.connect_timeout),
                secs(&b.connect_timeout),
            ),
            ("tls-ca-file", opt(&a.tls.ca_file), opt(&b.tls.ca_file)),
            ("tls-domain", opt(&a.tls.domain), opt(&b.tls.domain)),
            (
                "tls-cert-file",
                opt(&a.tls.cert_file),
                opt(&b.tls.cert_file),
            ),
            ("tls-key-file", opt(&a.tls.key_file), opt(&b.tls.key_file)),
        ];
        fields
            .into_iter()
            .filter(|(_, x, y)| x != y)
            .map(|(name, x, y)| format!("{name}: {x} vs {y}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_each_property_that_differs() {
        let a = ScorerSpec::default();
        assert!(a.differences(&a.clone()).is_empty());
        let b = ScorerSpec {
            worker_timeout: Duration::from_secs(60),
            kind: ModelKind::Tao,
            model_path: Some("/m.onnx".into()),
            layout: Layout::Ndhwc,
            provider: Provider::TensorRt,
            connect_timeout: Duration::from_millis(1500),
            tls: TlsFiles {
                domain: Some("example".into()),
                ..Default::default()
            },
            ..a.clone()
        };
        assert_eq!(
            a.differences(&b),
            [
                "model-type: onnx vs tao",
                "model-path: unset vs \"/m.onnx\"",
                "tensor-layout: ncdhw vs ndhwc",
                "execution-provider: cpu vs tensorrt",
                "worker-timeout: 10 vs 60",
                "connect-timeout: 5 vs 1.5",
                "tls-domain: unset vs \"example\"",
            ]
        );
        assert_eq!(b.differences(&a).len(), 7);
        let c = ScorerSpec {
            weapon_labels: vec!["gun".into()],
            mean: "1".into(),
            max_workers: 4,
            ..a.clone()
        };
        assert_eq!(
            a.differences(&c),
            [
                "weapon-labels: \"weapon,gun,pistol,rifle,knife\" vs \"gun\"",
                "mean: \"127.5\" vs \"1\"",
                "max-workers: 2 vs 4",
            ]
        );
    }

    #[test]
    fn every_field_is_compared() {
        // A spec differing everywhere from the default: one entry per property.
        let a = ScorerSpec::default();
        let b = ScorerSpec {
            kind: ModelKind::Triton,
            model_path: Some("/m".into()),
            fallback_on_error: false,
            weapon_labels: vec![],
            labels_file: Some("/l".into()),
            positive_classes: "1".into(),
            layout: Layout::Ndchw,
            mean: "0".into(),
            scale: "1".into(),
            color: ColorOrder::Bgr,
            activation: Activation::None,
            input_name: Some("i".into()),
            output_name: Some("o".into()),
            provider: Provider::Cuda,
            engine_cache_dir: Some("/c".into()),
            inference_threads: 3,
            max_workers: 5,
            batch_size: 6,
            worker_timeout: Duration::from_secs(7),
            server_url: "h:1".into(),
            model_name: Some("n".into()),
            model_version: Some("2".into()),
            connect_timeout: Duration::from_secs(8),
            tls: TlsFiles {
                ca_file: Some("/ca".into()),
                domain: Some("d".into()),
                cert_file: Some("/cert".into()),
                key_file: Some("/key".into()),
            },
        };
        assert_eq!(a.differences(&b).len(), 27, "{:#?}", a.differences(&b));
        assert_ne!(a, b);
    }
}
