"""Amaranth-simulator tests of the PostProcessor stream: values, order, flow control, latency."""

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from tessera import AcceleratorConfig, numerics
from tessera.hw import postproc
from tessera.hw.postproc import POSTPROC_IN, POSTPROC_OUT, PostProcessor, postproc_layouts
from tessera.spec.config import operand_range

from hw_requant_vectors import (INT32_MAX, INT32_MIN, onnx_oracle_wide, onnx_vectors,
                                onnx_vectors48, tflite_oracle, tflite_vectors, write_lut)

from tessera.hw.requant_onnx import requant_bits


def _elements(rng, config, n):
    """Random stream elements (dicts of POSTPROC_IN fields) over the config's modes.

    ``zero_point``, ``lo`` and ``hi`` lie in the ``config.output_bits`` range (the compiler's
    contract), its extremes included.
    """
    qmin, qmax = operand_range(config.output_bits)
    a_onnx, m_onnx = (onnx_vectors48 if config.acc_bits == 48 else onnx_vectors)(rng, n)
    a_tfl, m_tfl, e_tfl = tflite_vectors(rng, n)
    pools = {"onnx": (a_onnx, m_onnx, np.zeros_like(a_onnx)), "tflite": (a_tfl, m_tfl, e_tfl)}
    # Keep onnx multipliers inside the contract (normal, positive, below 2^24).
    m = m_onnx.view(np.float32)
    keep = (m >= np.finfo(np.float32).tiny) & (m < 2.0 ** 24)
    pools["onnx"] = tuple(x[keep] for x in pools["onnx"])
    elements = []
    for index in range(n):
        mode = config.requant_modes[rng.integers(len(config.requant_modes))]
        a_pool, m_pool, e_pool = pools[mode]
        j = rng.integers(len(a_pool))
        # Split a into acc + bias; sometimes through a wrap of the sum (at acc_bits).
        bias = int(rng.integers(INT32_MIN, INT32_MAX + 1)) if rng.random() < 0.5 else \
            int(rng.integers(-1000, 1000))
        acc = int(numerics.wrap_signed(int(a_pool[j]) - bias, config.acc_bits))
        zero_point = int(rng.choice([qmin, qmax, 0, int(rng.integers(qmin, qmax + 1))]))
        kind = rng.integers(3)
        if kind == 0:
            lo, hi = qmin, qmax
        elif kind == 1:      # relu
            lo, hi = max(qmin, zero_point), qmax
        else:                # relu6-like / random bounds
            lo, hi = sorted(int(x) for x in rng.integers(qmin, qmax + 1, 2))
        elements.append({
            "acc": acc, "bias": bias, "multiplier": int(m_pool[j]), "shift": int(e_pool[j]),
            "mode": int(mode == "tflite"), "lut": int(config.lut and rng.random() < 0.3),
            "zero_point": zero_point, "lo": lo, "hi": hi,
            "tag": index & 0xFF, "last": int(rng.random() < 0.1),
        })
    return elements


def _expected(elements, table, bits=8, acc_bits=32):
    """Per-element ``numerics.postprocess`` and, independently, the test oracles."""
    out_numerics, out_oracle = [], []
    for el in elements:
        a = int(numerics.wrap_signed(el["acc"] + el["bias"], acc_bits))
        mode = "tflite" if el["mode"] else "onnx"
        lut = table if el["lut"] else None
        got = numerics.postprocess(
            np.array([a], dtype=np.int64), np.array([el["multiplier"]], dtype=np.uint32),
            np.array([el["shift"]], dtype=np.int8), mode=mode, zero_point=el["zero_point"],
            lo=el["lo"], hi=el["hi"], lut=lut, bits=bits, acc_bits=acc_bits)
        out_numerics.append(int(got[0]))
        if mode == "onnx":
            v = onnx_oracle_wide([a], [el["multiplier"]], requant_bits(bits))[0]
        else:
            v = tflite_oracle([a], [el["multiplier"]], [el["shift"]], requant_bits(bits))[0]
        y = int(np.clip(v + el["zero_point"], el["lo"], el["hi"]))
        out_oracle.append(int(lut[y + 128]) if lut is not None else y)
    return np.array(out_numerics), np.array(out_oracle)


