// SPDX-License-Identifier: MIT OR Apache-2.0
//! The examples in `pipelines/`, run the way a user runs them (as programs, from the repository
//! root, with `GST_PLUGIN_PATH` pointing at this build and few frames via `IGUARD_NUM_BUFFERS`).
//!
//! What each test proves: the replay demo exits 0 and prints every verdict and stats that add
//! up (scored by the tiny model when it and ONNX Runtime are there), also when its settings come
//! from `pipelines/config.yaml`; the multi-camera script's four elements verify and report one
//! shared pool with four users; `verdicts.py` prints verdicts from the bus and from buffer metas
//! and the stats, and exits non-zero on a pipeline error or a description it cannot build; the
//! DeepStream script says what it needs where DeepStream is absent and builds the direct
//! (NVMM) and converter descriptions; NVMM caps before the element link; the
//! Service Maker YAML has the schema NVIDIA's samples use, edges between its nodes, and only
//! real `iguardverify` properties with acceptable values; every file is listed in the README
//! and says in its header what it needs and whether it was run here.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use gst::prelude::*;
use serde_norway::Value;

/// How long one example may run before the test kills it.
const LIMIT: Duration = Duration::from_secs(180);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn example(name: &str) -> PathBuf {
    root().join("pipelines").join(name)
}

/// `GST_PLUGIN_PATH` from the environment, or the target directory of this test binary (which
/// holds the plugin cargo built with it).
fn plugin_path() -> String {
    if let Some(p) = std::env::var_os("GST_PLUGIN_PATH").filter(|p| !p.is_empty()) {
        return p.to_string_lossy().into_owned();
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    assert!(
        dir.join("libgstiguard.so").exists(),
        "no libgstiguard.so in {}: set GST_PLUGIN_PATH",
        dir.display()
    );
    dir.to_string_lossy().into_owned()
}

/// Whether the tiny model and ONNX Runtime are both there, so the examples score with it.
fn tiny_model_runs() -> bool {
    let ort = std::env::var_os("ORT_DYLIB_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/ort/libonnxruntime.so"));
    root().join("models/tiny-action.onnx").exists() && ort.exists()
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn assert_ok(&self, what: &str) {
        assert_eq!(
            self.code,
            Some(0),
            "{what} failed\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
    }

    fn lines(&self, prefix: &str) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }
}

/// Runs `program` from the repository root with `env`, killing its process group after
/// `LIMIT`.
fn run(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(root())
        .env("GST_PLUGIN_PATH", plugin_path())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            panic!(
                "{} did not finish within {LIMIT:?}\n--- stdout\n{}\n--- stderr\n{}",
                program.display(),
                out.join().unwrap(),
                err.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// The word after `key ` in a formatted line (`... pool 3, ...` → `3`).
fn after<'a>(line: &'a str, key: &str) -> &'a str {
    let at = line
        .find(&format!(" {key} "))
        .unwrap_or_else(|| panic!("no {key} in {line:?}"));
    line[at + key.len() + 2..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches([',', ';'])
}

/// The element a `verdict <element> #<id> ...` or `stats <element>: ...` line is about.
fn element_of(line: &str) -> &str {
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
}

fn count(line: &str, key: &str) -> u64 {
    after(line, key).parse().unwrap()
}

/// Checks a formatted stats line adds up and matches the verdicts printed for its element.
fn check_stats(stats: &str, verdicts: &[&str]) {
    let submitted = count(stats, "submitted");
    let parts: u64 = [
        "verified",
        "rejected",
        "fallback",
        "timed-out",
        "dropped",
        "failed",
        "pending",
    ]
    .iter()
    .map(|k| count(stats, k))
    .sum();
    assert_eq!(submitted, parts, "{stats}");
    assert_eq!(count(stats, "pending"), 0, "{stats}");
    let element = element_of(stats);
    let printed = verdicts.iter().filter(|v| element_of(v) == element).count();
    assert_eq!(
        submitted as usize, printed,
        "every verdict of {element} was printed"
    );
}

#[test]
fn replay_demo_prints_every_verdict_and_stats_that_add_up() {
    let r = run(
        &example("replay-demo.sh"),
        &[],
        &[("IGUARD_NUM_BUFFERS", "45")],
    );
    r.assert_ok("replay-demo.sh");
    let verdicts = r.lines("verdict ");
    assert!(verdicts.len() >= 2, "{}", r.stdout);
    let stats = r.lines("stats ");
    assert_eq!(stats.len(), 1, "{}", r.stdout);
    check_stats(stats[0], &verdicts);
    if tiny_model_runs() {
        assert!(
            verdicts.iter().all(|v| after(v, "scorer") == "onnx"),
            "{}",
            r.stdout
        );
        // The clip with the weapon beside the red object (frames 21-36).
        assert!(
            verdicts
                .iter()
                .any(|v| v.contains(": verified ") && v.contains("label armed")),
            "{}",
            r.stdout
        );
    }
}

#[test]
fn replay_demo_runs_from_the_example_config() {
    let r = run(
        &example("replay-demo.sh"),
        &[],
        &[
            ("IGUARD_NUM_BUFFERS", "45"),
            ("IGUARD_CONFIG", "pipelines/config.yaml"),
        ],
    );
    r.assert_ok("replay-demo.sh with pipelines/config.yaml");
    assert!(
        r.stderr.contains("config-file=pipelines/config.yaml"),
        "{}",
        r.stderr
    );
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        !all.contains("unknown step2 keys"),
        "every key of the example is known: {all}"
    );
    let verdicts = r.lines("verdict ");
    assert!(verdicts.len() >= 2, "{}", r.stdout);
    check_stats(r.lines("stats ")[0], &verdicts);
    if tiny_model_runs() {
        assert!(
            verdicts.iter().all(|v| after(v, "scorer") == "onnx"),
            "the file's model_path loaded: {all}"
        );
    }
}

