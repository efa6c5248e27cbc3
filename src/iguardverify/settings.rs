// SPDX-License-Identifier: MIT OR Apache-2.0
//! The element's settings: property values as the application set them, and the per-run copy
//! in force (preset < config file < explicit properties, then the clip shape the model fixes).
//! Also the checks the property ranges cannot express, and the configs the logic modules take.

use std::path::PathBuf;
use std::time::Duration;

use gst::glib;
use gst::prelude::*;

use super::{
    Activation, ClipPer, ColorOrder, Crop, ExecutionProvider, ModelType, Preset, Priority,
    TensorLayout, Tracking,
};
use crate::clip::{ClipConfig, TrackConfig};
use crate::config::{Overlay, Step2Config};
use crate::detections::AutoReader;
use crate::detections::analytics::AnalyticsReader;
use crate::detections::deepstream::{ClassLabels, DeepStreamLayout, DeepStreamReader};
use crate::detections::roi::RoiReader;
use crate::pool::PoolConfig;
use crate::scorer::factory::{ScorerSpec, TlsFiles};

/// People and the weapon labels, so a `gun` starts a clip out of the box.
pub const DEFAULT_TRIGGER_LABELS: &str = "person,weapon,gun,pistol,rifle,knife";
pub const DEFAULT_WEAPON_LABELS: &str = "weapon,gun,pistol,rifle,knife";
pub const DEFAULT_MIN_CONFIDENCE: f64 = 0.5;
pub const DEFAULT_THRESHOLD: f64 = 0.7;
pub const DEFAULT_TEMPORAL_SIZE: u32 = 16;
pub const DEFAULT_FRAME_INTERVAL: u32 = 1;
pub const DEFAULT_ROI_MARGIN: f32 = 0.15;
pub const DEFAULT_INPUT_SIZE: u32 = 224;
pub const DEFAULT_COOLDOWN: u32 = 30;
pub const DEFAULT_MAX_CLIPS_PER_SOURCE: u32 = 8;
pub const DEFAULT_TRACK_TIMEOUT: u32 = 15;
pub const DEFAULT_MIN_FRAMES: u32 = 8;
pub const DEFAULT_MAX_WORKERS: u32 = 2;
/// Workers at nice 10: under contention the streaming threads get the CPU first; idle CPU
/// still goes to inference, so throughput is unchanged on an otherwise idle machine.
pub const DEFAULT_WORKER_NICE: i32 = 10;
pub const DEFAULT_SNAPSHOT_COLUMNS: u32 = 4;
pub const DEFAULT_SNAPSHOT_QUALITY: u32 = 85;
pub const DEFAULT_SNAPSHOT_MAX_BYTES: u32 = 2 * 1024 * 1024;
pub const DEFAULT_QUEUE_SIZE: u32 = 50;
pub const DEFAULT_RESULT_QUEUE_SIZE: u32 = 100;
pub const DEFAULT_WORKER_TIMEOUT: f64 = 10.0;
pub const DEFAULT_ASYNC: bool = true;
pub const DEFAULT_STATS_INTERVAL: u32 = 0;
pub const DEFAULT_FALLBACK_ON_ERROR: bool = true;
/// NVMM: one `NvBufSurfTransform` call per buffer for all its tiles.
pub const DEFAULT_NVMM_BATCH: bool = true;
pub const DEFAULT_BATCH_SIZE: u32 = 1;
pub const DEFAULT_INFERENCE_THREADS: u32 = 0;
pub const DEFAULT_MEAN: &str = "127.5";
pub const DEFAULT_SCALE: &str = "0.00784313725490196";
pub const DEFAULT_SERVER_URL: &str = "http://127.0.0.1:8001";
pub const DEFAULT_CONNECT_TIMEOUT: f64 = 5.0;
/// Sources (cameras) one element follows at most; metadata naming more is refused, so a
/// corrupt batch meta cannot open a clip for each of thousands of made-up sources.
pub const DEFAULT_MAX_SOURCES: u32 = 256;
/// `unique_component_id` of the DeepStream classifier metas the element writes, as nvinfer's
/// `gie-unique-id`; away from the small ids GIEs usually take.
pub const DEFAULT_UNIQUE_ID: u32 = 101;
pub const DEFAULT_INCIDENTS: bool = true;
pub const DEFAULT_ALERT_AFTER: u32 = 1;
/// Seconds of stream time without a clip that end an incident.
pub const DEFAULT_INCIDENT_TIMEOUT: f64 = 30.0;
/// The largest clip the element collects (tiles × RGB bytes).
pub const MAX_CLIP_BYTES: u64 = 512 << 20;

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub trigger_labels: String,
    pub weapon_labels: String,
    pub min_confidence: f64,
    pub threshold: f64,
    pub temporal_size: u32,
    pub frame_interval: u32,
    pub roi_margin: f32,
    pub crop: Crop,
    pub input_width: u32,
    pub input_height: u32,
    pub cooldown: u32,
    pub clip_per: ClipPer,
    pub tracking: Tracking,
    pub max_clips_per_source: u32,
    pub max_detections: u32,
    pub max_clips: u32,
    pub max_tiles_per_buffer: u32,
    pub nvmm_batch: bool,
    pub track_timeout: u32,
    pub min_frames: u32,
    pub max_workers: u32,
    pub queue_size: u32,
    pub result_queue_size: u32,
    pub priority: Priority,
    pub worker_timeout: f64,
    pub async_: bool,
    pub stats_interval: u32,
    pub model_path: Option<String>,
    pub model_type: ModelType,
    pub fallback_on_error: bool,
    pub labels_file: Option<String>,
    pub positive_classes: String,
    pub tensor_layout: TensorLayout,
    pub mean: String,
    pub scale: String,
    pub color_order: ColorOrder,
    pub output_activation: Activation,
    pub input_name: Option<String>,
    pub output_name: Option<String>,
    pub execution_provider: ExecutionProvider,
    pub engine_cache_dir: Option<String>,
    pub inference_threads: u32,
    pub batch_size: u32,
    pub model_instance_id: Option<String>,
    pub server_url: String,
    pub model_name: Option<String>,
    pub model_version: Option<String>,
    pub connect_timeout: f64,
    pub tls_ca_file: Option<String>,
    pub tls_domain: Option<String>,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
    pub adaptive_workers: bool,
    pub worker_nice: i32,
    pub snapshot: bool,
    pub snapshot_columns: u32,
    pub snapshot_quality: u32,
    pub snapshot_max_bytes: u32,
    pub enabled: bool,
    pub class_labels: Option<String>,
    pub class_labels_file: Option<String>,
    pub deepstream_version: Option<String>,
    pub config_file: Option<String>,
    pub preset: Preset,
    pub max_sources: u32,
    pub unique_id: u32,
    pub zones: String,
    pub trigger_zones: String,
    pub ignore_zones: String,
    pub incidents: bool,
    pub alert_after: u32,
    pub incident_timeout: f64,
    /// Properties the application set, to tell a deliberate choice from a default.
    pub explicit: Vec<&'static str>,
    /// Bumped on every change of a property, so the streaming thread copies what changed
    /// while playing only when something did.
    pub generation: u64,
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
            max_detections: crate::clip::DEFAULT_MAX_DETECTIONS,
            max_clips: crate::clip::DEFAULT_MAX_CLIPS,
            max_tiles_per_buffer: crate::clip::DEFAULT_MAX_TILES_PER_BUFFER,
            nvmm_batch: DEFAULT_NVMM_BATCH,
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
            snapshot: false,
            snapshot_columns: DEFAULT_SNAPSHOT_COLUMNS,
            snapshot_quality: DEFAULT_SNAPSHOT_QUALITY,
            snapshot_max_bytes: DEFAULT_SNAPSHOT_MAX_BYTES,
            enabled: true,
            class_labels: None,
            class_labels_file: None,
            deepstream_version: None,
            config_file: None,
            preset: Preset::None,
            max_sources: DEFAULT_MAX_SOURCES,
            unique_id: DEFAULT_UNIQUE_ID,
            zones: String::new(),
            trigger_zones: String::new(),
            ignore_zones: String::new(),
            incidents: DEFAULT_INCIDENTS,
            alert_after: DEFAULT_ALERT_AFTER,
            incident_timeout: DEFAULT_INCIDENT_TIMEOUT,
            explicit: Vec::new(),
            generation: 0,
        }
    }
}

