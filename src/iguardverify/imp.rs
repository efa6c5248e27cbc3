// SPDX-License-Identifier: MIT OR Apache-2.0
//! GObject glue of `iguardverify`: properties, caps, events and the `transform_ip` wiring of
//! detections → clips → pool → verdicts. The logic lives in `clip`, `sampler`, `pool`,
//! `detections` and `meta`.
//!
//! Locks, in the order they may be taken: `state` (streaming thread) → `running` → the pool's
//! and reporter's own locks → `results`. `settings` is only held to copy values out. Verdicts
//! are delivered (message posted, meta queued) without `state` or `running` being needed, so
//! an application may read `stats` from a bus sync handler.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use super::{
    Activation, ClipPer, ColorOrder, Crop, ExecutionProvider, ModelType, Preset, Priority,
    TensorLayout, Tracking,
};
use crate::clip::{ClipAssembler, ClipConfig, ClipCounters, Collected, CropMode, TrackConfig};
use crate::config::Step2Config;
use crate::detections::AutoReader;
use crate::detections::deepstream::{ClassLabels, DeepStreamLayout, DeepStreamReader};
use crate::detections::roi::RoiReader;
use crate::detections::{DetectionReader, FrameDetections};
use crate::instance::{self, Instance};
use crate::meta;
use crate::pool::{self, Outcome, Pool, PoolConfig, Reporter, RequestInfo, Ticket};
use crate::sampler::Sampler;
use crate::scorer::Scorer;
use crate::scorer::fallback::FallbackScorer;
use crate::scorer::onnx::{self, ClassRef, OnnxConfig, OnnxScorer};
use crate::scorer::triton::{TlsConfig, TritonConfig, TritonScorer};
use crate::verdict::{Status, Verdict};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "iguardverify",
        gst::DebugColorFlags::empty(),
        Some("iGuard Stage-2 verification"),
    )
});

/// People and the weapon labels, so a `gun` starts a clip out of the box.
const DEFAULT_TRIGGER_LABELS: &str = "person,weapon,gun,pistol,rifle,knife";
const DEFAULT_WEAPON_LABELS: &str = "weapon,gun,pistol,rifle,knife";
const DEFAULT_MIN_CONFIDENCE: f64 = 0.5;
const DEFAULT_THRESHOLD: f64 = 0.7;
const DEFAULT_TEMPORAL_SIZE: u32 = 16;
const DEFAULT_FRAME_INTERVAL: u32 = 1;
const DEFAULT_ROI_MARGIN: f32 = 0.15;
const DEFAULT_INPUT_SIZE: u32 = 224;
const DEFAULT_COOLDOWN: u32 = 30;
const DEFAULT_MAX_CLIPS_PER_SOURCE: u32 = 8;
const DEFAULT_TRACK_TIMEOUT: u32 = 15;
const DEFAULT_MIN_FRAMES: u32 = 8;
const DEFAULT_MAX_WORKERS: u32 = 2;
/// Workers at nice 10: under contention the streaming threads get the CPU first; idle CPU
/// still goes to inference, so throughput is unchanged on an otherwise idle machine.
const DEFAULT_WORKER_NICE: i32 = 10;
const DEFAULT_QUEUE_SIZE: u32 = 50;
const DEFAULT_RESULT_QUEUE_SIZE: u32 = 100;
const DEFAULT_WORKER_TIMEOUT: f64 = 10.0;
const DEFAULT_ASYNC: bool = true;
const DEFAULT_STATS_INTERVAL: u32 = 0;
const DEFAULT_FALLBACK_ON_ERROR: bool = true;
const DEFAULT_BATCH_SIZE: u32 = 1;
const DEFAULT_INFERENCE_THREADS: u32 = 0;
const DEFAULT_MEAN: &str = "127.5";
const DEFAULT_SCALE: &str = "0.00784313725490196";
const DEFAULT_SERVER_URL: &str = "http://127.0.0.1:8001";
const DEFAULT_CONNECT_TIMEOUT: f64 = 5.0;

/// How long `stop()` waits for worker threads to end once every request is answered.
const STOP_JOIN_WAIT: Duration = Duration::from_secs(2);
/// How much later than `worker-timeout` the remote scorer's own deadline falls. The pool answers
/// `timeout` at `worker-timeout` and cancels the call; were the scorer's deadline first (the
/// pool's supervisor thread delayed on a busy machine), the verdict would read `dropped`.
const REMOTE_DEADLINE_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
struct Settings {
    trigger_labels: String,
    weapon_labels: String,
    min_confidence: f64,
    threshold: f64,
    temporal_size: u32,
    frame_interval: u32,
    roi_margin: f32,
    crop: Crop,
    input_width: u32,
    input_height: u32,
    cooldown: u32,
    clip_per: ClipPer,
    tracking: Tracking,
    max_clips_per_source: u32,
    track_timeout: u32,
    min_frames: u32,
    max_workers: u32,
    queue_size: u32,
    result_queue_size: u32,
    priority: Priority,
    worker_timeout: f64,
    async_: bool,
    stats_interval: u32,
    model_path: Option<String>,
    model_type: ModelType,
    fallback_on_error: bool,
    labels_file: Option<String>,
    positive_classes: String,
    tensor_layout: TensorLayout,
    mean: String,
    scale: String,
    color_order: ColorOrder,
    output_activation: Activation,
    input_name: Option<String>,
    output_name: Option<String>,
    execution_provider: ExecutionProvider,
    engine_cache_dir: Option<String>,
    inference_threads: u32,
    batch_size: u32,
    model_instance_id: Option<String>,
    server_url: String,
    model_name: Option<String>,
    model_version: Option<String>,
    connect_timeout: f64,
    tls_ca_file: Option<String>,
    tls_domain: Option<String>,
    tls_cert_file: Option<String>,
    tls_key_file: Option<String>,
    adaptive_workers: bool,
    worker_nice: i32,
    enabled: bool,
    class_labels: Option<String>,
    class_labels_file: Option<String>,
    deepstream_version: Option<String>,
    config_file: Option<String>,
    preset: Preset,
    /// Properties the application set, to tell a deliberate choice from a default.
    explicit: Vec<&'static str>,
    /// Bumped on every change of a property the streaming thread copies while playing.
    generation: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            trigger_labels: DEFAULT_TRIGGER_LABELS.into(),
            weapon_labels: DEFAULT_WEAPON_LABELS.into(),
            min_confidence: DEFAULT_MIN_CONFIDENCE,
            threshold: DEFAULT_THRESHOLD,
            temporal_size: DEFAULT_TEMPORAL_SIZE,
            frame_interval: DEFAULT_FRAME_INTERVAL,
            roi_margin: DEFAULT_ROI_MARGIN,
            crop: Crop::Roi,
            input_width: DEFAULT_INPUT_SIZE,
            input_height: DEFAULT_INPUT_SIZE,
            cooldown: DEFAULT_COOLDOWN,
            clip_per: ClipPer::Object,
            tracking: Tracking::Auto,
            max_clips_per_source: DEFAULT_MAX_CLIPS_PER_SOURCE,
            track_timeout: DEFAULT_TRACK_TIMEOUT,
            min_frames: DEFAULT_MIN_FRAMES,
            max_workers: DEFAULT_MAX_WORKERS,
            queue_size: DEFAULT_QUEUE_SIZE,
            result_queue_size: DEFAULT_RESULT_QUEUE_SIZE,
            priority: Priority::Fifo,
            worker_timeout: DEFAULT_WORKER_TIMEOUT,
            async_: DEFAULT_ASYNC,
            stats_interval: DEFAULT_STATS_INTERVAL,
            model_path: None,
            model_type: ModelType::Onnx,
            fallback_on_error: DEFAULT_FALLBACK_ON_ERROR,
            labels_file: None,
            positive_classes: String::new(),
            tensor_layout: TensorLayout::Ncdhw,
            mean: DEFAULT_MEAN.into(),
            scale: DEFAULT_SCALE.into(),
            color_order: ColorOrder::Rgb,
            output_activation: Activation::Softmax,
            input_name: None,
            output_name: None,
            execution_provider: ExecutionProvider::Cpu,
            engine_cache_dir: None,
            inference_threads: DEFAULT_INFERENCE_THREADS,
            batch_size: DEFAULT_BATCH_SIZE,
            model_instance_id: None,
            server_url: DEFAULT_SERVER_URL.into(),
            model_name: None,
            model_version: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            tls_ca_file: None,
            tls_domain: None,
            tls_cert_file: None,
            tls_key_file: None,
            adaptive_workers: false,
            worker_nice: DEFAULT_WORKER_NICE,
            enabled: true,
            class_labels: None,
            class_labels_file: None,
            deepstream_version: None,
            config_file: None,
            preset: Preset::None,
            explicit: Vec::new(),
            generation: 0,
        }
    }
}

