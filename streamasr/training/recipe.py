"""Glue shared by the training recipes: override checking, manifest validation,
the SentencePiece tokenizer and the SpeechBrain data pipeline.

Hyperparameter keys used here: ``train_csv``, ``valid_csv``, ``test_csv`` (one path or a
list: each test set is decoded and scored on its own),
``data_folder``, ``save_folder``, ``output_neurons``, ``token_type``,
``dynamic_batching``, ``dynamic_batch_sampler_train``, ``train_dataloader_opts``,
``valid_dataloader_opts``, ``test_dataloader_opts``, ``sorting``.
"""

from __future__ import annotations

import difflib
import io
from pathlib import Path
from typing import Mapping

import sentencepiece
import speechbrain as sb
import torch
from hyperpyyaml.core import recursive_update
from ruamel.yaml import YAML
from speechbrain.tokenizers.SentencePiece import SentencePiece

from streamasr.data import corpora
from streamasr.data.batching import CurriculumBatchSampler
from streamasr.data.manifest import ManifestError, validate_manifest
from streamasr.errors import ConfigError
from streamasr.tokenizer import tokenizer_model_path

__all__ = ["ConfigError", "check_overrides", "dataio_prepare", "merge_overrides", "prepare_data",
           "split_override_files", "step_limit_override", "test_sets", "tokenizer_model_path",
           "train_tokenizer", "validate_manifests", "yaml_top_level_keys"]


def yaml_top_level_keys(yaml_text: str) -> list[str]:
    """Top-level keys of a hyperpyyaml document, without instantiating anything."""
    document = YAML(typ="rt").load(io.StringIO(yaml_text))
    return list(document.keys()) if document else []


def check_overrides(hparams_file: str, yaml_text: str, overrides: str | dict | None) -> None:
    """Reject ``--key=value`` overrides whose key is not in the YAML (typos would
    otherwise be silently ignored or fail deep inside hyperpyyaml)."""
    if not overrides:
        return
    if isinstance(overrides, str):
        overrides = YAML(typ="rt").load(io.StringIO(overrides)) or {}  # keeps !ref / !name: tags
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


def test_sets(hparams: dict) -> dict[str, str]:
    """``{name: manifest}`` of the test sets: ``test_csv`` is one path or a list of paths
    (LibriSpeech's test-clean and test-other); the name is the file stem."""
    value = hparams["test_csv"]
    paths = [value] if isinstance(value, (str, Path)) else list(value)
    if not paths:
        raise ConfigError("test_csv: expected a manifest path or a non-empty list of paths")
    names = [Path(path).stem for path in paths]
    if len(set(names)) != len(names):
        raise ConfigError(f"test_csv: two test manifests share a file name: {paths}")
    return dict(zip(names, (str(path) for path in paths)))


def prepare_data(hparams: dict) -> None:
    """Prepare a real corpus when the YAML says so (``prepare_corpus``: librispeech,
    commonvoice or voxpopuli, with ``manifest_folder``, ``prepare_options`` and
    ``skip_bad``); call it on the main process only. No-op for ``prepare_corpus: null``."""
    corpus = hparams.get("prepare_corpus")
    if not corpus:
        return
    options = dict(hparams.get("prepare_options") or {})
    options["skip_bad"] = bool(hparams.get("skip_bad", False))
    corpora.prepare(corpus, hparams["data_folder"], hparams["manifest_folder"], **options)


def step_limit_override(run_opts: Mapping | None, overrides: str | dict | None, yaml_text: str) -> str | dict | None:
    """``--optimizer_step_limit=N`` is a SpeechBrain run option: the Brain stops after N
    updates, but the YAML key of the same name (which the LR schedule's ``total_steps``
    references) would keep its old value, and a schedule that cools down to 0 at the old
    limit then goes negative. Returns the overrides with the YAML key set to N too (when
    the YAML has that key)."""
    limit = run_opts.get("optimizer_step_limit") if run_opts else None
    if limit is None or "optimizer_step_limit" not in yaml_top_level_keys(yaml_text):
        return overrides
    return _merge_yaml([("command line", overrides), ("run option", {"optimizer_step_limit": int(limit)})])


