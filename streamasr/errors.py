"""One root for every error streamasr raises on purpose: ``StreamAsrError``.

Commands (``streamasr``, ``train.py``) catch ``StreamAsrError`` only and print its
message on one line: it always names the file, field or value and what was expected.
Any other exception (a torch shape error, out of memory, a bug) keeps its traceback, so
that a failure of the code never looks like a user mistake.

Each class also keeps the built-in base it had before the common root existed
(``ValueError`` for bad values, ``RuntimeError`` for failures while working,
``FileExistsError`` for an output folder that is in the way), so callers that catch
those still work.
"""

from __future__ import annotations


class StreamAsrError(Exception):
    """Root of streamasr's own errors: bad input or configuration, described in words."""


class ConfigError(StreamAsrError, ValueError):
    """A configuration value (YAML key, override, command-line option, API argument)
    is invalid: a chunk size off the frame grid, an unknown key, a negative count."""


class ManifestError(StreamAsrError, ValueError):
    """A manifest, or audio it points to, is not usable. The message lists every problem."""


class NormalizationError(StreamAsrError, ValueError):
    """A transcript cannot be normalised (e.g. nothing left of it, unknown language)."""


class PrepareError(StreamAsrError, RuntimeError):
    """A corpus cannot be prepared: its layout or items are broken (all listed)."""


class SynthesizerMissingError(StreamAsrError, RuntimeError):
    """A speech synthesiser or voice of the built-in corpus is not installed; the message
    names the Debian package."""


class EspeakMissingError(SynthesizerMissingError):
    """espeak-ng is not installed (the built-in corpus needs it)."""


class ModelLoadError(StreamAsrError, ValueError):
    """A model folder is incomplete or its parts do not fit together."""


class ExportError(StreamAsrError, RuntimeError):
    """The training folder cannot be exported, or the export cannot be uploaded."""


class AudioError(StreamAsrError, RuntimeError):
    """An audio source cannot be opened or decoded."""


class UndecodableAudioError(AudioError):
    """libsndfile cannot open or decode a file (a format it does not know, or a broken
    header). A separate class because ffmpeg may still read such a file, while any other
    ``AudioError`` (missing, empty, truncated) must not be retried with it."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: cannot decode audio ({reason})")
        self.name, self.reason = name, reason


class TruncatedAudioError(AudioError):
    """An audio file or stream holds fewer samples than its header declares: it was cut
    short (an interrupted copy or download). Reading it would silently lose the end."""


class BufferFull(StreamAsrError, RuntimeError):
    """``Transcriber.push`` on a full buffer with ``on_full="raise"``."""


class StreamStateError(StreamAsrError, RuntimeError):
    """A stream was used out of order (audio after ``finalize``, a push after ``close``)."""


class OutputExistsError(StreamAsrError, FileExistsError):
    """An output folder already holds results and overwriting was not asked for."""
