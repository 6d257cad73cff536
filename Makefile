# streamasr: the two entry points of the README.
#   make demo   install, build the built-in corpus, train the small model, test WER,
#               sweep WER / latency against chunk size and left context, export the
#               model for SpeechBrain's StreamingASR and transcribe a held-out file with it
#   make test   install, run the test suite
# Variables: STREAMASR_VENV (default ~/.cache/streamasr/venv), DATA, OUT, TRAIN_ARGS.

STREAMASR_VENV ?= $(HOME)/.cache/streamasr/venv
PYTHON := $(STREAMASR_VENV)/bin/python
DATA ?= data/synthetic
OUT ?= results/demo
TRAIN_ARGS ?=

.PHONY: install corpus train evaluate export demo test

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

export: evaluate
	$(PYTHON) -m streamasr.cli export $(OUT) $(OUT)/model --overwrite

demo: export
	@echo "== test WER (held-out voices, full context), from $(OUT)/wer_test.txt =="
	@tail -n 2 $(OUT)/wer_test.txt
	@echo "== WER against chunk size and left context: $(OUT)/streaming_eval/results.md =="
	@cat $(OUT)/streaming_eval/results.md
	@echo "== exported model $(OUT)/model, one held-out file with stock SpeechBrain StreamingASR (640 ms, 4 left chunks) =="
	$(PYTHON) tools/stock_streaming_asr.py $(OUT)/model $(OUT)/model/example.wav --chunk-frames 16 --left-chunks 4

test: install
	$(PYTHON) -m pytest -q tests
