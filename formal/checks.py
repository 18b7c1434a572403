"""The formal checks of ``make formal``: what each proves, how, and how deep.

Each :class:`Check` builds one harness (``formal/streams.py``, ``receiver.py``, ``executor.py``,
``answers.py``, ``requant.py``) and names the SymbiYosys mode and depth that prove it. ``quick``
checks are the ones ``make test`` runs (tests/test_formal.py), within its budget; ``make formal``
runs all.
"""

import functools
from dataclasses import dataclass
from typing import Callable

from . import answers, executor, receiver, requant, streams
from .sby import run_sby

__all__ = ["Check", "CHECKS", "run_check"]


@dataclass(frozen=True)
class Check:
    """One property set, its harness and its proof.

    Attributes
    ----------
    name : str
    claim : str
        What a pass means, in one line.
    build : callable
        ``build(**variant) -> (bench, depth)``; keyword arguments build a broken variant.
    mode : str
        ``"prove"`` (k-induction) or ``"bmc"``.
    depth : int or None
        The proof's depth; ``None`` takes the one the harness derives.
    quick : bool
        Part of ``make test``.
    named_only : bool
        Run only when named (``python -m formal NAME``): redundant in ``make formal``.
    """

    name: str
    claim: str
    build: Callable
    mode: str
    depth: int = None
    quick: bool = True
    named_only: bool = False


def _preset_checks():
    # executor_answers on each distinct configuration of a board preset (tessera.hw.boards) and
    # of a CNN preset (tessera.compiler.presets)
    from tessera.compiler.presets import CNN_PRESETS
    from tessera.hw.boards import BOARDS
    boards = {}
    for name, board in BOARDS.items():
        boards.setdefault(board.config, []).append(name)
    for name, preset in CNN_PRESETS.items():
        boards.setdefault(preset.config, []).append(name)
    for config, names in boards.items():
        yield Check(f"executor_answers_{names[0].replace('-', '_')}",
                    f"executor_answers on the configuration of {' and '.join(names)}",
                    functools.partial(answers.executor_answers, config=config), "prove",
                    quick=False)


CHECKS = {check.name: check for check in (
    Check("stream_receiver", "FrameReceiver.o_frame holds valid and payload until ready",
          streams.receiver_frames, "prove"),
    Check("stream_sender", "FrameSender.o holds valid and payload until ready",
          streams.sender_bytes, "prove"),
    Check("stream_uart", "UARTReceiver.o holds valid and payload until ready",
          streams.uart_bytes, "prove"),
    Check("stream_postproc", "PostProcessor.o holds valid and payload until ready",
          streams.postproc_results, "prove"),
    Check("stream_postproc_ram", "the same with the post state in block RAM (iCE40)",
          lambda **kw: streams.postproc_results(delay_ram=True, **kw), "prove"),
    Check("receiver_timeout", "no frame handed over across a receive timeout; BAD_LENGTH iff "
          "length > max_payload", lambda **kw: receiver.receiver_frames_checked(crc=False, **kw),
          "bmc", 40),
    Check("receiver_crc", "an OK frame's CRC and frame-buffer bytes are the received ones",
          receiver.receiver_frames_checked, "bmc", 16),
    Check("executor_bounds", "no program writes or reads outside a buffer or issues an "
          "out-of-bounds GEMM (32-byte frames, bounded; executor_answers proves it)",
          executor.executor_requests, "bmc", quick=False, named_only=True),
    Check("executor_answers", "every request is answered and the device quiet within "
          "answer_bound cycles, and no program writes, reads or takes outside its bounds "
          "(2x2, 64-byte frames)", answers.executor_answers, "prove"),
    Check("executor_answers_slow_core", "the same with Core handshakes low for up to 3 cycles "
          "in a row (answer_bound 473)", functools.partial(answers.executor_answers,
                                                            core_wait=3), "prove", quick=False),
    *_preset_checks(),
    Check("requant_tflite_small", "TfliteRequant equals the gemmlowp formula: 4-bit a, m0 with "
          "4 free top bits, all 256 shifts", lambda **kw: requant.tflite_equivalence(
              a_bits=4, m_bits=4, shifts=(-128, 127), **kw), "bmc"),
    Check("requant_tflite", "TfliteRequant equals the gemmlowp formula: 6-bit a, m0 with 6 "
          "free top bits, shifts -31..30", lambda **kw: requant.tflite_equivalence(
              a_bits=6, m_bits=6, **kw), "bmc", quick=False),
    Check("requant_tflite_iterative", "the iterative TfliteRequant (2 cycles per element, "
          "held as the PostProcessor holds it) equals the gemmlowp formula: 4-bit a, m0 with 4 "
          "free top bits, all 256 shifts", lambda **kw: requant.tflite_iterative_equivalence(
              cycles=2, **kw), "bmc", quick=False),
)}


def run_check(check, workdir, *, name=None, **variant):
    """Build ``check`` (a broken variant with ``variant``) and return its :class:`Verdict`."""
    bench, depth = check.build(**variant)
    depth = check.depth if check.depth is not None else depth
    return run_sby(name or check.name, bench, bench.ports, mode=check.mode, depth=depth,
                   workdir=workdir)
