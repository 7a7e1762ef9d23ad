# User interface of the toolkit; see README.md and docs/make_targets.md. Every target builds .venv first if needed.
PY      := .venv/bin/python
STAMP   := .venv/.installed
PYTEST_ARGS ?=

NAME  ?=
SEED  ?= 0
SCALE ?= full
ARGS  ?=
# make sweep, and EXECUTOR= on check-meta, baselines and reproduce (analysis/sweep.py)
PARALLEL ?= 2
WAIT     ?= 1
JOBS = $(if $(EXECUTOR),--executor $(EXECUTOR) --parallel $(PARALLEL))

.PHONY: setup test test-slow tutorials lint format compare demo exp sweep list baselines check-meta bench smoke figures reproduce ledger docs docs-serve clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

exp: $(STAMP)
	@test -n "$(NAME)" || { $(PY) -m experiments --list; echo "usage: make exp NAME=<experiment> [SEED=0] [SCALE=smoke] [NPROC=2] [ARGS=\"key=value ...\"]"; exit 2; }
	$(PY) -m experiments $(NAME) --seed $(SEED) --scale $(SCALE) $(if $(NPROC),--nproc $(NPROC)) $(ARGS)

sweep: $(STAMP)
	@test -n "$(NAME)" || { echo 'usage: make sweep NAME=<experiment> [SEEDS=0,1,2] [GRID="key=v1,v2 ..."] [SCALE=smoke] [ARGS="key=value ..."] [EXECUTOR=local|slurm] [PARALLEL=2] [WAIT=0] [PARTITION=name] [GPUS=1] [CPUS=10] [TIME_MIN=1440]'; exit 2; }
	$(PY) -m analysis.sweep $(NAME) --seeds $(or $(SEEDS),$(SEED)) --scale $(SCALE) \
		--executor $(or $(EXECUTOR),local) --parallel $(PARALLEL) $(if $(filter 0,$(WAIT)),--no-wait) \
		$(if $(GRID),--grid "$(GRID)") $(if $(PARTITION),--partition $(PARTITION)) \
		$(if $(GPUS),--gpus $(GPUS)) $(if $(CPUS),--cpus $(CPUS)) $(if $(TIME_MIN),--time-min $(TIME_MIN)) $(ARGS)

list: $(STAMP)
	$(PY) -m experiments --list

baselines: $(STAMP)
	$(PY) -m analysis.baselines $(JOBS) --docs docs/results

check-meta: $(STAMP)
	$(PY) -m analysis.meta_check $(if $(SEEDS),--seeds $(SEEDS)) $(if $(FACE_SEEDS),--face-seeds $(FACE_SEEDS)) $(JOBS) --docs docs/results

bench: $(STAMP)
	$(PY) -m analysis.bench $(if $(BENCH_SCALE),--scale $(BENCH_SCALE)) $(if $(BENCH_ESTIMATORS),--estimators $(BENCH_ESTIMATORS)) --docs docs/results

smoke: $(STAMP)
	$(PY) -m analysis.smoke $(if $(DEVICE),--device $(DEVICE)) $(if $(STEPS),--steps $(STEPS))

figures: $(STAMP)
	$(PY) -m analysis.figures --scale $(SCALE) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(filter full,$(SCALE)),--docs docs/results/figures)

reproduce: $(STAMP)
	$(PY) -m analysis.reproduce --scale $(SCALE) $(if $(SEEDS),--seeds $(SEEDS)) $(JOBS) $(if $(filter full,$(SCALE)),--docs docs/results/figures)

ledger: $(STAMP)
	$(PY) -m experiments.ledger

compare: $(STAMP)
	$(PY) -m analysis.compare --docs docs/results

demo: $(STAMP)
	$(PY) -m analysis.demo

# the documentation site (mkdocs.yml, docs/) into site/; strict: a warning, a broken link or an
# unresolved API reference fails it
docs: $(STAMP)
	$(PY) -m bilevel.estimators docs/generated/estimators.md README.md
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs serve --strict

# the tutorials at their default size; what they print goes into the docs (docs/tutorials.md)
TUTORIALS := reweight_noisy weight_decay new_method/meta_uweight_digits
tutorials: $(STAMP)
	@mkdir -p docs/results/tutorials
	@for t in $(TUTORIALS); do echo "docs/tutorials/$$t.py"; \
		OMP_NUM_THREADS=1 $(PY) docs/tutorials/$$t.py > docs/results/tutorials/.out.tmp || exit 1; \
		mv docs/results/tutorials/.out.tmp docs/results/tutorials/$$(basename $$t).txt; done
	OMP_NUM_THREADS=1 $(PY) docs/tutorials/side_by_side.py --out docs/results/tutorials/side_by_side.md

clean:
	rm -rf results figures site .pytest_cache .ruff_cache
