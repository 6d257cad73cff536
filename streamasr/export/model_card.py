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
        f"- {meta.get('dataset', 'streamasr-synthetic-espeak')}",
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
            f"      name: {meta.get('dataset', 'streamasr-synthetic-espeak')}",
            f"      type: {meta.get('dataset', 'streamasr-synthetic-espeak')}",
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

## Results
"""
    if meta.get("test_wer") is not None:
        body += f"\nTest WER (full context, greedy): {meta['test_wer']:.2f} %"
        if meta.get("test_cer") is not None:
            body += f", CER {meta['test_cer']:.2f} %"
        body += ".\n"
    if results_md:
        body += "\nWER (%) against chunk size and left context (from `streamasr evaluate`):\n\n"
        body += results_md.strip() + "\n"
    if meta.get("test_wer") is None and not results_md:
        body += "\nNo evaluation results were found beside the training run.\n"
    body += f"""
## Files

- `hyperparams.yaml`: inference graph (generated from the training YAML)
- `model.ckpt`: encoder, prediction and joint networks{meta.get('averaged', '')}
- `normalizer.ckpt`: global feature normalisation statistics
- `tokenizer.ckpt`: SentencePiece model ({meta.get('vocab', '?')} units)
- `{example_file}`: an example utterance
"""
    return "\n".join(front) + "\n" + body


def read_test_results(training_folder: Path) -> dict:
    found = {}
    wer_file = training_folder / "wer_test.txt"
    if not wer_file.is_file():  # several test sets (wer_test-clean.txt, ...): the first
        wer_file = next(iter(sorted(training_folder.glob("wer_*.txt"))), wer_file)
    if wer_file.is_file():
        text = wer_file.read_text(encoding="utf-8")
        for key, pattern in (("test_wer", r"^%WER ([\d.]+)\s*$"), ("test_cer", r"^%CER ([\d.]+)\s*$")):
            match = re.search(pattern, text, flags=re.MULTILINE)
            if match:
                found[key] = float(match.group(1))
    return found
