"""The Brain: loss weighting, pruned objective, DCT start, atomic checkpoints, step limit,
chunk distillation."""

from __future__ import annotations

import pytest
import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from helpers.common import SMALL_YAML
from streamasr.checkpoints import AtomicCheckpointer
from streamasr.losses import rnnt_loss
from streamasr.training import TransducerBrain

TINY = """
d_model: 32
nhead: 2
num_encoder_layers: 1
d_ffn: 64
dec_dim: 32
joint_dim: 32
output_neurons: 12
ctc_weight: {ctc_weight}
number_of_ctc_epochs: 2
dct_start_epoch: 1
output_folder: {out}
transducer_loss: {loss}
pruned_warmup_steps: 10
"""


def make_brain(tmp_path, ctc_weight, loss="full"):
    with open(SMALL_YAML, encoding="utf-8") as handle:
        hparams = load_hyperpyyaml(handle, TINY.format(ctc_weight=ctc_weight, out=tmp_path, loss=loss))
    return TransducerBrain(
        modules=hparams["modules"], opt_class=hparams["opt_class"], hparams=hparams,
        run_opts={"device": "cpu"}, checkpointer=hparams["checkpointer"],
    )


def toy_batch():
    generator = torch.Generator().manual_seed(0)
    items = []
    for index, (seconds, tokens) in enumerate([(1.0, [3, 5, 7]), (0.6, [2, 9])]):
        items.append({
            "id": f"u{index}",
            "sig": torch.randn(int(16000 * seconds), generator=generator) * 0.1,
            "tokens_bos": torch.tensor([0] + tokens),
            "tokens": torch.tensor(tokens),
            "wrd": "X",
        })
    return PaddedBatch(items)


@pytest.mark.parametrize("ctc_weight", [0.3, 0.7])
def test_loss_mixes_rnnt_and_ctc_with_the_yaml_weight_then_drops_ctc(tmp_path, ctc_weight):
    brain = make_brain(tmp_path, ctc_weight)
    batch = toy_batch()
    brain.hparams.epoch_counter.current = 1
    torch.manual_seed(1)
    out = brain.compute_forward(batch, sb.Stage.TRAIN)
    tokens, lens = batch.tokens
    labels = torch.round(lens * tokens.shape[1]).long()
    rnnt = rnnt_loss(out.transducer_logits, tokens, out.encoder_lengths, labels, reduction="mean_per_label")
    ctc = torch.nn.functional.ctc_loss(
        out.ctc_logprobs.transpose(0, 1), tokens, out.encoder_lengths, labels, reduction="sum", zero_infinity=True
    ) / labels.sum()
    loss = brain.compute_objectives(out, batch, sb.Stage.TRAIN)
    assert loss.item() == pytest.approx(((1 - ctc_weight) * rnnt + ctc_weight * ctc).item(), rel=1e-5)

    brain.hparams.epoch_counter.current = 3  # past number_of_ctc_epochs
    out = brain.compute_forward(batch, sb.Stage.TRAIN)
    assert out.ctc_logprobs is None
    loss = brain.compute_objectives(out, batch, sb.Stage.TRAIN)
    expected = rnnt_loss(out.transducer_logits, tokens, out.encoder_lengths, labels, reduction="mean_per_label")
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_pruned_objective_trains_on_the_pruned_lattice_and_validates_on_the_full_one(tmp_path):
    from streamasr.losses.pruned import boundary_from_lengths, rnnt_loss_simple

    brain = make_brain(tmp_path, 0.0, loss="pruned")
    batch = toy_batch()
    tokens, lens = batch.tokens
    labels = torch.round(lens * tokens.shape[1]).long()
    brain.hparams.epoch_counter.current = 1
    brain.optimizer_step = 10  # past the warm-up: 0.5 * simple + pruned
    torch.manual_seed(1)
    out = brain.compute_forward(batch, sb.Stage.TRAIN)
    assert out.transducer_logits is None  # no full lattice in training
    loss = brain.compute_objectives(out, batch, sb.Stage.TRAIN)
    module = brain.modules.pruned_loss
    simple = rnnt_loss_simple(
        module.simple_lm_proj(out.decoder_out), module.simple_am_proj(out.encoder_out), tokens, 0,
        boundary_from_lengths(out.encoder_lengths, labels), reduction="mean_per_label",
    )
    full = rnnt_loss(brain.joiner(out.enc_proj.unsqueeze(2), out.dec_proj.unsqueeze(1)), tokens,
                     out.encoder_lengths, labels, reduction="mean_per_label")
    # Only 3 labels: prune_range 5 keeps the whole lattice, so pruned == full here.
    assert loss.item() == pytest.approx((0.5 * simple + full).item(), rel=1e-5)
    loss.backward()
    assert brain.modules.pruned_loss.simple_am_proj.weight.grad.abs().sum() > 0

    brain.modules.eval()
    brain.tokenizer = type("Tok", (), {"decode_ids": staticmethod(lambda ids: "X")})()
    brain.on_stage_start(sb.Stage.VALID)
    with torch.no_grad():
        out = brain.compute_forward(batch, sb.Stage.VALID)
        valid = brain.compute_objectives(out, batch, sb.Stage.VALID)
    expected = rnnt_loss(out.transducer_logits, tokens, out.encoder_lengths, labels, reduction="mean_per_label")
    assert valid.item() == pytest.approx(expected.item(), rel=1e-6)