/// A comma-separated label list, trimmed, without empty entries.
pub fn label_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

fn string(value: &glib::Value) -> String {
    value
        .get::<Option<String>>()
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// A set path or name; unset and empty are the same.
fn given(v: &Option<String>) -> Option<String> {
    v.clone().filter(|v| !v.is_empty())
}

/// What a run layers over the application's settings: the preset and config file, read once
/// at start, and the clip shape the model fixed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunLayers {
    pub overlay: Overlay,
    /// `[temporal-size, input-height, input-width]` once the model is known.
    pub shape: Option<[u32; 3]>,
}

/// What reading the preset and config file has to say.
#[derive(Debug, Default)]
pub struct Layered {
    pub layers: RunLayers,
    pub warnings: Vec<String>,
}

impl Settings {
    /// Stores a property value (of the property's type). Values come from GObject, which has
    /// checked their type and range.
    pub fn set(&mut self, name: &str, value: &glib::Value) {
        let s = self;
        let v = value;
        match name {
            "trigger-labels" => s.trigger_labels = string(v),
            "min-confidence" => s.min_confidence = v.get().unwrap_or(s.min_confidence),
            "threshold" => s.threshold = v.get().unwrap_or(s.threshold),
            "temporal-size" => s.temporal_size = v.get().unwrap_or(s.temporal_size),
            "frame-interval" => s.frame_interval = v.get().unwrap_or(s.frame_interval),
            "roi-margin" => s.roi_margin = v.get().unwrap_or(s.roi_margin),
            "crop" => s.crop = v.get().unwrap_or(s.crop),
            "input-width" => s.input_width = v.get().unwrap_or(s.input_width),
            "input-height" => s.input_height = v.get().unwrap_or(s.input_height),
            "cooldown" => s.cooldown = v.get().unwrap_or(s.cooldown),
            "clip-per" => s.clip_per = v.get().unwrap_or(s.clip_per),
            "tracking" => s.tracking = v.get().unwrap_or(s.tracking),
            "max-clips-per-source" => {
                s.max_clips_per_source = v.get().unwrap_or(s.max_clips_per_source)
            }
            "max-detections" => s.max_detections = v.get().unwrap_or(s.max_detections),
            "max-clips" => s.max_clips = v.get().unwrap_or(s.max_clips),
            "max-tiles-per-buffer" => {
                s.max_tiles_per_buffer = v.get().unwrap_or(s.max_tiles_per_buffer)
            }
            "nvmm-batch" => s.nvmm_batch = v.get().unwrap_or(s.nvmm_batch),
            "track-timeout" => s.track_timeout = v.get().unwrap_or(s.track_timeout),
            "min-frames" => s.min_frames = v.get().unwrap_or(s.min_frames),
            "max-workers" => s.max_workers = v.get().unwrap_or(s.max_workers),
            "queue-size" => s.queue_size = v.get().unwrap_or(s.queue_size),
            "priority" => s.priority = v.get().unwrap_or(s.priority),
            "worker-timeout" => s.worker_timeout = v.get().unwrap_or(s.worker_timeout),
            "async" => s.async_ = v.get().unwrap_or(s.async_),
            "result-queue-size" => s.result_queue_size = v.get().unwrap_or(s.result_queue_size),
            "weapon-labels" => s.weapon_labels = string(v),
            "stats-interval" => s.stats_interval = v.get().unwrap_or(s.stats_interval),
            "model-path" => s.model_path = v.get().unwrap_or(None),
            "model-type" => s.model_type = v.get().unwrap_or(s.model_type),
            "fallback-on-error" => s.fallback_on_error = v.get().unwrap_or(s.fallback_on_error),
            "labels-file" => s.labels_file = v.get().unwrap_or(None),
            "positive-classes" => s.positive_classes = string(v),
            "tensor-layout" => s.tensor_layout = v.get().unwrap_or(s.tensor_layout),
            "mean" => s.mean = string(v),
            "scale" => s.scale = string(v),
            "color-order" => s.color_order = v.get().unwrap_or(s.color_order),
            "output-activation" => s.output_activation = v.get().unwrap_or(s.output_activation),
            "input-name" => s.input_name = v.get().unwrap_or(None),
            "output-name" => s.output_name = v.get().unwrap_or(None),
            "execution-provider" => s.execution_provider = v.get().unwrap_or(s.execution_provider),
            "engine-cache-dir" => s.engine_cache_dir = v.get().unwrap_or(None),
            "inference-threads" => s.inference_threads = v.get().unwrap_or(s.inference_threads),
            "batch-size" => s.batch_size = v.get().unwrap_or(s.batch_size),
            "model-instance-id" => s.model_instance_id = v.get().unwrap_or(None),
            "enabled" => s.enabled = v.get().unwrap_or(s.enabled),
            "adaptive-workers" => s.adaptive_workers = v.get().unwrap_or(s.adaptive_workers),
            "worker-nice" => s.worker_nice = v.get().unwrap_or(s.worker_nice),
            "snapshot" => s.snapshot = v.get().unwrap_or(s.snapshot),
            "snapshot-columns" => s.snapshot_columns = v.get().unwrap_or(s.snapshot_columns),
            "snapshot-quality" => s.snapshot_quality = v.get().unwrap_or(s.snapshot_quality),
            "snapshot-max-bytes" => s.snapshot_max_bytes = v.get().unwrap_or(s.snapshot_max_bytes),
            "server-url" => s.server_url = string(v),
            "model-name" => s.model_name = v.get().unwrap_or(None),
            "model-version" => s.model_version = v.get().unwrap_or(None),
            "connect-timeout" => s.connect_timeout = v.get().unwrap_or(s.connect_timeout),
            "tls-ca-file" => s.tls_ca_file = v.get().unwrap_or(None),
            "tls-domain" => s.tls_domain = v.get().unwrap_or(None),
            "tls-cert-file" => s.tls_cert_file = v.get().unwrap_or(None),
            "tls-key-file" => s.tls_key_file = v.get().unwrap_or(None),
            "class-labels" => s.class_labels = v.get().unwrap_or(None),
            "class-labels-file" => s.class_labels_file = v.get().unwrap_or(None),
            "deepstream-version" => s.deepstream_version = v.get().unwrap_or(None),
            "config-file" => s.config_file = v.get().unwrap_or(None),
            "preset" => s.preset = v.get().unwrap_or(s.preset),
            "max-sources" => s.max_sources = v.get().unwrap_or(s.max_sources),
            "unique-id" => s.unique_id = v.get().unwrap_or(s.unique_id),
            "zones" => s.zones = string(v),
            "trigger-zones" => s.trigger_zones = string(v),
            "ignore-zones" => s.ignore_zones = string(v),
            "incidents" => s.incidents = v.get().unwrap_or(s.incidents),
            "alert-after" => s.alert_after = v.get().unwrap_or(s.alert_after),
            "incident-timeout" => s.incident_timeout = v.get().unwrap_or(s.incident_timeout),
            _ => return,
        }
        s.generation += 1;
    }

