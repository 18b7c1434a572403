"""RTL fuzzing through cocotb (``sim/system_fuzz.py``): random and mutated frames, RTL = emulator.

The default suite runs :data:`STIMULI` stimuli of seed :data:`SEED` on the 2x4 Verilator build
(~30 s; its short ``rx_timeout_cycles`` makes the receive-timeout stimuli cheap) and checks the
run's summary: every stimulus kind was sent, every response status of docs/protocol.md came
back, programs the emulator calls undefined were run on the RTL alone (answered, idle), no
mismatch, no hang. ``bench/bench_rtl_fuzz.py`` runs larger numbers and other seeds. A
self-check falsifies the model's answers from one stimulus on: the run must fail naming that
stimulus and the seed.
"""

import json
import random
import re

import pytest

from sim_helpers import CNN_CONFIGS, CONFIGS, build
from test_sim_system import WIDTH_CONFIGS

from tessera.sim.fuzz_frames import (LINK_FAULTS, PROGRAM_MUTATIONS, VALID_KINDS, FrameFuzzer,
                                     run_fuzz)
from tessera.runtime.emulator import Emulator
from tessera.runtime.errors import HazardError, ParameterError
from tessera.spec.protocol import FrameParser, Status

#: Stimuli of the default run and its seed (the bench takes others).
STIMULI = 1500
SEED = 1
#: Stimuli of the default run on the ISA version 3 configuration (4x2-cnn).
CNN_STIMULI = 250


def _run(tmp_path, stimuli, seed, break_at=None):
    return run_fuzz(build("2x4", "verilator"), CONFIGS["2x4"], stimuli=stimuli, seed=seed,
                    test_dir=tmp_path, break_at=break_at)


@pytest.mark.slow
def test_fuzz_rtl_answers_as_the_emulator(tmp_path):
    summary = _run(tmp_path, STIMULI, SEED)
    print(json.dumps(summary))
    assert summary["stimuli"] == STIMULI and summary["seed"] == SEED
    assert summary["mismatches"] == summary["hangs"] == 0
    assert summary["undefined"] < STIMULI // 10, "the generator should make defined programs"
    assert summary["undefined_run"] > summary["undefined"] // 2, "undefined EXECs run alone"
    assert set(summary["kinds"]) == set(VALID_KINDS + PROGRAM_MUTATIONS + LINK_FAULTS)
    assert set(summary["statuses"]) == {s.name for s in Status}
    # Each sent stimulus is a request; each bad one is followed by a good EXEC.
    assert summary["requests"] > summary["sent"] and summary["responses_checked"] > STIMULI


@pytest.mark.slow
def test_fuzz_cnn_programs_answer_as_the_emulator(tmp_path):
    """WINDOW, CONV of every kind and ADD among the stimuli of a cnn configuration (fields at
    their limits, padding bits, bit flips, random words with opcodes 6-8): every response as
    the emulator's, never a hang, the device answers a good EXEC after every bad stimulus."""
    summary = run_fuzz(build("4x2-cnn", "verilator"), CNN_CONFIGS["4x2-cnn"],
                       stimuli=CNN_STIMULI, seed=SEED, test_dir=tmp_path)
    print(json.dumps(summary))
    assert summary["mismatches"] == summary["hangs"] == 0
    assert summary["undefined"] < CNN_STIMULI // 10
    assert set(summary["kinds"]) == set(VALID_KINDS + PROGRAM_MUTATIONS + LINK_FAULTS)
    # the CNN instructions ran (in programs answered OK), and every check answered
    assert min(summary["executed"].get(name, 0) for name in ("WINDOW", "CONV", "ADD")) >= 10
    assert {"BAD_OPCODE", "BAD_FIELD", "BAD_ADDRESS", "TRUNCATED"} <= set(summary["statuses"])


@pytest.mark.slow
def test_fuzz_failure_names_the_stimulus_and_seed(tmp_path):
    with pytest.raises(AssertionError) as info:
        _run(tmp_path, 20, SEED, break_at=5)
    text = str(info.value)
    assert "but the model answered" in text or "unexpected bytes" in text, text[:2000]
    found = re.search(r"fuzz stimulus (\d+) \((\w+), seed (\d+)\) failed", text)
    assert found and int(found[1]) >= 5 and int(found[3]) == SEED, text[:2000]
    assert "its bytes: " in text


def test_fuzz_stimuli_are_reproducible_from_the_seed():
    def draw(seed):
        fuzzer = FrameFuzzer(CONFIGS["2x4"], random.Random(seed))
        return [fuzzer.next() for _ in range(300)]
    first = draw(7)
    assert first == draw(7)
    assert first != draw(8)
    assert {s.name for s in first} == set(VALID_KINDS + PROGRAM_MUTATIONS + LINK_FAULTS)
    assert all(s.bad == (s.name not in VALID_KINDS) for s in first)


@pytest.mark.parametrize("name", list(CONFIGS) + list(WIDTH_CONFIGS) + list(CNN_CONFIGS))
def test_fuzz_stimuli_at_every_configuration(name):
    """At every operand width (and with ISA version 3) the stimuli encode, and the emulator
    answers them or refuses them as undefined (nothing else raises); the valid ones are
    answered."""
    config = CONFIGS.get(name) or CNN_CONFIGS.get(name) or CONFIGS["2x4"].replace(
        **WIDTH_CONFIGS[name], acc_bits=None, requant_modes=None, lut=None)
    fuzzer = FrameFuzzer(config, random.Random(name))
    emulator, answered = Emulator(config), 0
    for _ in range(400):
        stimulus = fuzzer.next()
        try:
            for index, part in enumerate(stimulus.parts):
                if index:
                    emulator.rx_timeout()
                emulator.feed(part)
        except (HazardError, ParameterError):
            emulator = Emulator(config)
            continue
        emulator.rx_timeout()
        frames = FrameParser(max_payload=config.max_payload).feed(emulator.read(emulator.pending))
        assert frames or stimulus.bad, stimulus
        answered += len(frames)
    assert answered > 250
