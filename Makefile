# taae: the two commands a newcomer needs are `make quickstart` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= data/demo
RUN ?= runs/quickstart
EXTRAS ?= dev
# The quickstart is the tiny recipe + demo data + CPU trainer + its budget (configs compose left to right).
QUICKSTART := --config configs/taae/tiny.yaml --config configs/data/demo.yaml --config configs/trainer/cpu.yaml \
	--config configs/taae/quickstart.yaml
RVQGAN_QUICKSTART := --config configs/rvqgan/tiny.yaml --config configs/data/demo.yaml \
	--config configs/trainer/cpu.yaml --config configs/rvqgan/quickstart.yaml

.PHONY: venv test quickstart demo-data train-quickstart eval-quickstart quickstart-rvqgan bench lint clean

venv: $(VENV)/.installed-$(EXTRAS)

$(VENV)/.installed-$(EXTRAS): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

test: venv
	$(BIN)/python -m pytest

demo-data: venv
	bash scripts/system_packages.sh
	$(BIN)/python -m taae.data.demo $(DATA)

train-quickstart: venv
	$(BIN)/python train.py fit $(QUICKSTART)

# The evaluation extra (PESQ, STOI, DNSMOS) on top of whatever the venv was made with.
$(VENV)/.installed-eval-extra: $(VENV)/.installed-$(EXTRAS)
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS),eval]"
	touch $@

eval-quickstart: venv $(VENV)/.installed-eval-extra
	$(BIN)/python evaluate.py --checkpoint $(RUN)/checkpoints/last.ckpt --data $(DATA)/test \
		--presets native,400bps,700bps,1000bps --out $(RUN)/eval

quickstart: demo-data train-quickstart eval-quickstart
	@echo "quickstart done; open the listening report: $(abspath $(RUN)/eval/report.html)"

# The convolutional baseline for the same CPU time, evaluated the same way (README: "The quickstart recipe").
quickstart-rvqgan: demo-data $(VENV)/.installed-eval-extra
	$(BIN)/python train.py fit $(RVQGAN_QUICKSTART)
	$(BIN)/python evaluate.py --checkpoint runs/rvqgan_quickstart/checkpoints/last.ckpt --data $(DATA)/test \
		--presets 400bps,800bps,1600bps --out runs/rvqgan_quickstart/eval

bench: venv
	$(BIN)/python benchmarks/attention.py --quick

lint: venv
	$(BIN)/python -m ruff check taae tests benchmarks train.py evaluate.py

clean:
	rm -rf $(VENV) runs .pytest_cache