    /// A property's value; `None` for a name that is not a setting (e.g. `stats`).
    pub fn get(&self, name: &str) -> Option<glib::SendValue> {
        let s = self;
        Some(match name {
            "trigger-labels" => s.trigger_labels.to_send_value(),
            "min-confidence" => s.min_confidence.to_send_value(),
            "threshold" => s.threshold.to_send_value(),
            "temporal-size" => s.temporal_size.to_send_value(),
            "frame-interval" => s.frame_interval.to_send_value(),
            "roi-margin" => s.roi_margin.to_send_value(),
            "crop" => s.crop.to_send_value(),
            "input-width" => s.input_width.to_send_value(),
            "input-height" => s.input_height.to_send_value(),
            "cooldown" => s.cooldown.to_send_value(),
            "clip-per" => s.clip_per.to_send_value(),
            "tracking" => s.tracking.to_send_value(),
            "max-clips-per-source" => s.max_clips_per_source.to_send_value(),
            "max-detections" => s.max_detections.to_send_value(),
            "max-clips" => s.max_clips.to_send_value(),
            "max-tiles-per-buffer" => s.max_tiles_per_buffer.to_send_value(),
            "nvmm-batch" => s.nvmm_batch.to_send_value(),
            "track-timeout" => s.track_timeout.to_send_value(),
            "min-frames" => s.min_frames.to_send_value(),
            "max-workers" => s.max_workers.to_send_value(),
            "queue-size" => s.queue_size.to_send_value(),
            "priority" => s.priority.to_send_value(),
            "worker-timeout" => s.worker_timeout.to_send_value(),
            "async" => s.async_.to_send_value(),
            "result-queue-size" => s.result_queue_size.to_send_value(),
            "weapon-labels" => s.weapon_labels.to_send_value(),
            "stats-interval" => s.stats_interval.to_send_value(),
            "model-path" => s.model_path.to_send_value(),
            "model-type" => s.model_type.to_send_value(),
            "fallback-on-error" => s.fallback_on_error.to_send_value(),
            "labels-file" => s.labels_file.to_send_value(),
            "positive-classes" => s.positive_classes.to_send_value(),
            "tensor-layout" => s.tensor_layout.to_send_value(),
            "mean" => s.mean.to_send_value(),
            "scale" => s.scale.to_send_value(),
            "color-order" => s.color_order.to_send_value(),
            "output-activation" => s.output_activation.to_send_value(),
            "input-name" => s.input_name.to_send_value(),
            "output-name" => s.output_name.to_send_value(),
            "execution-provider" => s.execution_provider.to_send_value(),
            "engine-cache-dir" => s.engine_cache_dir.to_send_value(),
            "inference-threads" => s.inference_threads.to_send_value(),
            "batch-size" => s.batch_size.to_send_value(),
            "model-instance-id" => s.model_instance_id.to_send_value(),
            "enabled" => s.enabled.to_send_value(),
            "adaptive-workers" => s.adaptive_workers.to_send_value(),
            "worker-nice" => s.worker_nice.to_send_value(),
            "snapshot" => s.snapshot.to_send_value(),
            "snapshot-columns" => s.snapshot_columns.to_send_value(),
            "snapshot-quality" => s.snapshot_quality.to_send_value(),
            "snapshot-max-bytes" => s.snapshot_max_bytes.to_send_value(),
            "server-url" => s.server_url.to_send_value(),
            "model-name" => s.model_name.to_send_value(),
            "model-version" => s.model_version.to_send_value(),
            "connect-timeout" => s.connect_timeout.to_send_value(),
            "tls-ca-file" => s.tls_ca_file.to_send_value(),
            "tls-domain" => s.tls_domain.to_send_value(),
            "tls-cert-file" => s.tls_cert_file.to_send_value(),
            "tls-key-file" => s.tls_key_file.to_send_value(),
            "class-labels" => s.class_labels.to_send_value(),
            "class-labels-file" => s.class_labels_file.to_send_value(),
            "deepstream-version" => s.deepstream_version.to_send_value(),
            "config-file" => s.config_file.to_send_value(),
            "preset" => s.preset.to_send_value(),
            "max-sources" => s.max_sources.to_send_value(),
            "unique-id" => s.unique_id.to_send_value(),
            "zones" => s.zones.to_send_value(),
            "trigger-zones" => s.trigger_zones.to_send_value(),
            "ignore-zones" => s.ignore_zones.to_send_value(),
            "incidents" => s.incidents.to_send_value(),
            "alert-after" => s.alert_after.to_send_value(),
            "incident-timeout" => s.incident_timeout.to_send_value(),
            _ => return None,
        })
    }

