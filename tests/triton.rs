// SPDX-License-Identifier: MIT OR Apache-2.0
//! The remote (Triton, KServe v2 gRPC) scorer against a real Triton Inference Server that each
//! test starts and stops itself (`tests/triton/server.py`, venv from `make triton-venv`; ONNX
//! Runtime for the local comparison from `ORT_DYLIB_PATH`, set by the Makefile).
//!
//! What each test proves: the server's scores equal the local ONNX scorer's on the same clips,
//! and the model's shape reaches `info()`; a batch of N equals N single calls and the server's
//! batch limit caps `max_batch()`; a server killed mid-call gives `Failed` with the reason at
//! once (never a wait past the deadline) and the scorer reconnects by itself once it is back;
//! an unreachable server, an unknown model and labels that do not fit give clear errors at
//! connect; a deadline (the pool's cancel, or the scorer's own timeout) ends a call with
//! `Cancelled` on time; several threads have calls in flight at once, up to `in_flight`; TLS
//! with the server's own authority works, and a certificate from another is refused.
//!
//! And through the element (`model-type=triton`, real pipelines): the demo clips score on the
//! server as they do locally, and an unreachable server gives the warning and the fallback;
//! three elements in one pipeline share one server, the two with one `model-instance-id` one
//! pool (`instance-users` 2 while playing) and the third a pool of its own, each with its own
//! verdicts from the server and the same scores for the same clips; in a live pipeline, a
//! server killed mid-run gives `error` verdicts that name the server and why (on the bus and as
//! meta on buffers) while buffers keep reaching the sink, and once the server is back on the
//! same port the element's clips are verified by it again, with the same score as before the
//! crash; a server slower than `worker-timeout` gives `timeout` verdicts while the video flows,
//! and once it is quick again clips are verified again. `stats` adds up after every run; the
//! live runs end at EOS with nothing pending and one verdict per request. They move from phase
//! to phase on what they observe (verdicts, buffer counts); their time limits only guard
//! against hangs.

mod common;
#[path = "triton/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{Stats, with_watchdog};
use gst::prelude::*;
use gstiguard::clip::Clip;
use gstiguard::scorer::model_io::{ClassRef, ModelIo};
use gstiguard::scorer::onnx::{OnnxConfig, OnnxScorer};
use gstiguard::scorer::triton::{TlsConfig, TritonConfig, TritonError, TritonScorer};
use gstiguard::scorer::{Cancel, Score, ScoreError, Scorer};
use gstiguard::verdict::{Status, Verdict};
use harness::{Options, Server, free_port, noise_clip, tiny_model};

fn config(server: &Server) -> TritonConfig {
    TritonConfig {
        url: server.url(),
        model_name: "tiny-action".into(),
        io: ModelIo {
            positive: vec![ClassRef::Index(1)],
            ..Default::default()
        },
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        ..Default::default()
    }
}

fn connect(config: TritonConfig) -> TritonScorer {
    TritonScorer::connect(config).unwrap_or_else(|e| panic!("connect: {e}"))
}

