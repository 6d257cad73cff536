"""The two shipped YAMLs describe the same model graph (each stays readable on its own;
this test is what keeps the copy from drifting): the same classes under the same keys,
wired with the same references; only sizes and training settings differ."""

from __future__ import annotations

import io
import re

from ruamel.yaml import YAML

from helpers.common import FULL_YAML, SMALL_YAML
from streamasr.keys import KEYS

GRAPH = [key for key in KEYS.inference_graph if key not in (KEYS.sample_rate, KEYS.blank_index)] + [
    KEYS.ctc, "modules", "pruned_loss", "dynchunktrain_config_sampler"]


def shape(node) -> object:
    """A YAML node with its numbers and strings dropped: tags and !ref wiring only."""
    tag = getattr(getattr(node, "tag", None), "value", None)
    if isinstance(node, dict):
        wired = {key: shape(value) for key, value in node.items()}
        return (tag, {key: value for key, value in wired.items() if value is not None})
    if isinstance(node, list):
        return (tag, [shape(value) for value in node])
    text = str(getattr(node, "value", node))
    refs = tuple(re.findall(r"<([\w.\[\]]+)>", text))
    return (tag, refs) if tag or refs else None


def graph(path) -> dict:
    document = YAML(typ="rt").load(io.StringIO(path.read_text(encoding="utf-8")))
    return {key: shape(document[key]) for key in GRAPH}


def test_both_yamls_wire_the_same_model_graph():
    small, full = graph(SMALL_YAML), graph(FULL_YAML)
    for key in GRAPH:
        assert small[key] == full[key], key


def test_both_yamls_have_speechbrains_streaming_switch_on():
    for path in (SMALL_YAML, FULL_YAML):
        assert re.search(r"^streaming: True\b", path.read_text(encoding="utf-8"), re.M), path
