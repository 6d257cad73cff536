"""A trained recogniser as one object: loading it, masked (batched) and streaming use.

Owns: finding the YAML, checkpoint and tokenizer of a training output folder, checking
that they fit together, and the masked-simulation decoding path (whole utterances,
``dynchunktrain_config`` passed to the encoder).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import torch
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from streamasr.decoding import GreedyTransducerDecoder, Hypothesis, greedy_decoder_from
from streamasr.frontend import FrontEnd


class ModelLoadError(ValueError):
    """A model folder is incomplete or its parts do not fit together."""


@dataclasses.dataclass
class AsrModel:
    front_end: FrontEnd
    transformer: torch.nn.Module  # speechbrain TransformerASR (Conformer encoder)
    proj_enc: torch.nn.Module
    decoder: GreedyTransducerDecoder
    tokenizer: object  # sentencepiece.SentencePieceProcessor
    hparams: dict
    source: str = ""

    @property
    def geometry(self):
        return self.front_end.geometry

    @property
    def device(self) -> torch.device:
        return next(self.proj_enc.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.proj_enc.parameters()).dtype

    def to(self, *args, **kwargs) -> "AsrModel":
        """Move/cast every module (e.g. ``model.to(torch.float64)`` for exact checks)."""
        for module in self.hparams["modules"].values():
            module.to(*args, **kwargs)
        self.front_end.to(*args, **kwargs)
        dtype = next((a for a in args if isinstance(a, torch.dtype)), kwargs.get("dtype"))
        if dtype is not None:
            # RelPosEncXL keeps its output dtype in a plain attribute, not a buffer.
            for module in self.transformer.modules():
                if hasattr(module, "emb_dtype"):
                    module.emb_dtype = dtype
        return self

    def decode_tokens(self, tokens: list[int]) -> str:
        return self.tokenizer.decode_ids(tokens)

    def decode_continuation(self, tokens: list[int], at_start: bool) -> str:
        """Text of ``tokens`` appended to a transcript: SentencePiece pieces joined,
        word boundaries (``▁``) as spaces, no leading space at the transcript start.
        Concatenating the pieces of a stream equals ``decode_tokens`` of all its tokens,
        in O(new tokens) per chunk (re-decoding everything would be quadratic over
        hours)."""
        text = "".join(self.tokenizer.id_to_piece(token) for token in tokens).replace("\u2581", " ")
        return text.lstrip(" ") if at_start else text

    @torch.no_grad()
    def encoder_inputs(self, wavs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Front end per utterance (exact, no padding effects), zero-padded into a batch:
        returns ``[B, T_max, F]`` and frame counts ``[B]``."""
        feats = [self.front_end(w.to(self.device)[None])[0] for w in wavs]
        lengths = torch.tensor([f.shape[0] for f in feats], device=self.device)
        return torch.nn.utils.rnn.pad_sequence(feats, batch_first=True), lengths

    @torch.no_grad()
    def transcribe_masked(
        self, wavs: list[torch.Tensor], config: Optional[DynChunkTrainConfig]
    ) -> list[Hypothesis]:
        """Masked simulation of streaming: whole utterances ``[samples]`` each, batched,
        with the chunked attention/convolution masks of ``config`` (None = full context)."""
        src, lengths = self.encoder_inputs(wavs)
        hyps, _ = self.decoder(self.encode_features(src, lengths, config), lengths)
        return hyps

    @torch.no_grad()
    def encode_features(
        self, src: torch.Tensor, lengths: torch.Tensor, config: Optional[DynChunkTrainConfig]
    ) -> torch.Tensor:
        """Front-end output ``[B, T_max, F]`` with frame counts ``[B]`` (from
        ``encoder_inputs``) -> encoder output as the joint sees it (after ``proj_enc``),
        ``[B, T_max, J]``, with the chunk masks of ``config`` (None = full context)."""
        rel = lengths.float() / src.shape[1]
        encoded = self.transformer.encode(src, rel, dynchunktrain_config=config)
        return self.proj_enc(encoded)


def _best_checkpoint(save_folder: Path, checkpointer):
    checkpoints = checkpointer.list_checkpoints()
    if not checkpoints:
        raise ModelLoadError(f"no checkpoint in {save_folder}")
    scored = [c for c in checkpoints if "WER" in c.meta]
    if scored:
        return min(scored, key=lambda c: c.meta["WER"])
    return max(checkpoints, key=lambda c: c.meta["unixtime"])


