"""The Hugging Face model card (``README.md``) of an exported folder: YAML front matter
(language, licence, tags, datasets, metrics, model index with the test WER), the
WER-vs-chunk table of ``streamasr evaluate`` when present, and usage with stock
SpeechBrain."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional


def model_card(name: str, meta: dict, results_md: Optional[str], example: Optional[str]) -> str:
    front = [
        "---",
        f"language: {meta.get('language', 'en')}",
        f"license: {meta.get('license', 'apache-2.0')}",
        "library_name: speechbrain",
        "pipeline_tag: automatic-speech-recognition",
        "tags:",
        "- automatic-speech-recognition",
        "- streaming",
        "- speechbrain",
        "- transducer",
        "- conformer",
        "- dynamic-chunk-training",
        "datasets:",
        f"- {meta.get('dataset', 'streamasr-synthetic')}",
        "metrics:",
        "- wer",
        "- cer",
    ]
    if meta.get("test_wer") is not None:
        front += [
            "model-index:",
            f"- name: {name}",
            "  results:",
            "  - task:",
            "      type: automatic-speech-recognition",
            "    dataset:",
            f"      name: {meta.get('dataset', 'streamasr-synthetic')}",
            f"      type: {meta.get('dataset', 'streamasr-synthetic')}",
            "    metrics:",
            "    - type: wer",
            f"      value: {meta['test_wer']}",
            "      name: Test WER (full context)",
        ]
    front.append("---")
    example_file = example or "example.wav"
    body = f"""
# {name}: streaming Conformer-Transducer (Dynamic Chunk Training)

A streaming speech recogniser trained with [streamasr](https://github.com/) on
SpeechBrain: Fbank (80 mels) -> CNN front end (40 ms frames) -> Conformer encoder with
chunked attention and Dynamic Chunk Convolutions -> RNN-T with an LSTM prediction
network, greedy decoding. One model serves every chunk size and left context chosen at
run time. {meta.get('description', '')}

## Usage (stock SpeechBrain, no other package)

```python
from speechbrain.inference.ASR import StreamingASR
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

asr = StreamingASR.from_hparams(source="<this repo or folder>", savedir="pretrained_model")
# 16 encoder frames of 40 ms = 640 ms chunks, 4 chunks of left context
text = asr.transcribe_file("{example_file}", DynChunkTrainConfig(16, 4),
                           use_torchaudio_streaming=False)
print(text)
```

`use_torchaudio_streaming=False` is needed with torchaudio >= 2.9 (its
`StreamReader` was removed). Unlimited left context (`DynChunkTrainConfig(16, None)`)
is not supported by SpeechBrain 1.1.2's streaming encoder; use a finite number of chunks.
Chunk sizes are in encoder frames (1 frame = 40 ms).

## Run with sherpa-onnx

This model computes SpeechBrain's Fbank (hamming window, HTK mel, dB); sherpa-onnx
computes kaldi-native-fbank's features (Hann, pre-emphasis, Slaney mel, natural log)
and would feed them to it: it runs, but badly (measured in streamasr's recipes/Synthetic/RESULTS.md). For
sherpa-onnx, train with streamasr's `hparams/frontend_kaldi.yaml`, then

```bash
streamasr export-onnx <training folder> model-sherpa --target sherpa-onnx --chunk-ms 640 --left-chunks 4
sherpa-onnx-online-websocket-server --port=6006 --tokens=model-sherpa/tokens.txt \
    --encoder=model-sherpa/encoder.onnx --decoder=model-sherpa/decoder.onnx --joiner=model-sherpa/joiner.onnx
```

(`model-sherpa/README.md` has the Python API and client commands.)

## Results
"""
    if meta.get("test_wer") is not None:
        which = f"{meta['primary_test_set']}, " if meta.get("test_sets") else ""
        body += f"\nTest WER ({which}full context, greedy): {meta['test_wer']:.2f} %"
        if meta.get("test_cer") is not None:
            body += f", CER {meta['test_cer']:.2f} %"
        body += ".\n"
    if meta.get("test_sets"):
        body += "\n| test set | what it measures | WER (%) | CER (%) |\n| --- | --- | --- | --- |\n"
        for set_name, scores in meta["test_sets"].items():
            body += (f"| {set_name} | {TEST_SET_MEANING.get(set_name, '')} | {scores.get('wer', float('nan')):.2f} "
                     f"| {scores.get('cer', float('nan')):.2f} |\n")
    if results_md:
        body += "\nWER (%) against chunk size and left context (from `streamasr evaluate`):\n\n"
        body += results_md.strip() + "\n"
    if meta.get("test_wer") is None and not results_md:
        body += "\nNo evaluation results were found beside the training run.\n"
    if meta.get("source"):
        git = f", git {meta['git_commit']}" if meta.get("git_commit") else ""
        body += (f"\nExported by `streamasr export` (streamasr {meta.get('streamasr_version', '?')}{git}) from the "
                 f"training run `{meta['source']}` (weights {meta.get('checkpoint', '?')}).\n")
    body += f"""
## Files

- `hyperparams.yaml`: inference graph (generated from the training YAML)
- `model.ckpt`: encoder, prediction and joint networks{meta.get('averaged', '')}
- `normalizer.ckpt`: global feature normalisation statistics
- `tokenizer.ckpt`: SentencePiece model ({meta.get('vocab', '?')} units)
- `{example_file}`: an example utterance
"""
    return "\n".join(front) + "\n" + body


PRIMARY_WER_FILES = ("wer_test.txt", "wer_test_voices.txt")
TEST_SET_MEANING = {
    "test_voices": "held-out voices, in-domain text",
    "test_text": "held-out text sources (unseen words), same voices as test_voices",
    "test_synth": "a synthesiser and speakers never heard in training",
    "test_human": "recordings of a person (telephony prompts), prompt texts never in training",
    "test_human_unseen": "recordings of people never heard in training",
}


def _wer_cer(path: Path) -> dict:
    found = {}
    text = path.read_text(encoding="utf-8")
    for key, pattern in (("wer", r"^%WER ([\d.]+)\s*$"), ("cer", r"^%CER ([\d.]+)\s*$")):
        match = re.search(pattern, text, flags=re.MULTILINE)
        if match:
            found[key] = float(match.group(1))
    return found


def read_test_results(training_folder: Path) -> dict:
    """``test_wer`` / ``test_cer`` of the primary test set (``wer_test.txt``, else the
    built-in corpus's ``wer_test_voices.txt``, else the first ``wer_*.txt``) and
    ``test_sets``: {name: {"wer", "cer"}} of every ``wer_<name>.txt``, primary first, then
    test_text and test_synth, then the rest by name."""
    known = [f"wer_{name}.txt" for name in TEST_SET_MEANING]  # the built-in corpus's order

    def rank(path: Path) -> tuple:
        primary = PRIMARY_WER_FILES.index(path.name) if path.name in PRIMARY_WER_FILES else len(PRIMARY_WER_FILES)
        return primary, known.index(path.name) if path.name in known else len(known), path.name

    files = sorted(training_folder.glob("wer_*.txt"), key=rank)
    found: dict = {}
    sets = {}
    for path in files:
        sets[path.stem[len("wer_"):]] = _wer_cer(path)
    if sets:
        found["primary_test_set"] = next(iter(sets))
        primary = next(iter(sets.values()))
        if "wer" in primary:
            found["test_wer"] = primary["wer"]
        if "cer" in primary:
            found["test_cer"] = primary["cer"]
        if len(sets) > 1:
            found["test_sets"] = sets
    return found
