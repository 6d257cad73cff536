"""The command line's parsers: every subcommand, its options, their types and defaults.

Light by design (argparse and the option types of ``streamasr.cli.options``; no torch,
SpeechBrain or onnxruntime), so that ``--help``, ``--version`` and argument errors answer
at once. Each parser names its handler as ``"module:function"`` of a command module in
``streamasr.cli`` (``set_defaults(handler="running:transcribe")``); ``streamasr.cli.main``
imports that module only once the arguments parse.
"""

from __future__ import annotations

import argparse
import os

from streamasr.cli.options import (
    BEAM,
    CHANNELS,
    CHUNK_FRAMES_LIST,
    CHUNK_MS,
    CHUNK_MS_LIST,
    LEFT_CHUNKS_LIST,
    LEFT_MS_LIST,
    MAX_BATCH,
    MAX_BEAM,
    NOT_GIVEN,
    PORT,
    POSITIVE,
    RATE,
    RIGHT_MS,
    RIGHT_MS_LIST,
    SECONDS,
    SHARE,
    THREADS,
    device,
    left_chunks,
    number,
    whole,
)
from streamasr.data.synthetic import SPLITS, Augmentation, CorpusConfig
from streamasr.modes import BACKENDS, DECODINGS, EXPORT_TARGETS, FEATURE_PATHS
from streamasr.serve.config import ServeConfig
from streamasr.units import (
    DEFAULT_BEAM,
    DEFAULT_CHUNK_MS,
    DEFAULT_STREAM_CHUNK_MS,
    DEFAULT_STREAM_LEFT_CHUNKS,
    SAMPLE_RATE,
)


