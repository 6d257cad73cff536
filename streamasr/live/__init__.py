"""Live transcription: audio sources and on-the-fly resampling, events, the threaded
``Transcriber`` (room for the WebSocket server and its web page)."""

from streamasr.errors import AudioError, BufferFull, TruncatedAudioError
from streamasr.live.events import Event
from streamasr.live.resample import StreamingResampler, resample_whole
from streamasr.live.sources import (
    BLOCK_SECONDS,
    AudioSource,
    FfmpegSource,
    MicrophoneSource,
    PcmStreamSource,
    SoundFileSource,
    SourceInfo,
    notice,
    open_source,
    open_stdin,
)
from streamasr.live.transcriber import Transcriber, transcribe_file, transcribe_source
from streamasr.units import SAMPLE_RATE as TARGET_RATE

__all__ = ["BLOCK_SECONDS", "TARGET_RATE", "AudioError", "AudioSource", "BufferFull", "Event", "FfmpegSource",
           "MicrophoneSource", "PcmStreamSource", "SoundFileSource", "SourceInfo", "StreamingResampler",
           "Transcriber", "TruncatedAudioError", "notice", "open_source", "open_stdin", "resample_whole",
           "transcribe_file", "transcribe_source"]
