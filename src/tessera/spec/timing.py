"""Cycle-model constants of the gateware, shared with the emulator's cycle model.

The RTL is built so that these hold exactly; ``tests`` compare the RTL performance counters with
the emulator's model. Change a constant here in the same commit as the gateware change that
moves it. The model itself is described in ``docs/architecture.md``.
"""

__all__ = [
    "GEMM_OVERHEAD_CYCLES", "GATHER_PIPELINE_CYCLES", "DRAIN_OVERHEAD_CYCLES", "IDLE_LAG_CYCLES",
    "LINK_BYTES_PER_CYCLE", "POOL_DIVIDE_CYCLES", "ADD_PASSES", "ADD_OVERHEAD_CYCLES",
    "ADD_START_CYCLES", "CONV_ISSUE_CYCLES", "CONV_SETUP_CYCLES", "CONV_RELEASE_CYCLES", "ADD_RELEASE_CYCLES", "conv_issue_cycles",
    "REQUEST_HEAD_CYCLES", "RESPONSE_TAIL_CYCLES",
    "EXEC_END_CYCLES", "EXEC_ERROR_END_CYCLES", "EXEC_RESENT_CYCLES", "HELLO_CYCLES",
    "READ_CYCLES", "RESPONSE_ENTRY_CYCLES",
]

#: Compute cycles of one GEMM beyond its ``k`` accumulation steps: the last operand read's data
#: cycle, its multiply cycle (the array's product register), its accumulate cycle and the hand-off
#: cycle (``hw/gemm.py``). A GEMM occupies the array
#: for ``k + this`` cycles after the cycle in which it is accepted.
GEMM_OVERHEAD_CYCLES = 4

#: Cycles a gathered command (ISA version 3, ``CONV``) takes beyond a plain one of the same step
#: cycles: the gather's reads reach the banked ACT from registers (its request stage) and the
#: banks' data is registered beside them before the lanes choose it (``hw/gather.py``), and WGT
#: is read likewise (``hw/gathered.py``), so that neither a block RAM's address inputs nor its
#: clock-to-output (5.8 ns on the ECP5 of speed grade 6) meets logic in the same cycle. A gathered
#: command occupies the array for its step cycles ``+ GEMM_OVERHEAD_CYCLES + this``.
GATHER_PIPELINE_CYCLES = 2

#: Cycles of one drain beyond its ``m_rows * n_cols * requant_cycles`` post-processing issue
#: slots: the hand-off cycle, the PostProcessor latency (9) and the final write-back
#: (``hw/drain.py``). A drain occupies the drain unit for ``m_rows * n_cols * requant_cycles +
#: this`` cycles from its hand-off cycle (``AcceleratorConfig.requant_cycles``, usually 1).
DRAIN_OVERHEAD_CYCLES = 11

#: Cycles from the Core going idle to the executor going on past a ``SYNC``, a ``STORE``, a
#: ``READ`` or the end of a frame that waited for it: the executor sees ``idle`` through a
#: register (``hw/executor.py``). No lag when the Core went idle earlier.
IDLE_LAG_CYCLES = 1

#: Bytes the stream host port moves per cycle in each direction.
LINK_BYTES_PER_CYCLE = 1

#: Cycles per element of the average-pool drain's divider (ISA version 3, ``CONV`` kind 2): a
#: restoring divider producing one quotient bit per cycle.
POOL_DIVIDE_CYCLES = 16

#: Requant passes per element of an ``ADD`` (ISA version 3): each input's multiplier, then the
#: output's, on the drain unit's requant (``requant_cycles`` each).
ADD_PASSES = 3

#: Cycles of an ``ADD`` on the drain unit beyond its ``ceil(rows / drain_lanes) * count *
#: ADD_PASSES * requant_cycles`` issue slots: the PARAM and ACT reads before the first operand
#: pair, the AddUnit's pipeline after the last and the write-back (``hw/add_stream.py``).
ADD_OVERHEAD_CYCLES = 20

#: Cycles from an ``ADD``'s transfer to the Core to its earliest start: it always waits in the
#: Core's queue, so that its first ACT and PARAM addresses are registers (``hw/add_stream.py``).
ADD_START_CYCLES = 1

#: Cycles from the start of a queued ``ADD`` to the Core's acceptance of the next one waiting
#: behind it (the Core's ready to the program sequencer is a register, ``hw/add_stream.py``).
ADD_RELEASE_CYCLES = 1

#: Cycles of a ``CONV``'s issue beyond its window set-up (:func:`conv_issue_cycles`): the cycle
#: that hands the window to the gather and the one in which the gather takes the first command
#: (``hw/conv_front.py``).
CONV_ISSUE_CYCLES = 2

#: Cycles of the window address generator's set-up of a ``CONV`` beyond one per row lane: its
#: products (8 cycles), the pixel after the first tile and two cycles of tile moves
#: (``hw/window_setup.py``).
CONV_SETUP_CYCLES = 11


#: Cycles from the engine's acceptance of a ``CONV``'s last command to the executor going on (the
#: Core's ready to the program sequencer is a register, ``hw/conv_front.py``).
CONV_RELEASE_CYCLES = 1


def conv_issue_cycles(rows: int) -> int:
    """Return the cycles from a ``CONV``'s issue (or its gather going free, if later) to the
    earliest acceptance of its first command by the engine, on ``rows`` row lanes."""
    return CONV_ISSUE_CYCLES + CONV_SETUP_CYCLES + rows

# -- Per-request overhead of the executor (``hw/executor.py``'s request FSM), measured on the RTL
# with the socket bridge (which stops the clock only while idle) and modelled exactly by
# ``tessera.runtime.cycles``. Every request passes IDLE and DISPATCH before it acts and the
# sender's last state after its response.

#: Cycles between a request's last byte and its action (counters cleared or copied, the first
#: instruction fetched): the executor's IDLE and DISPATCH states.
REQUEST_HEAD_CYCLES = 2

#: Cycles after a response's last byte before the executor takes the next request.
RESPONSE_TAIL_CYCLES = 2

#: Cycles from the end of an EXEC program (its last instruction, or the Core going idle if
#: later) to its response's first byte: FIRST/FINISH, ANSWER_EXEC, READ_WAIT_EXEC, RESPOND.
#: A STORE does not wait by itself: it ends the program and the end waits.
EXEC_END_CYCLES = 5

#: The same for a program that stopped at an error (the ErrorRecord response).
EXEC_ERROR_END_CYCLES = 4

#: Cycles of a repeated EXEC (same sequence number) answered from the last result.
EXEC_RESENT_CYCLES = 3

#: Extra cycles of a HELLO (the ID record is loaded in DISPATCH).
HELLO_CYCLES = 1

#: Extra cycles of a READ: its four request bytes, the checks and the wait for idle.
READ_CYCLES = 8

#: Cycles each ACT entry of a STORE or READ response after the first adds (the read port's
#: address and data cycles: ACT_READ, ACT_LATCH).
RESPONSE_ENTRY_CYCLES = 2