def _add_corpus_parser(subparsers: argparse._SubParsersAction) -> None:
    defaults = CorpusConfig()
    aug = Augmentation()
    parser = subparsers.add_parser(
        "build-corpus",
        help="synthesise the built-in English corpus (espeak-ng, flite, festival)",
        description="Synthesise open-vocabulary English text (WordNet examples, fortunes, "
        "a trigram chain, number/date/name templates) with espeak-ng, flite and festival into "
        "train / valid / test_voices / test_text / test_synth manifests. test_voices: held-out "
        "espeak-ng voices; test_text: held-out text sources (chatterbot-corpus conversation, "
        "The Devil's Dictionary) by the same voices; test_synth: a synthesiser never heard in "
        "training; test_human / test_human_unseen: recordings of people from Debian packages "
        "(held-out Asterisk prompts; speakers never heard in training). --augment adds speed, noise and "
        "reverberation to the training audio. Re-running resumes: finished files are kept, missing ones are made.",
    )
    parser.add_argument("data_folder", help="output folder (wav files + manifests)")
    for split in SPLITS:
        least = 1 if split in ("train", "valid") else 0
        parser.add_argument(f"--{split.replace('_', '-')}-utterances", type=whole(least),
                            default=getattr(defaults, f"{split}_utterances"), metavar="N",
                            help="(default %(default)s)")
    parser.add_argument("--valid-speakers", type=POSITIVE, default=defaults.valid_speakers,
                        help="espeak-ng voices held out for valid (default %(default)s)")
    parser.add_argument("--test-speakers", type=POSITIVE, default=defaults.test_speakers,
                        help="espeak-ng voices held out for test_voices / test_text (default %(default)s)")
    parser.add_argument("--test-synthesizer", choices=("festival", "flite"), default=defaults.test_synthesizer,
                        help="the synthesiser held out for test_synth (default %(default)s)")
    parser.add_argument("--other-synthesizer-share", type=SHARE, default=defaults.other_synthesizer_share,
                        help="share of train utterances spoken by flite/festival (default %(default)s)")
    parser.add_argument("--augment", action="store_true",
                        help="augment the training audio: speed 0.9/1.0/1.1, generated room impulse responses, "
                        "coloured noise at 10-30 dB SNR (off by default: within the demo's 45-minute CPU budget "
                        "it cost more in-domain accuracy than it gained on the unheard synthesiser)")
    parser.add_argument("--noise-prob", type=SHARE, default=aug.noise_prob, help="with --augment (default %(default)s)")
    parser.add_argument("--reverb-prob", type=SHARE, default=aug.reverb_prob,
                        help="with --augment (default %(default)s)")
    parser.add_argument("--no-human", action="store_true",
                        help="leave out the recordings of people (test_human, test_human_unseen and any human "
                        "training share; they need the Debian packages asterisk-core-sounds-en, "
                        "asterisk-core-sounds-en-g722, pocketsphinx-testdata and alsa-utils)")
    parser.add_argument("--human-test-share", type=SHARE, default=defaults.human_test_share,
                        help="share of the distinct Asterisk prompt texts held out as test_human (default %(default)s)")
    parser.add_argument("--human-train-speeds", type=float, nargs="*", default=list(defaults.human_train_speeds),
                        metavar="FACTOR",
                        help="add one training copy of every other Asterisk prompt per speed factor, e.g. "
                        "0.9 1.0 1.1 (default: none; the prompts then serve as test_human only)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="(default %(default)s)")
    parser.add_argument("--workers", type=POSITIVE, default=None, help="synthesis processes (default: all cores)")
    parser.set_defaults(handler="data:build_corpus")


def _add_prepare_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare",
        help="write manifests for LibriSpeech, CommonVoice or VoxPopuli",
        description="Read a corpus in its official layout, check every audio file and "
        "transcript, and write SpeechBrain CSV manifests (train.csv, valid.csv, test "
        "manifests) with durations. Bad items are listed with their paths and stop the "
        "run unless --skip-bad is given (then they go to skipped_<split>.tsv). A second "
        "run with unchanged inputs reuses the manifests.",
    )
    parser.add_argument("corpus", choices=("librispeech", "commonvoice", "voxpopuli"))
    parser.add_argument("data_folder", help="corpus root (LibriSpeech/, cv-corpus-*/<lang>/, "
                        "the VoxPopuli root holding transcribed_data/)")
    parser.add_argument("manifest_folder", help="where the manifests go")
    parser.add_argument("--language", default=None, help="commonvoice/voxpopuli: en, fr or it")
    parser.add_argument("--train-splits", nargs="*", default=None,
                        help="librispeech (default: the three training splits)")
    parser.add_argument("--valid-splits", nargs="*", default=None,
                        help="librispeech (default: dev-clean)")
    parser.add_argument("--test-splits", nargs="*", default=None,
                        help="librispeech (default: test-clean test-other)")
    parser.add_argument("--skip-bad", "--skip_bad", dest="skip_bad", action="store_true",
                        help="leave bad items out (listed in skipped_<split>.tsv) instead of stopping")
    parser.add_argument("--jobs", type=POSITIVE, default=None, help="audio reader processes (default: all cores)")
    parser.set_defaults(handler="data:prepare")


def _add_validate_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate", help="check a manifest (audio files, sample rate, transcripts)"
    )
    parser.add_argument("manifest", nargs="+")
    parser.add_argument("--data-root", default=None, help="value of $data_root in the CSV (default: the manifest's "
                        "folder, as evaluate)")
    parser.set_defaults(handler="data:validate")