def test_unknown_transducer_loss_is_a_config_error(tmp_path):
    from streamasr.errors import ConfigError

    with pytest.raises(ConfigError, match="transducer_loss: 'prunned' is not one of full, pruned"):
        make_brain(tmp_path, 0.3, loss="prunned")


def test_full_objective_freezes_the_unused_pruned_loss_module(tmp_path):
    brain = make_brain(tmp_path, 0.3, loss="full")
    assert not any(p.requires_grad for p in brain.modules.pruned_loss.parameters())


def test_full_context_before_dct_start_epoch(tmp_path):
    brain = make_brain(tmp_path, 0.3)
    brain.hparams.dct_start_epoch = 2
    brain.hparams.epoch_counter.current = 1
    assert all(brain.dct_config(sb.Stage.TRAIN) is None for _ in range(50))
    brain.hparams.epoch_counter.current = 2
    torch.manual_seed(0)
    assert any(brain.dct_config(sb.Stage.TRAIN) is not None for _ in range(50))


def test_streaming_false_trains_and_validates_with_full_context(tmp_path):
    brain = make_brain(tmp_path, 0.3)
    assert brain.hparams.streaming is True  # the shipped YAMLs train streaming models
    brain.hparams.epoch_counter.current = 5
    brain.hparams.dynchunktrain_config_sampler.valid_config = DynChunkTrainConfig(8, 2)
    torch.manual_seed(0)
    assert any(brain.dct_config(sb.Stage.TRAIN) is not None for _ in range(50))
    assert brain.dct_config(sb.Stage.VALID) == DynChunkTrainConfig(8, 2)
    brain.hparams.streaming = False
    assert all(brain.dct_config(stage) is None for stage in (sb.Stage.TRAIN, sb.Stage.VALID, sb.Stage.TEST)
               for _ in range(50))


def test_an_interrupted_save_never_replaces_the_last_good_checkpoint(tmp_path, monkeypatch):
    model = torch.nn.Linear(3, 3)
    checkpointer = AtomicCheckpointer(tmp_path, recoverables={"model": model})
    good = checkpointer.save_checkpoint(meta={"step": 1})
    saved_weight = model.weight.detach().clone()

    with torch.no_grad():
        model.weight.add_(1.0)
    import speechbrain.utils.checkpoints as checkpoints

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setitem(checkpoints.DEFAULT_SAVE_HOOKS, torch.nn.Module, crash)
    with pytest.raises(KeyboardInterrupt):
        checkpointer.save_checkpoint(meta={"step": 2})
    monkeypatch.undo()

    assert [c.meta["step"] for c in checkpointer.list_checkpoints()] == [1]
    recovered = checkpointer.recover_if_possible()
    assert recovered.path == good.path
    assert torch.equal(model.weight, saved_weight)
    removed = checkpointer.remove_partial_checkpoints()
    assert len(removed) == 1 and not removed[0].exists()


def test_step_limit_beyond_the_cool_down_schedule_is_a_config_error(tmp_path):
    from streamasr.errors import ConfigError

    with open(SMALL_YAML, encoding="utf-8") as handle:
        hparams = load_hyperpyyaml(handle, TINY.format(ctc_weight=0.3, out=tmp_path, loss="full"))
    with pytest.raises(ConfigError, match=r"total_steps=12000 updates, but training may run for "
                                          r"optimizer_step_limit=12345 \(the learning rate would turn negative\)"):
        TransducerBrain(modules=hparams["modules"], opt_class=hparams["opt_class"], hparams=hparams,
                        run_opts={"device": "cpu", "optimizer_step_limit": 12345},
                        checkpointer=hparams["checkpointer"])


