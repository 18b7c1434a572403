"""The emulator's cycle model (docs/architecture.md, tessera.runtime.cycles) on known timelines."""

import numpy as np
import pytest

from runtime_helpers import exec_ok, load, params_bytes, request
from tessera import numerics
from tessera.runtime import Emulator, connect
from tessera.runtime.cycles import EXECUTOR_BYTES_PER_CYCLE, CycleModel
from tessera.spec import AcceleratorConfig, isa
from tessera.spec.isa import Buffer
from tessera.spec.protocol import FRAME_OVERHEAD, Kind, decode_counters
from tessera.spec.timing import DRAIN_OVERHEAD_CYCLES as D
from tessera.spec.timing import EXEC_END_CYCLES as END
from tessera.spec.timing import EXEC_ERROR_END_CYCLES as ERROR_END
from tessera.spec.timing import GEMM_OVERHEAD_CYCLES as G
from tessera.spec.timing import IDLE_LAG_CYCLES as LAG
from tessera.spec.timing import LINK_BYTES_PER_CYCLE
from tessera.spec.timing import REQUEST_HEAD_CYCLES as HEAD
from tessera.spec.timing import RESPONSE_ENTRY_CYCLES as ENTRY
from tessera.spec.timing import RESPONSE_TAIL_CYCLES as TAIL

CFG = AcceleratorConfig(rows=4, cols=4, act_depth=256, weight_depth=256, param_depth=16)
FETCH = isa.INSN_BYTES // EXECUTOR_BYTES_PER_CYCLE


@pytest.fixture(autouse=True)
def _one_byte_per_cycle():
    # The expected timelines below are written for the documented 1 byte/cycle link and fetch.
    assert LINK_BYTES_PER_CYCLE == 1 and EXECUTOR_BYTES_PER_CYCLE == 1


def _emulator():
    emu = Emulator(CFG)
    mult, shift = numerics.requant_multipliers(1.0, np.ones(4, np.float32), 64.0, "onnx")
    exec_ok(emu, load(Buffer.PARAM, 0, params_bytes(np.zeros(4), mult, shift), 9), seq=200)
    request(emu, Kind.CLEAR_COUNTERS)
    emu.read(1 << 16)
    return emu


def _counters(emu):
    """Counters as reported, minus this COUNTERS request and the previous CLEAR response (and
    the executor's cycles after that response and before this request's snapshot)."""
    c = decode_counters(request(emu, Kind.COUNTERS)[1])
    c["cycles"] -= 2 * FRAME_OVERHEAD + TAIL + HEAD
    c["rx_bytes"] -= FRAME_OVERHEAD
    c["tx_bytes"] -= FRAME_OVERHEAD
    return c


def _gemm(k, out_addr=100, drain=True, clear=True):
    return isa.Gemm(0, 0, k, out_addr=out_addr, m_rows=4, n_cols=4, drain=drain,
                    clear=clear).encode()


def test_single_gemm():
    emu = _emulator()
    program = _gemm(10)
    exec_ok(emu, program, seq=1)
    c = _counters(emu)
    rx = FRAME_OVERHEAD + len(program)
    start = rx + HEAD + FETCH
    end = start + 10 + G + 16 + D + END                  # compute, the drain, the answer
    assert c == {"cycles": end + FRAME_OVERHEAD + TAIL, "compute_cycles": 10 + G, "macs": 160,
                 "stall_cycles": 0, "rx_bytes": rx, "tx_bytes": FRAME_OVERHEAD}


def test_drain_bound_gemms_stall():
    # k = 1: each GEMM computes in 1 + G cycles but its 4x4 drain takes 16 + D; the executor
    # issues one every FETCH = 16 cycles, so the drains fall behind by D per GEMM.
    assert 1 + G + D <= FETCH, "timeline below assumes the engine is free at each issue"
    emu = _emulator()
    program = _gemm(1) + _gemm(1) + _gemm(1)
    exec_ok(emu, program, seq=1)
    c = _counters(emu)
    start3 = FRAME_OVERHEAD + len(program) + HEAD + 3 * FETCH
    end = start3 + 1 + G + 2 * D + 16 + D + END          # waits 2D for the hand-off, then drains
    assert c["stall_cycles"] == D + 2 * D
    assert c["compute_cycles"] == 3 * (1 + G)
    assert c["macs"] == 3 * 16
    assert c["cycles"] == end + FRAME_OVERHEAD + TAIL


