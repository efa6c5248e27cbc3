// SPDX-License-Identifier: MIT OR Apache-2.0
//! Remote against local on the same model (`make bench` and `make bench-quick` run it after the
//! main benchmark; `make bench-triton` runs it alone). Not a test: it measures and prints, it
//! asserts nothing about speed.
//!
//! ```text
//! cargo run --release --example bench_triton -- [--quick] [--out PATH]
//! ```
//!
//! Starts the test server (`tests/triton/server.py` in the venv of `make triton-venv`, through
//! the tests' own harness) with the tiny model, and scores the same clips with the remote scorer
//! (`TritonScorer`) and the local one (`OnnxScorer`, one intra-op thread, as each server
//! instance has), one caller, at batch 1 and 4. The two scorers' calls alternate, so a busy
//! machine slows both alike. Figures, printed as `name: value` lines and written as JSON
//! (`--out`, default `bench-results/bench-triton.json`):
//!
//! - `onnx_clips_per_s_batchN`, `triton_clips_per_s_batchN`: clips scored per second;
//! - `onnx_ms_per_clip_batchN`, `triton_ms_per_clip_batchN`: the same as time per clip;
//! - `triton_added_ms_per_clip_batchN`: what the remote path adds to each clip (the request's
//!   bytes, gRPC over loopback, Triton, its Python backend);
//! - `triton_server_start_s`, `triton_server_stop_s`: until the model is ready; a clean stop.

#[path = "../tests/triton/harness.rs"]
mod harness;
#[path = "common/report.rs"]
mod report;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use gstiguard::clip::Clip;
use gstiguard::scorer::model_io::{ClassRef, ModelIo};
use gstiguard::scorer::onnx::{OnnxConfig, OnnxScorer};
use gstiguard::scorer::triton::{TritonConfig, TritonScorer};
use gstiguard::scorer::{Cancel, Score, Scorer};
use harness::{Options, Server, noise_clip, tiny_model};
use report::{json_num, json_str};

const BATCHES: [usize; 2] = [1, 4];

struct Opts {
    quick: bool,
    out: PathBuf,
}

impl Opts {
    fn parse() -> Result<Opts, String> {
        let mut args = std::env::args().skip(1);
        let (mut quick, mut out) = (false, None);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--quick" => quick = true,
                "--out" => out = Some(PathBuf::from(args.next().ok_or("--out needs a value")?)),
                "-h" | "--help" => return Err("usage: bench_triton [--quick] [--out PATH]".into()),
                other => return Err(format!("unknown argument {other:?} (try --help)")),
            }
        }
        Ok(Opts {
            quick,
            out: out.unwrap_or_else(|| PathBuf::from("bench-results/bench-triton.json")),
        })
    }

    /// Timed calls per scorer and batch size, after `warmup` untimed ones.
    fn rounds(&self) -> (usize, usize) {
        if self.quick { (12, 3) } else { (60, 5) }
    }
}

/// Figures in the order they were measured.
#[derive(Default)]
struct Figures(Vec<(String, f64)>);

impl Figures {
    fn add(&mut self, name: impl Into<String>, value: f64) {
        let name = name.into();
        println!("{name}: {value:.3}");
        self.0.push((name, value));
    }

    fn json(&self, opts: &Opts, rounds: usize, wall_s: f64) -> String {
        let figures: BTreeMap<&str, f64> = self.0.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        let mut j = String::from("{\n");
        let mode = if opts.quick { "quick" } else { "full" };
        let _ = writeln!(j, "  \"mode\": \"{mode}\",");
        let _ = writeln!(
            j,
            "  \"model\": {},",
            json_str(&tiny_model().display().to_string())
        );
        let _ = writeln!(j, "  \"calls_per_row\": {rounds},");
        let _ = writeln!(j, "  \"wall_s\": {},", json_num(wall_s));
        let rows: Vec<String> = figures
            .iter()
            .map(|(n, v)| format!("    {}: {}", json_str(n), json_num(*v)))
            .collect();
        let _ = writeln!(j, "  \"figures\": {{\n{}\n  }}", rows.join(",\n"));
        j.push_str("}\n");
        j
    }
}

fn score(s: &dyn Scorer, clips: &[&Clip]) -> Result<Vec<Score>, String> {
    s.score(clips, &Cancel::new())
        .map_err(|e| format!("{}: {e}", s.name()))
}

