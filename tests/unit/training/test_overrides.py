"""Command-line overrides are checked against the YAML's keys."""


import pytest

from helpers.common import SMALL_YAML
from streamasr.errors import ConfigError
from streamasr.training.recipe import check_overrides


def test_unknown_override_is_rejected_with_a_suggestion():
    text = SMALL_YAML.read_text()
    with pytest.raises(ConfigError, match=r"--number_of_epoch \(did you mean --number_of_epochs\?\): not a key of"):
        check_overrides(str(SMALL_YAML), text, "number_of_epoch: 3\n")


def test_known_overrides_pass():
    check_overrides(str(SMALL_YAML), SMALL_YAML.read_text(), "number_of_epochs: 3\nlr: 0.1\n")
