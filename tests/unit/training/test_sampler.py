"""The DCT sampler of the shipped YAMLs."""


import pytest
import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from helpers.common import FULL_YAML, SMALL_YAML


def sampler_from(path, overrides=""):
    with open(path, encoding="utf-8") as handle:
        return load_hyperpyyaml(handle, "data_folder: unused\n" + overrides)[
            "dynchunktrain_config_sampler"
        ]


@pytest.mark.parametrize("path", [SMALL_YAML, FULL_YAML], ids=["small", "full"])
def test_train_configs_follow_the_configured_proportions(path):
    sampler = sampler_from(path)
    torch.manual_seed(0)
    draws = [sampler(sb.Stage.TRAIN) for _ in range(6000)]
    chunked = [c for c in draws if c is not None]
    limited = [c for c in chunked if c.left_context_size is not None]
    assert len(chunked) / len(draws) == pytest.approx(sampler.chunkwise_prob, abs=0.025)
    assert len(limited) / len(chunked) == pytest.approx(sampler.limited_left_context_prob, abs=0.025)
    sizes = {c.chunk_size for c in chunked}
    assert sizes == set(range(sampler.chunk_size_min, sampler.chunk_size_max + 1))
    lefts = {c.left_context_size for c in limited}
    assert min(lefts) == sampler.left_context_chunks_min
    assert max(lefts) == sampler.left_context_chunks_max


def test_reference_sampler_settings_in_the_shipped_yamls():
    for path in (SMALL_YAML, FULL_YAML):
        sampler = sampler_from(path)
        assert (sampler.chunkwise_prob, sampler.chunk_size_min, sampler.chunk_size_max) == (0.6, 8, 32)
        assert (sampler.limited_left_context_prob, sampler.left_context_chunks_min, sampler.left_context_chunks_max) == (0.75, 2, 32)


def test_valid_and_test_use_the_fixed_configs():
    sampler = sampler_from(
        SMALL_YAML,
        "dynchunktrain_config_sampler:\n"
        "  valid_config: !new:speechbrain.utils.dynamic_chunk_training.DynChunkTrainConfig [16, 4]\n"
        "  test_config: !new:speechbrain.utils.dynamic_chunk_training.DynChunkTrainConfig [8, 2]\n",
    )
    for _ in range(20):
        assert sampler(sb.Stage.VALID) == DynChunkTrainConfig(16, 4)
        assert sampler(sb.Stage.TEST) == DynChunkTrainConfig(8, 2)
    default = sampler_from(SMALL_YAML)
    assert default(sb.Stage.VALID) is None and default(sb.Stage.TEST) is None  # full context