def _add_evaluate_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="WER, latency and compute against chunk size and left context",
        description="Sweep chunk sizes x left contexts (plus full context) on a test set: "
        "WER/CER by masked simulation and by true chunk-by-chunk streaming, the number of "
        "differing hypotheses, algorithmic latency, compute per chunk, RTF and token "
        "latencies. Writes results.json/.csv/.md and two PNG plots.",
    )
    parser.add_argument("model", help="train.py output folder or `streamasr export` folder")
    parser.add_argument("--manifest", required=True, nargs="+",
                        help="test CSV(s) (ID,duration,wav,spk_id,wrd); with several (the built-in corpus's "
                        "test_voices.csv test_text.csv test_synth.csv test_human.csv test_human_unseen.csv), each is "
                        "evaluated into "
                        "OUTPUT/<file stem>/ and OUTPUT/test_sets.md compares them")
    parser.add_argument("--output", required=True, help="folder for the results")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--chunk-ms", type=CHUNK_MS_LIST,
        default=",".join(str(v) for v in DEFAULT_CHUNK_MS),
        help="comma-separated chunk sizes in ms, multiples of 40 (default %(default)s)",
    )
    group.add_argument("--chunk-frames", type=CHUNK_FRAMES_LIST, default=None, help="comma-separated chunk sizes in encoder frames")
    left = parser.add_mutually_exclusive_group()
    left.add_argument(
        "--left-chunks", type=LEFT_CHUNKS_LIST, default="2,4,unlimited", help="comma-separated left contexts in chunks, or 'unlimited'"
    )
    left.add_argument("--left-ms", type=LEFT_MS_LIST, default=None,
                      help="comma-separated left contexts in ms (or 'unlimited'), the same past for every chunk "
                      "size: each becomes whole chunks, rounded up (for grids that mix chunk sizes, e.g. with "
                      "--right-ms; 1-frame chunks need it)")
    parser.add_argument("--right-ms", type=RIGHT_MS_LIST, default="0",
                        help="comma-separated look-ahead (right context) in ms, multiples of 40 (default 0); a "
                        "model trained with look-ahead (hparams/lookahead.yaml) uses it")
    parser.add_argument("--data-root", default=None, help="value of $data_root (default: the manifest's folder)")
    parser.add_argument("--threads", type=THREADS, default=1, help="torch threads per stream (default 1)")
    parser.add_argument(
        "--jobs", type=POSITIVE, default=os.cpu_count() or 1,
        help="grid cells evaluated in parallel processes (default: all cores, %(default)s)",
    )
    parser.add_argument("--limit", type=POSITIVE, default=None, help="only the N shortest utterances")
    parser.add_argument("--masked-only", action="store_true", help="skip true streaming")
    parser.add_argument("--frontend", choices=FEATURE_PATHS, default="exact",
                        help="true-streaming features: exact (ours, default) or stock "
                        "(SpeechBrain StreamingASR's StreamingFeatureWrapper path)")
    _add_backend_options(parser)
    _add_decoding_options(parser)
    _add_device_option(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace results in --output")
    parser.set_defaults(handler="evaluating:evaluate")


def _add_backend_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=BACKENDS, default="torch",
                        help="torch (default) or onnx: onnxruntime on the cells exported into <model>/onnx/ "
                        "(exported when missing or made from other weights; finite left context only)")
    parser.add_argument("--int8", action="store_true", help="with --backend onnx: int8-quantised MatMul weights")


def _add_decoding_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--decoding", choices=DECODINGS, default="greedy",
                        help="greedy (default) or beam: batched modified beam search (one symbol per frame; partial "
                        "results are the common prefix of the hypotheses, the final the best)")
    parser.add_argument("--beam", type=BEAM, default=None,
                        help=f"hypotheses per stream with --decoding beam (default {DEFAULT_BEAM}, at most {MAX_BEAM})")
    parser.add_argument("--lm", default=None,
                        help="with --decoding beam: a token n-gram LM (ARPA over the model's pieces, `streamasr "
                        "train-lm` writes one) fused at --lm-weight")
    parser.add_argument("--lm-weight", default="0.3",
                        help="shallow-fusion weight of --lm (default %(default)s; evaluate: comma-separated values "
                        "make a grid, one folder each, compared in OUTPUT/lm_weights.md)")
    parser.add_argument("--lodr", default=None, help="with --lm: a low-order LM (e.g. a bigram) subtracted at "
                        "--lodr-weight (LODR)")
    parser.add_argument("--lodr-weight", default="0.0",
                        help="weight of --lodr (default %(default)s; evaluate: a comma-separated grid as --lm-weight)")
    parser.add_argument("--hotwords", default=None,
                        help="with --decoding beam: a file of phrases to favour, one per line, optionally ending "
                        "in ' :SCORE' (bonus per token; default --hotwords-score)")
    parser.add_argument("--hotwords-score", default="1.5", help="bonus per matched hotword token (default %(default)s)")