#[test]
fn multi_camera_elements_share_one_pool() {
    let r = run(
        &example("multi-camera-shared-model.sh"),
        &[],
        &[("IGUARD_NUM_BUFFERS", "40")],
    );
    r.assert_ok("multi-camera-shared-model.sh");
    let verdicts = r.lines("verdict ");
    let stats = r.lines("stats ");
    let elements: BTreeSet<&str> = stats.iter().map(|s| element_of(s)).collect();
    assert_eq!(
        elements,
        BTreeSet::from(["cam0", "cam1", "cam2", "cam3"]),
        "{}",
        r.stdout
    );
    let pools: BTreeSet<&str> = stats.iter().map(|s| after(s, "pool")).collect();
    assert_eq!(pools.len(), 1, "one pool for the four elements: {stats:#?}");
    for s in &stats {
        assert_eq!(after(s, "model-instance-id"), "site", "{s}");
        assert_eq!(after(s, "instance-users"), "4", "{s}");
        check_stats(s, &verdicts);
        assert!(count(s, "submitted") >= 1, "every camera verified: {s}");
    }
}

fn python() -> PathBuf {
    let p = PathBuf::from("/usr/bin/python3");
    assert!(
        p.exists(),
        "verdicts.py needs Debian's /usr/bin/python3 (python3-gi)"
    );
    p
}

