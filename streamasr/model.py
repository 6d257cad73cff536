"""A trained recogniser as one object (``AsrModel``), and loading one from a folder.

Owns: finding the YAML, checkpoint and tokenizer of a training output folder or an
exported folder, checking that they fit together, assembling the typed parts (front
end, encoder, decoder = prediction network, joiner; ``streamasr.parts``) and the
masked-simulation decoding path (whole utterances, ``dynchunktrain_config`` passed to
the encoder, greedy search).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Optional

import sentencepiece
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from streamasr.checkpoints import ranked_checkpoints
from streamasr.dct import encode_masked
from streamasr.decoding import BeamSearch, Decoding, GreedySearch, Hypothesis, as_decoding
from streamasr.errors import ModelLoadError
from streamasr.frontend import FrontEnd, FrontEndGeometry
from streamasr.keys import KEYS
from streamasr.parts import Joiner, PredictionNetwork
from streamasr.tokenizer import continuation_text, load_tokenizer, tokenizer_model_path

# What `streamasr export` writes and an exported folder must hold.
EXPORTED_FILES = ("hyperparams.yaml", "model.ckpt", "normalizer.ckpt", "tokenizer.ckpt")


@dataclasses.dataclass
class AsrModel:
    """A transducer ready for inference (eval mode), with its tokenizer.

    ``search`` is the greedy search over ``decoder`` and ``joiner``, built once.
    """

    front_end: FrontEnd
    encoder: torch.nn.Module  # speechbrain TransformerASR (Conformer encoder)
    encoder_proj: torch.nn.Module  # encoder output -> joiner dimension
    decoder: PredictionNetwork
    joiner: Joiner
    tokenizer: sentencepiece.SentencePieceProcessor
    hparams: dict
    source: str = ""
    blank_id: int = 0
    search: GreedySearch = dataclasses.field(init=False)

    def __post_init__(self):
        self.search = GreedySearch(self.decoder, self.joiner, blank_id=self.blank_id)

    @property
    def geometry(self) -> FrontEndGeometry:
        return self.front_end.geometry

    @property
    def device(self) -> torch.device:
        return next(self.encoder_proj.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.encoder_proj.parameters()).dtype

    def to(self, *args: Any, **kwargs: Any) -> "AsrModel":
        """Move/cast every module (e.g. ``model.to(torch.float64)`` for exact checks)."""
        for module in self.hparams["modules"].values():
            module.to(*args, **kwargs)
        self.front_end.to(*args, **kwargs)
        dtype = next((a for a in args if isinstance(a, torch.dtype)), kwargs.get("dtype"))
        if dtype is not None:
            # RelPosEncXL keeps its output dtype in a plain attribute, not a buffer.
            for module in self.encoder.modules():
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
        return continuation_text(self.tokenizer, tokens, at_start)

    @torch.no_grad()
    def encoder_inputs(self, wavs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Front end per utterance (exact, no padding effects), zero-padded into a batch:
        returns ``[B, T_max, F]`` and frame counts ``[B]``."""
        feats = [self.front_end(w.to(self.device)[None])[0] for w in wavs]
        lengths = torch.tensor([f.shape[0] for f in feats], device=self.device)
        return torch.nn.utils.rnn.pad_sequence(feats, batch_first=True), lengths

    def make_search(self, decoding: "str | Decoding" = "greedy", beam: int = 4) -> GreedySearch | BeamSearch:
        """A search over this model's decoder and joiner: ``greedy`` (the model's own
        ``search``) or ``beam`` (batched modified beam search of ``beam`` hypotheses), or
        what a ``Decoding`` says (LM fusion)."""
        spec = as_decoding(decoding, beam)
        if spec.kind == "greedy":
            return self.search
        return spec.build(self.decoder, self.joiner, self.blank_id)

    @torch.no_grad()
    def transcribe_masked(
        self, wavs: list[torch.Tensor], config: Optional[DynChunkTrainConfig],
        search: GreedySearch | BeamSearch | None = None,
    ) -> list[Hypothesis]:
        """Masked simulation of streaming: whole utterances ``[samples]`` each, batched,
        with the chunked attention/convolution masks of ``config`` (None = full context);
        ``search``: the model's greedy search by default."""
        search = search or self.search
        src, lengths = self.encoder_inputs(wavs)
        hyps, state = search(self.encode_features(src, lengths, config), lengths)
        if search.holds_pending:  # beam search: the rest of the best hypothesis
            rest, _ = search.finish(state)
            hyps = [Hypothesis(h.tokens + r.tokens, h.frames + [f + int(n) for f in r.frames],
                               h.confidences + r.confidences) for h, r, n in zip(hyps, rest, lengths)]
        return hyps

    @torch.no_grad()
    def encode_features(
        self, src: torch.Tensor, lengths: torch.Tensor, config: Optional[DynChunkTrainConfig]
    ) -> torch.Tensor:
        """Front-end output ``[B, T_max, F]`` with frame counts ``[B]`` (from
        ``encoder_inputs``) -> encoder output as the joiner sees it (after ``proj_enc``),
        ``[B, T_max, J]``, with the chunk masks of ``config`` (None = full context)."""
        rel = lengths.float() / src.shape[1]
        encoded = encode_masked(self.encoder, src, rel, dynchunktrain_config=config)
        return self.encoder_proj(encoded)


