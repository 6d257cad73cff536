"""The training task (YAML key ``task``): transducer when absent, a ConfigError naming the
key and the known tasks otherwise, and ``train.py`` running whichever Brain the task
names (here a stand-in audio-only task on manifests without a transcript column)."""

from __future__ import annotations

import csv
import importlib.util
from typing import ClassVar

import numpy as np
import pytest
import soundfile as sf
import speechbrain as sb

from helpers.common import REPO
from streamasr.errors import ConfigError
from streamasr.training import TransducerBrain
from streamasr.training.tasks import TASKS, TaskData, TrainingTask, TransducerTask, task_from_hparams


def test_a_yaml_without_the_key_trains_a_transducer():
    task = task_from_hparams({"output_folder": "x"})
    assert type(task) is TransducerTask and task.brain_class is TransducerBrain and task.require_transcript
    assert type(task_from_hparams({"task": "transducer"})) is TransducerTask
    assert list(TASKS) == ["transducer"]


@pytest.mark.parametrize("value, message", [
    ("ssl", r"task: 'ssl' is not a known task; known tasks: transducer"),
    (None, r"task: no task given; known tasks: transducer"),
    ("", r"task: no task given; known tasks: transducer"),
    (["transducer"], r"task: \['transducer'\] is not a known task; known tasks: transducer"),
])
def test_an_empty_or_unknown_task_is_a_config_error_naming_the_known_ones(value, message):
    with pytest.raises(ConfigError, match=message):
        task_from_hparams({"task": value})


class RecordingBrain(sb.Brain):
    """Stands for another task's Brain (say a pre-training one): records what
    ``train.py`` hands it instead of training."""

    calls: ClassVar[list] = []

    def fit(self, epoch_counter, train_set, valid_set=None, **kwargs):
        RecordingBrain.calls.append(("fit", list(train_set), list(valid_set), kwargs))


class AudioOnlyTask(TrainingTask):
    name = "audio_only"
    brain_class = RecordingBrain
    require_transcript = False

    def data(self, hparams):
        rows = {}
        for split in ("train", "valid"):
            with open(hparams[f"{split}_csv"], encoding="utf-8") as handle:
                rows[split] = [row["ID"] for row in csv.DictReader(handle)]
        return TaskData(train=rows["train"], valid=rows["valid"], test={}, train_loader_kwargs={"batch_size": 2},
                        extras={"marker": "set by the task"})

    def test(self, brain, data, hparams):
        RecordingBrain.calls.append(("test", brain.marker))


AUDIO_ONLY_YAML = """\
task: audio_only
data_folder: {data}
output_folder: {out}
train_csv: !ref <data_folder>/train.csv
valid_csv: !ref <data_folder>/valid.csv
test_csv: !ref <data_folder>/test.csv
epoch_counter: !new:speechbrain.utils.epoch_loop.EpochCounter
    limit: 1
modules: {{}}
opt_class: null
checkpointer: null
valid_dataloader_opts:
    batch_size: 1
"""


def test_train_py_runs_the_brain_and_data_pipeline_that_the_yaml_task_names(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    sf.write(data / "a.wav", np.zeros(16000, dtype=np.float32), 16000)
    for split, ids in (("train", ["t1", "t2"]), ("valid", ["v1"]), ("test", ["s1"])):
        with open(data / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["ID", "duration", "wav"])  # audio only: no wrd column
            writer.writerows([utt, "1.0", "$data_root/a.wav"] for utt in ids)
    yaml = tmp_path / "audio_only.yaml"
    yaml.write_text(AUDIO_ONLY_YAML.format(data=data, out=tmp_path / "out"), encoding="utf-8")
    monkeypatch.setitem(TASKS, "audio_only", AudioOnlyTask)
    monkeypatch.setattr(RecordingBrain, "calls", [])
    spec = importlib.util.spec_from_file_location("train_script", REPO / "train.py")
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)

    brain = train.main([str(yaml), "--device=cpu"])

    assert type(brain) is RecordingBrain
    assert RecordingBrain.calls == [
        ("fit", ["t1", "t2"], ["v1"], {"train_loader_kwargs": {"batch_size": 2},
                                       "valid_loader_kwargs": {"batch_size": 1}}),
        ("test", "set by the task"),
    ]

    yaml.write_text(yaml.read_text(encoding="utf-8").replace("task: audio_only", "task: bestrq"), encoding="utf-8")
    with pytest.raises(ConfigError, match="task: 'bestrq' is not a known task; known tasks: transducer, audio_only"):
        train.main([str(yaml), "--device=cpu"])