def test_chunk_distillation_adds_the_kl_to_the_full_context_ctc_posteriors(tmp_path):
    from streamasr.training import chunk_distillation

    brain = make_brain(tmp_path, 0.3)
    batch = toy_batch()
    tokens, lens = batch.tokens
    labels = torch.round(lens * tokens.shape[1]).long()
    brain.hparams.epoch_counter.current = 1
    for module in brain.modules.modules():  # no dropout: the teacher pass is reproducible here
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    chunked = DynChunkTrainConfig(2, 1)
    brain.dct_config = lambda stage: chunked
    brain.compute_forward(batch, sb.Stage.TRAIN)  # the normaliser's statistics, then frozen
    brain.modules.normalize.update_until_epoch = 0

    out = brain.compute_forward(batch, sb.Stage.TRAIN)  # chunk_distill_weight 0: off
    assert out.teacher_ctc_logprobs is None
    base = brain.compute_objectives(out, batch, sb.Stage.TRAIN)

    brain.hparams.chunk_distill_weight = 0.25
    out = brain.compute_forward(batch, sb.Stage.TRAIN)
    assert not out.teacher_ctc_logprobs.requires_grad
    full = brain.compute_forward.__func__  # the teacher equals a full-context forward pass
    brain.dct_config = lambda stage: None
    reference = full(brain, batch, sb.Stage.TRAIN)
    assert reference.teacher_ctc_logprobs is None  # full-context batches are not distilled
    torch.testing.assert_close(out.teacher_ctc_logprobs, reference.ctc_logprobs.detach())
    assert (out.ctc_logprobs - reference.ctc_logprobs).abs().max() > 1e-3  # the chunks do differ

    # KL by hand over the valid frames, per label
    kl = 0.0
    for row in range(2):
        frames = int(out.encoder_lengths[row])
        p = out.teacher_ctc_logprobs[row, :frames]
        kl = kl + (p.exp() * (p - out.ctc_logprobs[row, :frames])).sum()
    kl = kl / labels.sum()
    assert chunk_distillation(out.teacher_ctc_logprobs, out.ctc_logprobs, out.encoder_lengths, labels).item() \
        == pytest.approx(kl.item(), rel=1e-5)
    assert kl.item() > 0
    loss = brain.compute_objectives(out, batch, sb.Stage.TRAIN)
    assert loss.item() == pytest.approx(base.item() + 0.25 * kl.item(), rel=1e-5)
    loss.backward()
    assert brain.modules.ctc_lin.w.weight.grad.abs().sum() > 0


def test_a_lookahead_batch_trains_through_the_first_layer_lookahead_pass(tmp_path):
    """A sampled ChunkConfig with R > 0 reaches the encoder: the Brain's encoder output
    equals streamasr.dct.encode_masked with that config (and differs from R = 0), and the
    loss has gradients."""
    from streamasr.dct import ChunkConfig, DynChunkLookaheadSampler, encode_masked

    brain = make_brain(tmp_path, 0.3)
    brain.hparams.dynchunktrain_config_sampler = DynChunkLookaheadSampler(
        chunkwise_prob=1.0, chunk_sizes=(4,), right_context_prob=1.0, right_frames_min=3, right_frames_max=3,
        limited_left_context_prob=0.0)
    brain.hparams.epoch_counter.current = 1
    batch = toy_batch()
    seen = []
    encoder_inputs = brain.encoder_inputs
    brain.encoder_inputs = lambda *args: seen.append(encoder_inputs(*args)) or seen[-1]
    torch.manual_seed(0)
    out = brain.compute_forward(batch, sb.Stage.TRAIN)
    assert out.dynchunktrain_config == ChunkConfig(4, None, 3)
    lens = batch.sig[1]
    with torch.no_grad():
        src = seen[0]
        transformer = brain.modules.enc.transformer
        expected = encode_masked(transformer, src, lens, dynchunktrain_config=ChunkConfig(4, None, 3))
        plain = encode_masked(transformer, src, lens, dynchunktrain_config=ChunkConfig(4, None, 0))
    assert torch.allclose(out.encoder_out, expected, atol=1e-5)
    assert not torch.allclose(out.encoder_out, plain, atol=1e-4)
    loss = brain.compute_objectives(out, batch, sb.Stage.TRAIN)
    loss.backward()
    assert brain.modules.enc.transformer.encoder.layers[0].mha_layer.out_proj.weight.grad is not None
