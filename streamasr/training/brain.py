"""The training loop: a ``speechbrain.core.Brain`` for a DCT Conformer-Transducer.

Owns: one forward pass per batch with a sampled Dynamic Chunk Training config, the
RNN-T + CTC objective and its schedule, greedy decoding with WER/CER on valid/test,
checkpoint selection by valid WER, and checkpoints that an interruption cannot corrupt.

Modules expected in the YAML (``modules:``): ``CNN``, ``Transformer`` (called as ``enc``,
an ``EncoderWrapper``, so that DDP sees the encoder's forward), ``proj_enc``,
``emb``, ``dec``, ``proj_dec``, ``Tjoint``, ``transducer_lin``, ``ctc_lin``,
``normalize``. Hyperparameters: ``compute_features``, ``dynchunktrain_config_sampler``,
``ctc_weight``, ``number_of_ctc_epochs``, ``dct_start_epoch``, ``blank_index``,
``lr_annealing`` (any SpeechBrain per-step scheduler), optional ``wav_augment`` / ``fea_augment``
(training only), optional ``average_n_best`` (test with the average of the N best
checkpoints by valid WER; default 1 = the best one).

``transducer_loss`` selects the training objective's transducer term: ``full`` (the
whole ``[B, T, U+1, V]`` joint lattice, ``streamasr.losses.rnnt_loss``) or ``pruned``
(``streamasr.losses.pruned``: simple loss + pruned loss, needs the module
``pruned_loss``). Valid and test losses are always the full RNN-T loss per label, so
runs with either objective report comparable numbers. The constructor builds that
objective once (``streamasr.training.objectives.OBJECTIVES``); the forward pass and the
loss ask it what to compute.

Optional ``chunk_distill_weight`` (default 0 = off): in-place distillation from full
context to chunked mode. In a training batch with a chunked config and CTC active, the
encoder also runs with full context on the same input (no gradient, same dropout
mode), and the loss adds ``chunk_distill_weight * KL(full || chunked)`` of the CTC
posteriors over the valid frames, per label like the other terms. The chunked
encoder is taught the full-context output it cannot see the future of (the idea of
dual-mode ASR, Yu et al., ICLR 2021, applied on the CTC head). Costs one extra
encoder forward without backward in chunked batches.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Optional

import speechbrain as sb
import torch
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.nnet.schedulers import WarmCoolDecayLRSchedule
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from streamasr.checkpoints import AtomicCheckpointer, averaged_model_state
from streamasr.dct import LookaheadEncoderWrapper
from streamasr.decoding import GreedySearch
from streamasr.errors import ConfigError
from streamasr.frontend import FrontEnd
from streamasr.keys import KEYS
from streamasr.losses import flush_denormal_grad
from streamasr.parts import Joiner, PredictionNetwork
from streamasr.training.objectives import OBJECTIVES, TransducerObjective, objective_from_hparams

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class ForwardOutput:
    """What one forward pass produced. Optional fields are None when a head did not run."""

    encoder_out: torch.Tensor  # [B, T, d_model] Conformer output
    encoder_lengths: torch.Tensor  # [B] valid encoder frames (40 ms each by default)
    transducer_logits: Optional[torch.Tensor]  # [B, T, U+1, V]; None when the objective needs none
    enc_proj: Optional[torch.Tensor] = None  # [B, T, J] joiner input, encoder side
    decoder_out: Optional[torch.Tensor] = None  # [B, U+1, dec_dim] prediction network
    dec_proj: Optional[torch.Tensor] = None  # [B, U+1, J] joiner input, prediction side
    ctc_logprobs: Optional[torch.Tensor] = None  # [B, T, V], when CTC is in the loss
    hypotheses: Optional[list[list[int]]] = None  # greedy token ids (valid/test only)
    dynchunktrain_config: Optional[DynChunkTrainConfig] = None  # None = full context
    teacher_ctc_logprobs: Optional[torch.Tensor] = None  # [B, T, V] full-context CTC (distillation)


def chunk_distillation(teacher_logprobs: torch.Tensor, student_logprobs: torch.Tensor,
                       frame_lengths: torch.Tensor, label_lengths: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) of per-frame posteriors ``[B, T, V]`` (log-probabilities),
    summed over the valid frames (``frame_lengths [B]``) and divided by the number of
    labels in the batch, like the RNN-T and CTC terms."""
    valid = torch.arange(student_logprobs.shape[1], device=student_logprobs.device)[None] < frame_lengths[:, None]
    teacher_logprobs = teacher_logprobs.detach().float()
    kl = (teacher_logprobs.exp() * (teacher_logprobs - student_logprobs.float())).sum(-1)
    return (kl * valid).sum() / label_lengths.sum().clamp(min=1)