def _add_cell_options(parser: argparse.ArgumentParser) -> None:
    """The streaming cell of commands that run one (transcribe, serve): each value not
    given is the model's own (an ONNX folder's cell, else 640 ms / 4 left chunks / 0)."""
    parser.add_argument("--chunk-ms", type=CHUNK_MS, default=None,
                        help=f"chunk size, a multiple of 40 (default {DEFAULT_STREAM_CHUNK_MS:g}; an ONNX folder's own)")
    parser.add_argument("--left-chunks", type=left_chunks, default=NOT_GIVEN,
                        help=f"left context in chunks, or 'unlimited' (also -1) (default {DEFAULT_STREAM_LEFT_CHUNKS}; "
                        "an ONNX folder's own)")
    parser.add_argument("--right-ms", type=RIGHT_MS, default=None,
                        help="look-ahead per chunk in ms, a multiple of 40 (default 0; an ONNX folder's own): a "
                        "chunk waits for this much more audio (model trained with hparams/lookahead.yaml)")


def _add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", type=device, default="cpu",
                        help="torch device for the model: cpu (default), cuda, cuda:N, mps or xpu")


def _add_check_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check-streaming",
        help="plot the encoder's dependency matrix; fail if an output sees a later chunk",
    )
    parser.add_argument("model", help="experiment YAML (random weights) or train.py output folder")
    parser.add_argument("--chunk-frames", type=whole(1, 4096), default=8, help="(default %(default)s)")
    parser.add_argument("--left-chunks", type=left_chunks, default=2,
                        help="chunks of left context, or 'unlimited' (default %(default)s)")
    parser.add_argument("--right-frames", type=whole(0, 4096), default=0,
                        help="look-ahead frames each chunk may see (streamasr.dct; default 0): fails if any output "
                        "depends on input past its chunk's end + this")
    parser.add_argument("--chunks", type=whole(1, 64), default=4, help="input length in chunks (default %(default)s)")
    parser.add_argument("--plot", default="dependency_matrix.png")
    parser.set_defaults(handler="evaluating:check")


def _add_export_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a model folder that stock SpeechBrain StreamingASR loads (and push it to the hub)",
        description="Write hyperparams.yaml (generated from the training YAML), model.ckpt "
        "(best checkpoint by valid WER, or the average of the N best), normalizer.ckpt, "
        "tokenizer.ckpt, a model card README.md and an example audio file.",
    )
    parser.add_argument("training_folder", help="train.py output folder")
    parser.add_argument("model_folder", help="folder to create")
    parser.add_argument("--average", type=POSITIVE, default=None,
                        help="average the N best checkpoints by valid WER (default: the run's "
                        "average_n_best, i.e. the weights its test used; 1 if unset)")
    parser.add_argument("--example", default=None,
                        help="example audio file (default: first utterance of the run's test manifest)")
    parser.add_argument("--results", default=None,
                        help="`streamasr evaluate` output folder for the model card "
                        "(default: <training_folder>/streaming_eval when present)")
    parser.add_argument("--language", default="en")
    parser.add_argument("--license", default="apache-2.0")
    parser.add_argument("--dataset", default="streamasr-synthetic", help="dataset name for the model card")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier export in model_folder (any other folder is refused)")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", default=None,
                        help="upload the folder to this Hugging Face model repo (token: HF_TOKEN or cached login)")
    parser.add_argument("--private", action="store_true", help="create the hub repo as private")
    parser.set_defaults(handler="exporting:export")


