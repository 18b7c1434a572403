"""hw/decoder.py, hw/sequencer.py: the ISA version 3 instructions on the RTL against the emulator.

Random and malformed ``WINDOW``/``CONV``/``ADD`` programs (fields at and past their limits, set
padding bits, no ``WINDOW`` since reset, pools with ``in_c != out_c``, depthwise ``out_c`` not a
multiple of ``in_c``, ranges ending at and one past their buffer, ``ADD`` outside mode tflite,
opcodes above 8) into the executor: every response (status and ``ErrorRecord``) equals the
emulator's, and every ``CONV``/``ADD`` the emulator accepts is issued to the Core exactly once,
with its fields, the window and the post state current at issue. The Core here takes the issued
instructions at once and ignores them (tests/hw_cnn_top_helpers.py): the checks and the issue
alone, whatever the Core does with them (tests/test_sim_cnn.py and the CNN fuzz run of
tests/test_sim_fuzz.py run the whole device).
"""

import numpy as np

from tessera.runtime import conv
from tessera.runtime.emulator import Emulator
from tessera.spec import AcceleratorConfig, isa
from tessera.spec.isa import CnnOpcode, ConvKind, Mode, Post
from tessera.spec.protocol import Kind, Status, encode_frame

from hw_cnn_helpers import window_sizes_of
from hw_cnn_top_helpers import RecordingMachine, StubCnnAccelerator, issue_monitor
from hw_exec_helpers import parse, run_rtl

CFG = AcceleratorConfig(rows=4, cols=2, act_depth=256, weight_depth=512, param_depth=64,
                        max_payload=96, rx_timeout_cycles=64, cnn=True)
WINDOW_FIELDS = [f for f in isa.CNN_LAYOUTS[CnnOpcode.WINDOW].fields if f.name != "opcode"]
#: WINDOW pad_values: in the int8 input range or not (-129 and 128 differ from -128/127 in
#: one bit of byte 12 and byte 13 each; +-256 and the s16 ends in bytes 13 and 14)
PAD_VALUES = {-128: Status.OK, 127: Status.OK, 0: Status.OK, -1: Status.OK,
              -129: Status.BAD_FIELD, 128: Status.BAD_FIELD, 256: Status.BAD_FIELD,
              -256: Status.BAD_FIELD, 1 << 13: Status.BAD_FIELD, -32768: Status.BAD_FIELD,
              32767: Status.BAD_FIELD}


def _word(opcode, **fields):
    return isa.ALL_LAYOUTS[opcode].pack(opcode=int(opcode), **fields).to_bytes(16, "little")


def _poke(word, rng, first_bit):
    """Set one random bit at or above ``first_bit`` (padding) of a 16-byte word."""
    bit = int(rng.integers(first_bit, 128))
    value = int.from_bytes(word, "little") | 1 << bit
    return value.to_bytes(16, "little")


