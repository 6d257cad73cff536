"""The test utterances evaluate runs on: loaded only when complete."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from streamasr.errors import TruncatedAudioError
from streamasr.evaluate import load_utterances


def test_the_loader_refuses_a_file_truncated_after_its_manifest_was_validated(tmp_path):
    """The validation stamp skips decoding the audio again; the loader still notices a
    file cut short since, instead of scoring half an utterance against its transcript."""
    wav = tmp_path / "a.wav"
    sf.write(wav, (np.random.default_rng(0).standard_normal(44555) * 3000).astype(np.int16), 16000,
             subtype="PCM_16")
    manifest = tmp_path / "test.csv"
    manifest.write_text("ID,duration,wav,spk_id,wrd\na,2.785,$data_root/a.wav,spk,HELLO\n")
    assert [u.wav.numel() for u in load_utterances(manifest, None, None)] == [44555]
    assert (tmp_path / "test.csv.validated.json").exists()
    wav.write_bytes(wav.read_bytes()[:44000])
    with pytest.raises(TruncatedAudioError) as error:
        load_utterances(manifest, None, None)
    assert str(error.value) == (f"{wav} is truncated: its header declares 44555 samples (2.78 s), "
                                "the file holds 21978 (1.37 s)")
