"""Helpers for the compiled-graph tests: every SYNC of an inference's frames is needed."""

import pytest

from runtime_helpers import request
from tessera.runtime import Emulator, HazardError
from tessera.spec import isa
from tessera.spec.protocol import Kind, Status


def assert_every_sync_is_needed(compiled, sample):
    """Run the frames of one inference of ``compiled`` as one program without its STOREs: it
    passes with every SYNC, and removing any single SYNC makes the emulator refuse a hazard.

    Returns the decoded instructions.
    """
    config = compiled.config
    insns = isa.decode_program(b"".join(compiled.frames), config)
    syncs = [i for i, insn in enumerate(insns) if isinstance(insn, isa.Sync)]
    assert syncs
    for drop in [None] + syncs:     # all of them (one frame, no STORE): no hazard; then each
        emu = Emulator(config)
        for seq, frame in enumerate(compiled.setup_frames + compiled.input_frames(sample)):
            assert request(emu, Kind.EXEC, frame, seq & 0xFF)[0] == Status.OK
        body = b"".join(insn.encode() for i, insn in enumerate(insns)
                        if i != drop and not isinstance(insn, isa.Store))
        if drop is None:
            assert emu.machine.execute(body, emu.cycles).status == Status.OK
            continue
        with pytest.raises(HazardError):
            emu.machine.execute(body, emu.cycles)
    return insns