    /// Records that the application set `name` itself.
    pub fn mark_explicit(&mut self, name: &'static str) {
        if !self.explicit.contains(&name) {
            self.explicit.push(name);
        }
    }

    fn is_explicit(&self, name: &str) -> bool {
        self.explicit.contains(&name)
    }

    /// Reads the preset and the config file (defaults < preset < config file; explicit
    /// properties win over both when the layers are applied). Unknown config keys are warnings.
    pub fn read_layers(&self) -> Result<Layered, String> {
        let mut out = Layered::default();
        let preset: Option<crate::config::Preset> = self.preset.into();
        let mut overlay = preset.map(|p| p.overlay()).unwrap_or_default();
        if let Some(path) = given(&self.config_file) {
            let config = Step2Config::from_file(&path).map_err(|e| format!("config-file: {e}"))?;
            if !config.unknown_keys.is_empty() {
                out.warnings.push(format!(
                    "config-file {:?}: unknown step2 keys ignored: {}",
                    path,
                    config.unknown_keys.join(", ")
                ));
            }
            overlay = overlay.then(config.overlay());
        }
        out.layers.overlay = overlay;
        Ok(out)
    }

    /// These settings with `layers` applied: what is in force for a run. The application's
    /// own settings are never changed by a preset or config file.
    pub fn layered(&self, layers: &RunLayers) -> Settings {
        let mut s = self.clone();
        let o = &layers.overlay;
        fn put<T: Clone>(explicit: bool, target: &mut T, value: &Option<T>) {
            if let (false, Some(v)) = (explicit, value) {
                *target = v.clone();
            }
        }
        put(s.is_explicit("enabled"), &mut s.enabled, &o.enabled);
        if let (false, Some(path)) = (s.is_explicit("model-path"), &o.model_path) {
            s.model_path = Some(path.clone());
        }
        if let (false, Some(t)) = (s.is_explicit("model-type"), o.model_type) {
            s.model_type = t.into();
        }
        put(s.is_explicit("threshold"), &mut s.threshold, &o.threshold);
        put(
            s.is_explicit("input-width"),
            &mut s.input_width,
            &o.input_width,
        );
        put(
            s.is_explicit("input-height"),
            &mut s.input_height,
            &o.input_height,
        );
        put(
            s.is_explicit("temporal-size"),
            &mut s.temporal_size,
            &o.temporal_size,
        );
        put(s.is_explicit("async"), &mut s.async_, &o.async_);
        put(
            s.is_explicit("max-workers"),
            &mut s.max_workers,
            &o.max_workers,
        );
        put(
            s.is_explicit("queue-size"),
            &mut s.queue_size,
            &o.queue_size,
        );
        put(
            s.is_explicit("result-queue-size"),
            &mut s.result_queue_size,
            &o.result_queue_size,
        );
        put(
            s.is_explicit("worker-timeout"),
            &mut s.worker_timeout,
            &o.worker_timeout,
        );
        put(s.is_explicit("zones"), &mut s.zones, &o.zones);
        put(
            s.is_explicit("trigger-zones"),
            &mut s.trigger_zones,
            &o.trigger_zones,
        );
        put(
            s.is_explicit("ignore-zones"),
            &mut s.ignore_zones,
            &o.ignore_zones,
        );
        put(s.is_explicit("incidents"), &mut s.incidents, &o.incidents);
        put(
            s.is_explicit("alert-after"),
            &mut s.alert_after,
            &o.alert_after,
        );
        put(
            s.is_explicit("incident-timeout"),
            &mut s.incident_timeout,
            &o.incident_timeout,
        );
        if let Some([t, h, w]) = layers.shape {
            (s.temporal_size, s.input_height, s.input_width) = (t, h, w);
        }
        s
    }

