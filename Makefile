# Two commands on a fresh machine: `make demo` and `make test`.
# Each bootstraps .venv on first use (torch/torchvision versions admitted by pyproject.toml).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
JOBS    ?= 2

.PHONY: demo test venv clean fashion-mnist

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/zubovnet demo

test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) --durations=15

# Fashion-MNIST from the Debian package dataset-fashion-mnist (offline machines).
fashion-mnist:
	mkdir -p data/FashionMNIST/raw
	for f in /usr/share/datasets/fashion-mnist/*.gz; do gunzip -c $$f > data/FashionMNIST/raw/$$(basename $$f .gz); done

clean:
	rm -rf $(VENV) runs .pytest_cache
