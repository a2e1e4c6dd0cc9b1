# genetune developer commands. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUST_SOURCES := $(shell find rust -name '*.rs' -o -name Cargo.toml) Cargo.toml
STAMP := $(VENV)/.genetune-installed

.PHONY: help demo install build test test-rust test-python bench bench-overhead bench-quality bench-budget bench-model bench-dask bench-gcc bench-space-rules bench-noise bench-kernel-tuner lint clean

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): $(PY) pyproject.toml $(RUST_SOURCES)
	$(PY) -m pip install -q "maturin>=1.9,<2"
	source $(VENV)/bin/activate && maturin develop --release --extras test -q
	touch $(STAMP)

demo: install ## the main job: tune gcc flags for the bundled C kernels (Prefect flow, local Dask, MLflow in ./genetune-demo)
	$(PY) -m genetune demo $(DEMO_ARGS)

install: $(STAMP) ## create .venv, install dependencies, build the Rust extension (release)

build: ## rebuild the Rust extension (release) into .venv
	source $(VENV)/bin/activate && maturin develop --release -q

test: install test-rust test-python lint ## install what is needed, then run every test (cargo test, pytest, mypy, fmt, clippy)

test-rust: ## the pure core crate's unit and property tests
	cargo test --release -p genetune-core

test-python: install ## pytest (slow tests included) and the typed-surface check
	$(PY) -m pytest -q
	$(PY) -m mypy --no-incremental python/genetune
	$(PY) -m mypy.stubtest genetune._core

bench: bench-overhead bench-quality ## both engine benchmarks, peers side by side (installs the peers)

$(VENV)/.bench-installed: $(STAMP)
	$(PY) -m pip install -q -e ".[bench]" --no-build-isolation 2>/dev/null || $(PY) -m pip install -q "pymoo==0.6.2" "optuna>=4" "deap>=1.4" "pygmo>=2.19" "cmaes>=0.10" "coco-experiment>=2.6" "ioh>=0.3.14"
	touch $@

bench-overhead: $(VENV)/.bench-installed ## ask+tell overhead per candidate vs pymoo, pygmo, DEAP, Optuna
	$(PY) benches/bench_overhead.py

bench-quality: $(VENV)/.bench-installed ## hypervolume/IGD and best values at equal evaluations vs pymoo
	$(PY) benches/bench_quality.py

bench-budget: $(VENV)/.bench-installed ## best value per evaluation at 50-2,000 evaluations vs Optuna TPE, random, CMA-ES, pymoo (40-60 min)
	$(PY) benches/bench_budget.py --jobs 2 $(BENCH_ARGS)

bench-model: $(VENV)/.bench-installed ## the model-assisted engine's own cost vs Optuna TPE, and DTLZ2 under the NSGA-III paper's protocol vs pymoo
	$(PY) benches/bench_model_speed.py $(BENCH_ARGS)
	$(PY) benches/bench_nsga3_paper.py

bench-dask: $(STAMP) ## DaskWorker and the Prefect flow vs plain client.map: overhead and utilization
	$(PY) benches/bench_dask.py $(BENCH_ARGS)

bench-gcc: $(VENV)/.bench-installed ## the gcc job: genetune vs Optuna TPE vs random search at equal budgets
	$(PY) benches/bench_gcc.py $(BENCH_ARGS)

bench-space-rules: $(STAMP) ## when= vs a flat encoding, warm start vs cold, and the cost of constraint checking (a minute)
	$(PY) benches/bench_space_rules.py $(BENCH_ARGS)

bench-noise: $(STAMP) ## noisy measurements: regret of plain vs remeasure_top vs racing (synthetic), then the gcc job's -O2 CV, concurrent vs two-phase
	$(PY) benches/bench_noise.py $(BENCH_ARGS)
	$(PY) benches/bench_noise.py --gcc --seeds 4

bench-kernel-tuner: $(STAMP) ## genetune as a Kernel Tuner strategy vs its built-ins, simulation mode on recorded CPU-kernel caches (~40 min)
	$(PY) -m pip install -q "kernel_tuner>=1.5,<2"
	nice -n 10 $(PY) benches/bench_kernel_tuner.py $(BENCH_ARGS)

lint: ## rustfmt, clippy
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

clean: ## remove build outputs and the virtualenv
	rm -rf target $(VENV) python/genetune/*.so