def split_override_files(argv: list[str]) -> tuple[list[str], list[str]]:
    """``train.py BASE.yaml [OVERRIDE.yaml ...] [--key=value ...]``: returns the argv for
    SpeechBrain's parser (base YAML and options) and the override files, in order."""
    rest, files = [], []
    for index, arg in enumerate(argv):
        is_option_value = index > 0 and argv[index - 1].startswith("--") and "=" not in argv[index - 1]
        if rest and not arg.startswith("-") and not is_option_value and arg.endswith((".yaml", ".yml")):
            files.append(arg)
        else:
            rest.append(arg)
    return rest, files


def merge_overrides(files: list[str], cli_overrides: str | dict | None) -> str | dict | None:
    """One override YAML string from YAML files (in order) and then the command line.

    Nested mappings are merged key by key (hyperpyyaml semantics); tags such as
    ``!ref`` and ``!name:`` are kept, so a recipe file may reference base keys.
    """
    if not files:
        return cli_overrides
    documents = []
    for file in files:
        if not Path(file).is_file():
            raise ConfigError(f"override file {file} does not exist")
        documents.append((f"override file {file}", Path(file).read_text(encoding="utf-8")))
    return _merge_yaml(documents + [("command line", cli_overrides)])


def _merge_yaml(documents: list[tuple[str, str | dict | None]]) -> str:
    """Merge ``(source, YAML text or mapping)`` pairs in order into one YAML string
    (a string: hyperpyyaml resolves mapping overrides in place)."""
    yaml = YAML()
    merged = {}
    for source, text in documents:
        if not text:
            continue
        try:
            document = yaml.load(text) if isinstance(text, str) else text
        except Exception as error:
            raise ConfigError(f"{source} is not valid YAML: {error}") from error
        if document is None:
            continue
        if not hasattr(document, "items"):
            raise ConfigError(f"{source}: expected a mapping of top-level keys")
        if merged:
            recursive_update(merged, document)
        else:
            merged = document
    out = io.StringIO()
    yaml.dump(merged, out)
    return out.getvalue() if merged else ""


def validate_manifests(hparams: dict, require_transcript: bool = True) -> None:
    """Check the train/valid/test manifests and their audio before any training.
    require_transcript: False for a task that reads no transcripts (the ``wrd`` column
    may then be absent or empty)."""
    problems = []
    manifests = [("train_csv", hparams["train_csv"]), ("valid_csv", hparams["valid_csv"])]
    manifests += [(f"test_csv ({name})", path) for name, path in test_sets(hparams).items()]
    for key, path in manifests:
        try:
            summary = validate_manifest(path, data_root=hparams["data_folder"], progress=True,
                                        require_transcript=require_transcript)
            print(f"{key}: {path}: {summary.utterances} utterances, {summary.hours:.2f} h")
        except ManifestError as error:
            hint = ""
            if not Path(path).is_file() and Path(path).stem in ("test_human", "test_human_unseen"):
                hint = (" (a corpus built with `build-corpus --no-human` has no recordings of people: "
                        "rebuild it without --no-human, or pass test_csv without them, e.g. "
                        "--test_csv=[data/synthetic/test_voices.csv])")
            problems.append(f"{key}: {error}{hint}")
    if problems:
        raise ManifestError("\n".join(problems))


def train_tokenizer(hparams: dict) -> sentencepiece.SentencePieceProcessor:
    """Train (once) or load the SentencePiece model on the train transcripts.

    Returns a ``sentencepiece.SentencePieceProcessor``; the model file is
    ``<save_folder>/tokenizer/<vocab>_<type>.model``. Id 0 is ``<unk>`` and doubles as
    the transducer/CTC blank, as in SpeechBrain's transducer recipes.
    """
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


def dataio_prepare(hparams: dict, tokenizer: sentencepiece.SentencePieceProcessor) -> dict:
    """Build the train/valid/test ``DynamicItemDataset`` objects (``"test"`` maps each
    test set name to its dataset, see :func:`test_sets`).

    Each item provides ``sig`` (16 kHz float waveform), ``tokens`` and ``tokens_bos``
    (blank-prefixed, the prediction network's input) and ``wrd``.
    """
    data_root = hparams["data_folder"]
    manifests = {"train": hparams["train_csv"], "valid": hparams["valid_csv"]}
    manifests.update({f"test:{name}": path for name, path in test_sets(hparams).items()})
    datasets = {}
    for split, path in manifests.items():
        dataset = sb.dataio.dataset.DynamicItemDataset.from_csv(
            csv_path=path, replacements={"data_root": data_root}
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
    datasets["test"] = {split[len("test:"):]: datasets.pop(split) for split in list(datasets)
                        if split.startswith("test:")}
    return datasets

