// SPDX-License-Identifier: MIT OR Apache-2.0
//! The property table of `iguardverify`: names, blurbs (with units and special values),
//! ranges, defaults and when each may change. Values live in `settings.rs`.

use gst::glib;
use gst::prelude::*;

use super::settings::*;
use super::{ClipPer, Crop, Preset, Priority, Tracking};

pub fn list() -> Vec<glib::ParamSpec> {
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
        glib::ParamSpecUInt::builder("max-detections")
            .nick("Max detections")
            .blurb(
                "Detections with a trigger label that clip-per=object follows per source \
                 and frame, the most confident first; the rest start no clip, get no \
                 built-in id and are counted in stats (detections-capped). Bounds the \
                 association's work per frame whatever the detector sends",
            )
            .minimum(1)
            .maximum(65_536)
            .default_value(crate::clip::DEFAULT_MAX_DETECTIONS)
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder("max-clips")
            .nick("Max clips")
            .blurb(
                "Clips collecting at once over all sources, which bounds their memory to \
                 max-clips x temporal-size x input-width x input-height x 3 bytes; a \
                 trigger beyond it is answered 'dropped' (once per object or source until a \
                 clip ends) and counted in stats (clips-over-max)",
            )
            .minimum(1)
            .maximum(65_536)
            .default_value(crate::clip::DEFAULT_MAX_CLIPS)
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder("max-tiles-per-buffer")
            .nick("Max tiles per buffer")
            .blurb(
                "Tiles sampled from one buffer at most, over all the frames of a batch. \
                 Frames are served in the order the buffer carries them, and within a \
                 frame the clips already collecting (oldest first) before new ones. Once \
                 spent, a clip still due a tile on that buffer is answered 'dropped', and \
                 a new trigger waits for the next buffer; both are counted in stats \
                 (tiles-over-budget). Keep it at least max-clips, so that only a batch \
                 repeating a source reaches it",
            )
            .minimum(1)
            .maximum(65_536)
            .default_value(crate::clip::DEFAULT_MAX_TILES_PER_BUFFER)
            .mutable_playing()
            .build(),
        glib::ParamSpecBoolean::builder("nvmm-batch")
            .nick("NVMM batch")
            .blurb(
                "NVMM input: cut every tile a buffer needs (all frames of the batch, all \
                 objects) with one NvBufSurfTransform call into a batched surface, mapped \
                 once (true), or with one call, map and unmap per tile (false: the \
                 reference path, also the fallback when a batched call fails, counted in \
                 stats as nvmm-batch-failures)",
            )
            .default_value(DEFAULT_NVMM_BATCH)
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
        glib::ParamSpecBoolean::builder("snapshot")
            .nick("Snapshot")
            .blurb(
                "Attach to each verdict of a clip a worker took up (timeouts included) a JPEG \
                 contact sheet of the clip's tiles (field snapshot, encoded by the pool's \
                 threads, never the streaming thread)",
            )
            .default_value(false)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("snapshot-columns")
            .nick("Snapshot columns")
            .blurb("Tiles per row of the snapshot's contact sheet")
            .minimum(1)
            .maximum(64)
            .default_value(DEFAULT_SNAPSHOT_COLUMNS)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("snapshot-quality")
            .nick("Snapshot quality")
            .blurb("JPEG quality of the snapshot (1-100)")
            .minimum(1)
            .maximum(100)
            .default_value(DEFAULT_SNAPSHOT_QUALITY)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("snapshot-max-bytes")
            .nick("Snapshot size bound")
            .blurb("A snapshot larger than this is not attached, and counted as skipped")
            .minimum(1024)
            .default_value(DEFAULT_SNAPSHOT_MAX_BYTES)
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
        glib::ParamSpecUInt::builder("max-sources")
            .nick("Max sources")
            .blurb(
                "Sources (cameras) followed at most; detections of further source ids \
                 are not followed, counted in stats (sources-refused) and warned about",
            )
            .minimum(1)
            .maximum(65_536)
            .default_value(DEFAULT_MAX_SOURCES)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("unique-id")
            .nick("Unique id")
            .blurb(
                "With DeepStream metadata: unique_component_id of the classifier metas that \
                 carry verdicts on tracked objects (as nvinfer's gie-unique-id)",
            )
            .maximum(i32::MAX as u32)
            .default_value(DEFAULT_UNIQUE_ID)
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("zones")
            .nick("Zones")
            .blurb(
                "Named polygons over the frame in normalised coordinates (0-1 of its width \
                 and height), 'name:x,y x,y x,y; name2:...'; an object is in a zone when \
                 the bottom centre of its box is. A malformed zone fails the start",
            )
            .default_value(Some(""))
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("trigger-zones")
            .nick("Trigger zones")
            .blurb(
                "Comma-separated zone names: an object starts clips only while it stands \
                 in one of them (empty = anywhere)",
            )
            .default_value(Some(""))
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("ignore-zones")
            .nick("Ignore zones")
            .blurb(
                "Comma-separated zone names that mask: no object starts a clip while it \
                 stands in one of them",
            )
            .default_value(Some(""))
            .mutable_ready()
            .build(),
        glib::ParamSpecBoolean::builder("incidents")
            .nick("Incidents")
            .blurb(
                "Keep one incident per tracked object (per source with clip-per=source) and \
                 post its changes as 'iguard-incident' messages and events",
            )
            .default_value(DEFAULT_INCIDENTS)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("alert-after")
            .nick("Alert after")
            .blurb(
                "Verified clips that make an incident an alert (a 'fallback' label guess \
                 never counts)",
            )
            .minimum(1)
            .maximum(1000)
            .default_value(DEFAULT_ALERT_AFTER)
            .mutable_ready()
            .build(),
        glib::ParamSpecDouble::builder("incident-timeout")
            .nick("Incident timeout")
            .blurb(
                "Seconds of stream time (buffer timestamps) without a new clip after which \
                 an incident ends (0 = never: it ends when its object is lost or the \
                 stream ends)",
            )
            .minimum(0.0)
            .maximum(86_400.0)
            .default_value(DEFAULT_INCIDENT_TIMEOUT)
            .mutable_ready()
            .build(),
        glib::ParamSpecBoxed::builder::<gst::Structure>("effective-settings")
            .nick("Effective settings")
            .blurb(
                "Every setting in force for the current (or last) run, by property \
                 name: the properties layered over preset and config-file, with the \
                 clip shape the model fixes; before the first start, the properties",
            )
            .read_only()
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
}
