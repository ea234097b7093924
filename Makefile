# mnist-edge: train -> int8 quantization -> TFLite/ONNX export -> parity gate -> edge runner.
# `make all` sets itself up (.venv) and runs every pipeline stage; `make test` runs the tests.

PYTHON    ?= python3
VENV      ?= .venv
PY        := $(VENV)/bin/python
ARTIFACTS ?= artifacts
MODEL     ?= edge
EPOCHS    ?=
SEED      ?= 1
TRAIN_FLAGS ?=
MNIST_DIR ?=
export MNIST_DIR

.NOTPARALLEL:

STAMP := $(VENV)/.installed-stamp
TRAIN_ARGS := --model $(MODEL) --seed $(SEED) --out $(ARTIFACTS) $(if $(EPOCHS),--epochs $(EPOCHS),) $(TRAIN_FLAGS)

.PHONY: all venv train export parity run evaluate bench test clean help

all: train export parity  ## bootstrap .venv, then train -> export -> parity gate (a failing gate fails it)

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/' | expand -t 12

# Re-installs only when pyproject.toml changes (or the venv is gone).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[train,edge,onnx,dev]'
	touch $(STAMP)

venv: $(STAMP)  ## create .venv and install the project with every extra

train: $(STAMP)  ## train $(MODEL) into $(ARTIFACTS)/ (EPOCHS, SEED, MNIST_DIR; TRAIN_FLAGS: more `python -m train` flags)
	$(PY) -m train $(TRAIN_ARGS)

export: $(STAMP)  ## $(ARTIFACTS)/model.keras -> TFLite/ONNX float32+int8 + manifest.json
	$(PY) -m export --model $(ARTIFACTS)/model.keras --out $(ARTIFACTS) --seed $(SEED)

parity: $(STAMP)  ## accuracy-parity gate over every artifact in $(ARTIFACTS)/manifest.json
	$(PY) -m export.parity --artifacts $(ARTIFACTS)

run: $(STAMP)  ## live camera 0 with the default int8 model (a window; see README for --headless)
	$(PY) -m edge run --source 0 --artifacts $(ARTIFACTS)

evaluate: $(STAMP)  ## detection recall / digit accuracy / exact text on synthetic frames
	$(PY) -m edge.evaluate --artifacts $(ARTIFACTS)

bench: $(STAMP)  ## latency/throughput/accuracy/cold start per artifact x runtime x threads -> $(ARTIFACTS)/bench.{json,md,png}
	$(PY) -m benchmarks --artifacts $(ARTIFACTS)

test: $(STAMP)  ## run the test suite (MNIST tests read $(MNIST_DIR))
	$(PY) -m pytest

clean:  ## remove generated artifacts and dist/ (keeps .venv)
	rm -rf $(ARTIFACTS) dist .pytest_cache .hypothesis

# -- Raspberry Pi -----------------------------------------------------------------------------------
CROPS          ?= tests/golden
DIST           ?= dist
PI             ?=
ENABLE_SERVICE ?=
BUNDLE          = $(DIST)/mnist-edge-pi-$(shell $(PY) -c 'from edge.bundle import project_version as v; print(v())').tar.gz

.PHONY: bundle deploy pi-test

bundle: $(STAMP)  ## Pi bundle dist/mnist-edge-pi-<version>.tar.gz (refuses unless the parity gate passed; CROPS=golden crops)
	$(PY) -m edge.bundle --artifacts $(ARTIFACTS) --out $(DIST) --crops $(CROPS)

deploy: bundle  ## copy the bundle to PI=user@host over SSH (keys only), install it there, print the self-test (ENABLE_SERVICE=1)
	@test -n "$(PI)" || { echo "make deploy: set PI=user@host (uses your ssh config and keys)" >&2; exit 2; }
	$(PY) -m edge.deploy --host $(PI) --bundle $(BUNDLE) $(if $(filter 1,$(ENABLE_SERVICE)),--enable-service,)

pi-test: bundle  ## run the bundle on emulated Raspberry Pi OS arm64 (qemu): self-test + int8 outputs vs x86
	$(PY) edge/pi/emulate.py --bundle $(BUNDLE)
