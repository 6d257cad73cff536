"""One error root: every error streamasr raises on purpose is a ``StreamAsrError`` and
keeps its built-in base; commands turn only those into one-line messages."""

from __future__ import annotations

import pytest

import streamasr.errors as errors
from streamasr import cli
from streamasr.cli import data as data_commands
from streamasr.errors import StreamAsrError


def test_every_error_class_has_the_common_root_and_a_builtin_base():
    classes = [value for value in vars(errors).values()
               if isinstance(value, type) and issubclass(value, Exception) and value is not StreamAsrError]
    assert len(classes) >= 11
    for cls in classes:
        assert issubclass(cls, StreamAsrError), cls
        assert issubclass(cls, (ValueError, RuntimeError, FileExistsError)), cls


def test_modules_raise_the_shared_classes():
    from streamasr.data.manifest import ManifestError
    from streamasr.data.prepare import PrepareError
    from streamasr.live import AudioError, BufferFull
    from streamasr.model import ModelLoadError
    from streamasr.training.recipe import ConfigError

    assert (ManifestError, PrepareError, AudioError, BufferFull, ModelLoadError, ConfigError) == (
        errors.ManifestError, errors.PrepareError, errors.AudioError, errors.BufferFull,
        errors.ModelLoadError, errors.ConfigError)




def test_cli_prints_a_streamasr_error_on_one_line_and_exits_2(monkeypatch, capsys):
    def handler(args):
        raise errors.ConfigError("chunk size 100 ms is not a positive multiple of the encoder frame (40 ms)")

    monkeypatch.setattr(data_commands, "validate", handler)
    assert cli.main(["validate", "x.csv"]) == 2
    err = capsys.readouterr().err
    assert err == ("streamasr validate: error: chunk size 100 ms is not a positive multiple of the "
                   "encoder frame (40 ms)\n")


def test_cli_lets_other_failures_keep_their_traceback(monkeypatch):
    """A torch shape error is a bug or a broken model, not a user mistake: it must not be
    printed as a one-line usage error."""
    def handler(args):
        raise RuntimeError("Argument #4: Padding size should be less than the corresponding input dimension")

    monkeypatch.setattr(data_commands, "validate", handler)
    with pytest.raises(RuntimeError, match="Padding size"):
        cli.main(["validate", "x.csv"])
