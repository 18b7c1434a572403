"""Core(cnn) executing ``CONV`` and ``ADD`` (ISA version 3) against the emulator.

Each program runs on the Core alone, played as the program sequencer plays it under the cycle
model (tests/hw_core_cnn_helpers.py), and through ``Machine.execute``: every ACT entry, the cycle
of every issue, the ``compute``, ``stall`` and ``macs`` events and the cycle the Core goes idle
must be equal. Windows are drawn with padding, stride and dilation reaching the borders (taps in
the padding on every side, partial last tiles, pad values at the int8 ends), channel counts that
are and are not multiples of ``cols``, depth multipliers, and back-to-back ``CONV``s whose gather
overlaps the previous one's last command (the window swap) and whose drains stall the engine.
"""

import numpy as np
import pytest
from hw_core_cnn_helpers import check_program, random_state

from tessera.hw.core import Core
from tessera.runtime import conv
from tessera.spec import AcceleratorConfig, isa
from tessera.spec.isa import ConvKind


def _config(rows, cols, **kw):
    return AcceleratorConfig(rows=rows, cols=cols, cnn=True, requant_modes=("tflite",),
                             lut=False, act_depth=256, weight_depth=256, param_depth=40, **kw)


CONFIGS = {
    "4x2": _config(4, 2),
    "4x2-banks2": _config(4, 2, act_bank_lanes=2),
    "8x2": _config(8, 2),
    "4x2-banks2-q4": _config(4, 2, act_bank_lanes=2, requant_cycles=4),   # as icebreaker-cnn
    "8x2-lanes4": _config(8, 2, drain_lanes=4),                          # as ulx3s-85f-cnn
    "4x2-lanes2-q4": _config(4, 2, drain_lanes=2, requant_cycles=4),
}
#: Configurations whose ACT and WGT are simulated as single-port SPRAM (Core(spram=True)).
SPRAM = {"4x2-banks2-q4"}


def _window(rng, kind, *, pad_value=None):
    """Draw a window whose taps reach into the padding and whose every pixel has a real tap."""
    while True:
        kh, kw = rng.integers(1, 4, size=2)
        sh, sw = rng.integers(1, 3, size=2)
        dh, dw = rng.integers(1, 3, size=2)
        in_h, in_w = rng.integers(2, 7, size=2)
        extent_h, extent_w = dh * (kh - 1), dw * (kw - 1)
        pt, pl = rng.integers(0, extent_h + 1), rng.integers(0, extent_w + 1)
        pb, pr = rng.integers(0, extent_h + 1), rng.integers(0, extent_w + 1)
        out_h = (in_h + pt + pb - extent_h - 1) // sh + 1
        out_w = (in_w + pl + pr - extent_w - 1) // sw + 1
        if out_h < 1 or out_w < 1 or out_h * out_w > 24:
            continue
        in_c = int(rng.integers(1, 4))
        out_c = {ConvKind.CONV: int(rng.integers(1, 6)),
                 ConvKind.DEPTHWISE: in_c * int(rng.integers(1, 3))}.get(kind, in_c)
        if pad_value is None:
            pad_value = -128 if kind == ConvKind.MAX_POOL else int(rng.choice([-128, 127, -3]))
        w = isa.Window(in_h=int(in_h), in_w=int(in_w), in_c=in_c, out_h=int(out_h),
                       out_w=int(out_w), out_c=out_c, kernel_h=int(kh), kernel_w=int(kw),
                       stride_h=int(sh), stride_w=int(sw), dilation_h=int(dh),
                       dilation_w=int(dw), pad_top=int(pt), pad_left=int(pl),
                       pad_value=pad_value)
        cw = conv.Window.from_fields(w.fields())
        if kind == ConvKind.AVERAGE_POOL and not conv.pool_taps(cw, 4).all():
            continue
        return w, cw


def _post(rng):
    lo = int(rng.integers(-128, -60))
    return isa.Post(mode=isa.Mode.TFLITE, zero_point=int(rng.integers(-20, 21)), lo=lo,
                    hi=int(rng.integers(60, 128)))


def _convs(config, rng, kinds, *, src=0, dst=100):
    """Return WINDOW/CONV pairs reading ``src`` and writing one region after another from
    ``dst``, and the entry after the last region."""
    program, w_addr = [], 0
    for kind in kinds:
        w, cw = _window(rng, kind)
        groups, k = conv.conv_groups(kind, cw, config.cols)
        out = conv.map_entries(cw.out_h * cw.out_w, cw.out_c, config.rows)
        assert dst + out <= config.act_depth and w_addr + groups * k <= config.weight_depth
        program += [w, isa.Conv(kind=kind, src=src, dst=dst, w_addr=w_addr,
                                param_addr=int(rng.integers(0, config.param_depth - cw.out_c)))]
        dst += out
        w_addr = 0 if w_addr + groups * k > config.weight_depth // 2 else w_addr + groups * k
    return program, dst


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("kind", list(ConvKind))
def test_conv_kind(name, kind):
    config = CONFIGS[name]
    rng = np.random.default_rng(10 * int(kind) + len(name))
    act, wgt, param = random_state(config, rng)
    # Two CONVs back to back: the second is issued while the first's last command gathers.
    program = [_post(rng)] + _convs(config, rng, [kind, kind])[0]
    check_program(config, program, act, wgt, param, spram=name in SPRAM)