/// A comma-separated label list, trimmed, without empty entries.
fn label_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

impl Settings {
    /// Stores a property value (of the property's type).
    fn set(&mut self, name: &str, value: &glib::Value) {
        let s = self;
        match name {
            "trigger-labels" => {
                s.trigger_labels = value.get::<Option<String>>().unwrap().unwrap_or_default()
            }
            "min-confidence" => s.min_confidence = value.get().unwrap(),
            "threshold" => s.threshold = value.get().unwrap(),
            "temporal-size" => s.temporal_size = value.get().unwrap(),
            "frame-interval" => s.frame_interval = value.get().unwrap(),
            "roi-margin" => s.roi_margin = value.get().unwrap(),
            "crop" => s.crop = value.get().unwrap(),
            "input-width" => s.input_width = value.get().unwrap(),
            "input-height" => s.input_height = value.get().unwrap(),
            "cooldown" => s.cooldown = value.get().unwrap(),
            "clip-per" => s.clip_per = value.get().unwrap(),
            "tracking" => s.tracking = value.get().unwrap(),
            "max-clips-per-source" => s.max_clips_per_source = value.get().unwrap(),
            "track-timeout" => s.track_timeout = value.get().unwrap(),
            "min-frames" => s.min_frames = value.get().unwrap(),
            "max-workers" => s.max_workers = value.get().unwrap(),
            "queue-size" => s.queue_size = value.get().unwrap(),
            "priority" => s.priority = value.get().unwrap(),
            "worker-timeout" => s.worker_timeout = value.get().unwrap(),
            "async" => s.async_ = value.get().unwrap(),
            "result-queue-size" => s.result_queue_size = value.get().unwrap(),
            "weapon-labels" => {
                s.weapon_labels = value.get::<Option<String>>().unwrap().unwrap_or_default()
            }
            "stats-interval" => s.stats_interval = value.get().unwrap(),
            "model-path" => s.model_path = value.get().unwrap(),
            "model-type" => s.model_type = value.get().unwrap(),
            "fallback-on-error" => s.fallback_on_error = value.get().unwrap(),
            "labels-file" => s.labels_file = value.get().unwrap(),
            "positive-classes" => {
                s.positive_classes = value.get::<Option<String>>().unwrap().unwrap_or_default()
            }
            "tensor-layout" => s.tensor_layout = value.get().unwrap(),
            "mean" => s.mean = value.get::<Option<String>>().unwrap().unwrap_or_default(),
            "scale" => s.scale = value.get::<Option<String>>().unwrap().unwrap_or_default(),
            "color-order" => s.color_order = value.get().unwrap(),
            "output-activation" => s.output_activation = value.get().unwrap(),
            "input-name" => s.input_name = value.get().unwrap(),
            "output-name" => s.output_name = value.get().unwrap(),
            "execution-provider" => s.execution_provider = value.get().unwrap(),
            "engine-cache-dir" => s.engine_cache_dir = value.get().unwrap(),
            "inference-threads" => s.inference_threads = value.get().unwrap(),
            "batch-size" => s.batch_size = value.get().unwrap(),
            "model-instance-id" => s.model_instance_id = value.get().unwrap(),
            "enabled" => s.enabled = value.get().unwrap(),
            "adaptive-workers" => s.adaptive_workers = value.get().unwrap(),
            "worker-nice" => s.worker_nice = value.get().unwrap(),
            "server-url" => {
                s.server_url = value.get::<Option<String>>().unwrap().unwrap_or_default()
            }
            "model-name" => s.model_name = value.get().unwrap(),
            "model-version" => s.model_version = value.get().unwrap(),
            "connect-timeout" => s.connect_timeout = value.get().unwrap(),
            "tls-ca-file" => s.tls_ca_file = value.get().unwrap(),
            "tls-domain" => s.tls_domain = value.get().unwrap(),
            "tls-cert-file" => s.tls_cert_file = value.get().unwrap(),
            "tls-key-file" => s.tls_key_file = value.get().unwrap(),
            "class-labels" => s.class_labels = value.get().unwrap(),
            "class-labels-file" => s.class_labels_file = value.get().unwrap(),
            "deepstream-version" => s.deepstream_version = value.get().unwrap(),
            "config-file" => s.config_file = value.get().unwrap(),
            "preset" => s.preset = value.get().unwrap(),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn clip_config(&self) -> ClipConfig {
        ClipConfig {
            trigger_labels: label_list(&self.trigger_labels),
            min_confidence: self.min_confidence,
            temporal_size: self.temporal_size,
            frame_interval: self.frame_interval,
            roi_margin: self.roi_margin,
            crop: match self.crop {
                Crop::Roi => CropMode::Roi,
                Crop::Full => CropMode::Full,
            },
            tile_width: self.input_width,
            tile_height: self.input_height,
            cooldown: self.cooldown,
        }
    }

    fn track_config(&self) -> TrackConfig {
        TrackConfig {
            clip_per: match self.clip_per {
                ClipPer::Object => crate::clip::ClipPer::Object,
                ClipPer::Source => crate::clip::ClipPer::Source,
            },
            tracking: match self.tracking {
                Tracking::Auto => crate::clip::Tracking::Auto,
                Tracking::Ids => crate::clip::Tracking::Ids,
                Tracking::Builtin => crate::clip::Tracking::Builtin,
            },
            max_clips_per_source: self.max_clips_per_source,
            track_timeout: self.track_timeout,
            min_frames: self.min_frames,
        }
    }
}

/// Verdicts waiting for the next buffer of their source, bounded in total.
#[derive(Default)]
struct Results {
    by_source: BTreeMap<u32, VecDeque<Verdict>>,
    waiting: usize,
    capacity: usize,
    overflowed: u64,
}

impl Results {
    fn push(&mut self, v: Verdict) {
        if self.capacity == 0 {
            self.overflowed += 1;
            return;
        }
        if self.waiting >= self.capacity {
            // Drop the oldest waiting verdict of the busiest source; it was on the bus already.
            if let Some(q) = self.by_source.values_mut().max_by_key(|q| q.len())
                && q.pop_front().is_some()
            {
                self.waiting -= 1;
                self.overflowed += 1;
            }
        }
        self.by_source.entry(v.source_id).or_default().push_back(v);
        self.waiting += 1;
    }

    fn pop(&mut self, source: u32) -> Option<Verdict> {
        let v = self.by_source.get_mut(&source)?.pop_front()?;
        self.waiting -= 1;
        Some(v)
    }

    fn clear(&mut self) {
        self.by_source.clear();
        self.waiting = 0;
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What verdict delivery and the `stats` property need; cheap to clone out of its lock.
#[derive(Clone)]
struct Running {
    reporter: Arc<Reporter>,
    instance: Arc<Instance>,
    results: Arc<Mutex<Results>>,
    queue_size: u32,
    max_workers: u32,
    clips: Arc<ClipCounters>,
}

impl Running {
    fn pool(&self) -> &Pool {
        &self.instance.pool
    }
}

/// Streaming-thread data, created in `start()` and dropped in `stop()`.
struct State {
    running: Running,
    info: Option<gst_video::VideoInfo>,
    reader: Box<dyn DetectionReader>,
    assembler: ClipAssembler,
    sampler: Sampler,
    /// Tickets of clips being collected, by request id.
    collecting: HashMap<u64, Ticket>,
    frames: Vec<FrameDetections>,
    settings_generation: u64,
    async_: bool,
    enabled: bool,
    /// A batch of several frames in one system-memory buffer was reported once.
    warned_batched: bool,
    worker_timeout: Duration,
    stats_interval: Option<Duration>,
    last_stats: Instant,
}

#[derive(Default)]
pub struct IGuardVerify {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    running: Mutex<Option<Running>>,
    /// The last run's figures, kept readable after stop.
    last_stats: Mutex<Option<gst::Structure>>,
    custom_scorer: Mutex<Option<Arc<dyn Scorer>>>,
    /// The NVMM advice was posted (once per element).
    warned_nvmm: std::sync::atomic::AtomicBool,
}

#[glib::object_subclass]
impl ObjectSubclass for IGuardVerify {
    const NAME: &'static str = "GstIGuardVerify";
    type Type = super::IGuardVerify;
    type ParentType = gst_base::BaseTransform;
}

impl IGuardVerify {
    pub(super) fn set_scorer(&self, scorer: Option<Arc<dyn Scorer>>) {
        *lock(&self.custom_scorer) = scorer;
    }

    fn stats_structure(&self, running: Option<&Running>) -> gst::Structure {
        let Some(r) = running else {
            if let Some(s) = lock(&self.last_stats).clone() {
                return s;
            }
            let settings = lock(&self.settings).clone();
            return gst::Structure::builder("iguard-stats")
                .field("submitted", 0u64)
                .field("completed", 0u64)
                .field("verified", 0u64)
                .field("rejected", 0u64)
                .field("fallback", 0u64)
                .field("dropped", 0u64)
                .field("timed-out", 0u64)
                .field("failed", 0u64)
                .field("pending", 0u64)
                .field("workers-active", 0u32)
                .field("workers", 0u32)
                .field("workers-stuck", 0u32)
                .field("max-workers", settings.max_workers)
                .field("worker-restarts", 0u64)
                .field("avg-processing-ms", 0.0f64)
                .field("queue-depth", 0u32)
                .field("queue-size", settings.queue_size)
                .field("results-waiting", 0u32)
                .field("results-overflowed", 0u64)
                .field("scorer", "")
                .field("pool", "")
                .field("model-instance-id", "")
                .field("instance-users", 0u32)
                .field("clips-collecting", 0u32)
                .field("clips-most-collecting", 0u32)
                .field("clips-collecting-bytes", 0u64)
                .field("clips-overflowed", 0u64)
                .field("clips-lost-completed", 0u64)
                .field("clips-lost-dropped", 0u64)
                .build();
        };
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        // One snapshot of the counters, so the sums hold within the structure.
        let c = r.reporter.counters();
        let p = r.pool().stats();
        let (waiting, overflowed) = {
            let res = lock(&r.results);
            (res.waiting, res.overflowed)
        };
        gst::Structure::builder("iguard-stats")
            .field("submitted", c.submitted)
            .field("completed", c.completed())
            .field("verified", c.verified)
            .field("rejected", c.rejected)
            .field("fallback", c.fallback)
            .field("dropped", c.dropped)
            .field("timed-out", c.timed_out)
            .field("failed", c.failed)
            .field("pending", c.pending())
            .field("workers-active", p.workers_active as u32)
            .field("workers", p.workers as u32)
            .field("workers-stuck", p.workers_stuck as u32)
            .field("max-workers", r.max_workers)
            .field("worker-restarts", p.worker_restarts)
            .field("avg-processing-ms", c.avg_processing_ms())
            .field("queue-depth", p.queue_depth as u32)
            .field("queue-size", r.queue_size)
            .field("results-waiting", waiting as u32)
            .field("results-overflowed", overflowed)
            .field("scorer", r.pool().scorer_name())
            .field("pool", r.pool().config().name.as_str())
            .field("model-instance-id", r.instance.id.as_deref().unwrap_or(""))
            .field("instance-users", r.instance.users() as u32)
            .field("clips-collecting", load(&r.clips.collecting) as u32)
            .field(
                "clips-most-collecting",
                load(&r.clips.most_collecting) as u32,
            )
            .field("clips-collecting-bytes", load(&r.clips.collecting_bytes))
            .field("clips-overflowed", load(&r.clips.overflowed))
            .field("clips-lost-completed", load(&r.clips.lost_completed))
            .field("clips-lost-dropped", load(&r.clips.lost_dropped))
            .build()
    }

    fn post_stats(&self, running: &Running) {
        let s = self.stats_structure(Some(running));
        let obj = self.obj();
        let _ = obj.post_message(gst::message::Element::builder(s).src(&*obj).build());
    }

    fn running(&self) -> Option<Running> {
        lock(&self.running).clone()
    }

    /// The ONNX scorer settings, or an error naming the bad value.
    fn onnx_config(settings: &Settings) -> Result<OnnxConfig, String> {
        let bad =
            |what: &str, value: &str, hint: &str| format!("{what} {value:?} is not valid: {hint}");
        let triple = |name: &str, value: &str| -> Result<[f32; 3], String> {
            let v: Result<Vec<f32>, _> =
                value.split(',').map(|x| x.trim().parse::<f32>()).collect();
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
        let tao = settings.model_type == ModelType::Tao;
        let labels = match &settings.labels_file {
            Some(path) if !path.is_empty() => {
                onnx::read_labels(std::path::Path::new(path)).map_err(|e| e.to_string())?
            }
            _ => Vec::new(),
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = match settings.inference_threads {
            0 => (cores / settings.max_workers.max(1) as usize).max(1),
            n => n as usize,
        };
        let name = |n: &Option<String>, tao_name: &str| match n {
            Some(n) if !n.is_empty() => Some(n.clone()),
            _ if tao => Some(tao_name.to_string()),
            _ => None,
        };
        Ok(OnnxConfig {
            model_path: settings.model_path.clone().unwrap_or_default().into(),
            input_name: name(&settings.input_name, onnx::TAO_INPUT),
            output_name: name(&settings.output_name, onnx::TAO_OUTPUT),
            layout: match (tao, settings.tensor_layout) {
                (true, _) | (_, TensorLayout::Ncdhw) => onnx::Layout::Ncdhw,
                (_, TensorLayout::Ndchw) => onnx::Layout::Ndchw,
                (_, TensorLayout::Ndhwc) => onnx::Layout::Ndhwc,
            },
            mean: if tao {
                [127.5; 3]
            } else {
                triple("mean", &settings.mean)?
            },
            scale: if tao {
                [1.0 / 127.5; 3]
            } else {
                triple("scale", &settings.scale)?
            },
            color: match (tao, settings.color_order) {
                (true, _) | (_, ColorOrder::Rgb) => onnx::ColorOrder::Rgb,
                (_, ColorOrder::Bgr) => onnx::ColorOrder::Bgr,
            },
            activation: match settings.output_activation {
                Activation::None => onnx::Activation::None,
                Activation::Softmax => onnx::Activation::Softmax,
                Activation::Sigmoid => onnx::Activation::Sigmoid,
            },
            labels,
            positive: ClassRef::parse_list(&settings.positive_classes),
            provider: match settings.execution_provider {
                ExecutionProvider::Cpu => onnx::Provider::Cpu,
                ExecutionProvider::Cuda => onnx::Provider::Cuda,
                ExecutionProvider::TensorRt => onnx::Provider::TensorRt,
            },
            trt_cache_dir: settings
                .engine_cache_dir
                .clone()
                .filter(|d| !d.is_empty())
                .map(Into::into),
            threads,
            sessions: settings.max_workers as usize,
            max_batch: settings.batch_size as usize,
        })
    }

    /// The scorer for this run: the application's, the model, or the label-based fallback
    /// (when no model is asked for, or it fails to load and `fallback-on-error` allows).
    /// Returns it with the clip dims the model fixes.
    fn make_scorer(
        &self,
        settings: &Settings,
    ) -> Result<(Arc<dyn Scorer>, instance::Dims), gst::ErrorMessage> {
        if let Some(s) = lock(&self.custom_scorer).clone() {
            return Ok((s, [None; 3]));
        }
        let fallback = || -> Arc<dyn Scorer> {
            Arc::new(FallbackScorer::new(label_list(&settings.weapon_labels)))
        };
        if settings.model_type == ModelType::Triton {
            return self.connect_triton(settings, &fallback);
        }
        let model = settings.model_path.as_deref().unwrap_or("");
        if settings.model_type == ModelType::Fallback || model.is_empty() {
            if settings.model_type != ModelType::Fallback {
                gst::info!(
                    CAT,
                    imp = self,
                    "no model-path: verifying with the label-based fallback"
                );
            }
            return Ok((fallback(), [None; 3]));
        }
        let loaded = Self::onnx_config(settings)
            .and_then(|config| OnnxScorer::load(config).map_err(|e| e.to_string()))
            .map_err(|e| format!("Cannot use model-path={model:?}: {e}"));
        match loaded {
            Ok(scorer) => {
                for w in &scorer.warnings {
                    gst::element_imp_warning!(self, gst::LibraryError::Init, ("{}", w));
                }
                let i = scorer.info().clone();
                gst::info!(
                    CAT,
                    imp = self,
                    "model {model:?} loaded: {i:?}, provider {}",
                    scorer.provider().as_str()
                );
                Ok((Arc::new(scorer), [i.frames, i.height, i.width]))
            }
            Err(e) if settings.fallback_on_error => {
                gst::element_imp_warning!(
                    self,
                    gst::LibraryError::Init,
                    (
                        "{}; verifying with the label-based fallback instead (fallback-on-error=true)",
                        e
                    )
                );
                Ok((fallback(), [None; 3]))
            }
            Err(e) => Err(gst::error_msg!(gst::LibraryError::Init, ("{}", e))),
        }
    }

    /// The remote scorer, or the fallback when the server cannot be used and
    /// `fallback-on-error` allows.
    fn connect_triton(
        &self,
        settings: &Settings,
        fallback: &dyn Fn() -> Arc<dyn Scorer>,
    ) -> Result<(Arc<dyn Scorer>, instance::Dims), gst::ErrorMessage> {
        let path = |p: &Option<String>| {
            p.clone()
                .filter(|p| !p.is_empty())
                .map(std::path::PathBuf::from)
        };
        let tls = [
            &settings.tls_ca_file,
            &settings.tls_domain,
            &settings.tls_cert_file,
            &settings.tls_key_file,
        ]
        .iter()
        .any(|v| v.as_deref().is_some_and(|v| !v.is_empty()))
        .then(|| TlsConfig {
            ca_file: path(&settings.tls_ca_file),
            domain: settings.tls_domain.clone().filter(|d| !d.is_empty()),
            cert_file: path(&settings.tls_cert_file),
            key_file: path(&settings.tls_key_file),
        });
        let name = settings.model_name.clone().unwrap_or_default();
        let connected = Self::onnx_config(settings).and_then(|o| {
            if name.is_empty() {
                return Err(
                    "model-type=triton needs model-name (the model's name on the server)".into(),
                );
            }
            TritonScorer::connect(TritonConfig {
                url: settings.server_url.clone(),
                model_name: name.clone(),
                model_version: settings.model_version.clone().unwrap_or_default(),
                connect_timeout: Duration::from_secs_f64(settings.connect_timeout),
                request_timeout: Duration::from_secs_f64(settings.worker_timeout)
                    + REMOTE_DEADLINE_GRACE,
                tls,
                model: o,
                max_batch: settings.batch_size as usize,
                // One RPC in flight per worker: the workers are the concurrency.
                in_flight: settings.max_workers.max(1) as usize,
            })
            .map_err(|e| e.to_string())
        });
        match connected {
            Ok(scorer) => {
                let i = scorer.info().clone();
                gst::info!(
                    CAT,
                    imp = self,
                    "Triton model {name:?} at {}: {i:?}",
                    settings.server_url
                );
                Ok((Arc::new(scorer), [i.frames, i.height, i.width]))
            }
            Err(e) if settings.fallback_on_error => {
                gst::element_imp_warning!(
                    self,
                    gst::ResourceError::OpenRead,
                    (
                        "Cannot use server-url={:?} model-name={:?}: {}; verifying with the \
                         label-based fallback instead (fallback-on-error=true)",
                        settings.server_url,
                        name,
                        e
                    )
                );
                Ok((fallback(), [None; 3]))
            }
            Err(e) => Err(gst::error_msg!(
                gst::ResourceError::OpenRead,
                (
                    "Cannot use server-url={:?} model-name={:?}: {}",
                    settings.server_url,
                    name,
                    e
                )
            )),
        }
    }

    /// The clip shape: what the model fixes wins over the properties, unless the application
    /// set a property to something else, which is an error.
    fn clip_shape(settings: &mut Settings, dims: instance::Dims) -> Result<(), gst::ErrorMessage> {
        let explicit = settings.explicit.clone();
        let fields: [(&str, &mut u32, Option<u32>); 3] = [
            ("temporal-size", &mut settings.temporal_size, dims[0]),
            ("input-height", &mut settings.input_height, dims[1]),
            ("input-width", &mut settings.input_width, dims[2]),
        ];
        for (name, value, fixed) in fields {
            match fixed {
                Some(f) if f != *value && explicit.contains(&name) => {
                    return Err(gst::error_msg!(
                        gst::LibraryError::Settings,
                        (
                            "{}={} conflicts with the model, which takes {}; unset {} or use a \
                             model exported for {}",
                            name,
                            *value,
                            f,
                            name,
                            *value
                        )
                    ));
                }
                Some(f) => *value = f,
                None => (),
            }
        }
        Ok(())
    }

    /// Applies `preset`, then the `config-file`'s step2 section, to every property the
    /// application did not set itself (defaults < preset < config file < explicit properties).
    fn apply_config(&self) -> Result<(), gst::ErrorMessage> {
        let mut s = lock(&self.settings);
        let mut pairs: Vec<(&'static str, glib::Value)> = Vec::new();
        let preset = match s.preset {
            Preset::None => None,
            Preset::OrinNano => Some(crate::config::Preset::OrinNano),
            Preset::OrinNx => Some(crate::config::Preset::OrinNx),
            Preset::OrinAgx => Some(crate::config::Preset::OrinAgx),
        };
        if let Some(p) = preset {
            pairs.extend(p.properties());
        }
        if let Some(path) = s.config_file.clone().filter(|p| !p.is_empty()) {
            let config = Step2Config::from_file(&path).map_err(|e| {
                gst::error_msg!(gst::LibraryError::Settings, ("config-file: {}", e))
            })?;
            if !config.unknown_keys.is_empty() {
                gst::element_imp_warning!(
                    self,
                    gst::LibraryError::Settings,
                    (
                        "config-file {:?}: unknown step2 keys ignored: {}",
                        path,
                        config.unknown_keys.join(", ")
                    )
                );
            }
            if let Some(enabled) = config.enabled {
                pairs.push(("enabled", enabled.to_value()));
            }
            pairs.extend(config.properties());
        }
        for (name, value) in pairs {
            if s.explicit.contains(&name) {
                continue;
            }
            let value = match value.get::<String>() {
                // Enum properties arrive as their nick.
                Ok(nick) if name == "model-type" => {
                    glib::EnumClass::with_type(ModelType::static_type())
                        .and_then(|c| c.to_value_by_nick(&nick))
                        .ok_or_else(|| {
                            gst::error_msg!(
                                gst::LibraryError::Settings,
                                ("model-type {:?} is unknown", nick)
                            )
                        })?
                }
                Ok(path) if name == "model-path" => Some(path).to_value(),
                _ => value,
            };
            gst::debug!(
                CAT,
                imp = self,
                "{name} = {value:?} from preset/config-file"
            );
            s.set(name, &value);
        }
        Ok(())
    }

    /// The detection reader for this run.
    fn make_reader(settings: &Settings) -> Result<AutoReader, gst::ErrorMessage> {
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            gst::error_msg!(gst::LibraryError::Settings, ("{}: {}", what, e))
        };
        let labels = match (&settings.class_labels, &settings.class_labels_file) {
            (Some(l), _) if !l.is_empty() => {
                ClassLabels::parse(l).map_err(|e| bad("class-labels", &e))?
            }
            (_, Some(f)) if !f.is_empty() => {
                ClassLabels::from_labels_file(f).map_err(|e| bad("class-labels-file", &e))?
            }
            _ => ClassLabels::default(),
        };
        let layout = match settings.deepstream_version.as_deref() {
            None | Some("") => DeepStreamLayout::Unknown,
            Some(v) => v
                .parse::<DeepStreamLayout>()
                .map_err(|e| bad("deepstream-version", &e))?,
        };
        Ok(AutoReader {
            roi: RoiReader,
            deepstream: DeepStreamReader::new(layout, labels),
        })
    }

    /// Checks values the property ranges cannot express.
    fn validate(settings: &Settings) -> Result<(), gst::ErrorMessage> {
        if label_list(&settings.trigger_labels).is_empty() {
            return Err(gst::error_msg!(
                gst::LibraryError::Settings,
                (
                    "trigger-labels is {:?}: no detection could ever start a clip. Give a \
                     comma-separated list of detector labels, e.g. \"person,weapon\"",
                    settings.trigger_labels
                )
            ));
        }
        let tile = settings.input_width as u64 * settings.input_height as u64 * 3;
        let clip = tile * settings.temporal_size as u64;
        const MAX_CLIP: u64 = 512 << 20;
        if clip > MAX_CLIP {
            return Err(gst::error_msg!(
                gst::LibraryError::Settings,
                (
                    "a clip of temporal-size={} tiles of input-width={} x input-height={} would \
                     take {} MiB; at most {} MiB is allowed",
                    settings.temporal_size,
                    settings.input_width,
                    settings.input_height,
                    clip >> 20,
                    MAX_CLIP >> 20
                )
            ));
        }
        Ok(())
    }

    /// What the verdict of a collected clip says about it.
    fn request_info(c: &Collected, scorer: &str) -> RequestInfo {
        RequestInfo {
            object_id: c.object_id,
            crop: c.last_crop(),
            ..RequestInfo::from_clip(&c.clip, scorer)
        }
    }

    /// Answers a request that never reached the pool.
    fn end_unsubmitted(ticket: Ticket, status: Status, reason: &str) {
        ticket.finish(Outcome::unscored(status, reason));
    }

    /// Copies the properties that may change while playing into the streaming state.
    fn refresh_settings(&self, state: &mut State) {
        let settings = lock(&self.settings);
        if settings.generation == state.settings_generation {
            return;
        }
        state.settings_generation = settings.generation;
        state.assembler.set_config(settings.clip_config());
        state.assembler.set_track_config(settings.track_config());
        state.running.reporter.set_threshold(settings.threshold);
        state.async_ = settings.async_;
        state.enabled = settings.enabled;
        state.stats_interval = match settings.stats_interval {
            0 => None,
            ms => Some(Duration::from_millis(ms as u64)),
        };
    }

    /// Hands a finished clip to the pool; with `async=false`, waits for its verdict.
    fn submit(&self, state: &mut State, collected: Collected) {
        let Some(mut ticket) = state.collecting.remove(&collected.request_id) else {
            gst::warning!(
                CAT,
                imp = self,
                "clip {} has no request",
                collected.request_id
            );
            return;
        };
        *ticket.info_mut() = Self::request_info(&collected, state.running.pool().scorer_name());
        let clip = collected.clip;
        gst::debug!(
            CAT,
            imp = self,
            "clip {} of source {} ready ({} tiles, region {:?})",
            clip.request_id,
            clip.source.source_id,
            clip.real_frames,
            clip.region
        );
        if state.async_ {
            state.running.pool().submit(ticket, clip);
        } else {
            let done = ticket.done_signal();
            state.running.pool().submit(ticket, clip);
            // The pool enforces the deadline; the margin only covers scheduling.
            if !done.wait(state.worker_timeout + Duration::from_secs(1)) {
                gst::warning!(
                    CAT,
                    imp = self,
                    "no verdict within worker-timeout (async=false)"
                );
            }
        }
    }
}

impl ObjectImpl for IGuardVerify {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("trigger-labels")
                    .nick("Trigger labels")
                    .blurb(
                        "Comma-separated detector labels that start a clip (ROI type, or the \
                         class label for DeepStream)",
                    )
                    .default_value(Some(DEFAULT_TRIGGER_LABELS))
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("min-confidence")
                    .nick("Minimum confidence")
                    .blurb("Detector confidence (0-1) a trigger label needs to start a clip")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_MIN_CONFIDENCE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("threshold")
                    .nick("Verification threshold")
                    .blurb(
                        "Score (0-1) at or above which a model verdict is 'verified', below it \
                         'rejected'",
                    )
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_THRESHOLD)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("temporal-size")
                    .nick("Temporal size")
                    .blurb("Frames (tiles) per clip")
                    .minimum(1)
                    .maximum(1024)
                    .default_value(DEFAULT_TEMPORAL_SIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("frame-interval")
                    .nick("Frame interval")
                    .blurb("Sample every Nth frame into a clip (1 = every frame)")
                    .minimum(1)
                    .maximum(1000)
                    .default_value(DEFAULT_FRAME_INTERVAL)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecFloat::builder("roi-margin")
                    .nick("ROI margin")
                    .blurb(
                        "Widen the object's box (clip-per=object) or the union of the triggering \
                         boxes (clip-per=source) by this fraction of its size on every side \
                         (0 = the boxes as they are)",
                    )
                    .minimum(0.0)
                    .maximum(10.0)
                    .default_value(DEFAULT_ROI_MARGIN)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("crop", Crop::Roi)
                    .nick("Crop")
                    .blurb("What a clip covers: the triggering boxes or the whole frame")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("input-width")
                    .nick("Input width")
                    .blurb("Width in pixels of the tiles a clip is made of")
                    .minimum(1)
                    .maximum(4096)
                    .default_value(DEFAULT_INPUT_SIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("input-height")
                    .nick("Input height")
                    .blurb("Height in pixels of the tiles a clip is made of")
                    .minimum(1)
                    .maximum(4096)
                    .default_value(DEFAULT_INPUT_SIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("cooldown")
                    .nick("Cool-down")
                    .blurb(
                        "Frames after a clip completes during which its object (clip-per=object) \
                         or its source (clip-per=source) cannot trigger again (0 = none)",
                    )
                    .maximum(1_000_000)
                    .default_value(DEFAULT_COOLDOWN)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("clip-per", ClipPer::Object)
                    .nick("Clip per")
                    .blurb(
                        "What a clip is about: one tracked object (several clips per source, \
                         crops following each object) or the whole source (one clip at a time, \
                         over the union of the triggering boxes)",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("tracking", Tracking::Auto)
                    .nick("Tracking")
                    .blurb(
                        "Where object ids come from with clip-per=object: the detector's ids \
                         when present (auto), only them (ids), or the built-in association",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-clips-per-source")
                    .nick("Max clips per source")
                    .blurb(
                        "Clips collecting at once per source with clip-per=object; a trigger \
                         beyond it is answered 'dropped'",
                    )
                    .minimum(1)
                    .maximum(256)
                    .default_value(DEFAULT_MAX_CLIPS_PER_SOURCE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("track-timeout")
                    .nick("Track timeout")
                    .blurb(
                        "Frames an object may be missing before its clip ends (and the \
                         built-in association forgets it)",
                    )
                    .minimum(1)
                    .maximum(100_000)
                    .default_value(DEFAULT_TRACK_TIMEOUT)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("min-frames")
                    .nick("Minimum frames")
                    .blurb(
                        "Real tiles a clip needs when its object is lost to be completed by \
                         repeating its last tile; with fewer it is answered 'dropped'",
                    )
                    .minimum(1)
                    .maximum(1024)
                    .default_value(DEFAULT_MIN_FRAMES)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("max-workers")
                    .nick("Max workers")
                    .blurb("Worker threads verifying clips")
                    .minimum(1)
                    .maximum(64)
                    .default_value(DEFAULT_MAX_WORKERS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("queue-size")
                    .nick("Queue size")
                    .blurb("Clips waiting for a worker at most; beyond it one is dropped by 'priority'")
                    .minimum(1)
                    .maximum(10_000)
                    .default_value(DEFAULT_QUEUE_SIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("server-url")
                    .nick("Server URL")
                    .blurb(
                        "With model-type=triton: the server's gRPC endpoint, http://host:port or \
                         https://host:port (TLS); Triton listens on 8001",
                    )
                    .default_value(Some(DEFAULT_SERVER_URL))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("model-name")
                    .nick("Model name")
                    .blurb("With model-type=triton: the model's name on the server")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("model-version")
                    .nick("Model version")
                    .blurb("With model-type=triton: the model version; unset = the server's newest ready one")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("connect-timeout")
                    .nick("Connect timeout")
                    .blurb(
                        "With model-type=triton: seconds to reach the server, at start and at each \
                         reconnect (requests are bounded by worker-timeout)",
                    )
                    .minimum(0.01)
                    .maximum(600.0)
                    .default_value(DEFAULT_CONNECT_TIMEOUT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("tls-ca-file")
                    .nick("TLS CA file")
                    .blurb("With an https:// server-url: PEM certificates of the server's authority; unset = the system's")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("tls-domain")
                    .nick("TLS domain")
                    .blurb("With an https:// server-url: the name the server's certificate must carry; unset = the URL's host")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("tls-cert-file")
                    .nick("TLS client certificate")
                    .blurb("For servers that require mutual TLS: PEM client certificate (with tls-key-file)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("tls-key-file")
                    .nick("TLS client key")
                    .blurb("For servers that require mutual TLS: PEM client key (with tls-cert-file)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("adaptive-workers")
                    .nick("Adaptive workers")
                    .blurb(
                        "Run between 1 and max-workers workers: add one while clips keep waiting, \
                         retire one after 5 s idle",
                    )
                    .default_value(false)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("worker-nice")
                    .nick("Worker nice value")
                    .blurb(
                        "Scheduling nice value of the worker threads (Linux; 0 = the caller's): \
                         higher lets the streaming threads win the CPU from inference",
                    )
                    .minimum(0)
                    .maximum(19)
                    .default_value(DEFAULT_WORKER_NICE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("priority", Priority::Fifo)
                    .nick("Priority")
                    .blurb("Which clip is verified first and which is dropped when the queue is full")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("worker-timeout")
                    .nick("Worker timeout")
                    .blurb(
                        "Seconds a clip may take to verify; past it the verdict is 'timeout' and \
                         the worker is replaced",
                    )
                    .minimum(0.001)
                    .maximum(3600.0)
                    .default_value(DEFAULT_WORKER_TIMEOUT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("async")
                    .nick("Asynchronous")
                    .blurb(
                        "Verify off the streaming thread (true), or hold each buffer that \
                         completes a clip until its verdict is known (false)",
                    )
                    .default_value(DEFAULT_ASYNC)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("result-queue-size")
                    .nick("Result queue size")
                    .blurb(
                        "Verdicts waiting to be attached as meta at most; beyond it the oldest \
                         is not attached (it is still posted on the bus). 0 = never attach",
                    )
                    .maximum(100_000)
                    .default_value(DEFAULT_RESULT_QUEUE_SIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("weapon-labels")
                    .nick("Weapon labels")
                    .blurb(
                        "Comma-separated detector labels the label-based fallback scorer counts \
                         as weapons",
                    )
                    .default_value(Some(DEFAULT_WEAPON_LABELS))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("model-path")
                    .nick("Model path")
                    .blurb(
                        "ONNX model file (a 3D-CNN clip classifier). Unset = label-based \
                         fallback scorer. TensorRT .engine files are refused: give the ONNX \
                         export and execution-provider=tensorrt",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("model-type", super::ModelType::Onnx)
                    .nick("Model type")
                    .blurb(
                        "onnx: I/O settings from the properties; tao: NVIDIA TAO \
                         ActionRecognitionNet conventions; fallback: no model",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("fallback-on-error")
                    .nick("Fallback on error")
                    .blurb(
                        "When the model cannot be loaded: warn and use the label-based fallback \
                         (true), or fail the state change (false)",
                    )
                    .default_value(DEFAULT_FALLBACK_ON_ERROR)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("labels-file")
                    .nick("Labels file")
                    .blurb("Class names of the model, one a line (or one line separated by ';')")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("positive-classes")
                    .nick("Positive classes")
                    .blurb(
                        "Comma-separated class names or indices whose probabilities sum to the \
                         score; empty = every class but the first",
                    )
                    .default_value(Some(""))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("tensor-layout", super::TensorLayout::Ncdhw)
                    .nick("Tensor layout")
                    .blurb("Memory order of the model's input tensor")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("mean")
                    .nick("Mean")
                    .blurb(
                        "Subtracted from each 0-255 pixel value before scaling: one number, or \
                         three comma-separated in the model's channel order",
                    )
                    .default_value(Some(DEFAULT_MEAN))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("scale")
                    .nick("Scale")
                    .blurb(
                        "Multiplies each pixel after the mean is subtracted: one number, or \
                         three comma-separated (default maps 0-255 to -1..1)",
                    )
                    .default_value(Some(DEFAULT_SCALE))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("color-order", super::ColorOrder::Rgb)
                    .nick("Colour order")
                    .blurb("Channel order the model expects")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("output-activation", super::Activation::Softmax)
                    .nick("Output activation")
                    .blurb("Turns the model's outputs into probabilities before they are summed")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("input-name")
                    .nick("Input name")
                    .blurb("The model input to feed; unset = input_rgb if present, else the first")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("output-name")
                    .nick("Output name")
                    .blurb("The model output to read; unset = fc_pred if present, else the first")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default(
                    "execution-provider",
                    super::ExecutionProvider::Cpu,
                )
                .nick("Execution provider")
                .blurb("Where ONNX Runtime runs the model; an unavailable one falls back to the CPU with a warning")
                .mutable_ready()
                .build(),
                glib::ParamSpecString::builder("engine-cache-dir")
                    .nick("Engine cache directory")
                    .blurb("With execution-provider=tensorrt: directory where built TensorRT engines are cached")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("inference-threads")
                    .nick("Inference threads")
                    .blurb("ONNX Runtime threads per worker (0 = CPU cores / max-workers, at least 1)")
                    .maximum(256)
                    .default_value(DEFAULT_INFERENCE_THREADS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("batch-size")
                    .nick("Batch size")
                    .blurb("Clips a worker scores in one model call at most (when the model's batch dimension allows)")
                    .minimum(1)
                    .maximum(64)
                    .default_value(DEFAULT_BATCH_SIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("model-instance-id")
                    .nick("Model instance id")
                    .blurb(
                        "Elements with the same id share one model load and one worker pool (the \
                         first to start sets it up); unset = private",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("enabled")
                    .nick("Enabled")
                    .blurb("Verify clips (false = pass the video through untouched)")
                    .default_value(true)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("class-labels")
                    .nick("Class labels")
                    .blurb(
                        "Detector class id to label for DeepStream object metas: \"0=person,2=weapon\" \
                         or nvinfer's \"person;bag;weapon\" (class 0 first)",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("class-labels-file")
                    .nick("Class labels file")
                    .blurb("nvinfer labels file (one label a line, line N = class N); class-labels wins")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("deepstream-version")
                    .nick("DeepStream version")
                    .blurb(
                        "DeepStream release whose object-meta layout to assume for obj_label \
                         (e.g. 6.4, 7.1, 9.0; unset = never read obj_label, use class-labels)",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("config-file")
                    .nick("Config file")
                    .blurb(
                        "I-Guard config.yaml whose step2 section sets properties at start; \
                         properties set explicitly win",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("preset", Preset::None)
                    .nick("Preset")
                    .blurb("Worker and queue sizes for a Jetson module; explicit properties and config-file win")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("stats-interval")
                    .nick("Stats interval")
                    .blurb("Post an 'iguard-stats' element message every this many ms (0 = off)")
                    .maximum(3_600_000)
                    .default_value(DEFAULT_STATS_INTERVAL)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb(
                        "Counts since the element last started: submitted = verified + \
                         rejected + fallback + timed-out + dropped + failed + pending",
                    )
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if pspec.flags().contains(gst::PARAM_FLAG_MUTABLE_READY) && self.running().is_some() {
            gst::warning!(
                CAT,
                imp = self,
                "{} takes effect at the next start (READY to PAUSED), not while running",
                pspec.name()
            );
        }
        let mut s = lock(&self.settings);
        s.set(pspec.name(), value);
        let name = pspec.name();
        if let Some(known) = Self::properties()
            .iter()
            .map(|p| p.name())
            .find(|n| *n == name)
            && !s.explicit.contains(&known)
        {
            s.explicit.push(known);
        }
        s.generation += 1;
        gst::debug!(CAT, imp = self, "{} set to {:?}", pspec.name(), value);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "stats" {
            let running = self.running();
            return self.stats_structure(running.as_ref()).to_value();
        }
        let s = lock(&self.settings);
        match pspec.name() {
            "trigger-labels" => s.trigger_labels.to_value(),
            "min-confidence" => s.min_confidence.to_value(),
            "threshold" => s.threshold.to_value(),
            "temporal-size" => s.temporal_size.to_value(),
            "frame-interval" => s.frame_interval.to_value(),
            "roi-margin" => s.roi_margin.to_value(),
            "crop" => s.crop.to_value(),
            "input-width" => s.input_width.to_value(),
            "input-height" => s.input_height.to_value(),
            "cooldown" => s.cooldown.to_value(),
            "clip-per" => s.clip_per.to_value(),
            "tracking" => s.tracking.to_value(),
            "max-clips-per-source" => s.max_clips_per_source.to_value(),
            "track-timeout" => s.track_timeout.to_value(),
            "min-frames" => s.min_frames.to_value(),
            "max-workers" => s.max_workers.to_value(),
            "queue-size" => s.queue_size.to_value(),
            "priority" => s.priority.to_value(),
            "worker-timeout" => s.worker_timeout.to_value(),
            "async" => s.async_.to_value(),
            "result-queue-size" => s.result_queue_size.to_value(),
            "weapon-labels" => s.weapon_labels.to_value(),
            "stats-interval" => s.stats_interval.to_value(),
            "model-path" => s.model_path.to_value(),
            "model-type" => s.model_type.to_value(),
            "fallback-on-error" => s.fallback_on_error.to_value(),
            "labels-file" => s.labels_file.to_value(),
            "positive-classes" => s.positive_classes.to_value(),
            "tensor-layout" => s.tensor_layout.to_value(),
            "mean" => s.mean.to_value(),
            "scale" => s.scale.to_value(),
            "color-order" => s.color_order.to_value(),
            "output-activation" => s.output_activation.to_value(),
            "input-name" => s.input_name.to_value(),
            "output-name" => s.output_name.to_value(),
            "execution-provider" => s.execution_provider.to_value(),
            "engine-cache-dir" => s.engine_cache_dir.to_value(),
            "inference-threads" => s.inference_threads.to_value(),
            "batch-size" => s.batch_size.to_value(),
            "model-instance-id" => s.model_instance_id.to_value(),
            "enabled" => s.enabled.to_value(),
            "adaptive-workers" => s.adaptive_workers.to_value(),
            "worker-nice" => s.worker_nice.to_value(),
            "server-url" => s.server_url.to_value(),
            "model-name" => s.model_name.to_value(),
            "model-version" => s.model_version.to_value(),
            "connect-timeout" => s.connect_timeout.to_value(),
            "tls-ca-file" => s.tls_ca_file.to_value(),
            "tls-domain" => s.tls_domain.to_value(),
            "tls-cert-file" => s.tls_cert_file.to_value(),
            "tls-key-file" => s.tls_key_file.to_value(),
            "class-labels" => s.class_labels.to_value(),
            "class-labels-file" => s.class_labels_file.to_value(),
            "deepstream-version" => s.deepstream_version.to_value(),
            "config-file" => s.config_file.to_value(),
            "preset" => s.preset.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for IGuardVerify {}

impl ElementImpl for IGuardVerify {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "iGuard verification",
                "Filter/Analyzer/Video",
                "Verifies first-stage detections (person, weapon) with a clip-level action model \
                 on a worker pool, without stalling the video; reports verdicts as bus messages \
                 and IGuardVerificationMeta",
                "iguardverify developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            use gst_video::VideoFormat::*;
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list([
                    Rgba, Bgra, Rgbx, Bgrx, Argb, Abgr, Xrgb, Xbgr, Rgb, Bgr, Nv12, I420,
                ])
                .build();
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
            ]
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for IGuardVerify {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        self.apply_config()?;
        let mut settings = lock(&self.settings).clone();
        Self::validate(&settings)?;
        let reader = Self::make_reader(&settings)?;

        let results = Arc::new(Mutex::new(Results {
            capacity: settings.result_queue_size as usize,
            ..Default::default()
        }));
        let weak = self.obj().downgrade();
        let res = results.clone();
        let reporter = Reporter::new(settings.threshold, move |v: &Verdict| {
            lock(&res).push(v.clone());
            let Some(obj) = weak.upgrade() else { return };
            gst::log!(CAT, obj = obj, "verdict {:?}", v);
            let s = meta::to_structure(meta::MESSAGE_NAME, v);
            let _ = obj.post_message(gst::message::Element::builder(s).src(&obj).build());
        });

        let model = match settings.model_type {
            ModelType::Triton => format!(
                "Triton {} {:?}",
                settings.server_url,
                settings.model_name.as_deref().unwrap_or("")
            ),
            t => format!("{:?} {:?}", t, settings.model_path.as_deref().unwrap_or("")),
        };
        let (instance, shared) = instance::acquire(settings.model_instance_id.as_deref(), || {
            let (scorer, dims) = self.make_scorer(&settings)?;
            let pool_config = PoolConfig {
                name: format!(
                    "{}",
                    POOL_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                ),
                max_workers: settings.max_workers as usize,
                queue_size: settings.queue_size as usize,
                priority: match settings.priority {
                    Priority::Fifo => pool::Priority::Fifo,
                    Priority::Confidence => pool::Priority::Confidence,
                },
                timeout: Duration::from_secs_f64(settings.worker_timeout),
                batch_size: settings.batch_size as usize,
                adaptive: settings.adaptive_workers,
                nice: settings.worker_nice,
                ..Default::default()
            };
            let pool = Pool::new(pool_config, scorer).map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::Failed,
                    ("Cannot start the worker pool: {}", e)
                )
            })?;
            Ok::<_, gst::ErrorMessage>(instance::Spec {
                pool,
                model: model.clone(),
                dims,
            })
        })?;
        if shared && instance.model != model {
            gst::element_imp_warning!(
                self,
                gst::LibraryError::Settings,
                (
                    "model-instance-id={:?} already runs {}; this element's model settings ({}) \
                     are ignored",
                    instance.id.as_deref().unwrap_or(""),
                    instance.model,
                    model
                )
            );
        }
        if let Err(e) = Self::clip_shape(&mut settings, instance.dims) {
            instance::release(&instance, STOP_JOIN_WAIT);
            return Err(e);
        }
        let assembler = ClipAssembler::with_tracks(settings.clip_config(), settings.track_config());
        let running = Running {
            reporter,
            instance,
            results,
            queue_size: settings.queue_size,
            max_workers: settings.max_workers,
            clips: assembler.counters(),
        };
        gst::info!(
            CAT,
            imp = self,
            "started: scorer {}, {} workers, queue {}",
            running.pool().scorer_name(),
            settings.max_workers,
            settings.queue_size
        );
        *lock(&self.state) = Some(State {
            running: running.clone(),
            info: None,
            reader: Box::new(reader),
            assembler,
            sampler: Sampler::new(),
            collecting: HashMap::new(),
            frames: Vec::new(),
            settings_generation: settings.generation,
            async_: settings.async_,
            enabled: settings.enabled,
            warned_batched: false,
            worker_timeout: Duration::from_secs_f64(settings.worker_timeout),
            stats_interval: match settings.stats_interval {
                0 => None,
                ms => Some(Duration::from_millis(ms as u64)),
            },
            last_stats: Instant::now(),
        });
        *lock(&self.running) = Some(running);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let state = lock(&self.state).take();
        let Some(mut state) = state else {
            return Ok(());
        };
        for (_, ticket) in state.collecting.drain() {
            Self::end_unsubmitted(ticket, Status::Dropped, "stopped");
        }
        let running = state.running.clone();
        drop(state);
        // Other elements may share the pool: answer only ours, then leave it.
        running.pool().cancel_for(&running.reporter, "stopped");
        let left = instance::release(&running.instance, STOP_JOIN_WAIT);
        if left > 0 {
            gst::warning!(
                CAT,
                imp = self,
                "{left} worker threads are stuck in the scorer and were left behind; their \
                 requests were answered"
            );
        }
        *lock(&self.last_stats) = Some(self.stats_structure(Some(&running)));
        *lock(&self.running) = None;
        gst::info!(
            CAT,
            imp = self,
            "stopped: {:?}",
            running.reporter.counters()
        );
        Ok(())
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        // NVMM caps never reach the caps event: the accept-caps check turns them away. Say
        // what to do instead of leaving the user with a bare not-negotiated.
        if direction == gst::PadDirection::Sink
            && let gst::QueryViewMut::AcceptCaps(q) = query.view_mut()
            && q.caps()
                .features(0)
                .is_some_and(|f| f.contains("memory:NVMM"))
        {
            if !self
                .warned_nvmm
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                gst::element_imp_warning!(
                    self,
                    gst::CoreError::Negotiation,
                    ("iguardverify reads system-memory video, not NVMM (NvBufSurface) buffers: \
                         place 'nvvideoconvert ! video/x-raw,format=RGBA' before it"),
                    ["refused caps {}", q.caps()]
                );
            }
            q.set_result(false);
            return true;
        }
        BaseTransformImplExt::parent_query(self, direction, query)
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "Cannot parse caps {}", incaps))?;
        gst::debug!(CAT, imp = self, "caps {}", incaps);
        if let Some(state) = lock(&self.state).as_mut() {
            state.info = Some(info);
        }
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::FlushStart(_) => {
                // Not serialized: the streaming thread may be busy; the pool is reachable
                // without its lock.
                if let Some(r) = self.running() {
                    r.pool().cancel_for(&r.reporter, "flushing");
                }
            }
            gst::EventView::FlushStop(_) => {
                if let Some(state) = lock(&self.state).as_mut() {
                    for id in state.assembler.abandon_all() {
                        if let Some(t) = state.collecting.remove(&id) {
                            Self::end_unsubmitted(t, Status::Dropped, "flushing");
                        }
                    }
                    lock(&state.running.results).clear();
                }
            }
            gst::EventView::Eos(_) => self.drain(),
            _ => (),
        }
        self.parent_sink_event(event)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut guard = lock(&self.state);
        let Some(state) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        let Some(info) = state.info.clone() else {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("No caps were set before the first buffer")
            );
            return Err(gst::FlowError::NotNegotiated);
        };
        self.refresh_settings(state);

        let mut frames = std::mem::take(&mut state.frames);
        frames.clear();
        if state.enabled {
            state.reader.read(buf, &mut frames);
        }
        if frames.len() > 1 && !state.warned_batched {
            state.warned_batched = true;
            gst::warning!(
                CAT,
                imp = self,
                "{} frames (sources) in one system-memory buffer: every source's tiles are cut \
                 from the one image this buffer holds. For batched DeepStream pipelines, put \
                 nvstreamdemux (or batch-size=1) before nvvideoconvert and this element",
                frames.len()
            );
        }
        let pts = buf.pts().map(|t| t.nseconds());
        let (width, height) = (info.width(), info.height());

        let mut finished = Vec::new();
        {
            let State {
                assembler,
                sampler,
                collecting,
                running,
                ..
            } = &mut *state;
            let (tile_width, tile_height) = (
                assembler.config().tile_width,
                assembler.config().tile_height,
            );
            let mut mapped: Option<gst_video::VideoFrameRef<&gst::BufferRef>> = None;
            let mut map_error: Option<String> = None;
            for fd in &frames {
                let outcome = assembler.push(
                    fd.source,
                    &fd.detections,
                    width,
                    height,
                    fd.source.pts.or(pts),
                    &mut || {
                        let t = running.reporter.open(RequestInfo {
                            source_id: fd.source.source_id,
                            pad_index: fd.source.pad_index,
                            scorer: running.pool().scorer_name().to_string(),
                            ..Default::default()
                        });
                        let id = t.id();
                        collecting.insert(id, t);
                        id
                    },
                    &mut |region, tile| {
                        if mapped.is_none() && map_error.is_none() {
                            match gst_video::VideoFrameRef::from_buffer_ref_readable(&*buf, &info) {
                                Ok(f) => mapped = Some(f),
                                Err(e) => map_error = Some(format!("cannot map the frame: {e}")),
                            }
                        }
                        let frame = mapped
                            .as_ref()
                            .ok_or_else(|| map_error.clone().unwrap_or_default())?;
                        sampler
                            .sample(frame, region, tile_width, tile_height, tile)
                            .map_err(|e| e.to_string())
                    },
                );
                for (c, reason) in outcome.dropped {
                    gst::debug!(CAT, imp = self, "clip {} dropped: {reason}", c.request_id);
                    if let Some(mut t) = collecting.remove(&c.request_id) {
                        *t.info_mut() = Self::request_info(&c, running.pool().scorer_name());
                        Self::end_unsubmitted(t, Status::Dropped, &reason);
                    }
                }
                for (id, reason) in outcome.failed {
                    gst::warning!(CAT, imp = self, "clip {id} abandoned: {reason}");
                    if let Some(t) = collecting.remove(&id) {
                        Self::end_unsubmitted(
                            t,
                            Status::Error,
                            &format!("sampling failed: {reason}"),
                        );
                    }
                }
                for id in outcome.started {
                    gst::debug!(
                        CAT,
                        imp = self,
                        "source {} triggered clip {id}",
                        fd.source.source_id
                    );
                }
                finished.extend(outcome.finished);
            }
        }
        for clip in finished {
            self.submit(state, clip);
        }

        // Attach at most one waiting verdict per source carried by this buffer.
        let attach: Vec<Verdict> = {
            let mut results = lock(&state.running.results);
            frames
                .iter()
                .filter_map(|f| results.pop(f.source.source_id))
                .collect()
        };
        for v in &attach {
            if let Err(e) = meta::add(buf, v) {
                gst::warning!(
                    CAT,
                    imp = self,
                    "cannot attach verdict {}: {e}",
                    v.request_id
                );
            }
        }
        state.frames = frames;

        let post = match state.stats_interval {
            Some(i) if state.last_stats.elapsed() >= i => {
                state.last_stats = Instant::now();
                Some(state.running.clone())
            }
            _ => None,
        };
        drop(guard);
        if let Some(r) = post {
            self.post_stats(&r);
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

static POOL_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl IGuardVerify {
    /// EOS: completes partial clips, waits for every pending verdict (bounded by
    /// `worker-timeout` without progress), then answers what is left `dropped`.
    fn drain(&self) {
        let (running, timeout) = {
            let mut guard = lock(&self.state);
            let Some(state) = guard.as_mut() else { return };
            for clip in state.assembler.finish_partial() {
                // Partial clips are always submitted asynchronously: we wait for all below.
                let async_ = std::mem::replace(&mut state.async_, true);
                self.submit(state, clip);
                state.async_ = async_;
            }
            (state.running.clone(), state.worker_timeout)
        };
        if !running.reporter.wait_idle(timeout + Duration::from_secs(1)) {
            gst::warning!(
                CAT,
                imp = self,
                "EOS: verification made no progress; dropping the rest"
            );
            running
                .pool()
                .cancel_for(&running.reporter, "eos: verification stalled");
        }
        self.post_stats(&running);
    }
}