def _add_transcribe_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "transcribe",
        help="transcribe audio chunk by chunk as it arrives (file, stdin PCM, URL, microphone)",
        description="Stream audio through the recogniser chunk by chunk and print text as it "
        "is decoded. SOURCE: an audio file (wav/flac/ogg/mp3; other formats via ffmpeg), '-' "
        "for raw 16-bit PCM on stdin, a URL ffmpeg can open, or 'mic' / 'mic:<device>' "
        "(needs sounddevice). Other sample rates are resampled and stereo downmixed.",
    )
    parser.add_argument("source")
    parser.add_argument("--model", required=True,
                        help="train.py output folder, `streamasr export` folder or `streamasr export-onnx` folder")
    _add_cell_options(parser)
    parser.add_argument("--json", action="store_true",
                        help="one JSON event per line: partial (per chunk, with tokens) and final")
    _add_decoding_options(parser)
    parser.add_argument("--nbest", type=whole(1, MAX_BEAM), default=1,
                        help="with --decoding beam: the N best transcripts with their log-probabilities in the final "
                        "JSON event (default 1)")
    parser.add_argument("--frontend", choices=FEATURE_PATHS, default="exact",
                        help="exact (default): features equal to training; stock: as SpeechBrain's StreamingASR")
    parser.add_argument("--rate", type=RATE, default=SAMPLE_RATE,
                        help="sample rate of raw PCM on stdin (default %(default)s; a WAV stream's header overrides it)")
    parser.add_argument("--channels", type=CHANNELS, default=1,
                        help="channels of raw PCM on stdin (default %(default)s; a WAV stream's header overrides it)")
    parser.add_argument("--threads", type=THREADS, default=None, help="torch threads (default: torch's default)")
    parser.add_argument("--endpoint", action="store_true",
                        help="split the stream into segments at endpoints (sherpa-onnx's rules: 2.4 s of silence, "
                        "1.2 s of silence after speech, 20 s segments); one line per segment")
    _add_backend_options(parser)
    _add_device_option(parser)
    parser.set_defaults(handler="running:transcribe")