TRANSDUCER_LOSSES = tuple(OBJECTIVES)  # the values of `transducer_loss`


class TransducerBrain(sb.Brain):
    """Conformer-Transducer with Dynamic Chunk Training (see module docstring)."""

    objective: TransducerObjective  # the transducer term, from `transducer_loss`

    def __init__(self, modules=None, opt_class=None, hparams=None, run_opts=None, checkpointer=None):
        objective = objective_from_hparams(hparams, modules)
        if modules is not None and KEYS.encoder in modules and "enc" not in modules:
            # The Brain calls the encoder through forward(): DistributedDataParallel
            # wraps modules and only forward() passes through it (`.encode` would not).
            # The wrapper is SpeechBrain's with look-ahead (streamasr.dct).
            modules = dict(modules)
            modules["enc"] = LookaheadEncoderWrapper(modules.pop(KEYS.encoder))
        super().__init__(modules, opt_class, hparams, run_opts, checkpointer)
        self.objective = objective
        scheduler = (hparams or {}).get("lr_annealing")
        if isinstance(scheduler, WarmCoolDecayLRSchedule) and (
            not self.optimizer_step_limit or self.optimizer_step_limit > scheduler.total_steps
        ):
            raise ConfigError(
                f"lr_annealing cools down to lr 0 at total_steps={scheduler.total_steps} updates, "
                f"but training may run for optimizer_step_limit={self.optimizer_step_limit} "
                "(the learning rate would turn negative): make them equal"
            )

    @property
    def transducer_loss(self) -> str:
        """The YAML value of ``transducer_loss`` this Brain trains with."""
        return self.objective.name

    def on_fit_start(self) -> None:
        if isinstance(self.checkpointer, AtomicCheckpointer) and sb.utils.distributed.if_main_process():
            self.checkpointer.remove_partial_checkpoints()
        super().on_fit_start()

    # ----------------------------------------------------------------- forward
    def dct_config(self, stage: sb.Stage) -> Optional[DynChunkTrainConfig]:
        """The chunking config of this batch: sampled in TRAIN (after
        ``dct_start_epoch``), the sampler's fixed valid/test config otherwise; always
        full context (None) with ``streaming: False`` (a full-context model from the
        same recipe, as SpeechBrain's ``streaming`` switch)."""
        if not getattr(self.hparams, "streaming", True):
            return None
        if stage == sb.Stage.TRAIN and self.hparams.epoch_counter.current < getattr(
            self.hparams, "dct_start_epoch", 1
        ):
            return None
        return self.hparams.dynchunktrain_config_sampler(stage)

    def ctc_active(self) -> bool:
        return (
            self.hparams.ctc_weight > 0
            and self.hparams.epoch_counter.current <= self.hparams.number_of_ctc_epochs
        )

    @property
    def front_end(self) -> FrontEnd:
        """The recipe's front end over the Brain's modules (rebuilt when DDP or
        compilation has replaced them)."""
        modules = (self.modules[KEYS.normalize], self.modules[KEYS.cnn])
        cached = getattr(self, "_front_end", None)
        if cached is None or (cached.normalize, cached.cnn) != modules:
            self._front_end = FrontEnd.from_hparams(vars(self.hparams), self.modules)
        return self._front_end

    def encoder_inputs(self, wavs: torch.Tensor, wav_lens: torch.Tensor, stage: sb.Stage) -> torch.Tensor:
        """Waveforms ``[B, samples]`` -> encoder input frames ``[B, T, F]``; in training
        the normaliser updates its statistics (until its ``update_until_epoch``) and
        ``fea_augment`` runs after it."""
        augment = getattr(self.hparams, "fea_augment", None) if stage == sb.Stage.TRAIN else None
        return self.front_end(wavs, wav_lens, epoch=self.hparams.epoch_counter.current, augment=augment)

    def distill_active(self, stage: sb.Stage, config: Optional[DynChunkTrainConfig]) -> bool:
        return (stage == sb.Stage.TRAIN and config is not None and self.ctc_active()
                and getattr(self.hparams, "chunk_distill_weight", 0.0) > 0)

    def compute_forward(self, batch: PaddedBatch, stage: sb.Stage) -> ForwardOutput:
        batch = batch.to(self.device)
        wavs, wav_lens = batch.sig
        tokens_bos, _ = batch.tokens_bos
        if stage == sb.Stage.TRAIN and getattr(self.hparams, "wav_augment", None) is not None:
            wavs, wav_lens = self.hparams.wav_augment(wavs, wav_lens)
        config = self.dct_config(stage)
        src = self.encoder_inputs(wavs, wav_lens, stage)
        encoder_out = self.modules.enc(src, wav_lens, pad_idx=self.hparams.pad_index, dynchunktrain_config=config)
        teacher_ctc_logprobs = None
        if self.distill_active(stage, config):
            with torch.no_grad():
                teacher = self.modules.enc(src, wav_lens, pad_idx=self.hparams.pad_index,
                                           dynchunktrain_config=None)
                teacher_ctc_logprobs = self.modules[KEYS.ctc](teacher).log_softmax(dim=-1)
        encoder_lengths = torch.round(wav_lens * encoder_out.shape[1]).long().clamp(min=1)

        enc_proj = self.modules[KEYS.encoder_proj](encoder_out)
        dec_proj, dec_out, _ = PredictionNetwork.from_modules(self.modules)(tokens_bos)
        logits = self.objective.joint_logits(self.joiner, enc_proj, dec_proj, stage)

        ctc_logprobs = None
        if stage == sb.Stage.TRAIN and self.ctc_active():
            ctc_logprobs = flush_denormal_grad(self.modules[KEYS.ctc](encoder_out).log_softmax(dim=-1))

        hypotheses = None
        if stage != sb.Stage.TRAIN:
            hyps, _ = self.search(enc_proj, encoder_lengths)
            hypotheses = [hyp.tokens for hyp in hyps]
        return ForwardOutput(
            encoder_out, encoder_lengths, logits, enc_proj, dec_out, dec_proj,
            ctc_logprobs, hypotheses, config, teacher_ctc_logprobs,
        )

    @property
    def joiner(self) -> Joiner:
        """The joiner over the Brain's modules: broadcastable 4-D inputs ``[B, T, 1, J]``
        + ``[B, 1, U+1, J]`` (full lattice) or ``[B, T, R, J]`` + ``[B, T, R, J]``
        (pruned) -> logits."""
        return Joiner.from_modules(self.modules)

    @property
    def search(self) -> GreedySearch:
        """Greedy search for valid/test decoding, over the Brain's modules."""
        return GreedySearch(PredictionNetwork.from_modules(self.modules), self.joiner, self.hparams.blank_index)

    # -------------------------------------------------------------- objectives
    def compute_objectives(self, predictions: ForwardOutput, batch: PaddedBatch, stage: sb.Stage) -> torch.Tensor:
        tokens, token_lens = batch.tokens
        label_lengths = torch.round(token_lens * tokens.shape[1]).long()
        # Both losses are normalised per label so their weights mean what they say
        # whatever the utterance lengths (per-utterance sums would drown the CTC term).
        transducer = self.objective.loss(predictions, tokens, label_lengths, self.modules, stage,
                                         step=self.optimizer_step)
        loss = transducer
        if predictions.ctc_logprobs is not None:
            ctc = torch.nn.functional.ctc_loss(
                predictions.ctc_logprobs.transpose(0, 1).float(),
                tokens,
                predictions.encoder_lengths,
                label_lengths,
                blank=self.hparams.blank_index,
                reduction="sum",
                zero_infinity=True,
            ) / label_lengths.sum().clamp(min=1)
            weight = self.hparams.ctc_weight
            loss = (1 - weight) * transducer + weight * ctc
        if predictions.teacher_ctc_logprobs is not None:
            loss = loss + self.hparams.chunk_distill_weight * chunk_distillation(
                predictions.teacher_ctc_logprobs, predictions.ctc_logprobs, predictions.encoder_lengths,
                label_lengths)

        if stage != sb.Stage.TRAIN:
            words = [self.tokenizer.decode_ids(hyp).split() for hyp in predictions.hypotheses]
            targets = [text.split() for text in batch.wrd]
            self.wer_metric.append(batch.id, words, targets)
            self.cer_metric.append(batch.id, words, targets)
        return loss

    def on_fit_batch_end(self, batch: PaddedBatch, outputs: ForwardOutput, loss: torch.Tensor,
                         should_step: bool) -> None:
        if not should_step:
            return
        scheduler = self.hparams.lr_annealing
        if isinstance(scheduler, WarmCoolDecayLRSchedule):
            scheduler(self.optimizer, self.optimizer_step)  # stateless: needs the step
        else:
            scheduler(self.optimizer)

    # ------------------------------------------------------------------ stages
    def on_evaluate_start(self, max_key: Optional[str] = None, min_key: Optional[str] = None) -> None:
        """Load the best checkpoint (SpeechBrain), then, with ``average_n_best: N > 1``,
        replace the model weights by the average of the N best checkpoints (normaliser
        statistics and counters stay those of the best one)."""
        super().on_evaluate_start(max_key=max_key, min_key=min_key)
        count = int(getattr(self.hparams, "average_n_best", 1) or 1)
        if count <= 1 or self.checkpointer is None:
            return
        checkpoints = self.checkpointer.find_checkpoints(
            max_key=max_key, min_key=min_key, max_num_checkpoints=count
        )
        if len(checkpoints) < count:
            logger.warning("average_n_best: %d asked, only %d checkpoint(s) kept (keep_checkpoints); "
                           "averaging those", count, len(checkpoints))
        if len(checkpoints) > 1:
            getattr(self.hparams, KEYS.model).load_state_dict(averaged_model_state(checkpoints), strict=True)
            logger.info("testing the average of %d checkpoints: %s", len(checkpoints),
                        [c.path.name for c in checkpoints])
        self.averaged_checkpoints = [c.path for c in checkpoints]

    def on_stage_start(self, stage: sb.Stage, epoch: Optional[int] = None) -> None:
        if stage != sb.Stage.TRAIN:
            self.wer_metric = self.hparams.error_rate_computer()
            self.cer_metric = self.hparams.cer_computer()

    def on_stage_end(self, stage: sb.Stage, stage_loss: float, epoch: Optional[int] = None) -> None:
        stats = {"loss": stage_loss}
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        stats["WER"] = self.wer_metric.summarize("error_rate")
        stats["CER"] = self.cer_metric.summarize("error_rate")
        if stage == sb.Stage.VALID:
            self.hparams.train_logger.log_stats(
                stats_meta={
                    "epoch": epoch,
                    "lr": self.optimizer.param_groups[0]["lr"],
                    "steps": self.optimizer_step,
                },
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            self.checkpointer.save_and_keep_only(
                meta={"WER": stats["WER"], "epoch": epoch},
                min_keys=["WER"],
                num_to_keep=self.hparams.keep_checkpoints,
            )
        elif stage == sb.Stage.TEST:
            meta = {"Epoch loaded": self.hparams.epoch_counter.current}
            if getattr(self, "test_set_name", None):
                meta["test set"] = self.test_set_name
            self.hparams.train_logger.log_stats(stats_meta=meta, test_stats=stats)
            if sb.utils.distributed.if_main_process():
                wer_file = getattr(self, "test_wer_file", None) or self.hparams.test_wer_file
                with open(wer_file, "w", encoding="utf-8") as handle:
                    self.wer_metric.write_stats(handle)
                    handle.write("\n")
                    handle.write(f"%CER {stats['CER']:.2f}\n")
                    handle.write(f"%WER {stats['WER']:.2f}\n")
