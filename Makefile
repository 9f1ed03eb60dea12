# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# torch/torchvision are pinned in the same pip command as everything else (see constraints.txt):
# a split install swaps in other torch builds.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export FLWR_TELEMETRY_ENABLED := 0
export FLWR_DISABLE_UPDATE_CHECK := 1

.PHONY: install demo demo-central test test-slow clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

# The main job: 4 simulated hospitals on Flower's simulation runtime, compared with pooled and
# single-site training (builds the default synthetic dataset in runs/sim/data on first use).
demo: $(STAMP)
	$(BIN)/m3fed sim

# The pooled baseline alone (issue A's demo).
demo-central: $(STAMP)
	test -f runs/data/mimic-cxr-2.0.0-split.csv.gz || $(BIN)/m3fed synth --out runs/data
	$(BIN)/m3fed central --data runs/data --out runs/central

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow -s

clean:
	rm -rf $(VENV) runs .pytest_cache