def _simulate(dut, elements, table, rng, *, p_valid, p_ready):
    """Stream ``elements`` with random gaps and random ``o.ready``; check lib.stream rules."""
    received = []
    layout_in = postproc_layouts(dut.config)[0]

    async def producer(ctx):
        if table is not None:
            await write_lut(ctx, dut, table)
        for el in elements:
            while rng.random() > p_valid:
                ctx.set(dut.i.valid, 0)
                await ctx.tick()
            ctx.set(dut.i.payload, layout_in.const(el))
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        held = None     # payload offered but not taken in the previous cycle
        while len(received) < len(elements):
            ctx.set(dut.o.ready, int(rng.random() < p_ready))
            _, _, valid, ready, payload = await ctx.tick().sample(
                dut.o.valid, dut.o.ready, dut.o.payload)
            if held is not None:
                assert valid, "o.valid dropped before the transfer"
                assert payload == held, "o.payload changed before the transfer"
            held = payload if valid and not ready else None
            if valid and ready:
                received.append((payload.value, payload.tag, payload.last))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return received


def _check_received(received, elements, expected):
    """The results equal ``expected`` bit for bit, with each element's tag and last."""
    values, tags, lasts = (np.array(x) for x in zip(*received))
    np.testing.assert_array_equal(values, expected)
    np.testing.assert_array_equal(tags, [el["tag"] for el in elements])
    np.testing.assert_array_equal(lasts, [el["last"] for el in elements])


