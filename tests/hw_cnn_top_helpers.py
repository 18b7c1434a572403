"""A ``cnn`` accelerator around a Core that takes every ``CONV``/``ADD`` at once and ignores it.

The instruction checks of the decoder and the sequencer are tested end to end on this top,
whatever the Core does with what they issue: the real executor and link, the dense Core of the
same buffers, ``i_conv``/``i_add`` always ready. Every response to a program whose ``CONV``s and
``ADD``s need not have run (errors, programs without a ``STORE`` after them) is the real
device's; the issued instructions are recorded by :func:`issue_monitor`.
"""

from amaranth.hdl import Module, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In

from tessera.hw.cnn_issue import add_issue, conv_issue
from tessera.hw.core import Core
from tessera.hw.top import Accelerator
from tessera.runtime.errors import HazardError, ParameterError
from tessera.runtime.machine import Machine

__all__ = ["IgnoringCnnCore", "StubCnnAccelerator", "issue_monitor", "RecordingMachine"]


class IgnoringCnnCore(wiring.Component):
    """The dense :class:`~tessera.hw.core.Core` plus ``i_conv``/``i_add`` that take anything."""

    def __init__(self, config):
        # (the dense Core of the same buffers and array)
        self._core = Core(config.replace(cnn=False, act_bank_lanes=1, drain_lanes=1))
        super().__init__({
            **dict(self._core.signature.members),
            "i_conv": In(stream.Signature(conv_issue(config))),
            "i_add": In(stream.Signature(add_issue(config))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self._core
        for name in ("i_cmd", "write", "read"):
            wiring.connect(m, wiring.flipped(getattr(self, name)), getattr(core, name))
        wiring.connect(m, core.events, wiring.flipped(self.events))
        m.d.comb += [self.idle.eq(core.idle), self.i_conv.ready.eq(1), self.i_add.ready.eq(1)]
        return m


class StubCnnAccelerator(Accelerator):
    """:class:`~tessera.hw.top.Accelerator` built with :class:`IgnoringCnnCore`."""

    core = None   #: the IgnoringCnnCore, once elaborated

    def elaborate(self, platform):
        import tessera.hw.top as top

        def make(config):
            self.core = IgnoringCnnCore(config)
            return self.core

        real, top.Core = top.Core, make
        try:
            return super().elaborate(platform)
        finally:
            top.Core = real


def issue_monitor(config, issued):
    """Return a ``run_rtl`` monitor appending ``("conv" | "add", payload view)`` per transfer."""
    layouts = {"conv": conv_issue(config), "add": add_issue(config)}

    def monitor(ctx, dut):
        for name, layout in layouts.items():
            port = getattr(dut.core, f"i_{name}")
            if ctx.get(port.valid) and ctx.get(port.ready):
                issued.append((name, layout.from_bits(ctx.get(Value.cast(port.payload)))))
    return monitor


class RecordingMachine(Machine):
    """The emulator's machine, recording each ``CONV``/``ADD`` that passed its checks.

    ``issued`` gets ``("conv", fields, window, post)`` or ``("add", fields, None, post)``. A
    ``CONV``/``ADD`` whose result the emulator refuses as undefined (a ``HazardError`` or a
    ``ParameterError`` after the checks: an output over its input, zero ``PARAM`` entries) counts
    as issued: the device issues it (these tests compare statuses, not results).
    """

    issued = None

    def _conv(self, pos, f, cycles):
        self._issue("conv", pos, f, cycles, super()._conv, self.window)

    def _add(self, pos, f, cycles):
        self._issue("add", pos, f, cycles, super()._add, None)

    def _issue(self, name, pos, f, cycles, run, window):
        post = self.post
        try:
            run(pos, f, cycles)
        except (HazardError, ParameterError):
            pass
        if self.issued is not None:
            self.issued.append((name, dict(f), window, post))