    /// The clip shape as requested, and which parts of it the application set itself.
    pub fn requested_shape(&self) -> ([u32; 3], [bool; 3]) {
        (
            [self.temporal_size, self.input_height, self.input_width],
            [
                self.is_explicit("temporal-size"),
                self.is_explicit("input-height"),
                self.is_explicit("input-width"),
            ],
        )
    }

    /// Checks values the property ranges cannot express. Run on the settings in force, once
    /// the model has fixed the clip shape.
    pub fn validate(&self) -> Result<(), String> {
        if label_list(&self.trigger_labels).is_empty() {
            return Err(format!(
                "trigger-labels is {:?}: no detection could ever start a clip. Give a \
                 comma-separated list of detector labels, e.g. \"person,weapon\"",
                self.trigger_labels
            ));
        }
        self.zone_rule()?;
        let tile = self.input_width as u64 * self.input_height as u64 * 3;
        let clip = tile * self.temporal_size as u64;
        if clip > MAX_CLIP_BYTES {
            return Err(format!(
                "a clip of temporal-size={} tiles of input-width={} x input-height={} would \
                 take {} MiB; at most {} MiB is allowed",
                self.temporal_size,
                self.input_width,
                self.input_height,
                clip >> 20,
                MAX_CLIP_BYTES >> 20
            ));
        }
        Ok(())
    }

