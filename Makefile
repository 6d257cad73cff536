# streamasr: the two entry points of the README.
#   make demo   install, build the built-in corpus, train the demo model (the small YAML with
#               the demo budget, DEMO_YAML), WER of the five test sets,
#               sweep WER / latency against chunk size and left context, export the
#               model for SpeechBrain's StreamingASR and transcribe a held-out file with it
#   make test   install, run the test suite (both tiers)
#   make test-unit   install, run the unit tier only (pytest -m "not slow", ~2 minutes on 2 cores)
#   make gpu-wheels   download the wheels benchmarks/gpu_check.sh installs on the GPU
#               machine (Python 3.12, x86_64; no network there)
# Variables: STREAMASR_VENV (default ~/.cache/streamasr/venv), DATA, OUT, TRAIN_ARGS.

STREAMASR_VENV ?= $(HOME)/.cache/streamasr/venv
PYTHON := $(STREAMASR_VENV)/bin/python
DATA ?= data/synthetic
OUT ?= results/demo
TRAIN_ARGS ?=
# The demo recipe: the small model, bf16 where the CPU has it natively, 16,000 updates
# (hparams/demo.yaml)
DEMO_YAML := hparams/conformer_transducer_small.yaml hparams/demo.yaml

.PHONY: install corpus train evaluate export demo test test-unit gpu-wheels

install:
	STREAMASR_VENV=$(STREAMASR_VENV) bash tools/install.sh

corpus: install
	$(PYTHON) -m streamasr.cli build-corpus $(DATA)

train: corpus
	$(PYTHON) train.py $(DEMO_YAML) --data_folder=$(DATA) --output_folder=$(OUT) $(TRAIN_ARGS)

evaluate: train
	$(PYTHON) -m streamasr.cli evaluate $(OUT) --manifest $(DATA)/test_voices.csv \
		--output $(OUT)/streaming_eval --overwrite

export: evaluate
	$(PYTHON) -m streamasr.cli export $(OUT) $(OUT)/model --overwrite

demo: export
	@echo "== test WER (full context, greedy), from $(OUT)/wer_<test set>.txt =="
	@echo "   test_voices: held-out voices | test_text: held-out text sources (unseen words) | test_synth: unseen synthesiser"
	@echo "   test_human: a person, prompts never in training | test_human_unseen: people never heard in training"
	@for set in test_voices test_text test_synth test_human test_human_unseen; do \
		printf '%-18s ' $$set; grep -m1 -E '^%WER' $(OUT)/wer_$$set.txt; done
	@echo "== WER against chunk size and left context (test_voices): $(OUT)/streaming_eval/results.md =="
	@cat $(OUT)/streaming_eval/results.md
	@echo "== exported model $(OUT)/model, one held-out file with stock SpeechBrain StreamingASR (640 ms, 4 left chunks) =="
	$(PYTHON) tools/stock_streaming_asr.py $(OUT)/model $(OUT)/model/example.wav --chunk-frames 16 --left-chunks 4

test: install
	$(PYTHON) -m pytest -q tests

test-unit: install
	$(PYTHON) -m pytest -q -m "not slow" tests

# SpeechBrain 1.1.2 and what its import needs beyond the GPU machine's torch, numpy and
# sentencepiece; pinned to the versions the test suite runs with.
GPU_WHEELS := speechbrain==1.1.2 hyperpyyaml==1.2.3 ruamel.yaml==0.18.17 joblib==1.6.0 \
	tqdm==4.70.1 packaging==26.4 cloudpickle==3.1.3 pyyaml==6.0.4 scipy==1.17.1
GPU_PYTHON_VERSION ?= 3.12

gpu-wheels: install
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: \
		--python-version $(GPU_PYTHON_VERSION) --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		--dest benchmarks/gpu_wheels $(GPU_WHEELS)
	@du -sh benchmarks/gpu_wheels