def test_engine_bound_gemms_overlap_drains():
    emu = _emulator()
    program = _gemm(40) + _gemm(40, out_addr=110) + _gemm(40, out_addr=120, drain=False)
    exec_ok(emu, program, seq=1)
    c = _counters(emu)
    start1 = FRAME_OVERHEAD + len(program) + HEAD + FETCH
    end = start1 + 3 * (40 + G) + END                    # no drain: the Core is idle at H
    assert c == {"cycles": end + FRAME_OVERHEAD + TAIL, "compute_cycles": 3 * (40 + G),
                 "macs": 3 * 640, "stall_cycles": 0,
                 "rx_bytes": FRAME_OVERHEAD + len(program), "tx_bytes": FRAME_OVERHEAD}


def test_sync_waits_and_load_payload_costs_fetch_cycles():
    emu = _emulator()
    payload = bytes(4 * 6)
    program = _gemm(20) + isa.Sync().encode() + isa.Load(Buffer.ACT, 50, 6, payload).encode()
    exec_ok(emu, program, seq=1)
    c = _counters(emu)
    start = FRAME_OVERHEAD + len(program) + HEAD + FETCH
    after_sync = max(start + FETCH, start + 20 + G + 16 + D + LAG)
    end = after_sync + FETCH + len(payload) + END         # idle long before: no wait at the end
    assert c["cycles"] == end + FRAME_OVERHEAD + TAIL


def test_store_response_bytes_are_counted():
    emu = _emulator()
    program = _gemm(3) + isa.Store(100, 4).encode()
    exec_ok(emu, program, seq=1)
    c = _counters(emu)
    assert c["tx_bytes"] == FRAME_OVERHEAD + 16
    # The STORE ends the program; the end waits for the drain, then ACT is read for the answer.
    end = FRAME_OVERHEAD + len(program) + HEAD + FETCH + 3 + G + 16 + D + END
    assert c["cycles"] == end + 3 * ENTRY + FRAME_OVERHEAD + 16 + TAIL


def test_error_lets_the_engine_finish():
    emu = _emulator()
    program = _gemm(30) + isa.Gemm(0, 0, 0).encode()
    status, _ = request(emu, Kind.EXEC, program, seq=1)
    assert status.name == "BAD_FIELD"
    c = _counters(emu)
    start = FRAME_OVERHEAD + len(program) + HEAD + FETCH
    assert c["cycles"] == start + 30 + G + 16 + D + ERROR_END + FRAME_OVERHEAD + 4 + TAIL
    assert c["compute_cycles"] == 30 + G


def test_cycle_model_counters_wrap():
    model = CycleModel(counter_bits=16)
    model.gemm(k=70000, m_rows=1, n_cols=1, drain=False)
    model.wait_idle()
    assert model.counters()["compute_cycles"] == (70000 + G) % (1 << 16)


def test_device_counters_utilisation_and_determinism():
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (32, 4), dtype=np.int8)
    program = (load(Buffer.ACT, 0, a, 4) + load(Buffer.WGT, 0, a, 4) +
               _gemm(32) + isa.Gemm(0, 0, 32, out_addr=110, m_rows=2, n_cols=3).encode())
    reports = []
    for _ in range(2):
        with connect("emu", config=CFG) as dev:
            dev.link.request(Kind.EXEC, load(Buffer.PARAM, 0, params_bytes(
                np.zeros(4), *numerics.requant_multipliers(1.0, np.ones(4, np.float32), 64.0,
                                                           "onnx")), 9))
            dev.clear_counters()
            dev.link.request(Kind.EXEC, program)
            reports.append(dev.counters())
    assert reports[0] == reports[1]
    c = reports[0]
    assert c["macs"] == 32 * 16 + 32 * 6
    assert c["compute_cycles"] == 2 * (32 + G)
    assert c["utilisation"] == pytest.approx(c["macs"] / (16 * c["compute_cycles"]))