fn local(max_batch: usize) -> OnnxScorer {
    OnnxScorer::load(OnnxConfig {
        model_path: tiny_model(),
        io: ModelIo {
            positive: vec![ClassRef::Index(1)],
            ..Default::default()
        },
        max_batch,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("the local ONNX scorer: {e} (make test-triton sets ORT_DYLIB_PATH)"))
}

fn score(s: &dyn Scorer, clips: &[&Clip]) -> Result<Vec<Score>, ScoreError> {
    s.score(clips, &Cancel::new())
}

fn assert_close(a: &[Score], b: &[Score], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (x, y) in a.iter().zip(b) {
        assert!(
            (x.score - y.score).abs() < 1e-4 && x.label == y.label,
            "{what}: {x:?} vs {y:?}"
        );
    }
}

#[test]
fn scores_equal_the_local_onnx_scorers() {
    with_watchdog(Duration::from_secs(300), || {
        let server = Server::start(Options::default());
        let remote = connect(config(&server));
        let onnx = local(1);
        assert_eq!((remote.name(), remote.is_model()), ("triton", true));
        assert_eq!(remote.info(), onnx.info(), "the same model, seen remotely");
        assert_eq!(remote.positive_classes(), &[1]);

        let clips: Vec<Clip> = (1..=4).map(noise_clip).collect();
        let mut remote_scores = Vec::new();
        for c in &clips {
            let r = score(&remote, &[c]).expect("remote score");
            assert_close(&r, &score(&onnx, &[c]).unwrap(), "remote vs local");
            remote_scores.push(r[0].score);
        }
        assert!(
            remote_scores.windows(2).any(|w| (w[0] - w[1]).abs() > 1e-6),
            "different clips score differently: {remote_scores:?}"
        );

        // The same server, asked for what it does not have: errors that say what is wrong.
        let e = TritonScorer::connect(TritonConfig {
            model_name: "no-such-model".into(),
            ..config(&server)
        })
        .unwrap_err();
        assert!(matches!(e, TritonError::ModelNotReady { .. }), "{e:?}");
        assert!(e.to_string().contains("\"no-such-model\""), "{e}");
        let base = config(&server);
        let e = TritonScorer::connect(TritonConfig {
            io: ModelIo {
                labels: vec!["a".into(), "b".into(), "c".into()],
                ..base.io.clone()
            },
            ..base.clone()
        })
        .unwrap_err();
        let classes = onnx.info().classes.expect("the tiny model's class count");
        assert!(
            e.to_string().contains(&format!(
                "labels: 3 labels for a model with {classes} classes"
            )),
            "{e}"
        );
        let e = TritonScorer::connect(TritonConfig {
            io: ModelIo {
                input_name: Some("frames".into()),
                ..base.io.clone()
            },
            ..base
        })
        .unwrap_err();
        assert!(
            e.to_string().contains("\"frames\"") && e.to_string().contains("input_rgb"),
            "{e}"
        );
        // A clip of the wrong shape is refused before anything is sent.
        let mut small = noise_clip(9);
        small.frames = 8;
        small.real_frames = 8;
        small.pixels.truncate(8 * 112 * 112 * 3);
        let e = score(&remote, &[&small]).unwrap_err().to_string();
        assert!(e.contains("frames 8") && e.contains("16"), "{e}");
        eprintln!("server started in {:.2} s", server.started_in.as_secs_f64());
    });
}

#[test]
fn a_batch_of_n_gives_the_scores_of_n_single_calls() {
    with_watchdog(Duration::from_secs(300), || {
        let server = Server::start(Options {
            max_batch: 4,
            ..Default::default()
        });
        let remote = connect(TritonConfig {
            max_batch: 16,
            ..config(&server)
        });
        assert_eq!(remote.server_max_batch(), Some(4));
        assert_eq!(
            remote.max_batch(),
            4,
            "capped by the server's max_batch_size"
        );
        let clips: Vec<Clip> = (10..14).map(noise_clip).collect();
        let refs: Vec<&Clip> = clips.iter().collect();
        let batch = score(&remote, &refs).unwrap();
        let singles: Vec<Score> = clips
            .iter()
            .map(|c| score(&remote, &[c]).unwrap().remove(0))
            .collect();
        assert_close(&batch, &singles, "batch vs singles");
        assert_close(
            &batch,
            &score(&local(4), &refs).unwrap(),
            "remote batch vs local batch",
        );
        // Three of four: a partial batch is fine too.
        assert_close(
            &score(&remote, &refs[..3]).unwrap(),
            &singles[..3],
            "partial batch",
        );
    });
}

#[test]
fn a_killed_server_fails_calls_with_the_reason_and_the_scorer_recovers_after_a_restart() {
    with_watchdog(Duration::from_secs(300), || {
        let mut server = Server::start(Options {
            sleep: 1.0,
            ..Default::default()
        });
        let port = server.grpc_port;
        let remote = Arc::new(connect(TritonConfig {
            request_timeout: Duration::from_secs(5),
            ..config(&server)
        }));
        let clip = Arc::new(noise_clip(21));
        let before = score(&*remote, &[&clip]).expect("before the kill");

        // A call in flight when the server dies.
        let call = {
            let (remote, clip) = (remote.clone(), clip.clone());
            std::thread::spawn(move || {
                let t0 = Instant::now();
                (score(&*remote, &[&clip]), t0.elapsed())
            })
        };
        std::thread::sleep(Duration::from_millis(400));
        server.kill();
        let (result, took) = call.join().unwrap();
        let reason = match result {
            Err(ScoreError::Failed(r)) => r,
            other => panic!("a call in flight on a killed server: {other:?}"),
        };
        assert!(reason.contains(&format!("127.0.0.1:{port}")), "{reason}");
        assert!(
            took < Duration::from_secs(3),
            "failed at once, took {took:?}"
        );
        eprintln!("in flight when killed: {reason}");

        // Later calls fail at once too, saying why, while nothing listens.
        for i in 0..5 {
            let t0 = Instant::now();
            match score(&*remote, &[&clip]) {
                Err(ScoreError::Failed(r)) => {
                    assert!(
                        r.contains(&format!("127.0.0.1:{port}"))
                            && (r.contains("refused") || r.contains("reconnecting")),
                        "{r}"
                    );
                    eprintln!("call {i} after the kill: {r}");
                }
                other => panic!("a call to a dead server: {other:?}"),
            }
            assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
            std::thread::sleep(Duration::from_millis(150));
        }

        // Back on the same port: the scorer reconnects by itself.
        let restarted = Server::start(Options {
            grpc_port: Some(port),
            ..Default::default()
        });
        let t0 = Instant::now();
        let after = loop {
            match score(&*remote, &[&clip]) {
                Ok(s) => break s,
                Err(ScoreError::Failed(_)) if t0.elapsed() < Duration::from_secs(30) => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                other => panic!("no recovery after the restart: {other:?}"),
            }
        };
        assert_close(&after, &before, "after the restart");
        eprintln!(
            "recovered {:.2} s after the restarted server was ready",
            t0.elapsed().as_secs_f64()
        );
        drop(restarted);
    });
}

#[test]
fn an_unreachable_server_is_a_clear_error_at_connect() {
    with_watchdog(Duration::from_secs(60), || {
        let port = free_port();
        let t0 = Instant::now();
        let e = TritonScorer::connect(TritonConfig {
            url: format!("127.0.0.1:{port}"),
            model_name: "tiny-action".into(),
            connect_timeout: Duration::from_secs(2),
            ..Default::default()
        })
        .unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        assert!(matches!(e, TritonError::Unreachable { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains(&format!("127.0.0.1:{port}"))
                && text.contains("Connection refused")
                && text.contains("8001"),
            "{text}"
        );
        eprintln!("{text}");

        // Something listens but never answers: connect gives up within its limits.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("127.0.0.1:{}", silent.local_addr().unwrap().port());
        let t0 = Instant::now();
        let e = TritonScorer::connect(TritonConfig {
            url: url.clone(),
            model_name: "tiny-action".into(),
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_millis(500),
            ..Default::default()
        })
        .unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        assert!(matches!(e, TritonError::Unreachable { .. }), "{e:?}");
        assert!(e.to_string().contains(&url), "{e}");
        eprintln!("{e}");
        drop(silent);

        let e = TritonScorer::connect(TritonConfig {
            url: "grpc://127.0.0.1:1".into(),
            model_name: "tiny-action".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(e, TritonError::Url { .. }), "{e:?}");
    });
}

#[test]
fn deadlines_end_calls_with_cancelled_on_time() {
    with_watchdog(Duration::from_secs(300), || {
        let server = Server::start(Options {
            sleep: 1.5,
            instances: 2,
            ..Default::default()
        });
        let remote = connect(config(&server));
        let clip = noise_clip(31);

        // The pool's deadline: its supervisor fires the call's Cancel.
        let cancel = Cancel::new();
        let c = cancel.clone();
        let timer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            c.cancel();
        });
        let t0 = Instant::now();
        let r = remote.score(&[&clip], &cancel);
        let took = t0.elapsed();
        timer.join().unwrap();
        assert!(matches!(r, Err(ScoreError::Cancelled)), "{r:?}");
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_millis(1000),
            "{took:?}"
        );

        // Already cancelled: nothing is sent.
        let cancel = Cancel::new();
        cancel.cancel();
        assert!(matches!(
            remote.score(&[&clip], &cancel),
            Err(ScoreError::Cancelled)
        ));

        // No cancel: the scorer's own request timeout ends the call.
        let short = connect(TritonConfig {
            request_timeout: Duration::from_millis(400),
            ..config(&server)
        });
        let t0 = Instant::now();
        let r = score(&short, &[&clip]);
        let took = t0.elapsed();
        assert!(matches!(r, Err(ScoreError::Cancelled)), "{r:?}");
        assert!(
            took >= Duration::from_millis(390) && took < Duration::from_millis(1000),
            "{took:?}"
        );

        // Cancelled calls leave the connection usable: a patient call gets its score.
        let r = score(&remote, &[&clip]).expect("a call after cancelled ones");
        assert_close(&r, &score(&local(1), &[&clip]).unwrap(), "after cancels");
    });
}

#[test]
fn several_calls_are_in_flight_at_once_up_to_the_limit() {
    with_watchdog(Duration::from_secs(300), || {
        let sleep = Duration::from_millis(800);
        let server = Server::start(Options {
            sleep: sleep.as_secs_f64(),
            instances: 4,
            ..Default::default()
        });
        let clips: Vec<Clip> = (40..44).map(noise_clip).collect();
        let expected: Vec<Score> = clips
            .iter()
            .map(|c| score(&local(1), &[c]).unwrap().remove(0))
            .collect();

        // Four threads, one call each, all at once. Returns how long the four took.
        let round = |remote: Arc<TritonScorer>| -> Duration {
            let barrier = Arc::new(Barrier::new(clips.len()));
            let t0 = Instant::now();
            let handles: Vec<_> = clips
                .iter()
                .cloned()
                .map(|clip| {
                    let (remote, barrier) = (remote.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        score(&*remote, &[&clip]).map(|mut s| s.remove(0))
                    })
                })
                .collect();
            for (h, want) in handles.into_iter().zip(&expected) {
                let got = h.join().unwrap().expect("a concurrent call");
                assert_close(&[got], std::slice::from_ref(want), "concurrent call");
            }
            t0.elapsed()
        };

        let wide = Arc::new(connect(TritonConfig {
            in_flight: 4,
            ..config(&server)
        }));
        round(wide.clone()); // warm up every instance
        let together = round(wide);
        let narrow = Arc::new(connect(TritonConfig {
            in_flight: 1,
            ..config(&server)
        }));
        let one_by_one = round(narrow);
        assert!(
            one_by_one >= sleep * 4,
            "in_flight=1 still let calls overlap: {one_by_one:?}"
        );
        // Four at once save three of the four server sleeps; the clients' own work (the same in
        // both rounds, and slow in debug builds on a busy machine) cancels out.
        assert!(
            one_by_one.saturating_sub(together) >= sleep * 2,
            "4 calls of {sleep:?}: {together:?} with in_flight=4 against {one_by_one:?} one by \
             one: not in flight together"
        );
        eprintln!(
            "4 calls of 0.8 s: {:.2} s with in_flight=4, {:.2} s with in_flight=1",
            together.as_secs_f64(),
            one_by_one.as_secs_f64()
        );
    });
}

