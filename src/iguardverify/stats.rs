// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `stats` property and `iguard-stats` message: one type, written out in one place.

use crate::pool::{Counters, PoolStats};

/// A snapshot of [`crate::clip::ClipCounters`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClipStats {
    pub collecting: u64,
    pub most_collecting: u64,
    pub collecting_bytes: u64,
    pub overflowed: u64,
    pub lost_completed: u64,
    pub lost_dropped: u64,
    pub detections_capped: u64,
    pub over_max_clips: u64,
    pub over_tile_budget: u64,
    pub tracks: u64,
}

impl ClipStats {
    pub fn of(c: &crate::clip::ClipCounters) -> Self {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        ClipStats {
            collecting: load(&c.collecting),
            most_collecting: load(&c.most_collecting),
            collecting_bytes: load(&c.collecting_bytes),
            overflowed: load(&c.overflowed),
            lost_completed: load(&c.lost_completed),
            lost_dropped: load(&c.lost_dropped),
            detections_capped: load(&c.detections_capped),
            over_max_clips: load(&c.over_max_clips),
            over_tile_budget: load(&c.over_tile_budget),
            tracks: load(&c.tracks),
        }
    }
}

/// A snapshot of [`crate::deepstream::tiles::TransformCounters`]: NVIDIA's transform on NVMM
/// input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TransformStats {
    pub calls: u64,
    pub tiles: u64,
    pub batch_failures: u64,
}

impl TransformStats {
    pub fn of(c: &crate::deepstream::tiles::TransformCounters) -> Self {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        TransformStats {
            calls: load(&c.calls),
            tiles: load(&c.tiles),
            batch_failures: load(&c.batch_failures),
        }
    }
}

/// One snapshot of an element's figures. The request counts come from one snapshot of its
/// reporter, so `submitted = verified + rejected + fallback + timed_out + dropped + failed +
/// pending` holds within it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub counters: Counters,
    pub pool: PoolStats,
    /// The pool's own sizes (shared pools: the first element's).
    pub max_workers: u32,
    pub queue_size: u32,
    pub results_waiting: u32,
    pub results_overflowed: u64,
    /// Verdicts that found the `iguardpublish` outbox full.
    pub publish_overflowed: u64,
    /// Distinct sources met beyond `max-sources`, whose detections were not followed.
    pub sources_refused: u64,
    /// Snapshots attached to verdicts, and those not made (over the bound, or failed).
    pub snapshots_encoded: u64,
    pub snapshots_skipped: u64,
    /// The clip assembler's figures (clips collecting, their bytes, overflows, lost tracks).
    pub clips: ClipStats,
    /// NVMM input: `NvBufSurfTransform` calls, the tiles they cut, batched calls that failed.
    pub transforms: TransformStats,
    /// Incidents: opened = alerted + dismissed + open.
    pub incidents: super::incidents::Counts,
    pub scorer: String,
    pub pool_name: String,
    pub model_instance_id: String,
    pub instance_users: u32,
}

impl Stats {
    pub fn to_structure(&self) -> gst::Structure {
        let c = &self.counters;
        let p = &self.pool;
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
            .field("max-workers", self.max_workers)
            .field("worker-restarts", p.worker_restarts)
            .field("avg-processing-ms", c.avg_processing_ms())
            .field("queue-depth", p.queue_depth as u32)
            .field("queue-size", self.queue_size)
            .field("results-waiting", self.results_waiting)
            .field("results-overflowed", self.results_overflowed)
            .field("publish-overflowed", self.publish_overflowed)
            .field("sources-refused", self.sources_refused)
            .field("snapshots-encoded", self.snapshots_encoded)
            .field("snapshots-skipped", self.snapshots_skipped)
            .field("scorer", self.scorer.as_str())
            .field("pool", self.pool_name.as_str())
            .field("model-instance-id", self.model_instance_id.as_str())
            .field("instance-users", self.instance_users)
            .field("clips-collecting", self.clips.collecting as u32)
            .field("clips-most-collecting", self.clips.most_collecting as u32)
            .field("clips-collecting-bytes", self.clips.collecting_bytes)
            .field("clips-overflowed", self.clips.overflowed)
            .field("clips-lost-completed", self.clips.lost_completed)
            .field("clips-lost-dropped", self.clips.lost_dropped)
            .field("detections-capped", self.clips.detections_capped)
            .field("clips-over-max", self.clips.over_max_clips)
            .field("tiles-over-budget", self.clips.over_tile_budget)
            .field("tracks", self.clips.tracks as u32)
            .field("nvmm-transform-calls", self.transforms.calls)
            .field("nvmm-tiles", self.transforms.tiles)
            .field("nvmm-batch-failures", self.transforms.batch_failures)
            .field("incidents-opened", self.incidents.opened)
            .field("incidents-alerted", self.incidents.alerted)
            .field("incidents-dismissed", self.incidents.dismissed)
            .field("incidents-open", self.incidents.open)
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_once_with_its_type() {
        gst::init().unwrap();
        let s = Stats {
            max_workers: 3,
            queue_size: 9,
            scorer: "onnx".into(),
            ..Default::default()
        }
        .to_structure();
        assert_eq!(s.name(), "iguard-stats");
        assert_eq!(s.n_fields(), 44);
        assert_eq!(s.get::<u64>("submitted").unwrap(), 0);
        assert_eq!(s.get::<u32>("max-workers").unwrap(), 3);
        assert_eq!(s.get::<u32>("queue-size").unwrap(), 9);
        assert_eq!(s.get::<f64>("avg-processing-ms").unwrap(), 0.0);
        assert_eq!(s.get::<&str>("scorer").unwrap(), "onnx");
        assert_eq!(s.get::<u64>("sources-refused").unwrap(), 0);
    }
}
