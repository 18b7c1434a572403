"""The pieces every harness is built from: a reset-less module, free inputs, stream rules.

A :class:`FormalBench` is the top of one proof: the design under test is a submodule, the
harness adds ``Assume`` statements about its environment and ``Assert`` statements about the
design. Its free inputs (:meth:`FormalBench.free`) are the RTLIL top's ports, which the solver
sets in every step; :meth:`FormalBench.constant` is one it sets once.
"""

from types import SimpleNamespace

from amaranth.hdl import Assert, Assume, ClockDomain, Elaboratable, Module, Signal, Value

__all__ = ["FormalBench", "stream_rules"]


class FormalBench(Elaboratable):
    """A harness module with a reset-less ``sync`` domain and a list of free inputs.

    Every register starts from its ``init`` value (the reset state of the design), which the
    solver takes as step 0.

    Attributes
    ----------
    m : amaranth.hdl.Module
        The harness; add the design as a submodule and the properties to ``m.d.comb``.
    ports : list of amaranth.hdl.Signal
        The clock and the free inputs.
    started : amaranth.hdl.Signal
        Low in step 0, high after: guards properties about the previous step.
    """

    def __init__(self):
        self.m = Module()
        self.m.domains.sync = domain = ClockDomain(reset_less=True)
        # the clock is a port: an undriven one would be a constant, and Yosys would fold every
        # register into its initial value (a proof about nothing)
        self.ports = [domain.clk]
        self.started = Signal()
        self.m.d.sync += self.started.eq(1)

    def free(self, target=None, *, width=1, name="free"):
        """Return a free input; drive ``target`` (a port of the design) with it if given."""
        if target is not None:
            width = len(Value.cast(target))
        signal = Signal(width, name=name)
        self.ports.append(signal)
        if target is not None:
            self.m.d.comb += Value.cast(target).eq(signal)
        return signal

    def constant(self, *, width, name="constant"):
        """Return a free input that keeps its step-0 value (an arbitrary constant)."""
        signal = self.free(width=width, name=name)
        first = Signal(width, name=f"{name}_first")
        with self.m.If(~self.started):
            self.m.d.sync += first.eq(signal)
        self.m.d.comb += Assume(~self.started | (signal == first))
        return signal

    def past(self, value, *, name="past"):
        """Return a register holding ``value`` of the previous step (its init in step 0)."""
        value = Value.cast(value)
        register = Signal(len(value), name=name)
        self.m.d.sync += register.eq(value)
        return register

    def elaborate(self, platform):
        return self.m


def stream_rules(bench, port, *, check=Assert, name="stream"):
    """State the transmitter's rules of an ``amaranth.lib.stream`` interface.

    Once ``valid`` is high it stays high, and ``payload`` stays unchanged, until the transfer
    (a step with ``valid & ready``): the rules of Amaranth's ``docs/stdlib/stream.rst``.

    Parameters
    ----------
    bench : FormalBench
    port : amaranth.lib.stream.Interface
        The stream, as seen by the harness.
    check : Assert or Assume
        ``Assert`` when the design under test is the transmitter, ``Assume`` when the harness
        plays it (the environment obeys the rules).
    name : str
        Prefix of the history registers (and the properties' messages).

    Returns
    -------
    types.SimpleNamespace
        The history registers ``was_valid``, ``was_ready`` and ``was_payload`` (the previous
        step's values), for invariants that relate them to the design's state.
    """
    payload = Value.cast(port.payload)
    was_valid = bench.past(port.valid, name=f"{name}_was_valid")
    was_ready = bench.past(port.ready, name=f"{name}_was_ready")
    was_payload = bench.past(payload, name=f"{name}_was_payload")
    waiting = Signal(name=f"{name}_waiting")
    bench.m.d.comb += [
        waiting.eq(bench.started & was_valid & ~was_ready),
        check(~waiting | port.valid, f"{name}: valid withdrawn before ready"),
        check(~waiting | (payload == was_payload), f"{name}: payload changed before ready"),
    ]
    return SimpleNamespace(was_valid=was_valid, was_ready=was_ready, was_payload=was_payload)
