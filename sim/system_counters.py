"""cocotb system tests: the hardware performance counters against the emulator's cycle model.

Sequences of GEMMs chosen to make the array the bottleneck (long K: no stall), the drain the
bottleneck (short K, full tiles: the engine stalls waiting for the drain) or the executor the
bottleneck (short K: the engine waits for instructions), with and without drains and with
accumulation across GEMMs. ``compute_cycles``, ``macs``, ``stall_cycles``, ``rx_bytes`` and
``tx_bytes`` must equal the model exactly (:data:`tb.EXACT_COUNTERS`); the STORE at the end
checks the data as well.
"""

import cocotb
import numpy as np

from tessera import numerics
from tessera.spec import isa, timing
from tessera.spec.isa import Buffer
from tessera.spec.protocol import Kind, Status

from tb import TB, config_from_env

_CONFIG = config_from_env()
_MODE = _CONFIG.requant_modes[0]

# name: (k, gemms, drain, clear every GEMM)
SCENARIOS = {
    "array_bound": (max(2 * _CONFIG.rows * _CONFIG.cols, 24), 4, True, True),
    "drain_bound": (1, 6, True, True),
    "executor_bound": (3, 5, False, True),
    "accumulate": (7, 5, True, False),
}


def _params(n, rng):
    mult, shift = numerics.requant_multipliers(
        0.05, rng.uniform(0.001, 0.01, n).astype(np.float32), 0.4, _MODE)
    bias = rng.integers(-3000, 3000, n)
    return b"".join(isa.PARAM_LAYOUT.to_bytes(bias=int(b), multiplier=int(m), shift=int(s))
                    for b, m, s in zip(bias, mult, shift))


@cocotb.test()
@cocotb.parametrize(scenario=list(SCENARIOS))
async def counters_match_model(dut, scenario):
    """GEMM sequences: the counters equal the cycle model's exactly."""
    k, gemms, drain, clear = SCENARIOS[scenario]
    c = _CONFIG
    tb = TB(dut)
    await tb.start()
    rng = np.random.default_rng(len(scenario))
    act = rng.integers(-128, 128, (k * gemms, c.rows), dtype=np.int8).tobytes()
    wgt = rng.integers(-128, 128, (k, c.cols), dtype=np.int8).tobytes()   # shared by all
    post = isa.Post(mode=isa.Mode.parse(_MODE), zero_point=int(rng.integers(-5, 5)),
                    lo=-100, hi=120).encode()
    setup = (_loads(Buffer.ACT, act) + _loads(Buffer.WGT, wgt) +
             _loads(Buffer.PARAM, _params(c.cols, rng)))
    for frame in _frames(setup, c.max_payload):
        response = await tb.exec(frame, what="setup")
        assert response.kind == Status.OK, f"setup failed with status {response.kind:#x}"
    await tb.request(Kind.CLEAR_COUNTERS)
    out = k * gemms
    program = post
    for g in range(gemms):
        n_cols = c.cols if g % 2 == 0 else max(1, c.cols - 1)
        program += isa.Gemm(a_addr=g * k, w_addr=0, k=k, out_addr=out + g * c.cols,
                            param_addr=0, m_rows=c.rows - (g % 2) if c.rows > 1 else 1,
                            n_cols=n_cols, clear=clear or g == 0,
                            drain=drain or g == gemms - 1).encode()
    program += isa.Store(out, min(gemms * c.cols, c.max_store_entries)).encode()
    response = await tb.exec(program, what=f"{scenario} program")
    assert response.kind == Status.OK
    rtl = await tb.counters()
    model = tb.model.cycles.counters()
    dut._log.info("%s: rtl %s; model cycles %d", scenario, rtl, tb.scoreboard.cycles[-1][1])
    expected_compute = gemms * (k + timing.GEMM_OVERHEAD_CYCLES)
    assert rtl["compute_cycles"] == expected_compute, (rtl["compute_cycles"], expected_compute)
    drain_cycles = (c.rows - 1) * max(1, c.cols - 1) + timing.DRAIN_OVERHEAD_CYCLES
    if scenario == "drain_bound" and \
            drain_cycles > isa.INSN_BYTES + k + timing.GEMM_OVERHEAD_CYCLES:
        assert rtl["stall_cycles"] > 0, "a drain-bound sequence must stall"
    if scenario == "array_bound":
        assert rtl["stall_cycles"] == 0, "an array-bound sequence must not stall"
    assert model["macs"] == rtl["macs"]


def _loads(buffer, data):
    """Return LOAD instructions writing ``data`` from entry 0, each small enough for a frame."""
    size = _CONFIG.entry_bytes(buffer)
    per_load = _CONFIG.max_load_entries(buffer)
    count = len(data) // size
    return [isa.Load(buffer, a, min(per_load, count - a),
                     data[a * size:(a + min(per_load, count - a)) * size]).encode()
            for a in range(0, count, per_load)]


def _frames(loads, max_payload):
    """Pack encoded LOADs (each fits in a frame) into as few frames as possible."""
    frames, current = [], b""
    for load in loads:
        if len(current) + len(load) > max_payload:
            frames.append(current)
            current = b""
        current += load
    return frames + [current] if current else frames
