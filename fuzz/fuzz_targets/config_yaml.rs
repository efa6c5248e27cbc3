// SPDX-License-Identifier: MIT OR Apache-2.0
//! Fuzzes the I-Guard `config.yaml` reader (`config::Step2Config::from_yaml`), which
//! `iguardverify config-file=...` runs on whatever file it is given.
//!
//! Beyond "never panics": every value it accepts is within the range of the property it sets,
//! and its overlay on the element's settings names one property per key given.

#![no_main]

use gstiguard::config::Step2Config;
use libfuzzer_sys::fuzz_target;

fn within<T: PartialOrd + std::fmt::Debug>(v: Option<T>, min: T, max: T, key: &str) {
    if let Some(v) = v {
        assert!(v >= min && v <= max, "step2.{key} = {v:?} accepted");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Step2Config::from_yaml(text) {
        Ok(c) => {
            within(c.verification_threshold, 0.0, 1.0, "verification_threshold");
            within(c.temporal_size, 1, 1024, "temporal_size");
            within(c.max_workers, 1, 64, "max_workers");
            within(c.queue_size, 1, 10_000, "queue_size");
            within(c.result_queue_size, 0, 100_000, "result_queue_size");
            within(c.worker_timeout_sec, 0.001, 3600.0, "worker_timeout_sec");
            if let Some((w, h)) = c.input_size {
                within(Some(w), 1, 4096, "input_size");
                within(Some(h), 1, 4096, "input_size");
            }
            let names = c.overlay().property_names();
            // One property per key given (input_size gives two).
            let given = [
                c.enabled.is_some(),
                c.model_path.is_some(),
                c.model_type.is_some(),
                c.verification_threshold.is_some(),
                c.input_size.is_some(),
                c.input_size.is_some(),
                c.temporal_size.is_some(),
                c.async_enabled.is_some(),
                c.max_workers.is_some(),
                c.queue_size.is_some(),
                c.result_queue_size.is_some(),
                c.worker_timeout_sec.is_some(),
            ];
            assert_eq!(names.len(), given.iter().filter(|g| **g).count());
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
        }
    }
});
