# Long reliability runs; the Makefile includes this file (or: make -f Makefile -f long.mk ...).
#   make test-long     the reliability, property and fault tests in their long modes (release
#                      build, IGUARD_LONG=1), the peak memory of the 64-source storm, real
#                      pipelines under valgrind's leak checker, then each fuzz target for
#                      FUZZ_SECONDS; ends with a summary of the figures.
#   make long-tests, long-storm, long-valgrind, fuzz-long   one step alone.
#   make long-summary  the summary again, from the logs in target/long.
#
# Fuzzing uses cargo-fuzz (installed here when missing) on the stable toolchain: `-s none`
# builds libFuzzer targets with coverage instrumentation and overflow checks (`-a`) but no
# sanitizer, since sanitizers need nightly flags. FUZZ_SANITIZER=address builds with
# AddressSanitizer instead, through RUSTC_BOOTSTRAP=1 (nightly flags on the stable compiler).
# A crash stops that target, keeps the input in fuzz/artifacts/<target>/ and fails test-long.

ifndef IGUARD_LONG_MK
IGUARD_LONG_MK := 1

FUZZ_SECONDS ?= 300
FUZZ_SANITIZER ?= none
FUZZ_TARGETS := replay_parser config_yaml deepstream_reader spool_loader
LONG_DIR := $(CURDIR)/target/long
LONG_ENV := IGUARD_LONG=1 GST_REGISTRY=$(LONG_DIR)/gst-registry.bin
FUZZ_ENV := $(if $(filter-out none,$(FUZZ_SANITIZER)),RUSTC_BOOTSTRAP=1)

# The three test programs in their long modes; their stdout is kept for the summary. The
# leaks-tracer test runs gst-launch-1.0 on target/release/libgstiguard.so, which `cargo test`
# builds but leaves in deps/: `cargo build` of the same units (the dev-dependencies change the
# features, so a plain `cargo build --release` would compile the plugin once more) puts it there.
# `testing`: the fault scorers and thread helpers these tests use (see Cargo.toml).
LONG_TESTS := --features testing --test reliability --test proptests --test faults
run-long-tests = ( set -o pipefail; $(CARGO) build --release --lib $(LONG_TESTS) \
	&& $(LONG_ENV) $(CARGO) test --release --no-fail-fast \
	$(LONG_TESTS) -- --show-output 2>&1 \
	| tee $(LONG_DIR)/tests.log )

# The storm alone in its own process, whose peak resident memory the kernel reports at exit.
run-long-storm = ( set -o pipefail; \
	bin=$$($(CARGO) test --release --features testing --test reliability --no-run 2>&1 \
		| sed -n 's/.*Executable tests\/reliability.rs (\(.*\))/\1/p'); \
	test -x "$$bin" || { echo "cannot find the reliability test binary"; exit 1; }; \
	$(LONG_ENV) $(VENV_PY) -c 'import resource, subprocess, sys; \
		rc = subprocess.call(sys.argv[1:]); \
		kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss; \
		print(f"storm peak memory: {kib / 1024:.0f} MiB (max RSS of the test process)"); \
		sys.exit(rc)' \
		"$$bin" a_64_source_storm_stays_bounded_and_answered --exact 2>&1 \
	| tee $(LONG_DIR)/storm.log )

# gst-launch pipelines (fallback scorer, then the tiny ONNX model; per-object clips, the defaults,
# and iguardpublish writing the event log) on the debug plugin under
# valgrind's memcheck: any block definitely or indirectly lost fails the step. Other reports
# (ONNX Runtime's own start-up trips memcheck's overlap check) are kept in the log, not judged.
# What GLib allocates for itself is suppressed by GLib's own file (libglib2.0-dev) and by
# tests/valgrind.supp, which holds only blocks allocated before any code of ours runs (see its
# comments). Debian ships no GStreamer suppression file (libgstreamer1.0-dev has none).
VALGRIND_SCORERS := model-type=fallback model-path=$(CURDIR)/models/tiny-action.onnx
GLIB_SUPP := /usr/share/glib-2.0/valgrind/glib.supp
VALGRIND_SUPP := --suppressions=$(GLIB_SUPP) --suppressions=$(CURDIR)/tests/valgrind.supp
run-long-valgrind = ( set -e; log=$(LONG_DIR)/valgrind.log; : > $$log; \
	for scorer in $(VALGRIND_SCORERS); do \
		echo "== valgrind: iguardverify $$scorer" | tee -a $$log; \
		valgrind $(VALGRIND_SUPP) \
			--leak-check=full --show-leak-kinds=definite,indirect --num-callers=30 \
			gst-launch-1.0 -q videotestsrc num-buffers=60 \
			! video/x-raw,width=320,height=240,format=RGBA \
			! iguardreplay location=$(CURDIR)/tests/data/demo-detections.txt \
			! iguardverify cooldown=0 $$scorer \
			! iguardpublish file-path=$(LONG_DIR)/valgrind-events.jsonl ! fakesink >> $$log 2>&1; \
	done; \
	grep -E 'definitely lost|indirectly lost' $$log; \
	! grep -E '(definitely|indirectly) lost: [1-9]' $$log )

