"""Cycle-model constants of the gateware, shared with the emulator's cycle model.

The RTL is built so that these hold exactly; ``tests`` compare the RTL performance counters with
the emulator's model. Change a constant here in the same commit as the gateware change that
moves it. The model itself is described in ``docs/architecture.md``.
"""

__all__ = [
    "GEMM_OVERHEAD_CYCLES", "DRAIN_OVERHEAD_CYCLES", "LINK_BYTES_PER_CYCLE",
]

#: Compute cycles of one GEMM beyond its ``k`` accumulation steps (operand fetch and MAC
#: pipeline fill/flush, accumulator hand-off). A GEMM occupies the array for ``k + this``.
GEMM_OVERHEAD_CYCLES = 4

#: Cycles of one drain beyond its ``m_rows * n_cols`` post-processing issue slots (the requant
#: and activation pipeline latency plus the final write-back).
DRAIN_OVERHEAD_CYCLES = 8

#: Bytes the stream host port moves per cycle in each direction.
LINK_BYTES_PER_CYCLE = 1
