# taae: the two commands a newcomer needs are `make quickstart` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= data/demo
RUN ?= runs/quickstart
EXTRAS ?= dev

.PHONY: venv test quickstart demo-data train-quickstart eval-quickstart bench lint clean

venv: $(VENV)/.installed-$(EXTRAS)

$(VENV)/.installed-$(EXTRAS): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

test: venv
	$(BIN)/python -m pytest

demo-data: venv
	$(BIN)/python -m taae.data.demo $(DATA)

train-quickstart: venv
	$(BIN)/python train.py fit --config configs/taae/quickstart.yaml

# The evaluation extra (PESQ, STOI, DNSMOS) on top of whatever the venv was made with.
$(VENV)/.installed-eval-extra: $(VENV)/.installed-$(EXTRAS)
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS),eval]"
	touch $@

eval-quickstart: venv $(VENV)/.installed-eval-extra
	$(BIN)/python evaluate.py --checkpoint $(RUN)/checkpoints/last.ckpt --data $(DATA)/test \
		--presets native,400bps,700bps,1000bps --out $(RUN)/eval

quickstart: demo-data train-quickstart eval-quickstart
	@echo "quickstart done; open the listening report: $(abspath $(RUN)/eval/report.html)"

bench: venv
	$(BIN)/python benchmarks/attention.py --quick

lint: venv
	$(BIN)/python -m ruff check taae tests benchmarks train.py evaluate.py

clean:
	rm -rf $(VENV) runs .pytest_cache