#[test]
fn tls_with_the_servers_authority_works_and_a_stranger_is_refused() {
    with_watchdog(Duration::from_secs(300), || {
        let dir = std::env::temp_dir().join(format!("iguard-triton-tls-{}", std::process::id()));
        let (ca, cert, key) = harness::make_certificates(&dir, "good");
        let (other_ca, _, _) = harness::make_certificates(&dir, "other");
        let server = Server::start(Options {
            tls: Some((cert, key)),
            ..Default::default()
        });
        let tls = |ca: &std::path::Path| TritonConfig {
            url: format!("localhost:{}", server.grpc_port),
            tls: Some(TlsConfig {
                ca_file: Some(ca.to_path_buf()),
                ..Default::default()
            }),
            ..config(&server)
        };
        let remote = connect(tls(&ca));
        let clip = noise_clip(51);
        assert_close(
            &score(&remote, &[&clip]).unwrap(),
            &score(&local(1), &[&clip]).unwrap(),
            "over TLS",
        );
        // An explicit name to check, connecting by address.
        connect(TritonConfig {
            url: format!("https://127.0.0.1:{}", server.grpc_port),
            tls: Some(TlsConfig {
                ca_file: Some(ca.clone()),
                domain: Some("localhost".into()),
                ..Default::default()
            }),
            ..config(&server)
        });

        let e = TritonScorer::connect(tls(&other_ca)).unwrap_err();
        assert!(matches!(e, TritonError::Unreachable { .. }), "{e:?}");
        assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
        eprintln!("{e}");
        let e = TritonScorer::connect(config(&server)).unwrap_err();
        assert!(
            matches!(e, TritonError::Unreachable { .. }),
            "plain to TLS: {e:?}"
        );
        let _ = std::fs::remove_dir_all(dir);
    });
}

