# Two entry points on a fresh machine: `make demo` and `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(VENV)/bin/pip
export CARGO_TERM_COLOR := never

.PHONY: demo test build venv test-rust test-python lint bench clean

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

demo: build
	$(PY) examples/demo.py

# Rust tests reuse the release artifacts of `build` (same profile, same target/).
test-rust:
	cargo test --release --workspace --exclude oxmx-py

test-python: build
	$(PY) -m pytest -q tests

test: build test-rust test-python

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --release -- -D warnings

bench: build
	$(PIP) install -q -r requirements-bench.txt || echo "bench: optional peers (mlx, jax) not installed; their columns are skipped"
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) benchmarks/run_cpu.py
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) benchmarks/run_transforms.py

clean:
	cargo clean
	rm -rf $(VENV)