    /// The zones and where objects may trigger; the error names the zone or the name.
    pub fn zone_rule(&self) -> Result<crate::zones::Rule, String> {
        crate::zones::Rule::parse(&self.zones, &self.trigger_zones, &self.ignore_zones)
    }

    /// A problem with the zone properties worth a warning when one is set: a malformed zone,
    /// or a name `zones` does not define once `zones` is set (names may come first).
    pub fn zone_warning(&self) -> Option<String> {
        if let Err(e) = crate::zones::Zones::parse(&self.zones) {
            return Some(format!("zones: {e}"));
        }
        if self.zones.trim().is_empty() {
            return None;
        }
        self.zone_rule().err()
    }

    /// How incidents are kept.
    pub fn incident_config(&self) -> super::incidents::Config {
        super::incidents::Config {
            enabled: self.incidents,
            alert_after: self.alert_after.max(1),
            timeout_ns: (self.incident_timeout * 1e9) as u64,
            per_source: self.clip_per == ClipPer::Source,
        }
    }

    pub fn clip_config(&self) -> ClipConfig {
        ClipConfig {
            trigger_labels: label_list(&self.trigger_labels),
            min_confidence: self.min_confidence,
            temporal_size: self.temporal_size,
            frame_interval: self.frame_interval,
            roi_margin: self.roi_margin,
            crop: self.crop.into(),
            tile_width: self.input_width,
            tile_height: self.input_height,
            cooldown: self.cooldown,
        }
    }