/// The element with `model-type=triton`: a real pipeline verifies the demo clips on the
/// server, with the same scores as the local ONNX scorer in the same pipeline; an unreachable
/// server gives the documented warning and the fallback.
#[test]
fn the_element_verifies_on_the_server_like_it_does_locally() {
    common::init();
    let server = Server::start(Options::default());
    let run = |verify: &str| -> Vec<(u64, String, f64, String)> {
        let desc = format!(
            "videotestsrc num-buffers=45 ! video/x-raw,width=320,height=240,format=RGBA,framerate=30/1 \
             ! iguardreplay location={}/tests/data/demo-detections.txt ! iguardverify name=v \
             cooldown=0 clip-per=source positive-classes=1 {verify} ! fakesink sync=false",
            env!("CARGO_MANIFEST_DIR")
        );
        let p = gst::parse::launch(&desc).unwrap();
        let _stop = common::StopOnDrop(p.clone());
        let bus = p.bus().unwrap();
        p.set_state(gst::State::Playing).unwrap();
        let mut out = Vec::new();
        for msg in bus.iter_timed(gst::ClockTime::from_seconds(120)) {
            match msg.view() {
                gst::MessageView::Eos(_) => break,
                gst::MessageView::Error(e) => panic!("{:?}", e.error()),
                gst::MessageView::Element(m) => {
                    if let Some(s) = m.structure()
                        && s.name() == gstiguard::meta::MESSAGE_NAME
                    {
                        let v = gstiguard::meta::from_structure(s).unwrap();
                        out.push((v.request_id, v.scorer, v.score, v.status.to_string()));
                    }
                }
                gst::MessageView::Warning(w) => {
                    out.push((0, "warning".into(), 0.0, w.error().to_string()))
                }
                _ => (),
            }
        }
        let v = p.downcast_ref::<gst::Bin>().unwrap().by_name("v").unwrap();
        common::Stats::of(&v).assert_adds_up();
        // Two workers may answer clips in either order.
        out.sort_by_key(|v| v.0);
        out
    };
    let remote = run(&format!(
        "model-type=triton server-url=http://{} model-name=tiny-action",
        server.url()
    ));
    let local = run(&format!("model-path={}", tiny_model().display()));
    assert_eq!(remote.len(), 3, "{remote:?}");
    assert_eq!(local.len(), 3, "{local:?}");
    for (r, l) in remote.iter().zip(&local) {
        assert_eq!((r.0, r.1.as_str(), l.1.as_str()), (l.0, "triton", "onnx"));
        assert!((r.2 - l.2).abs() < 1e-4, "remote {} vs local {}", r.2, l.2);
    }
    // Nothing listens there: warning, then the label-based fallback.
    let port = free_port();
    let down = run(&format!(
        "model-type=triton server-url=http://127.0.0.1:{port} model-name=tiny-action connect-timeout=1"
    ));
    assert!(
        down.iter()
            .any(|w| w.1 == "warning" && w.3.contains(&port.to_string())),
        "{down:?}"
    );
    assert_eq!(
        down.iter().filter(|v| v.1 == "fallback").count(),
        3,
        "{down:?}"
    );
}