#[test]
fn verdicts_py_prints_verdicts_from_the_bus_and_the_meta_and_the_stats() {
    let script = example("verdicts.py");
    let r = run(
        &python(),
        &[script.to_str().unwrap()],
        &[("IGUARD_NUM_BUFFERS", "45")],
    );
    r.assert_ok("verdicts.py");
    let id = |line: &str| -> u64 {
        let hash = line.find(" #").unwrap();
        line[hash + 2..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let bus: BTreeSet<u64> = r.lines("bus ").iter().map(|l| id(l)).collect();
    let meta: Vec<u64> = r.lines("meta ").iter().map(|l| id(l)).collect();
    assert!(bus.len() >= 2, "{}", r.stdout);
    assert!(!meta.is_empty(), "{}", r.stdout);
    assert!(
        meta.iter().all(|m| bus.contains(m)),
        "every meta verdict was on the bus: {}",
        r.stdout
    );
    let stats = r.lines("stats v: ");
    assert_eq!(stats.len(), 1, "{}", r.stdout);
    assert!(
        stats[0].contains(&format!("submitted={} ", bus.len())) && stats[0].contains("pending=0"),
        "{}",
        stats[0]
    );
    assert!(
        r.stdout
            .contains(&format!("{} verdicts on the bus", bus.len())),
        "{}",
        r.stdout
    );
}

#[test]
fn verdicts_py_exits_non_zero_on_a_pipeline_error() {
    let script = example("verdicts.py");
    let r = run(
        &python(),
        &[
            script.to_str().unwrap(),
            "videotestsrc num-buffers=5 ! iguardverify trigger-labels=\" , \" ! fakesink",
        ],
        &[],
    );
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("trigger-labels"), "{}", r.stderr);

    let r = run(
        &python(),
        &[script.to_str().unwrap(), "videotestsrc ! no-such-element"],
        &[],
    );
    assert_eq!(r.code, Some(2), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("no-such-element"), "{}", r.stderr);
}

fn deepstream_installed() -> bool {
    Command::new("gst-inspect-1.0")
        .arg("nvstreammux")
        .env("GST_PLUGIN_PATH", plugin_path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn the_deepstream_script_says_what_it_needs_and_builds_both_layouts() {
    let script = example("deepstream-pipeline.sh");
    if deepstream_installed() {
        eprintln!("DeepStream is installed: run {} by hand", script.display());
    } else {
        let r = run(&script, &[], &[]);
        assert_eq!(r.code, Some(1));
        assert!(
            r.stderr.contains("needs NVIDIA DeepStream") && r.stderr.contains("nvstreammux"),
            "{}",
            r.stderr
        );
    }

    // The direct form: NVMM batches straight from nvinfer (and nvtracker) into the element.
    let direct = run(
        &script,
        &["file:///a.mp4", "rtsp://192.0.2.1/cam2"],
        &[
            ("IGUARD_DRY_RUN", "1"),
            ("TRACKER", "/ds/lib/libtracker.so"),
        ],
    );
    direct.assert_ok("deepstream-pipeline.sh (dry run, direct)");
    let d = &direct.stdout;
    for part in [
        "nvstreammux name=m batch-size=2",
        "nvinfer config-file-path=",
        "batch-size=2 \\! nvtracker ll-lib-file=/ds/lib/libtracker.so \\! iguardverify",
        "deepstream-version=9.0",
        "class-labels=",
        "name=v \\! nvmultistreamtiler rows=1 columns=2",
        "\\! nvdsosd \\! fakesink",
    ] {
        assert!(d.contains(part), "{part:?} missing from {d}");
    }
    assert!(
        !d.contains("nvstreamdemux") && !d.contains("nvvideoconvert"),
        "{d}"
    );
    assert_eq!(d.matches("! iguardverify").count(), 1, "{d}");

    let one = run(
        &script,
        &[],
        &[
            ("IGUARD_DRY_RUN", "1"),
            ("IGUARD_CONVERT", "1"),
            ("DS_VERSION", "7.1"),
        ],
    );
    one.assert_ok("deepstream-pipeline.sh (dry run, converter form, one camera)");
    let d = &one.stdout;
    for part in [
        "nvstreammux name=m batch-size=1",
        "nvvideoconvert \\! video/x-raw\\,format=RGBA \\! iguardverify",
        "deepstream-version=7.1",
        "video/x-raw\\(memory:NVMM\\)\\,format=RGBA \\! nvdsosd",
    ] {
        assert!(d.contains(part), "{part:?} missing from {d}");
    }
    assert!(!d.contains("nvstreamdemux"), "{d}");

    let two = run(
        &script,
        &["file:///a.mp4", "rtsp://192.0.2.1/cam2"],
        &[("IGUARD_DRY_RUN", "1"), ("IGUARD_CONVERT", "1")],
    );
    two.assert_ok("deepstream-pipeline.sh (dry run, two cameras)");
    let d = &two.stdout;
    for part in [
        "uri=file:///a.mp4 \\! m.sink_0",
        "uri=rtsp://192.0.2.1/cam2 \\! m.sink_1",
        "nvstreammux name=m batch-size=2",
        "nvstreamdemux name=d d.src_0 \\! queue",
        "d.src_1 \\! queue",
        "deepstream-version=9.0",
    ] {
        assert!(d.contains(part), "{part:?} missing from {d}");
    }
    assert_eq!(d.matches("model-instance-id=site").count(), 2, "{d}");
    assert_eq!(d.matches("! iguardverify").count(), 2, "{d}");
}

#[test]
fn nvmm_caps_before_the_element_link() {
    // No NVMM producer here: the link (caps negotiation) is what is checked; the first buffer
    // (system memory posing as NVMM, no NvBufSurface) fails its tile reads, not the pipeline.
    let r = run(
        Path::new("gst-launch-1.0"),
        &[
            "videotestsrc",
            "num-buffers=1",
            "!",
            "video/x-raw,format=NV12",
            "!",
            "capssetter",
            "caps=video/x-raw(memory:NVMM)",
            "join=true",
            "replace=false",
            "!",
            "iguardverify",
            "!",
            "fakesink",
        ],
        &[],
    );
    assert!(!r.stderr.contains("could not link"), "{}", r.stderr);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

/// A YAML scalar as gst-launch would write it.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

#[test]
fn the_service_maker_yaml_has_the_schema_edges_and_real_properties() {
    let text = std::fs::read_to_string(example("deepstream-service-maker.yaml")).unwrap();
    let doc: Value = serde_norway::from_str(&text).unwrap();
    let ds = doc.get("deepstream").expect("a deepstream: section");
    let nodes = ds
        .get("nodes")
        .and_then(Value::as_sequence)
        .expect("deepstream.nodes: a list");
    let mut by_name: BTreeMap<String, &Value> = BTreeMap::new();
    for n in nodes {
        let name = n.get("name").and_then(Value::as_str).expect("a node name");
        n.get("type").and_then(Value::as_str).expect("a node type");
        if let Some(p) = n.get("properties") {
            assert!(p.as_mapping().is_some(), "{name}: properties is a mapping");
        }
        assert!(
            by_name.insert(name.to_string(), n).is_none(),
            "node {name} twice"
        );
    }
    let edges = ds
        .get("edges")
        .and_then(Value::as_mapping)
        .expect("deepstream.edges: a mapping");
    let mut next: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (from, to) in edges {
        // `node` or `node.pad`.
        let from = from
            .as_str()
            .unwrap()
            .split('.')
            .next()
            .unwrap()
            .to_string();
        let targets: Vec<String> = match to {
            Value::Sequence(s) => s.iter().map(|t| t.as_str().unwrap().to_string()).collect(),
            t => vec![t.as_str().unwrap().to_string()],
        };
        for t in targets.iter().chain([&from]) {
            assert!(by_name.contains_key(t), "edge names unknown node {t}");
        }
        next.entry(from).or_default().extend(targets);
    }
    // One chain from the camera to the sink, with the element after nvinfer.
    let mut chain = vec!["src".to_string()];
    while let Some(n) = next.get(chain.last().unwrap()) {
        assert_eq!(n.len(), 1, "a single chain");
        chain.push(n[0].clone());
        assert!(chain.len() <= by_name.len(), "a cycle: {chain:?}");
    }
    assert_eq!(chain.len(), by_name.len(), "every node is on it: {chain:?}");
    let types: Vec<&str> = chain
        .iter()
        .map(|n| by_name[n].get("type").unwrap().as_str().unwrap())
        .collect();
    let at = |t: &str| types.iter().position(|x| *x == t).unwrap();
    assert!(at("nvinfer") < at("iguardverify") && at("iguardverify") < at("nvdsosd"));

    // The element's properties exist and take their values.
    common::init();
    let verify = nodes
        .iter()
        .find(|n| n.get("type").and_then(Value::as_str) == Some("iguardverify"))
        .unwrap();
    let e = gst::ElementFactory::make("iguardverify").build().unwrap();
    let props = verify.get("properties").unwrap().as_mapping().unwrap();
    for (k, v) in props {
        let k = k.as_str().unwrap();
        assert!(e.find_property(k).is_some(), "iguardverify has no {k}");
        e.set_property_from_str(k, &scalar(v));
        let back = e.property_value(k);
        if let Ok(s) = back.get::<Option<String>>() {
            assert_eq!(s.as_deref(), Some(scalar(v).as_str()), "{k}");
        }
    }
    assert_eq!(e.property::<u32>("max-workers"), 1);
    assert_eq!(e.property::<f64>("worker-timeout"), 10.0);

    // The direct form: nvinfer's (tracked) NVMM batches reach it with no converter, and its
    // sink pad accepts NVMM caps.
    let before = &chain[chain.iter().position(|n| n == "verify").unwrap() - 1];
    assert_eq!(
        by_name[before].get("type").unwrap().as_str(),
        Some("nvtracker")
    );
    assert!(!types.contains(&"nvvideoconvert") && !types.contains(&"capsfilter"));
    let template = e.pad_template("sink").unwrap().caps().clone();
    let nvmm = gst::Caps::from_str("video/x-raw(memory:NVMM),format=NV12").unwrap();
    assert!(template.can_intersect(&nvmm));
}

#[test]
fn every_example_is_listed_and_says_what_it_needs_and_whether_it_ran_here() {
    let readme = std::fs::read_to_string(example("README.md")).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(root().join("pipelines"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "README.md")
        .collect();
    files.sort();
    assert!(files.len() >= 7, "{files:?}");
    for f in &files {
        assert!(readme.contains(&format!("`{f}`")), "README.md lacks {f}");
        let text = std::fs::read_to_string(example(f)).unwrap();
        let head: String = text.lines().take(70).collect::<Vec<_>>().join("\n");
        assert!(
            head.contains("Needs:") && head.contains("Run here:"),
            "{f}: its header must say what it needs and whether it was run here"
        );
        if f.ends_with(".sh") && f != "common.sh" || f.ends_with(".py") {
            let mode = std::fs::metadata(example(f)).unwrap().permissions().mode();
            assert!(mode & 0o111 != 0, "{f} is not executable");
        }
        if f.ends_with(".sh") {
            let st = Command::new("bash")
                .arg("-n")
                .arg(example(f))
                .status()
                .unwrap();
            assert!(st.success(), "{f}: bash -n failed");
        }
    }
}