# Each target starts from its seeds, the test data and what earlier runs found (fuzz/corpus).
run-fuzz = ( failed=""; \
	for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/corpus/$$t; \
		echo "== fuzzing $$t for $(FUZZ_SECONDS) s (sanitizer: $(FUZZ_SANITIZER))"; \
		( cd fuzz && $(FUZZ_ENV) $(CARGO) fuzz run -a -s $(FUZZ_SANITIZER) $$t \
			corpus/$$t seeds/$$t ../tests/data -- \
			-max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
			-dict=dicts/$$t.dict -print_final_stats=1 ) > $(LONG_DIR)/fuzz-$$t.log 2>&1 \
			|| failed="$$failed $$t"; \
		grep -E '^(Done |SUMMARY|==[0-9]+==|thread .* panicked|Test unit written)' \
			$(LONG_DIR)/fuzz-$$t.log | tail -n 5; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzzing failed in:$$failed (fuzz/artifacts, $(LONG_DIR))"; exit 1; fi )

run-long-summary = ( log=$(LONG_DIR)/tests.log; \
	echo "== test-long summary"; \
	grep -h '^test result:' $$log 2>/dev/null | sed 's/^/tests: /'; \
	grep -h '^test .* FAILED$$' $$log 2>/dev/null | sed 's/^test /failed: /; s/ \.\.\. FAILED$$//'; \
	grep -h '^state churn:' $$log 2>/dev/null; \
	awk '/^faults: [0-9]+ injected, [0-9]+ answered/ { i += $$2; a += $$4; n++ } \
		END { if (n) printf "faults: %d injected, %d answered\n", i, a }' $$log 2>/dev/null; \
	sed -n 's/^proptest .*: \([0-9]*\) cases passed$$/\1/p' $$log 2>/dev/null \
		| awk '{ n += $$1; p++ } END { if (p) printf "proptest: %d cases over %d properties\n", n, p }'; \
	if grep -q '^test the_leaks_tracer_finds_no_object_alive_at_exit \.\.\. ok' $$log 2>/dev/null; \
	then echo "leaks: none (leaks tracer: no object alive at exit, fallback and ONNX runs)"; \
	else echo "leaks: the leaks tracer test did not pass (see $$log)"; fi; \
	grep -h '^storm peak memory:' $(LONG_DIR)/storm.log 2>/dev/null; \
	if [ -f $(LONG_DIR)/valgrind.log ]; then \
		lost=$$(grep -cE '(definitely|indirectly) lost: [1-9]' $(LONG_DIR)/valgrind.log); \
		runs=$$(grep -c '^== valgrind' $(LONG_DIR)/valgrind.log); \
		echo "valgrind: $$runs pipelines, $$lost with blocks definitely or indirectly lost"; fi; \
	for t in $(FUZZ_TARGETS); do \
		f=$(LONG_DIR)/fuzz-$$t.log; [ -f $$f ] || continue; \
		runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$f | tail -n 1); \
		crashes=$$(ls fuzz/artifacts/$$t 2>/dev/null | wc -l); \
		echo "fuzz $$t: $${runs:-?} executions, $$crashes crash inputs in fuzz/artifacts/$$t"; \
	done; true )

.PHONY: test-long long-tests long-storm long-valgrind valgrind fuzz-long cargo-fuzz long-summary

# Every step runs even when an earlier one fails, so the summary shows them all; the target
# fails at the end if any did.
test-long: build models valgrind cargo-fuzz
	@rm -rf $(LONG_DIR) && mkdir -p $(LONG_DIR)
	@$(run-long-tests) || echo tests >> $(LONG_DIR)/failed
	@$(run-long-storm) || echo storm >> $(LONG_DIR)/failed
	@$(run-long-valgrind) || echo valgrind >> $(LONG_DIR)/failed
	@$(run-fuzz) || echo fuzz >> $(LONG_DIR)/failed
	@$(run-long-summary)
	@if [ -s $(LONG_DIR)/failed ]; then \
		echo "test-long FAILED: $$(tr '\n' ' ' < $(LONG_DIR)/failed)"; exit 1; fi

long-tests: build
	@mkdir -p $(LONG_DIR)
	@$(run-long-tests)

long-storm: build
	@mkdir -p $(LONG_DIR)
	@$(run-long-storm)

long-valgrind: build models valgrind
	@mkdir -p $(LONG_DIR)
	@$(run-long-valgrind)

# valgrind, and GLib's suppression file (in libglib2.0-dev), installed when missing.
valgrind:
	@command -v valgrind >/dev/null && test -f $(GLIB_SUPP) \
		|| $(MAKE) deps APT_PACKAGES="valgrind libglib2.0-dev"

fuzz-long: cargo-fuzz
	@mkdir -p $(LONG_DIR)
	@$(run-fuzz)

long-summary:
	@$(run-long-summary)

cargo-fuzz:
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-fuzz

endif