def _add_export_onnx_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-onnx",
        help="export encoder.onnx / decoder.onnx / joiner.onnx for one chunk size and left context",
        description="Write encoder.onnx (Fbank window in; normaliser, CNN and the cache-aware encoder with "
        "fixed-shape caches inside), decoder.onnx (one prediction-network step), joiner.onnx, tokens.txt "
        "(blank last) and export.json (chunk and shift in feature frames, left context, front end, cache "
        "shapes, vocabulary), then check them against PyTorch over 5 chunks of a random batch.",
    )
    parser.add_argument("model", help="train.py output folder or `streamasr export` folder")
    parser.add_argument("output", help="folder to create")
    parser.add_argument("--chunk-ms", type=CHUNK_MS, default=DEFAULT_STREAM_CHUNK_MS,
                        help="chunk size, a multiple of 40 (default %(default)g)")
    parser.add_argument("--left-chunks", type=left_chunks, default=DEFAULT_STREAM_LEFT_CHUNKS,
                        help="left context in chunks (default %(default)s; not unlimited)")
    parser.add_argument("--right-ms", type=RIGHT_MS, default=0,
                        help="look-ahead per chunk in ms, a multiple of 40 (default 0): the encoder's window grows by "
                        "it, its shift stays the chunk (a model trained with hparams/lookahead.yaml)")
    parser.add_argument("--int8", action="store_true", help="dynamic int8 quantisation of the MatMul weights")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip the ONNX-vs-PyTorch check (on by default: --verify)")
    parser.add_argument("--verify", dest="verify", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier export in output (any other folder is refused)")
    parser.add_argument("--target", choices=EXPORT_TARGETS, default="streamasr",
                        help="streamasr (default): for `--backend onnx` / `transcribe --model FOLDER`; sherpa-onnx: "
                        "its streaming NeMo-transducer contract (window and shift in its framing, the CNN's feature "
                        "history in the cache, tokens.txt with <blk> last), for sherpa-onnx's recognizer and servers")
    parser.add_argument("--force", action="store_true",
                        help="with --target sherpa-onnx: export a model trained on another front end than "
                        "kaldi-native-fbank's (a warning is printed; sherpa-onnx will feed it other features)")
    parser.set_defaults(handler="exporting:export_onnx", verify=True)


def _add_check_sherpa_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check-sherpa",
        help="decode a test set with sherpa-onnx (Python API and C++ server) and compare with our engine",
        description="Export the model for sherpa-onnx (cached in <model>/sherpa-onnx/<cell>), decode the manifest "
        "with sherpa-onnx's OnlineRecognizer (0.8 s tail padding, as its server) and with our engine (exact front "
        "end, sherpa-onnx's 10 symbols per frame), and report both WERs, the share of identical transcripts and "
        "why the others differ. --server also runs sherpa-onnx's C++ WebSocket server on the same folder and "
        "checks its transcripts against the Python API's; --load-streams adds a loopback load test.",
    )
    parser.add_argument("model", help="train.py output folder or `streamasr export` folder")
    parser.add_argument("--manifest", required=True, help="test manifest (CSV)")
    parser.add_argument("--chunk-ms", type=CHUNK_MS_LIST, default="640",
                        help="comma-separated chunk sizes (default %(default)s)")
    parser.add_argument("--left-chunks", type=whole(0), default=DEFAULT_STREAM_LEFT_CHUNKS,
                        help="left context in chunks (default %(default)s)")
    parser.add_argument("--right-ms", type=RIGHT_MS, default=0,
                        help="look-ahead per chunk in ms (default 0; a model trained with hparams/lookahead.yaml)")
    parser.add_argument("--limit", type=POSITIVE, default=None, help="first N utterances only")
    parser.add_argument("--server", action="store_true", help="also run sherpa-onnx's C++ WebSocket server")
    parser.add_argument("--load-streams", default="", help="comma-separated concurrent real-time streams for a "
                        "loopback load test of the C++ server (first chunk size)")
    parser.add_argument("--load-seconds", type=SECONDS, default=20.0, help="audio per load-test stream (default 20)")
    parser.add_argument("--max-latency", type=SECONDS, default=1.5,
                        help="a load level keeps up when the p95 final-result latency stays below this (seconds)")
    parser.add_argument("--work-threads", type=THREADS, default=2, help="the server's --num-work-threads (default 2)")
    parser.add_argument("--force", action="store_true", help="export a model trained on another front end anyway")
    parser.add_argument("--output", default=None, help="folder for sherpa_check.md / .json")
    parser.set_defaults(handler="exporting:check_sherpa")