CONFIGS = {
    "both+lut": AcceleratorConfig(),
    "onnx": AcceleratorConfig(requant_modes=("onnx",), lut=False),
    "tflite+lut": AcceleratorConfig(requant_modes=("tflite",)),
    "onnx-iterative3": AcceleratorConfig(requant_modes=("onnx",), lut=False, requant_cycles=3),
    "onnx-iterative7+lut": AcceleratorConfig(requant_modes=("onnx",), requant_cycles=7),
    # the iterative tflite product (cnn configurations)
    "tflite-iterative4-cnn": AcceleratorConfig(requant_modes=("tflite",), lut=False,
                                               requant_cycles=4, cnn=True),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_stream_with_backpressure(name):
    config = CONFIGS[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    n = 1500 if name == "both+lut" else 500 if CONFIGS[name].requant_cycles == 1 else 300
    elements = _elements(rng, config, n)
    table = rng.integers(-128, 128, 256).astype(np.int8) if config.lut else None
    by_numerics, by_oracle = _expected(elements, table)
    np.testing.assert_array_equal(by_numerics, by_oracle)
    received = _simulate(PostProcessor(config), elements, table, rng, p_valid=0.8, p_ready=0.6)
    _check_received(received, elements, by_numerics)


@pytest.mark.parametrize("name", ["both+lut", "onnx-iterative7+lut", "tflite+lut"])
def test_post_state_in_block_ram(name):
    # The post state carried in a block RAM beside the pipeline (the iCE40 default): the same
    # results, tags and lasts under random valid/ready and the iterative unit's holds, with
    # per-element modes, zero points, bounds and LUT flags.
    config = CONFIGS[name]
    rng = np.random.default_rng(7 + sum(map(ord, name)))
    elements = _elements(rng, config, 400)
    table = rng.integers(-128, 128, 256).astype(np.int8) if config.lut else None
    by_numerics, _ = _expected(elements, table)
    dut = PostProcessor(config, delay_ram=True)
    received = _simulate(dut, elements, table, rng, p_valid=0.7, p_ready=0.5)
    _check_received(received, elements, by_numerics)


def test_delay_ram_rejects_non_bool():
    for bad in ("yes", 1):
        with pytest.raises(TypeError, match=f"delay_ram must be None, False or True, not {bad!r}"):
            PostProcessor(AcceleratorConfig(), delay_ram=bad)


#: Operand widths other than 8 (built inside the test, with the device width gate lifted):
#: only the output lane narrows at 4 bits; the clamp bounds come from the 4-bit range.
WIDTH_CONFIGS = {
    "int4-both": dict(input_bits=4, weight_bits=4),
    "a4w8-onnx": dict(input_bits=4, weight_bits=8, requant_modes=("onnx",)),
    "a8w4-tflite+lut": dict(input_bits=8, weight_bits=4, requant_modes=("tflite",)),
    # 16-bit outputs: 48-bit accumulators (onnx only), or 32-bit ones with 16x8 operands.
    "int16-acc48-onnx": dict(input_bits=16, weight_bits=16),
    "a16w8-both": dict(input_bits=16, weight_bits=8),
}


@pytest.mark.parametrize("name", WIDTH_CONFIGS)
def test_stream_at_widths(name):
    config = AcceleratorConfig(**WIDTH_CONFIGS[name])
    rng = np.random.default_rng(sum(map(ord, name)))
    elements = _elements(rng, config, 600)
    table = rng.integers(-128, 128, 256).astype(np.int8) if config.lut else None
    by_numerics, by_oracle = _expected(elements, table, config.output_bits, config.acc_bits)
    np.testing.assert_array_equal(by_numerics, by_oracle)
    qmin, qmax = operand_range(config.output_bits)
    assert {qmin, qmax} <= set(by_numerics.tolist())
    dut = PostProcessor(config)
    assert dut.o.payload.value.shape().width == config.output_bits
    received = _simulate(dut, elements, table, rng, p_valid=0.8, p_ready=0.6)
    _check_received(received, elements, by_numerics)


def test_full_throughput_and_latency():
    config = AcceleratorConfig()
    dut = PostProcessor(config)
    rng = np.random.default_rng(5)
    elements = _elements(rng, config, 64)
    expected, _ = _expected(elements, np.zeros(256, dtype=np.int8))
    events = []

    async def testbench(ctx):
        ctx.set(dut.o.ready, 1)
        for cycle in range(len(elements) + dut.latency + 2):
            if cycle < len(elements):
                ctx.set(dut.i.payload, POSTPROC_IN.const(elements[cycle]))
            ctx.set(dut.i.valid, cycle < len(elements))
            _, _, i_ready, o_valid, o_payload = await ctx.tick().sample(
                dut.i.ready, dut.o.valid, dut.o.payload)
            assert i_ready, "the pipeline must accept one element per cycle when o.ready is held"
            if o_valid:
                events.append((cycle, o_payload.value))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert [c for c, _ in events] == [c + dut.latency for c in range(len(elements))]
    np.testing.assert_array_equal([v for _, v in events], expected)


@pytest.mark.parametrize("cycles, modes", [(2, ("onnx",)), (3, ("onnx",)), (24, ("onnx",)),
                                           (4, ("tflite",))])
def test_iterative_throughput_and_latency(cycles, modes):
    # With o.ready held and an element always offered, the iterative multiplier takes exactly
    # `cycles` cycles per element: the figure the drain's cycle model (elements * cycles +
    # overhead) rests on (an iterative tflite product needs a cnn configuration).
    config = AcceleratorConfig(requant_modes=modes, requant_cycles=cycles,
                               cnn="tflite" in modes)
    dut = PostProcessor(config)
    rng = np.random.default_rng(cycles)
    elements = _elements(rng, config, 20)
    expected, _ = _expected(elements, np.zeros(256, dtype=np.int8))
    accepted, events = [], []

    async def testbench(ctx):
        ctx.set(dut.o.ready, 1)
        for cycle in range(len(elements) * cycles + dut.latency + 2):
            index = len(accepted)
            if index < len(elements):
                ctx.set(dut.i.payload, POSTPROC_IN.const(elements[index]))
            ctx.set(dut.i.valid, index < len(elements))
            _, _, i_ready, o_valid, o_payload = await ctx.tick().sample(
                dut.i.ready, dut.o.valid, dut.o.payload)
            if i_ready and index < len(elements):
                accepted.append(cycle)
            if o_valid:
                events.append((cycle, o_payload.value))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert len(accepted) == len(elements)
    # Every element freezes the pipeline for cycles - 1 cycles, wherever the others are, so
    # the last result comes (E - 1) advancing cycles + latency + E * (cycles - 1) frozen ones
    # after the first transfer.
    assert len(events) == len(elements)
    assert events[-1][0] == len(elements) * cycles + dut.latency - 1
    np.testing.assert_array_equal([v for _, v in events], expected)


def test_ports_follow_the_config():
    with_lut = PostProcessor(AcceleratorConfig())
    without = PostProcessor(AcceleratorConfig(lut=False))
    for dut in (with_lut, without):
        Fragment.get(dut, None)     # elaborates (and marks it used)
    assert {"lut_wr_en", "lut_wr_addr", "lut_wr_data"} <= set(with_lut.signature.members)
    assert "lut_wr_en" not in without.signature.members
    assert with_lut.signature.members["i"].signature.members["payload"].shape == POSTPROC_IN
    assert with_lut.signature.members["o"].signature.members["payload"].shape == POSTPROC_OUT
    assert PostProcessor.latency == 9
    assert list(POSTPROC_IN.members) == ["acc", "bias", "multiplier", "shift", "mode", "lut",
                                         "zero_point", "lo", "hi", "tag", "last"]


def test_rejects_non_config():
    with pytest.raises(TypeError, match=r"^PostProcessor needs a tessera\.AcceleratorConfig, "
                                        r"not dict$"):
        PostProcessor({"rows": 8})


def test_all_names_resolve():
    for module in (postproc,):
        for name in module.__all__:
            assert hasattr(module, name), name