/// Three elements in one pipeline on one server: v1 and v2 name one `model-instance-id` and
/// so share one connection and worker pool, v3 has its own. Each element gets its own verdicts
/// from the server, and the same clips score the same in every branch.
#[test]
fn several_elements_share_one_server_and_model_instance_id_still_shares_the_pool() {
    with_watchdog(Duration::from_secs(300), || {
        common::init();
        let t0 = Instant::now();
        let server = Server::start(Options::default());
        let branch = |name: &str, extra: &str| {
            format!(
                "videotestsrc num-buffers=45 pattern=smpte75 \
                 ! video/x-raw,width=320,height=240,format=RGBA,framerate=30/1 \
                 ! iguardreplay location={}/tests/data/demo-detections.txt \
                 ! iguardverify name={name} cooldown=0 clip-per=source positive-classes=1 model-type=triton \
                 server-url=http://{} model-name=tiny-action {extra} ! fakesink sync=false ",
                env!("CARGO_MANIFEST_DIR"),
                server.url()
            )
        };
        let names = ["v1", "v2", "v3"];
        let desc = branch("v1", "model-instance-id=shared-remote")
            + &branch("v2", "model-instance-id=shared-remote")
            + &branch("v3", "");
        let pipeline = gst::parse::launch(&desc)
            .unwrap()
            .downcast::<gst::Pipeline>()
            .unwrap();
        let _stop = common::StopOnDrop(pipeline.clone().upcast());
        let elements: Vec<gst::Element> =
            names.iter().map(|n| pipeline.by_name(n).unwrap()).collect();
        let bus = pipeline.bus().unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();

        let mut verdicts: Vec<Vec<Verdict>> = vec![vec![]; names.len()];
        let mut warnings = Vec::new();
        // The three elements' stats at the first verdict while PLAYING: all of them running.
        let mut playing: Option<Vec<Stats>> = None;
        let mut eos = false;
        // A hang guard: at most this long without a message.
        for msg in bus.iter_timed(gst::ClockTime::from_seconds(120)) {
            match msg.view() {
                gst::MessageView::Eos(_) => {
                    eos = true;
                    break;
                }
                gst::MessageView::Error(e) => panic!("{} {:?}", e.error(), e.debug()),
                gst::MessageView::Warning(w) => warnings.push(w.error().to_string()),
                gst::MessageView::Element(m) => {
                    if let Some(s) = m.structure()
                        && s.name() == gstiguard::meta::MESSAGE_NAME
                    {
                        let from = msg.src().map(|o| o.name().to_string()).unwrap_or_default();
                        let i = names
                            .iter()
                            .position(|n| *n == from)
                            .unwrap_or_else(|| panic!("a verdict from {from:?}"));
                        verdicts[i].push(gstiguard::meta::from_structure(s).unwrap());
                        if playing.is_none() && pipeline.current_state() == gst::State::Playing {
                            playing = Some(elements.iter().map(Stats::of).collect());
                        }
                    }
                }
                _ => (),
            }
        }
        assert!(eos, "no EOS (hang guard): verdicts {verdicts:?}");
        assert!(warnings.is_empty(), "{warnings:?}");
        let playing = playing.expect("a verdict while the pipeline was PLAYING");
        let at_eos: Vec<Stats> = elements.iter().map(Stats::of).collect();

        // v1 and v2 run on one instance (one scorer, one pool), v3 on its own. The pipeline is
        // still PLAYING at EOS, so both snapshots see both users.
        for (when, stats) in [("playing", &playing), ("at EOS", &at_eos)] {
            let field = |i: usize, f: &str| stats[i].0.get::<String>(f).unwrap();
            for (i, s) in stats.iter().enumerate() {
                assert_eq!(field(i, "scorer"), "triton", "{when}: {}", s.0);
            }
            assert_eq!(
                field(0, "pool"),
                field(1, "pool"),
                "{when}: one pool for v1 and v2: {} / {}",
                stats[0].0,
                stats[1].0
            );
            assert_ne!(
                field(0, "pool"),
                field(2, "pool"),
                "{when}: v3 has a pool of its own: {} / {}",
                stats[0].0,
                stats[2].0
            );
            for (i, s) in stats.iter().enumerate() {
                let (id, users) = if i < 2 { ("shared-remote", 2) } else { ("", 1) };
                assert_eq!(
                    (
                        field(i, "model-instance-id").as_str(),
                        s.u("instance-users")
                    ),
                    (id, users),
                    "{when}: {}",
                    s.0
                );
            }
        }

        // Each element answers its own requests, each scored by the server, as many as one
        // element alone gets (the_element_verifies_on_the_server_like_it_does_locally).
        for ((name, stats), got) in names.iter().zip(&at_eos).zip(&mut verdicts) {
            stats.assert_adds_up();
            assert_eq!(stats.u("pending"), 0, "{name}: {}", stats.0);
            assert_eq!(got.len(), 3, "{name}: {got:?}");
            assert_eq!(
                stats.u("submitted"),
                got.len() as u64,
                "{name}: one verdict per request: {}",
                stats.0
            );
            assert_eq!(
                stats.u("verified") + stats.u("rejected"),
                3,
                "{name}: {}",
                stats.0
            );
            assert!(got.iter().all(|v| by_the_server(&v)), "{name}: {got:?}");
            got.sort_by_key(|v| v.request_id);
            assert!(
                got.windows(2).all(|w| w[0].request_id < w[1].request_id),
                "{name}: one verdict per request: {got:?}"
            );
        }

        // The same stream in every branch: the same clips, and the same scores for them.
        for (name, other) in names.iter().zip(&verdicts).skip(1) {
            for (a, b) in verdicts[0].iter().zip(other) {
                assert_eq!(
                    (a.request_id, a.clip_start_pts, a.clip_end_pts, &a.label),
                    (b.request_id, b.clip_start_pts, b.clip_end_pts, &b.label),
                    "v1 vs {name}: {a:?} vs {b:?}"
                );
                assert!(
                    (a.score - b.score).abs() < 1e-4,
                    "v1 vs {name}: {a:?} vs {b:?}"
                );
            }
        }
        eprintln!(
            "3 elements, {} verdicts from the server, scores {:?}; v1/v2 pool {:?} with {} \
             users, v3 pool {:?}; server started in {:.2} s, {:.2} s in all",
            verdicts.iter().map(Vec::len).sum::<usize>(),
            verdicts[0].iter().map(|v| v.score).collect::<Vec<_>>(),
            playing[0].0.get::<String>("pool").unwrap(),
            playing[0].u("instance-users"),
            playing[2].0.get::<String>("pool").unwrap(),
            server.started_in.as_secs_f64(),
            t0.elapsed().as_secs_f64()
        );
    });
}

