# Two entry points on a fresh machine: `make demo` and `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(VENV)/bin/pip
export CARGO_TERM_COLOR := never

.PHONY: demo test build venv test-rust test-python test-differential lint bench bench-nn bench-ops bench-fast clean gpu-wheels fuzz fuzz-smoke

$(VENV)/.deps: requirements-dev.txt
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.deps

# Release build of the extension, installed (editable) into the virtual environment.
build: venv
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH \
		$(VENV)/bin/maturin develop --release --quiet

# Trains a small character-level Transformer on the standard library's source (about two
# minutes on 2 CPU cores); writes runs/lm/. The other examples: examples/train_cnn.py,
# examples/least_squares.py.
demo: build
	$(PY) examples/train_lm.py

# Rust tests reuse the release artifacts of `build` (same profile, same target/).
test-rust:
	cargo test --release --workspace --exclude oxmx-py

test-python: build
	$(PY) -m pytest -q tests

test: build test-rust test-python fuzz-smoke

# The differential harness against real MLX with many more generated calls per public name
# than the default run inside test-python (OXMX_DIFF_EXAMPLES=12); failures shrink to a
# minimal example.
DIFF_EXAMPLES ?= 200
test-differential: build
	OXMX_DIFF_EXAMPLES=$(DIFF_EXAMPLES) OXMX_DIFF_SHRINK=1 $(PY) -m pytest -q tests/differential

# cargo-fuzz targets of the file parsers (fuzz/README.md). fuzz-smoke runs each briefly when
# a nightly toolchain with cargo-fuzz is installed and says it skipped otherwise; the
# stable mutation fuzzer in crates/oxmx-io/tests/fuzz_smoke.rs runs in test-rust always.
FUZZ_SMOKE_SECONDS ?= 5
FUZZ_SECONDS ?= 20
fuzz-smoke:
	@if cargo +nightly fuzz --version >/dev/null 2>&1; then \
		cd fuzz && mkdir -p target && for t in $$(cargo +nightly fuzz list); do \
			echo "fuzz-smoke: $$t ($(FUZZ_SMOKE_SECONDS) s)"; \
			mkdir -p corpus/$$t; \
			cargo +nightly fuzz run $$t corpus/$$t seeds/$$t -- -max_total_time=$(FUZZ_SMOKE_SECONDS) -rss_limit_mb=2048 \
				> target/fuzz-smoke-$$t.log 2>&1 || { tail -n 40 target/fuzz-smoke-$$t.log; exit 1; }; \
			grep -E "^Done" target/fuzz-smoke-$$t.log; \
		done; \
	else echo "fuzz-smoke: skipped (no nightly toolchain with cargo-fuzz; the stable fuzz smoke ran in test-rust)"; fi

fuzz:
	cd fuzz && for t in $$(cargo +nightly fuzz list); do mkdir -p corpus/$$t; \
		cargo +nightly fuzz run $$t corpus/$$t seeds/$$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 || exit 1; done

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --release -- -D warnings

bench: build
	$(PIP) install -q -r requirements-bench.txt || echo "bench: optional peers (mlx, jax) not installed; their columns are skipped"
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) benchmarks/run_cpu.py
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) benchmarks/run_transforms.py
	$(PY) benchmarks/run_io.py

# Training steps (MLP, Transformer encoder layer, the demo's model) against real MLX and torch on CPU.
bench-nn: build
	$(PIP) install -q -r requirements-bench.txt || echo "bench-nn: optional peers (mlx, torch) not installed; their columns are skipped"
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) benchmarks/run_nn.py

# Issue #12's ops (conv2d, fft, linalg, einsum) against NumPy, JAX, real MLX and torch on CPU.
bench-ops: build
	$(PIP) install -q -r requirements-bench.txt || echo "bench-ops: optional peers (mlx, jax, torch) not installed; their columns are skipped"
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) benchmarks/run_ops.py

# mx.fast's norms, causal attention and cross-entropy, forward and backward, against real
# MLX and JAX on CPU.
bench-fast: build
	$(PIP) install -q -r requirements-bench.txt || echo "bench-fast: optional peers (mlx, jax) not installed; their columns are skipped"
	$(PY) benchmarks/run_fast_cpu.py

clean:
	cargo clean
	rm -rf $(VENV)

# Test-only packages for the GPU machine (no internet there), carried by scripts/gpu_test.sh.
gpu-wheels: venv
	$(PIP) download -q --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
		--platform manylinux_2_17_x86_64 -d .gpu_wheels gguf safetensors mpmath
	rm -f .gpu_wheels/numpy-*.whl