def load_model(path: str | os.PathLike, device: str = "cpu") -> AsrModel:
    """Load a recogniser from a ``train.py`` output folder (best checkpoint by valid
    WER) or a ``streamasr export`` folder."""
    path = Path(path)
    if not path.is_dir():
        raise ModelLoadError(f"model folder {path} does not exist")
    if (path / "hyperparams.yaml").is_file() and (path / "save").is_dir():
        return load_training_folder(path, device)
    if (path / "hyperparams.yaml").is_file() and (path / "model.ckpt").exists():
        return load_exported_folder(path, device)
    if (path / "encoder.onnx").is_file():
        raise ModelLoadError(f"{path} is an ONNX folder: `streamasr transcribe` runs it as it is; anything that "
                             "needs the PyTorch model (evaluate's masked simulation, export) needs its model folder "
                             "(with --backend onnx)")
    raise ModelLoadError(
        f"{path} is neither a training output folder (hyperparams.yaml + save/) nor an "
        f"exported model folder (hyperparams.yaml + model.ckpt + normalizer.ckpt + tokenizer.ckpt)"
    )


def check_model_folder(folder: str | os.PathLike, error: type[Exception] = ModelLoadError) -> dict:
    """Raise ``error`` (default ``ModelLoadError``) naming the problem unless ``folder``
    is a loadable export: all files present, the YAML instantiates, ``model.ckpt``
    matches it exactly. Returns the instantiated hyperparameters, weights loaded."""
    folder = Path(folder)
    missing = [name for name in EXPORTED_FILES if not (folder / name).is_file()]
    if missing:
        raise error(f"model folder {folder} is missing {', '.join(missing)}")
    try:
        hparams = load_hyperpyyaml((folder / "hyperparams.yaml").read_text(encoding="utf-8"))
    except Exception as failure:  # hyperpyyaml raises many types
        raise error(f"{folder / 'hyperparams.yaml'} does not load: {failure}") from None
    try:
        state = torch.load(folder / "model.ckpt", map_location="cpu")
    except Exception as failure:
        raise error(f"{folder / 'model.ckpt'} is not a readable checkpoint: {failure}") from None
    try:
        hparams[KEYS.model].load_state_dict(state, strict=True)
    except RuntimeError as failure:
        first = str(failure).splitlines()
        detail = " ".join(line.strip() for line in first[:2])
        raise error(f"{folder / 'model.ckpt'} does not match {folder / 'hyperparams.yaml'}: {detail}") from None
    return hparams


def load_exported_folder(folder: str | os.PathLike, device: str = "cpu") -> AsrModel:
    """Load a ``streamasr export`` folder (the files stock StreamingASR reads)."""
    folder = Path(folder)
    hparams = check_model_folder(folder)  # every file present, YAML loads, checkpoint matches
    hparams[KEYS.normalize]._load(folder / "normalizer.ckpt")
    tokenizer = load_tokenizer(folder / "tokenizer.ckpt")
    # The exported `modules` hold the encoder as `enc` (StreamingASR's EncoderWrapper).
    modules = dict(hparams["modules"])
    modules.update({KEYS.normalize: hparams[KEYS.normalize], KEYS.encoder: hparams[KEYS.encoder]})
    return build_model({**hparams, "modules": modules}, tokenizer, device, source=str(folder))


def load_training_folder(folder: str | os.PathLike, device: str = "cpu") -> AsrModel:
    """Load the best checkpoint (lowest valid WER) of a ``train.py`` output folder."""
    folder = Path(folder)
    yaml_path = folder / "hyperparams.yaml"
    if not yaml_path.is_file():
        raise ModelLoadError(f"{folder} is not a training output folder: {yaml_path} is missing")
    with open(yaml_path, encoding="utf-8") as handle:
        hparams = load_hyperpyyaml(handle)
    # The folder may have moved since training: read checkpoints from where it is now.
    save_folder = folder / "save"
    recoverables = hparams["checkpointer"].recoverables
    ranked = ranked_checkpoints(save_folder, recoverables)
    if not ranked:
        raise ModelLoadError(f"no checkpoint in {save_folder}")
    checkpoint = ranked[0]
    try:
        Checkpointer(save_folder, recoverables=recoverables).load_checkpoint(checkpoint)
    except RuntimeError as error:  # torch's size-mismatch message
        raise ModelLoadError(
            f"checkpoint {checkpoint.path} does not match {yaml_path}: {str(error).splitlines()[0]}"
            f"{' ' + str(error).splitlines()[1].strip() if len(str(error).splitlines()) > 1 else ''}"
        ) from None
    tokenizer = load_tokenizer(save_folder / "tokenizer" / tokenizer_model_path(hparams).name)
    return build_model(hparams, tokenizer, device, source=str(folder))


def build_model(hparams: dict, tokenizer: sentencepiece.SentencePieceProcessor, device: str = "cpu",
                source: str = "") -> AsrModel:
    """Assemble an AsrModel from instantiated hyperparameters (weights already loaded)."""
    modules = hparams["modules"]
    for module in modules.values():
        module.to(device).eval()
    front_end = FrontEnd.from_hparams(hparams, modules).to(device).eval()
    return AsrModel(
        front_end=front_end,
        encoder=modules[KEYS.encoder],
        encoder_proj=modules[KEYS.encoder_proj],
        decoder=PredictionNetwork.from_modules(modules),
        joiner=Joiner.from_modules(modules),
        tokenizer=tokenizer,
        hparams=hparams,
        source=source,
        blank_id=hparams[KEYS.blank_index],
    )
