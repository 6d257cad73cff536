# streamasr: the two entry points of the README.
#   make demo   install, build the built-in corpus, train the small model, test WER,
#               then sweep WER / latency against chunk size and left context
#   make test   install, run the test suite
# Variables: STREAMASR_VENV (default ~/.cache/streamasr/venv), DATA, OUT, TRAIN_ARGS.

STREAMASR_VENV ?= $(HOME)/.cache/streamasr/venv
PYTHON := $(STREAMASR_VENV)/bin/python
DATA ?= data/synthetic
OUT ?= results/demo
TRAIN_ARGS ?=

.PHONY: install corpus train evaluate demo test

install:
	STREAMASR_VENV=$(STREAMASR_VENV) bash tools/install.sh

corpus: install
	$(PYTHON) -m streamasr.cli build-corpus $(DATA)

train: corpus
	$(PYTHON) train.py hparams/conformer_transducer_small.yaml \
		--data_folder=$(DATA) --output_folder=$(OUT) $(TRAIN_ARGS)

evaluate: train
	$(PYTHON) -m streamasr.cli evaluate $(OUT) --manifest $(DATA)/test.csv \
		--output $(OUT)/streaming_eval --overwrite

demo: evaluate
	@echo "== test WER (held-out voices, full context), from $(OUT)/wer_test.txt =="
	@tail -n 2 $(OUT)/wer_test.txt
	@echo "== WER against chunk size and left context: $(OUT)/streaming_eval/results.md =="

test: install
	$(PYTHON) -m pytest -q tests
