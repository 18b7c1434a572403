"""A CNN configuration is not built into gateware until the executor runs ISA version 3."""

import re

import pytest

import tessera
from tessera.hw.top import Accelerator
from tessera.spec import AcceleratorConfig

MESSAGE = re.escape("The gateware does not execute ISA version 3 (cnn=True) yet (issue #15)")


def test_accelerator_refuses_a_cnn_configuration():
    with pytest.raises(ValueError, match=f"^{MESSAGE}"):
        Accelerator(AcceleratorConfig(rows=4, cols=2, cnn=True))


def test_sim_refuses_a_cnn_configuration_before_building():
    with pytest.raises(ValueError, match=MESSAGE):
        tessera.connect("sim", config=AcceleratorConfig(rows=4, cols=2, cnn=True))
