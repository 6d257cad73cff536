"""train.py under torchrun, recording what the tests compare (run by test_scale.py).

    torchrun --nproc_per_node=2 tests/helpers/ddp_probe.py <train.py arguments>

Before the test stage loads any checkpoint, every rank writes ``probe_rank<r>.pt`` into
the output folder: a checksum of its model parameters, its normaliser statistics, and
(rank 0) the encoder output for a fixed input, i.e. the trained weights as they were
in memory when the last checkpoint was saved.
"""

import os
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import train  # noqa: E402
from streamasr.training import TransducerBrain  # noqa: E402


def fixed_input(seconds: float = 1.5) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1234)
    return torch.randn(1, int(16000 * seconds), generator=generator) * 0.1


@torch.no_grad()
def encoder_output(hparams, wav: torch.Tensor) -> torch.Tensor:
    """Fbank -> normaliser (frozen statistics) -> CNN -> Conformer, full context."""
    modules = [hparams["normalize"], hparams["CNN"], hparams["Transformer"]]
    training = [m.training for m in modules]
    for module in modules:
        module.eval()
    device = next(hparams["Transformer"].parameters()).device
    wav = wav.to(device)
    lengths = torch.ones(1, device=device)
    feats = hparams["compute_features"](wav)
    feats = hparams["normalize"](feats, lengths)
    out = hparams["Transformer"].encode(hparams["CNN"](feats), lengths)
    for module, mode in zip(modules, training):
        module.train(mode)
    return out.cpu()


def _probe(brain) -> None:
    rank = int(os.environ.get("RANK", 0))
    params = torch.cat([p.detach().flatten().cpu() for p in brain.hparams.model.parameters()])
    normalize = brain.hparams.normalize
    record = {
        "rank": rank,
        "world_size": int(os.environ.get("WORLD_SIZE", 1)),
        "param_sum": params.double().sum().item(),
        "param_abs_sum": params.double().abs().sum().item(),
        "norm_mean": normalize.glob_mean.detach().cpu().clone(),
        "steps": brain.optimizer_step,
    }
    if rank == 0:
        record["encoder_out"] = encoder_output(brain.hparams.__dict__, fixed_input())
    torch.save(record, Path(brain.hparams.output_folder) / f"probe_rank{rank}.pt")


_original_evaluate = TransducerBrain.evaluate


def _evaluate(self, *args, **kwargs):
    if not getattr(self, "_probed", False):
        self._probed = True
        _probe(self)
    return _original_evaluate(self, *args, **kwargs)


if __name__ == "__main__":
    TransducerBrain.evaluate = _evaluate
    train.main(sys.argv[1:])