class _Programs:
    """Random ISA version 3 programs, with a Python copy of the window to aim at buffer ends."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.window = conv.Window()

    def pick(self, *choices):
        return choices[int(self.rng.integers(0, len(choices)))]

    def value(self, width, lo=0, small=None):
        top = (1 << width) - 1
        return int(self.pick(0, 1, top, self.rng.integers(0, top + 1), lo,
                             *(() if small is None else (self.rng.integers(1, small),) * 4)))

    def window_word(self):
        rng = self.rng
        if rng.random() < 0.8:   # a plausible layer, small enough to fit often
            in_c = int(rng.integers(1, 7))
            values = dict(
                in_h=int(rng.integers(1, 7)), in_w=int(rng.integers(1, 7)), in_c=in_c,
                out_h=int(rng.integers(1, 7)), out_w=int(rng.integers(1, 7)),
                out_c=self.pick(in_c, in_c * int(rng.integers(1, 4)), int(rng.integers(1, 9))),
                kernel_h=int(rng.integers(1, 4)), kernel_w=int(rng.integers(1, 4)),
                stride_h=int(rng.integers(1, 3)), stride_w=int(rng.integers(1, 3)),
                dilation_h=int(rng.integers(1, 3)), dilation_w=int(rng.integers(1, 3)),
                pad_top=int(rng.integers(0, 3)), pad_left=int(rng.integers(0, 3)),
                pad_value=int(rng.integers(-128, 128)))
            if rng.random() < 0.15:   # one zero size, kernel, stride or dilation
                values[self.pick(*[n for n in values if not n.startswith("pad")])] = 0
        else:                      # every field at a limit or random
            values = {f.name: (self.pick(f.min, f.max, -129, -128, 127, 128, 0, -1)
                               if f.signed else self.value(f.width))
                      for f in WINDOW_FIELDS}
        word = _word(CnnOpcode.WINDOW, **values)
        if rng.random() < 0.15:
            return _poke(word, rng, 114), False     # a set bit after the fields
        if -128 <= values["pad_value"] <= 127:
            self.window = conv.Window(**values)
        return word, True

    def addresses(self, ranges):
        """Start addresses for ``{name: (count, depth)}``: each range fits (ending at its
        buffer's end or before), except, half the time, one that ends one past the end or
        starts far outside."""
        starts = {}
        for name, (count, depth) in ranges.items():
            fit = max(0, depth - count)
            starts[name] = int(self.pick(fit, 0, self.rng.integers(0, fit + 1)))
        if self.rng.random() < 0.5:
            name = self.pick(*ranges)
            count, depth = ranges[name]
            starts[name] = int(self.pick(max(0, depth - count) + 1, 0xFFFF,
                                         self.rng.integers(depth, 0x10000)))
        return starts

    def conv_word(self):
        w, kind = self.window, ConvKind(int(self.rng.integers(0, 4)))
        src_count = conv.map_entries(w.in_h * w.in_w, w.in_c, CFG.rows)
        dst_count = conv.map_entries(w.out_h * w.out_w, w.out_c, CFG.rows)
        groups, k = conv.conv_groups(kind, w, CFG.cols) if w.in_c else (1, 1)
        word = _word(CnnOpcode.CONV, kind=int(kind), _pad0=0, **self.addresses({
            "src": (src_count, CFG.act_depth), "dst": (dst_count, CFG.act_depth),
            "w_addr": (groups * k, CFG.weight_depth), "param_addr": (w.out_c, CFG.param_depth)}))
        if self.rng.random() < 0.1:
            word = _poke(word, self.rng, self.pick(4, 72))     # _pad0 or the tail
        return word

    def add_word(self):
        count = self.value(16, small=40)
        word = _word(CnnOpcode.ADD, _pad0=0, count=count, **self.addresses({
            "a_addr": (count, CFG.act_depth), "b_addr": (count, CFG.act_depth),
            "dst": (count, CFG.act_depth), "param_addr": (3, CFG.param_depth)}))
        if self.rng.random() < 0.1:
            word = _poke(word, self.rng, self.pick(4, 88))
        return word

    def program(self):
        rng, words = self.rng, []
        for _ in range(int(rng.integers(1, 4))):
            choice = rng.random()
            if choice < 0.3:
                word, _ = self.window_word()
            elif choice < 0.65:
                word = self.conv_word()
            elif choice < 0.75:
                mode = self.pick(Mode.ONNX, Mode.TFLITE, Mode.TFLITE, Mode.TFLITE)
                word = isa.encode(Post(mode, zero_point=int(rng.integers(-128, 128))))
            elif choice < 0.95:
                word = self.add_word()
            else:
                word = bytes([int(rng.integers(9, 16))]) + bytes(15)   # no such opcode
            words.append(word)
        return b"".join(words)


def _requests(seed, count):
    programs = _Programs(seed)
    # CONV (and ADD) since reset: no WINDOW, the zero window
    first = [programs.conv_word(), programs.add_word()]
    bodies = first + [programs.program() for _ in range(count)]
    # a WINDOW then at once a CONV that depends on out_c mod in_c, both ways
    for out_c in (6, 8):
        window = _word(CnnOpcode.WINDOW, in_h=2, in_w=2, in_c=4, out_h=2, out_w=2, out_c=out_c,
                       kernel_h=1, kernel_w=1, stride_h=1, stride_w=1, dilation_h=1,
                       dilation_w=1, pad_top=0, pad_left=0, pad_value=0)
        bodies.append(window + _word(CnnOpcode.CONV, kind=ConvKind.DEPTHWISE, _pad0=0, src=0,
                                     dst=100, w_addr=0, param_addr=0))
    # pad_value -1 (WINDOW's fields in bytes 13 and 14 all set), alone and with each padding
    # bit either side of the decoder's byte boundaries (114: byte 14 after the fields, 119, 120,
    # 127)
    window = int.from_bytes(window, "little") | 0xFFFF << 98
    for bit in (98, 114, 119, 120, 127):
        value = window | 1 << bit
        bodies.append(value.to_bytes(16, "little") +
                      _word(CnnOpcode.CONV, kind=ConvKind.CONV, _pad0=0, src=0, dst=100,
                            w_addr=0, param_addr=0))
    # pad_value at and past the ends of the input range, each of its bits in bytes 12-14
    for pad_value in PAD_VALUES:
        value = window & ~(0xFFFF << 98) | (pad_value & 0xFFFF) << 98
        bodies.append(value.to_bytes(16, "little"))
    return [encode_frame(Kind.EXEC, i % 256, body) for i, body in enumerate(bodies)]


def _emulate(requests, issued):
    emulator = Emulator(CFG)
    emulator.machine.__class__ = RecordingMachine
    emulator.machine.issued = issued
    out = []
    for request in requests:
        emulator.feed(request)
        out.append(emulator.read(1 << 20))
    return out


def _same_issue(rtl, emu):
    name, view = rtl
    want_name, fields, window, post = emu
    assert name == want_name
    ours = view.conv if name == "conv" else view
    for field in (("kind", "src", "dst", "w_addr", "param_addr") if name == "conv" else
                  ("a_addr", "b_addr", "dst", "count", "param_addr")):
        assert ours[field] == fields[field], field
    if window is not None:
        for field in window.__dataclass_fields__:
            assert view.window[field] == getattr(window, field), field
        for field, value in window_sizes_of(window).items():
            assert view.sizes[field] == value, field
    for field in ("mode", "lut", "zero_point", "lo", "hi"):
        assert view.post[field] == int(getattr(post, field)), field


def test_cnn_checks_and_issues_equal_the_emulator():
    requests = _requests(seed=15, count=150)
    rtl_issued, emu_issued = [], []
    rtl = run_rtl(requests, CFG, top=StubCnnAccelerator,
                  monitor=issue_monitor(CFG, rtl_issued))
    emu = _emulate(requests, emu_issued)
    statuses = []
    for i, (got, want) in enumerate(zip(rtl, emu)):
        assert got == want, (i, requests[i][4:].hex())
        statuses.append(parse(got, CFG).kind)
    # the programs are discriminating: every status of the checks, and CONV/ADD both issued
    assert {Status.OK, Status.BAD_OPCODE, Status.BAD_FIELD, Status.BAD_ADDRESS} <= set(statuses)
    assert {"conv", "add"} <= {name for name, *_ in emu_issued}
    assert len(rtl_issued) == len(emu_issued)
    for got, want in zip(rtl_issued, emu_issued):
        _same_issue(got, want)
    # the pad_value cases (the last requests) are refused exactly outside the input range
    assert statuses[-len(PAD_VALUES):] == list(PAD_VALUES.values())