def load_model(path: str | Path, device: str = "cpu") -> AsrModel:
    """Load a recogniser from a ``train.py`` output folder (best checkpoint by valid WER)."""
    path = Path(path)
    if not path.is_dir():
        raise ModelLoadError(f"model folder {path} does not exist")
    if (path / "hyperparams.yaml").is_file() and (path / "save").is_dir():
        return load_training_folder(path, device)
    if (path / "hyperparams.yaml").is_file() and (path / "model.ckpt").exists():
        return load_exported_folder(path, device)
    raise ModelLoadError(
        f"{path} is neither a training output folder (hyperparams.yaml + save/) nor an "
        f"exported model folder (hyperparams.yaml + model.ckpt + normalizer.ckpt + tokenizer.ckpt)"
    )


def load_exported_folder(folder: str | Path, device: str = "cpu") -> AsrModel:
    """Load a ``streamasr export`` folder (the files stock StreamingASR reads)."""
    from hyperpyyaml import load_hyperpyyaml

    from streamasr.export import ExportError, check_model_folder

    folder = Path(folder)
    try:
        check_model_folder(folder)  # every file present, YAML loads, checkpoint matches
    except ExportError as error:
        raise ModelLoadError(str(error)) from None
    with open(folder / "hyperparams.yaml", encoding="utf-8") as handle:
        hparams = load_hyperpyyaml(handle)
    hparams["model"].load_state_dict(torch.load(folder / "model.ckpt", map_location="cpu"))
    hparams["normalize"]._load(folder / "normalizer.ckpt")
    import sentencepiece

    tokenizer = sentencepiece.SentencePieceProcessor()
    tokenizer.load(str(folder / "tokenizer.ckpt"))
    modules = dict(hparams["modules"])
    modules.update(normalize=hparams["normalize"], Transformer=hparams["Transformer"])
    return build_model({**hparams, "modules": modules}, tokenizer, device, source=str(folder))


def load_training_folder(folder: str | Path, device: str = "cpu") -> AsrModel:
    """Load the best checkpoint (lowest valid WER) of a ``train.py`` output folder."""
    from hyperpyyaml import load_hyperpyyaml

    from streamasr.recipe import tokenizer_model_path

    folder = Path(folder)
    yaml_path = folder / "hyperparams.yaml"
    if not yaml_path.is_file():
        raise ModelLoadError(f"{folder} is not a training output folder: {yaml_path} is missing")
    with open(yaml_path, encoding="utf-8") as handle:
        hparams = load_hyperpyyaml(handle)
    from speechbrain.utils.checkpoints import Checkpointer

    # The folder may have moved since training: read checkpoints from where it is now.
    save_folder = folder / "save"
    checkpointer = Checkpointer(save_folder, recoverables=hparams["checkpointer"].recoverables)
    checkpoint = _best_checkpoint(save_folder, checkpointer)
    try:
        checkpointer.load_checkpoint(checkpoint)
    except RuntimeError as error:  # torch's size-mismatch message
        raise ModelLoadError(
            f"checkpoint {checkpoint.path} does not match {yaml_path}: {str(error).splitlines()[0]}"
            f"{' ' + str(error).splitlines()[1].strip() if len(str(error).splitlines()) > 1 else ''}"
        ) from None
    import sentencepiece

    tokenizer_path = save_folder / "tokenizer" / tokenizer_model_path(hparams).name
    if not tokenizer_path.is_file():
        raise ModelLoadError(f"tokenizer {tokenizer_path} is missing")
    tokenizer = sentencepiece.SentencePieceProcessor()
    tokenizer.load(str(tokenizer_path))
    return build_model(hparams, tokenizer, device, source=str(folder))


def build_model(hparams: dict, tokenizer, device: str = "cpu", source: str = "") -> AsrModel:
    """Assemble an AsrModel from instantiated hyperparameters (weights already loaded)."""
    modules = hparams["modules"]
    for module in modules.values():
        module.to(device).eval()
    front_end = FrontEnd(
        hparams["compute_features"], modules["normalize"], modules["CNN"], hparams["sample_rate"]
    ).to(device).eval()
    decoder = greedy_decoder_from(modules, hparams["blank_index"])
    return AsrModel(
        front_end, modules["Transformer"], modules["proj_enc"], decoder, tokenizer, hparams, source
    )