@pytest.mark.parametrize("name", ["4x2", "4x2-banks2-q4", "8x2-lanes4"])
def test_add_extremes_and_queue(name):
    # Operands at -128/127 against parameters at their ends (multiplier 0, the largest
    # multiplier with shift 0, the output shift -24): three ADDs in a row, so that the third
    # waits for the second to start; a CONV then waits for the ADDs to end.
    config = CONFIGS[name]
    rng = np.random.default_rng(5)
    act, wgt, param = random_state(config, rng, add_params=(30, 33))
    act[0:4, :4] = [-128, 127, -128, 127]
    act[8:12, :4] = [127, -128, -128, 127]
    param["multiplier"][31], param["bias"][31] = 0, 127
    param["multiplier"][30], param["shift"][30] = (1 << 31) - 1, 0
    param["shift"][32] = -24
    program = [
        isa.Post(mode=isa.Mode.TFLITE, zero_point=-7, lo=-100, hi=90),
        isa.Add(a_addr=0, b_addr=8, dst=100, count=4, param_addr=30),
        isa.Add(a_addr=20, b_addr=40, dst=110, count=3, param_addr=33),
        isa.Add(a_addr=2, b_addr=12, dst=120, count=1, param_addr=30),
        *_convs(config, rng, [ConvKind.CONV], dst=140)[0],
        isa.Sync(),        # single-port ACT/WGT: no ADD beside a CONV (docs/isa.md)
        isa.Add(a_addr=3, b_addr=3, dst=130, count=2, param_addr=33),
    ]
    check_program(config, program, act, wgt, param, spram=name in SPRAM)


@pytest.mark.parametrize("name", ["4x2-banks2", "8x2", "4x2-lanes2-q4"])
def test_mixed_program(name):
    # GEMMs and every CONV kind back to back, an ADD (after a SYNC: ISA version 3's single-port
    # rule) with a GEMM issued while it runs; a SYNC, then a layer reading the previous layers'
    # outputs (the chain of a network).
    config = CONFIGS[name]
    rng = np.random.default_rng(7)
    act, wgt, param = random_state(config, rng, add_params=(36,))
    kinds = [ConvKind.DEPTHWISE, ConvKind.MAX_POOL, ConvKind.CONV, ConvKind.AVERAGE_POOL]
    layers, free = _convs(config, rng, kinds)
    program = [_post(rng),
               isa.Gemm(a_addr=0, w_addr=0, k=9, out_addr=60, param_addr=1, m_rows=config.rows,
                        n_cols=2),
               *layers,
               isa.Sync(),     # single-port ACT/WGT: no ADD beside a CONV (docs/isa.md)
               isa.Add(a_addr=0, b_addr=10, dst=free, count=3, param_addr=36),
               isa.Gemm(a_addr=5, w_addr=3, k=2, out_addr=64, param_addr=4, m_rows=1, n_cols=1),
               isa.Sync(),
               *_convs(config, rng, [ConvKind.CONV], src=100, dst=free + 3)[0]]
    check_program(config, program, act, wgt, param, spram=name in SPRAM)


def test_drain_lanes_refused():
    with pytest.raises(ValueError, match=r"^The Core's drain takes drain_lanes rows at once: it "
                                         r"must be a power of two dividing rows=6, not 3$"):
        Core(_config(6, 2, drain_lanes=3))


@pytest.mark.parametrize("kind", [ConvKind.CONV, ConvKind.DEPTHWISE])
def test_spram_write_backs_wait_for_the_gather(kind):
    # Single-port ACT (Core(spram=True)): long commands (K = 27 gathered steps) whose gathers
    # overlap the previous command's drain writes, so the write-backs must wait for the
    # read-free cycles; a read meeting a write would read garbage (hw/spram.py).
    config = CONFIGS["4x2-banks2-q4"]
    rng = np.random.default_rng(21 + int(kind))
    act, wgt, param = random_state(config, rng)
    in_c, out_c = (3, 4) if kind == ConvKind.CONV else (1, 2)
    kernel = 3 if kind == ConvKind.CONV else 5
    window = isa.Window(in_h=4, in_w=4, in_c=in_c, out_h=4, out_w=4, out_c=out_c,
                        kernel_h=kernel, kernel_w=kernel, pad_top=kernel // 2,
                        pad_left=kernel // 2, pad_value=-5)
    program = [_post(rng), window, isa.Conv(kind=kind, src=0, dst=100, w_addr=0, param_addr=3)]
    check_program(config, program, act, wgt, param, spram=True)