// ---------------------------------------------------------------------------------------------
// The element in a live pipeline, while the server fails

/// A detections file in a folder of its own: a person on each of `frames` frames of a 160×120
/// stream, so a clip is triggered every `temporal-size` frames (with `cooldown=0`).
fn person_on_every_frame(name: &str, frames: u64) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("iguard-triton-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("detections.txt");
    let mut text = String::from("# frame, id, left, top, width, height, conf, class\n");
    for f in 1..=frames {
        text.push_str(&format!("{f},1,40,30,80,60,0.9,1\n"));
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// Verified or rejected: the server scored the clip.
fn by_the_server(v: &&Verdict) -> bool {
    v.scorer == "triton" && matches!(v.status, Status::Verified | Status::Rejected)
}

fn count(verdicts: &[Verdict], status: Status) -> usize {
    verdicts.iter().filter(|v| v.status == status).count()
}

/// A live pipeline, `videotestsrc is-live=true` at 60 fps (still colour bars, with no noisy corner) through
/// `iguardreplay` (the detections file) and `iguardverify`, with what reached its sink and what
/// its bus said. Dropping it (also when a test fails) stops the pipeline first.
struct Live {
    pipeline: gst::Pipeline,
    verify: gst::Element,
    /// Buffers that reached the sink, and verdicts with status `error` attached to them.
    buffers: Arc<AtomicU64>,
    error_metas: Arc<AtomicU64>,
    verdicts: Vec<Verdict>,
    warnings: Vec<String>,
    eos: bool,
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Live {
    /// Plays the pipeline; `verify` are iguardverify's properties besides the common ones.
    fn play(detections: &Path, verify: &str) -> Live {
        common::init();
        let pipeline = gst::parse::launch(&format!(
            "videotestsrc is-live=true pattern=smpte75 \
             ! video/x-raw,width=160,height=120,format=RGBA,framerate=60/1 \
             ! iguardreplay location={} \
             ! iguardverify name=v cooldown=0 positive-classes=1 {verify} \
             ! fakesink name=sink sync=false",
            detections.display()
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let verify = pipeline.by_name("v").unwrap();
        let buffers = Arc::new(AtomicU64::new(0));
        let error_metas = Arc::new(AtomicU64::new(0));
        let (b, e) = (buffers.clone(), error_metas.clone());
        pipeline
            .by_name("sink")
            .unwrap()
            .static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                b.fetch_add(1, Ordering::Relaxed);
                if let Some(buffer) = info.buffer() {
                    let errors = gstiguard::meta::read_all(buffer)
                        .iter()
                        .filter(|v| v.status == Status::Error)
                        .count();
                    e.fetch_add(errors as u64, Ordering::Relaxed);
                }
                gst::PadProbeReturn::Ok
            });
        let live = Live {
            pipeline,
            verify,
            buffers,
            error_metas,
            verdicts: vec![],
            warnings: vec![],
            eos: false,
        };
        live.pipeline.set_state(gst::State::Playing).unwrap();
        live
    }

    fn buffers(&self) -> u64 {
        self.buffers.load(Ordering::Relaxed)
    }

    /// Reads the bus until `done` holds; fails after `limit` (a hang guard), at an error
    /// message, or at EOS before `done`.
    fn wait(&mut self, what: &str, limit: Duration, done: impl Fn(&Live) -> bool) {
        let bus = self.pipeline.bus().unwrap();
        let deadline = Instant::now() + limit;
        while !done(self) {
            assert!(
                Instant::now() < deadline && !self.eos,
                "{} waiting for {what}: {} buffers, warnings {:?}, verdicts {:?}",
                if self.eos { "EOS" } else { "timed out" },
                self.buffers(),
                self.warnings,
                self.verdicts
            );
            let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(20)) else {
                continue;
            };
            match msg.view() {
                gst::MessageView::Error(e) => panic!("{} {:?}", e.error(), e.debug()),
                gst::MessageView::Warning(w) => self.warnings.push(w.error().to_string()),
                gst::MessageView::Eos(_) => self.eos = true,
                gst::MessageView::Element(m) => {
                    if let Some(s) = m.structure()
                        && s.name() == gstiguard::meta::MESSAGE_NAME
                    {
                        self.verdicts
                            .push(gstiguard::meta::from_structure(s).unwrap());
                    }
                }
                _ => (),
            }
        }
    }

    /// EOS from the source, and waits for it at the bus: every verdict is in. The stats,
    /// checked to add up with nothing pending and one verdict per request.
    fn finish(&mut self) -> Stats {
        assert!(self.pipeline.send_event(gst::event::Eos::new()));
        self.wait("EOS", Duration::from_secs(120), |l| l.eos);
        let stats = Stats::of(&self.verify);
        stats.assert_adds_up();
        assert_eq!(stats.u("pending"), 0, "{}", stats.0);
        assert_eq!(
            stats.u("submitted"),
            self.verdicts.len() as u64,
            "one verdict per request: {}",
            stats.0
        );
        stats
    }
}

/// The element with a server that crashes mid-run and comes back on the same port.
#[test]
fn the_video_flows_through_a_server_crash_with_error_verdicts_and_the_restarted_server_verifies() {
    with_watchdog(Duration::from_secs(600), || {
        let detections = person_on_every_frame("crash", 36_000);
        let mut server = Server::start(Options::default());
        let port = server.grpc_port;
        // One worker: verdicts come in the order the calls end.
        let mut live = Live::play(
            &detections,
            &format!(
                "model-type=triton server-url={} model-name=tiny-action connect-timeout=1 \
                 max-workers=1",
                server.url()
            ),
        );
        let minute = Duration::from_secs(60);
        live.wait("verdicts from the server", minute, |l| {
            l.verdicts.iter().filter(by_the_server).count() >= 2
        });
        assert!(live.warnings.is_empty(), "{:?}", live.warnings);
        let first = live.verdicts[0].score;

        server.kill();
        let (killed, flowed) = (live.verdicts.len(), live.buffers());
        live.wait("error verdicts while the server is down", minute, |l| {
            count(&l.verdicts[killed..], Status::Error) >= 3
        });
        // The video does not wait for the server: buffers keep reaching the sink.
        live.wait("buffers while the server is down", minute, |l| {
            l.buffers() >= flowed + 64
        });
        live.wait("an error verdict on a buffer", minute, |l| {
            l.error_metas.load(Ordering::Relaxed) > 0
        });
        let down = live.verdicts.len();
        // Calls that ended before the kill may still be reported after it; from the first
        // error on, every call fails, saying why.
        let first_error = live.verdicts[killed..]
            .iter()
            .position(|v| v.status == Status::Error)
            .unwrap()
            + killed;
        for v in &live.verdicts[first_error..down] {
            assert_eq!(v.status, Status::Error, "{v:?}");
            assert_eq!(v.scorer, "triton", "{v:?}");
            assert!(
                v.reason.starts_with("scorer failed: inference server")
                    && v.reason.contains(&format!("127.0.0.1:{port}")),
                "{v:?}"
            );
            assert!(v.score.is_nan() && !v.is_positive(), "{v:?}");
        }
        eprintln!("while down: {}", live.verdicts[down - 1].reason);

        // Back on the same port: the element's scorer reconnects by itself.
        let restarted = Server::start(Options {
            grpc_port: Some(port),
            ..Default::default()
        });
        live.wait("verdicts from the restarted server", minute, |l| {
            l.verdicts[down..].iter().filter(by_the_server).count() >= 2
        });
        let stats = live.finish();

        // Still colour bars give the same clip every time: the same score before and after.
        let scored: Vec<&Verdict> = live.verdicts.iter().filter(by_the_server).collect();
        for v in &scored {
            assert!((v.score - first).abs() < 1e-4, "{v:?} vs {first}");
        }
        assert!(
            live.verdicts.iter().all(|v| v.scorer == "triton"),
            "no fallback: {:?}",
            live.verdicts
        );
        let errors = count(&live.verdicts, Status::Error);
        assert_eq!(stats.u("failed"), errors as u64, "{}", stats.0);
        assert_eq!(
            stats.u("verified") + stats.u("rejected"),
            scored.len() as u64,
            "{}",
            stats.0
        );
        eprintln!(
            "{} buffers; {} verdicts: {} scored by the server, {errors} errors, {} timeouts",
            live.buffers(),
            live.verdicts.len(),
            scored.len(),
            count(&live.verdicts, Status::Timeout)
        );
        drop(live);
        drop(restarted);
        drop(server);
        let _ = std::fs::remove_dir_all(detections.parent().unwrap());
    });
}

/// The element with a server slower than `worker-timeout`, which then speeds up again.
#[test]
fn a_server_slower_than_worker_timeout_gives_timeout_verdicts_and_the_element_recovers() {
    with_watchdog(Duration::from_secs(600), || {
        let detections = person_on_every_frame("slow", 36_000);
        let server = Server::start(Options {
            sleep: 3.0,
            adjustable_sleep: true,
            ..Default::default()
        });
        let mut live = Live::play(
            &detections,
            &format!(
                "model-type=triton server-url={} model-name=tiny-action worker-timeout=1",
                server.url()
            ),
        );
        let minute = Duration::from_secs(60);
        live.wait("timeout verdicts", minute, |l| {
            count(&l.verdicts, Status::Timeout) >= 3
        });
        let flowed = live.buffers();
        // Every call sleeps 3 s on the server: every one of them is answered at the deadline.
        for v in &live.verdicts {
            assert_eq!(
                (v.status, v.scorer.as_str()),
                (Status::Timeout, "triton"),
                "{v:?}"
            );
            assert!(
                v.reason.contains("worker-timeout (1.000 s)") && v.processing_ms >= 990.0,
                "{v:?}"
            );
        }
        live.wait("buffers while calls time out", minute, |l| {
            l.buffers() >= flowed + 64
        });

        // Quick again: the element's calls are answered.
        server.set_sleep(0.0);
        let slow = live.verdicts.len();
        live.wait("verdicts once the server is quick", minute, |l| {
            l.verdicts[slow..].iter().filter(by_the_server).count() >= 2
        });
        let stats = live.finish();
        let timeouts = count(&live.verdicts, Status::Timeout);
        assert_eq!(stats.u("timed-out"), timeouts as u64, "{}", stats.0);
        assert!(
            live.verdicts.iter().all(|v| v.scorer == "triton"),
            "{:?}",
            live.verdicts
        );
        eprintln!(
            "{} buffers; {} verdicts: {timeouts} timeouts, {} scored by the server, {} dropped",
            live.buffers(),
            live.verdicts.len(),
            live.verdicts.iter().filter(by_the_server).count(),
            count(&live.verdicts, Status::Dropped)
        );
        drop(live);
        drop(server);
        let _ = std::fs::remove_dir_all(detections.parent().unwrap());
    });
}
