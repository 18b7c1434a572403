"""cocotb self-check of the testbench: a model that disagrees with the RTL must fail the test.

Run by ``tests/test_sim_system.py``, which expects this test to FAIL with the scoreboard's
message, proving that the scoreboard compares the RTL's bytes and cannot pass vacuously.
"""

import cocotb

from tessera.spec import isa
from tessera.spec.isa import Buffer

from tb import TB


@cocotb.test()
async def scoreboard_catches_a_wrong_model(dut):
    """Load activations, then change one byte in the model only: the STORE must mismatch."""
    tb = TB(dut)
    await tb.start()
    rows = tb.config.rows
    await tb.exec(isa.Load(Buffer.ACT, 0, 1, bytes(range(rows))).encode())
    tb.model.machine.act[0, 0] ^= 1
    await tb.exec(isa.Store(0, 1).encode())