    pub fn track_config(&self) -> TrackConfig {
        TrackConfig {
            clip_per: self.clip_per.into(),
            tracking: self.tracking.into(),
            max_clips_per_source: self.max_clips_per_source,
            track_timeout: self.track_timeout,
            min_frames: self.min_frames,
        }
    }

    /// The bounds on the assembler's work and memory (item 1 of issue 19).
    pub fn clip_limits(&self) -> crate::clip::Limits {
        crate::clip::Limits {
            max_detections: self.max_detections,
            max_clips: self.max_clips,
            max_tiles_per_buffer: self.max_tiles_per_buffer,
        }
    }

    pub fn worker_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.worker_timeout)
    }

    pub fn stats_interval(&self) -> Option<Duration> {
        match self.stats_interval {
            0 => None,
            ms => Some(Duration::from_millis(ms as u64)),
        }
    }

    pub fn scorer_spec(&self) -> ScorerSpec {
        let path = |p: &Option<String>| given(p).map(PathBuf::from);
        ScorerSpec {
            kind: self.model_type.into(),
            model_path: path(&self.model_path),
            fallback_on_error: self.fallback_on_error,
            weapon_labels: label_list(&self.weapon_labels),
            labels_file: path(&self.labels_file),
            positive_classes: self.positive_classes.clone(),
            layout: self.tensor_layout.into(),
            mean: self.mean.clone(),
            scale: self.scale.clone(),
            color: self.color_order.into(),
            activation: self.output_activation.into(),
            input_name: given(&self.input_name),
            output_name: given(&self.output_name),
            provider: self.execution_provider.into(),
            engine_cache_dir: path(&self.engine_cache_dir),
            inference_threads: self.inference_threads,
            max_workers: self.max_workers,
            batch_size: self.batch_size,
            worker_timeout: self.worker_timeout(),
            server_url: self.server_url.clone(),
            model_name: given(&self.model_name),
            model_version: given(&self.model_version),
            connect_timeout: Duration::from_secs_f64(self.connect_timeout),
            tls: TlsFiles {
                ca_file: path(&self.tls_ca_file),
                domain: given(&self.tls_domain),
                cert_file: path(&self.tls_cert_file),
                key_file: path(&self.tls_key_file),
            },
        }
    }

    /// The pool these settings ask for; `name` tags its thread names.
    /// How this element's snapshots are made, `None` with `snapshot=false`.
    pub fn snapshot_config(&self) -> Option<crate::snapshot::SnapshotConfig> {
        self.snapshot.then(|| crate::snapshot::SnapshotConfig {
            columns: self.snapshot_columns.max(1),
            quality: self.snapshot_quality.clamp(1, 100) as u8,
            max_bytes: self.snapshot_max_bytes as usize,
        })
    }

    pub fn pool_config(&self, name: String) -> PoolConfig {
        PoolConfig {
            name,
            max_workers: self.max_workers as usize,
            queue_size: self.queue_size as usize,
            priority: self.priority.into(),
            timeout: self.worker_timeout(),
            batch_size: self.batch_size as usize,
            adaptive: self.adaptive_workers,
            nice: self.worker_nice,
            ..Default::default()
        }
    }

    /// The detection reader for a run, or an error naming the bad value.
    pub fn reader(&self) -> Result<AutoReader, String> {
        let labels = match (given(&self.class_labels), given(&self.class_labels_file)) {
            (Some(l), _) => ClassLabels::parse(&l).map_err(|e| format!("class-labels: {e}"))?,
            (_, Some(f)) => {
                ClassLabels::from_labels_file(f).map_err(|e| format!("class-labels-file: {e}"))?
            }
            _ => ClassLabels::default(),
        };
        Ok(AutoReader {
            roi: RoiReader,
            spare: Default::default(),
            deepstream: DeepStreamReader::new(self.deepstream_layout()?, labels),
            analytics: AnalyticsReader::new(),
        })
    }

    /// The DeepStream object layout `deepstream-version` names (unknown when unset).
    pub fn deepstream_layout(&self) -> Result<DeepStreamLayout, String> {
        match given(&self.deepstream_version) {
            None => Ok(DeepStreamLayout::Unknown),
            Some(v) => v
                .parse::<DeepStreamLayout>()
                .map_err(|e| format!("deepstream-version: {e}")),
        }
    }

    /// Every setting by property name, as a structure (`effective-settings`).
    pub fn to_structure(&self, names: impl IntoIterator<Item = &'static str>) -> gst::Structure {
        let mut s = gst::Structure::new_empty("iguard-settings");
        for name in names {
            if let Some(v) = self.get(name) {
                s.set_value(name, v);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut Settings)) -> Settings {
        let mut s = Settings::default();
        f(&mut s);
        s
    }

    #[test]
    fn set_and_get_round_trip_and_bump_the_generation() {
        gst::init().unwrap();
        let mut s = Settings::default();
        s.set("threshold", &0.25f64.to_value());
        s.set("crop", &Crop::Full.to_value());
        s.set("model-path", &Some("m.onnx").to_value());
        assert_eq!(s.generation, 3);
        assert_eq!(s.get("threshold").unwrap().get::<f64>().unwrap(), 0.25);
        assert_eq!(s.get("crop").unwrap().get::<Crop>().unwrap(), Crop::Full);
        assert_eq!(s.model_path.as_deref(), Some("m.onnx"));
        assert!(s.get("stats").is_none());
        s.set("no-such-property", &1u32.to_value());
        assert_eq!(s.generation, 3);
    }

    #[test]
    fn layers_apply_to_a_copy_and_explicit_properties_win() {
        let mut user = Settings {
            max_workers: 5,
            ..Default::default()
        };
        user.mark_explicit("max-workers");
        let layers = RunLayers {
            overlay: Overlay {
                max_workers: Some(1),
                queue_size: Some(20),
                ..Default::default()
            },
            shape: Some([8, 112, 96]),
        };
        let run = user.layered(&layers);
        assert_eq!((run.max_workers, run.queue_size), (5, 20));
        assert_eq!(
            (run.temporal_size, run.input_height, run.input_width),
            (8, 112, 96)
        );
        assert_eq!(
            user.queue_size, DEFAULT_QUEUE_SIZE,
            "the user's copy is untouched"
        );
        let next = user.layered(&RunLayers::default());
        assert_eq!(
            next.queue_size, DEFAULT_QUEUE_SIZE,
            "nothing left from the last run"
        );
    }

    #[test]
    fn a_preset_then_a_config_file() {
        let dir = std::env::temp_dir().join(format!("iguard-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.yaml");
        std::fs::write(&file, "step2:\n  queue_size: 7\n  max_wokers: 1\n").unwrap();
        let s = with(|s| {
            s.preset = Preset::OrinNano;
            s.config_file = Some(file.display().to_string());
        });
        let l = s.read_layers().unwrap();
        let run = s.layered(&l.layers);
        assert_eq!(
            (run.max_workers, run.queue_size, run.result_queue_size),
            (1, 7, 40)
        );
        assert_eq!(l.warnings.len(), 1);
        assert!(l.warnings[0].contains("max_wokers"), "{:?}", l.warnings);
        let e = with(|s| s.config_file = Some("/nonexistent/c.yaml".into()))
            .read_layers()
            .unwrap_err();
        assert!(
            e.starts_with("config-file: ") && e.contains("/nonexistent/c.yaml"),
            "{e}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn validation_names_the_values() {
        let e = with(|s| s.trigger_labels = " , ".into())
            .validate()
            .unwrap_err();
        assert!(e.contains("trigger-labels is \" , \""), "{e}");
        let e = with(|s| {
            s.temporal_size = 1024;
            s.input_width = 4096;
            s.input_height = 4096;
        })
        .validate()
        .unwrap_err();
        assert!(
            e.contains("temporal-size=1024") && e.contains("49152 MiB"),
            "{e}"
        );
        assert!(Settings::default().validate().is_ok());
    }

    #[test]
    fn bad_reader_settings_name_the_property() {
        let e = with(|s| s.deepstream_version = Some("banana".into()))
            .reader()
            .err()
            .unwrap();
        assert!(e.starts_with("deepstream-version: "), "{e}");
        let e = with(|s| s.class_labels_file = Some("/nonexistent/labels.txt".into()))
            .reader()
            .err()
            .unwrap();
        assert!(e.starts_with("class-labels-file: "), "{e}");
    }

    #[test]
    fn the_specs_follow_the_settings() {
        let s = with(|s| {
            s.model_type = ModelType::Tao;
            s.model_path = Some(String::new());
            s.max_workers = 3;
            s.priority = Priority::Confidence;
        });
        let spec = s.scorer_spec();
        assert_eq!(spec.kind, crate::scorer::factory::ModelKind::Tao);
        assert_eq!(spec.model_path, None, "empty is unset");
        let p = s.pool_config("7".into());
        assert_eq!(
            (p.max_workers, p.priority),
            (3, crate::pool::Priority::Confidence)
        );
    }
}
