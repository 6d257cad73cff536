# streamasr: the two entry points of the README.
#   make demo   install, build the built-in corpus, train the small model, test WER
#   make test   install, run the test suite
# Variables: STREAMASR_VENV (default ~/.cache/streamasr/venv), DATA, OUT, TRAIN_ARGS.

STREAMASR_VENV ?= $(HOME)/.cache/streamasr/venv
PYTHON := $(STREAMASR_VENV)/bin/python
DATA ?= data/synthetic
OUT ?= results/demo
TRAIN_ARGS ?=

.PHONY: install corpus train demo test

install:
	STREAMASR_VENV=$(STREAMASR_VENV) bash tools/install.sh

corpus: install
	$(PYTHON) -m streamasr.cli build-corpus $(DATA)

train: corpus
	$(PYTHON) train.py hparams/conformer_transducer_small.yaml \
		--data_folder=$(DATA) --output_folder=$(OUT) $(TRAIN_ARGS)

demo: train
	@echo "== test WER (held-out voices, full context) =="
	@tail -n 2 $(OUT)/wer_test.txt

test: install
	$(PYTHON) -m pytest -q tests
