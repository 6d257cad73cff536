"""Glue shared by the training recipes: override checking, manifest validation,
the SentencePiece tokenizer and the SpeechBrain data pipeline.

Hyperparameter keys used here: ``train_csv``, ``valid_csv``, ``test_csv``,
``data_folder``, ``save_folder``, ``output_neurons``, ``token_type``,
``dynamic_batching``, ``dynamic_batch_sampler_train``, ``train_dataloader_opts``,
``valid_dataloader_opts``, ``test_dataloader_opts``, ``sorting``.
"""

from __future__ import annotations

import difflib
import io
from pathlib import Path

import speechbrain as sb
import yaml

from streamasr.data.manifest import ManifestError, validate_manifest


class ConfigError(ValueError):
    """A YAML file or a command-line override is wrong."""


def yaml_top_level_keys(yaml_text: str) -> list[str]:
    """Top-level keys of a hyperpyyaml document, without instantiating anything."""
    from ruamel.yaml import YAML

    document = YAML(typ="rt").load(io.StringIO(yaml_text))
    return list(document.keys()) if document else []


def check_overrides(hparams_file: str, yaml_text: str, overrides: str | dict | None) -> None:
    """Reject ``--key=value`` overrides whose key is not in the YAML (typos would
    otherwise be silently ignored or fail deep inside hyperpyyaml)."""
    if not overrides:
        return
    if isinstance(overrides, str):
        overrides = yaml.safe_load(overrides) or {}
    known = set(yaml_top_level_keys(yaml_text))
    unknown = [key for key in overrides if key not in known]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, known, n=1)
            hints.append(f"--{key}" + (f" (did you mean --{close[0]}?)" if close else ""))
        raise ConfigError(
            f"unknown override(s) {', '.join(hints)}: not a key of {hparams_file}"
        )


def validate_manifests(hparams: dict) -> None:
    """Check the train/valid/test manifests and their audio before any training."""
    problems = []
    for key in ("train_csv", "valid_csv", "test_csv"):
        try:
            summary = validate_manifest(hparams[key], data_root=hparams["data_folder"], progress=True)
            print(f"{key}: {hparams[key]}: {summary.utterances} utterances, {summary.hours:.2f} h")
        except ManifestError as error:
            problems.append(f"{key}: {error}")
    if problems:
        raise ManifestError("\n".join(problems))


def train_tokenizer(hparams: dict):
    """Train (once) or load the SentencePiece model on the train transcripts.

    Returns a ``sentencepiece.SentencePieceProcessor``; the model file is
    ``<save_folder>/tokenizer/<vocab>_<type>.model``. Id 0 is ``<unk>`` and doubles as
    the transducer/CTC blank, as in SpeechBrain's transducer recipes.
    """
    from speechbrain.tokenizers.SentencePiece import SentencePiece

    folder = Path(hparams["save_folder"]) / "tokenizer"
    folder.mkdir(parents=True, exist_ok=True)
    spm = SentencePiece(
        model_dir=str(folder),
        vocab_size=hparams["output_neurons"],
        annotation_train=hparams["train_csv"],
        annotation_read="wrd",
        model_type=hparams["token_type"],
        character_coverage=1.0,
        bos_id=-1,
        eos_id=-1,
    )
    return spm.sp


def tokenizer_model_path(hparams: dict) -> Path:
    return Path(hparams["save_folder"]) / "tokenizer" / (
        f"{hparams['output_neurons']}_{hparams['token_type']}.model"
    )


def dataio_prepare(hparams: dict, tokenizer) -> dict:
    """Build the train/valid/test ``DynamicItemDataset`` objects.

    Each item provides ``sig`` (16 kHz float waveform), ``tokens`` and ``tokens_bos``
    (blank-prefixed, the prediction network's input) and ``wrd``.
    """
    data_root = hparams["data_folder"]
    datasets = {}
    for split in ("train", "valid", "test"):
        dataset = sb.dataio.dataset.DynamicItemDataset.from_csv(
            csv_path=hparams[f"{split}_csv"], replacements={"data_root": data_root}
        )
        if split != "train" or hparams["sorting"] == "ascending":
            dataset = dataset.filtered_sorted(sort_key="duration")
        elif hparams["sorting"] == "descending":
            dataset = dataset.filtered_sorted(sort_key="duration", reverse=True)
        datasets[split] = dataset

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return sb.dataio.dataio.read_audio(wav)

    blank = hparams["blank_index"]

    @sb.utils.data_pipeline.takes("wrd")
    @sb.utils.data_pipeline.provides("tokens_list", "tokens_bos", "tokens")
    def text_pipeline(wrd):
        import torch

        tokens_list = tokenizer.encode_as_ids(wrd)
        yield tokens_list
        yield torch.LongTensor([blank] + tokens_list)
        yield torch.LongTensor(tokens_list)

    splits = list(datasets.values())
    sb.dataio.dataset.add_dynamic_item(splits, audio_pipeline)
    sb.dataio.dataset.add_dynamic_item(splits, text_pipeline)
    sb.dataio.dataset.set_output_keys(splits, ["id", "sig", "wrd", "tokens_bos", "tokens"])

    train_loader_kwargs = dict(hparams["train_dataloader_opts"])
    if hparams.get("dynamic_batching", False):
        from streamasr.data.batching import CurriculumBatchSampler

        sampler = CurriculumBatchSampler(
            datasets["train"],
            length_func=lambda item: float(item["duration"]),
            **hparams["dynamic_batch_sampler_train"],
        )
        train_loader_kwargs = {
            "batch_sampler": sampler,
            "num_workers": train_loader_kwargs.get("num_workers", 0),
        }
    elif hparams["sorting"] != "random":
        train_loader_kwargs["shuffle"] = False
    datasets["train_loader_kwargs"] = train_loader_kwargs
    return datasets