def _add_serve_parser(subparsers: argparse._SubParsersAction) -> None:
    defaults = ServeConfig()
    parser = subparsers.add_parser(
        "serve",
        help="WebSocket server: live streams from many connections decoded in shared batches",
        description="Serve a model over WebSocket with sherpa-onnx's streaming protocol (float32 16 kHz binary "
        "messages, 'Done'; JSON results, 'Done!'), so its clients work unchanged; an optional first message "
        "{\"sample_rate\": R, \"format\": \"int16\"|\"float32\"} for other rates (resampled) or int16. The ready "
        "chunks of all connections run in shared batches on the fixed-shape state (--workers model threads). /healthz and "
        "/metrics (Prometheus) over HTTP. SIGTERM drains and finishes open streams.",
    )
    parser.add_argument("--model", required=True, help="training, exported or ONNX model folder")
    _add_backend_options(parser)
    parser.add_argument("--host", default=defaults.host, help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=PORT, default=defaults.port, help="(default %(default)s; 0: any free port)")
    _add_cell_options(parser)
    _add_decoding_options(parser)
    parser.add_argument("--max-batch", type=whole(1, MAX_BATCH), default=defaults.max_batch,
                        help="streams per model call (default %(default)s)")
    parser.add_argument("--workers", type=whole(1, 64), default=defaults.workers,
                        help=f"model threads, each running its own batches (default {defaults.workers}: one per core "
                        "on a 2-core machine; see --threads)")
    parser.add_argument("--max-connections", type=POSITIVE, default=defaults.max_connections,
                        help="open streams at most; more are refused with HTTP 503 (default %(default)s)")
    parser.add_argument("--max-buffer-seconds", type=SECONDS, default=defaults.max_buffer_seconds,
                        help="undecoded audio per stream before the server stops reading it (default %(default)s)")
    parser.add_argument("--buffer-deadline", type=SECONDS, default=defaults.buffer_deadline,
                        help="seconds a full buffer may last before the stream is closed (default %(default)s)")
    parser.add_argument("--max-message-bytes", type=POSITIVE, default=defaults.max_message_bytes,
                        help="largest WebSocket message; larger ones close the stream with 1009 (default %(default)s)")
    parser.add_argument("--idle-timeout", type=SECONDS, default=defaults.idle_timeout,
                        help="seconds without a message before a stream is closed (default %(default)s)")
    parser.add_argument("--drain-seconds", type=number(0), default=defaults.drain_seconds,
                        help="on SIGTERM, seconds open streams get to send 'Done' (default %(default)s)")
    parser.add_argument("--certfile", default=None, help="TLS certificate (wss://; browsers need TLS off localhost)")
    parser.add_argument("--keyfile", default=None, help="the TLS private key of --certfile")
    parser.add_argument("--endpoint", action="store_true",
                        help="segment streams at endpoints (sherpa-onnx's rules): each segment's final has "
                        "is_final, the next segment starts afresh")
    parser.add_argument("--reuse-port", action="store_true",
                        help="SO_REUSEPORT: start several `streamasr serve` processes on one port to use more cores "
                        "(the kernel spreads connections over them)")
    parser.add_argument("--record-dir", default=None,
                        help="debug: write each stream's audio, as the recogniser got it (16 kHz), to this folder")
    parser.add_argument("--threads", type=THREADS, default=None,
                        help="CPU threads for the model in all (default: the machine's cores); each of the --workers "
                        "model threads computes with threads / workers of them (torch and onnxruntime)")
    parser.set_defaults(handler="running:serve")


def _add_train_lm_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-lm",
        help="estimate a token n-gram LM (interpolated Kneser-Ney) from transcripts, for beam search fusion",
        description="Tokenize the transcripts (the wrd column) of the given manifests with the model's "
        "SentencePiece model, estimate an interpolated Kneser-Ney n-gram over the token ids and write it "
        "as an ARPA file of pieces (use with --decoding beam --lm FILE).",
    )
    parser.add_argument("model", help="model folder (its tokenizer defines the tokens)")
    parser.add_argument("--manifest", required=True, nargs="+", help="CSV manifest(s) whose wrd column is the text")
    parser.add_argument("--order", type=whole(1, 10), default=3, help="n-gram order (default %(default)s)")
    parser.add_argument("--output", required=True, help="ARPA file to write")
    parser.add_argument("--overwrite", action="store_true")
    parser.set_defaults(handler="lm:train_lm")


class OneLineParser(argparse.ArgumentParser):
    """argparse's parser with argument errors on one line (``streamasr transcribe:
    error: argument --rate: ...``), exit status 2, without the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``streamasr`` parser with every subcommand."""
    from streamasr.cli import __doc__ as summary
    from streamasr.version import describe

    parser = OneLineParser(prog="streamasr", description=summary.splitlines()[0].replace("``", ""))
    parser.add_argument("--version", action="version", version=describe())
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_corpus_parser, _add_prepare_parser, _add_validate_parser, _add_evaluate_parser,
                _add_check_parser, _add_export_parser, _add_export_onnx_parser, _add_check_sherpa_parser,
                _add_serve_parser, _add_transcribe_parser, _add_train_lm_parser):
        add(subparsers)
    return parser
