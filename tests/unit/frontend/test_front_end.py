"""The front end: geometry, chunked features equal to whole-utterance ones (exact
windows), the shipped YAMLs' front ends streamable on real speech."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.lobes.features import StreamingFeatureWrapper

from streamasr.frontend import stock_feature_wrapper_yaml
from streamasr.keys import KEYS


def test_geometry_of_the_default_front_end(model):
    geometry = model.geometry
    assert (geometry.hop_samples, geometry.frame_samples, geometry.frame_ms) == (160, 640, 40.0)
    assert geometry.lookahead_samples == 41  # 2.6 ms of look-ahead past a chunk's end
    assert geometry.frames_from_ms(640) == 16
    with pytest.raises(ValueError, match="not a positive multiple of the encoder frame"):
        geometry.frames_from_ms(100)


@pytest.mark.parametrize("num_samples", [16000, 23457, 40639, 40641])
@pytest.mark.parametrize("chunk", [4, 8, 16])
def test_chunked_features_equal_whole_utterance_features_exactly(model, num_samples, chunk):
    wav = torch.randn(1, num_samples, generator=torch.Generator().manual_seed(num_samples))
    front_end = model.front_end
    with torch.no_grad():
        whole = front_end(wav)
        assert whole.shape[1] == front_end.geometry.num_encoder_frames(num_samples)
    # oneDNN picks convolution kernels by input size, so with the 32-channel CNN the
    # chunked and whole front ends can round differently (up to 3e-6 on values ~5,
    # float32 rounding of a few operations); equal up to that
    torch.testing.assert_close(front_end.chunk_by_chunk(wav, chunk), whole, atol=2e-5, rtol=0)


@pytest.mark.parametrize("yaml_name", ["conformer_transducer_small.yaml", "conformer_transducer.yaml"])
def test_shipped_front_ends_are_streamable_on_real_speech(yaml_name, utterances):
    """Real utterances have near-silent frames: with SpeechBrain's default top_db clamp
    (relative to the loudest value of the whole input) chunked features would differ
    there. The shipped YAMLs switch it off; chunked must equal whole exactly."""
    from hyperpyyaml import load_hyperpyyaml

    from helpers.common import REPO
    from streamasr.frontend import FrontEnd

    with open(REPO / "hparams" / yaml_name, encoding="utf-8") as handle:
        hparams = load_hyperpyyaml(handle, {"data_folder": "unused"})
    normalize = hparams["normalize"]
    normalize(hparams["compute_features"](utterances[0].wav[None]), torch.ones(1), epoch=1)
    front_end = FrontEnd(hparams["compute_features"], normalize.eval(), hparams["CNN"].eval())
    for utt in utterances[:4]:
        wav = utt.wav[None]
        with torch.no_grad():
            whole = front_end(wav)
        torch.testing.assert_close(front_end.chunk_by_chunk(wav, 8), whole, atol=1e-4, rtol=0,
                                   msg=utt.utt_id)


def test_the_exported_yaml_builds_the_same_stock_wrapper_as_python(model):
    """The stock feature extractor has two renderings (the Python object behind
    ``--frontend stock`` and the YAML entry the exporter writes): they must build the
    same object over the same front end."""
    front_end = model.front_end
    objects = {KEYS.features: front_end.compute_features, KEYS.normalize: front_end.normalize,
               KEYS.cnn: front_end.cnn}
    python = front_end.stock_wrapper()
    from_yaml = _instantiate_stock_yaml(objects)
    assert type(from_yaml) is type(python) is StreamingFeatureWrapper
    yaml_modules, python_modules = list(from_yaml.module.children()), list(python.module.children())
    assert len(yaml_modules) == len(python_modules) == 3
    assert all(a is b for a, b in zip(yaml_modules, python_modules))
    assert from_yaml.properties == python.properties


def _instantiate_stock_yaml(objects: dict) -> StreamingFeatureWrapper:
    """The exporter's YAML entry, instantiated with the front-end keys bound to ``objects``
    (through a throw-away module that hyperpyyaml's ``!apply:`` can name)."""
    registry = "streamasr_test_front_end_objects"
    module = types.ModuleType(registry)
    for key, value in objects.items():
        setattr(module, key, lambda value=value: value)
    sys.modules[registry] = module
    try:
        text = "".join(f"{key}: !apply:{registry}.{key}\n" for key in objects)
        return load_hyperpyyaml(text + stock_feature_wrapper_yaml("extractor"))["extractor"]
    finally:
        del sys.modules[registry]