/// Both scorers give the same scores, or the figures compare different work.
fn agree(local: &[Score], remote: &[Score]) -> Result<(), String> {
    let same = local.len() == remote.len()
        && local
            .iter()
            .zip(remote)
            .all(|(l, r)| (l.score - r.score).abs() < 1e-4 && l.label == r.label);
    if same {
        Ok(())
    } else {
        Err(format!(
            "the server's scores differ from the local ones: {remote:?} vs {local:?}"
        ))
    }
}

fn run(opts: &Opts, figures: &mut Figures) -> Result<(), String> {
    let (rounds, warmup) = opts.rounds();
    let mut server = Server::start(Options {
        max_batch: BATCHES[BATCHES.len() - 1] as u32,
        ..Default::default()
    });
    figures.add("triton_server_start_s", server.started_in.as_secs_f64());
    let max_batch = BATCHES[BATCHES.len() - 1];
    let remote = TritonScorer::connect(TritonConfig {
        url: server.url(),
        model_name: "tiny-action".into(),
        io: ModelIo {
            positive: vec![ClassRef::Index(1)],
            ..Default::default()
        },
        max_batch,
        in_flight: 1,
        ..Default::default()
    })
    .map_err(|e| format!("connect: {e}"))?;
    let local = OnnxScorer::load(OnnxConfig {
        model_path: tiny_model(),
        io: ModelIo {
            positive: vec![ClassRef::Index(1)],
            ..Default::default()
        },
        threads: 1,
        sessions: 1,
        max_batch,
        ..Default::default()
    })
    .map_err(|e| format!("the local ONNX scorer: {e} (is ORT_DYLIB_PATH set?)"))?;
    let clips: Vec<Clip> = (100..100 + max_batch as u64).map(noise_clip).collect();

    println!(
        "tiny model, {}x{}x{} clips, one caller, {rounds} calls per scorer and batch size",
        clips[0].frames, clips[0].height, clips[0].width
    );
    for batch in BATCHES {
        let refs: Vec<&Clip> = clips[..batch].iter().collect();
        agree(&score(&local, &refs)?, &score(&remote, &refs)?)?;
        for _ in 0..warmup {
            score(&local, &refs)?;
            score(&remote, &refs)?;
        }
        let (mut local_time, mut remote_time) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..rounds {
            let t0 = Instant::now();
            score(&local, &refs)?;
            local_time += t0.elapsed();
            let t0 = Instant::now();
            score(&remote, &refs)?;
            remote_time += t0.elapsed();
        }
        let clips_scored = (rounds * batch) as f64;
        let ms_per_clip = |t: Duration| t.as_secs_f64() * 1000.0 / clips_scored;
        let (local_ms, remote_ms) = (ms_per_clip(local_time), ms_per_clip(remote_time));
        figures.add(format!("onnx_clips_per_s_batch{batch}"), 1000.0 / local_ms);
        figures.add(
            format!("triton_clips_per_s_batch{batch}"),
            1000.0 / remote_ms,
        );
        figures.add(format!("onnx_ms_per_clip_batch{batch}"), local_ms);
        figures.add(format!("triton_ms_per_clip_batch{batch}"), remote_ms);
        figures.add(
            format!("triton_added_ms_per_clip_batch{batch}"),
            remote_ms - local_ms,
        );
    }
    drop(remote);
    figures.add("triton_server_stop_s", server.stop().as_secs_f64());
    Ok(())
}

fn main() -> ExitCode {
    let opts = match Opts::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let t0 = Instant::now();
    let mut figures = Figures::default();
    let outcome = run(&opts, &mut figures);
    let (rounds, _) = opts.rounds();

    println!();
    println!(
        "{:<8} {:>5} {:>10} {:>12}",
        "scorer", "batch", "clips/s", "ms per clip"
    );
    let get = |n: String| {
        figures
            .0
            .iter()
            .find(|(f, _)| *f == n)
            .map_or(f64::NAN, |(_, v)| *v)
    };
    for batch in BATCHES {
        for scorer in ["onnx", "triton"] {
            println!(
                "{scorer:<8} {batch:>5} {:>10.1} {:>12.2}",
                get(format!("{scorer}_clips_per_s_batch{batch}")),
                get(format!("{scorer}_ms_per_clip_batch{batch}"))
            );
        }
        println!(
            "added by the server at batch {batch}: {:.2} ms per clip",
            get(format!("triton_added_ms_per_clip_batch{batch}"))
        );
    }

    if let Some(dir) = opts.out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let json = figures.json(&opts, rounds, t0.elapsed().as_secs_f64());
    if let Err(e) = std::fs::write(&opts.out, json) {
        eprintln!("cannot write {}: {e}", opts.out.display());
        return ExitCode::FAILURE;
    }
    println!("written to {}", opts.out.display());
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
