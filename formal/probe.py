"""Reach a design's internal registers, for the invariants of a k-induction proof.

An induction step starts from any state in which the assertions held for ``depth`` steps, not
only from reachable ones; a liveness bound is proved by induction only once the harness states
enough of the design's internal consistency (counters in range, FSM states matching the cursor)
that unreachable states are excluded. Those registers are local to the ``elaborate`` methods of
``hw/``; :class:`Probe` elaborates the design once and finds them by their names in the
fragment tree, so the gateware needs no formal-only ports.
"""

from amaranth.hdl import Elaboratable, Fragment

__all__ = ["Probe"]


class Probe(Elaboratable):
    """An elaborated design whose internal signals can be looked up by path.

    Add the probe as the submodule in place of the design: it elaborates to the same fragment.

    Parameters
    ----------
    design : amaranth.hdl.Elaboratable
    """

    def __init__(self, design):
        self.design = design
        self._fragment = Fragment.get(design, None)
        self._signals = {}
        self._index(self._fragment, ())

    def _index(self, fragment, path):
        names = self._signals.setdefault(path, {})
        for statements in fragment.statements.values():
            for statement in statements:
                for signal in statement._lhs_signals():
                    names.setdefault(signal.name, signal)
        for subfragment, name, _ in fragment.subfragments:
            self._index(Fragment.get(subfragment, None), path + (name,))

    def __getitem__(self, dotted):
        """Return the signal ``"submodule.sub.name"`` (driven in that submodule)."""
        *path, name = dotted.split(".")
        names = self._signals.get(tuple(path))
        if names is None or name not in names:
            raise KeyError(f"No signal {name!r} driven in submodule {'.'.join(path)!r} of "
                           f"{type(self.design).__name__}; the gateware changed: update the "
                           f"invariants of formal/")
        return names[name]

    def _codes(self, dotted_fsm):
        signal = self[f"{dotted_fsm}_state"]
        codes = {}
        for code in range(1 << len(signal)):
            try:
                codes[signal.decoder(code).split("/")[0]] = code
            except KeyError:   # an unused encoding
                pass
        return signal, codes

    def states(self, dotted_fsm):
        """Return the state names of the FSM ``"submodule.name"``."""
        return list(self._codes(dotted_fsm)[1])

    def state(self, dotted_fsm, *states):
        """Return a 1-bit value: the FSM ``"submodule.name"`` is in one of ``states``."""
        signal, codes = self._codes(dotted_fsm)
        unknown = [state for state in states if state not in codes]
        if unknown:
            raise KeyError(f"FSM {dotted_fsm!r} has no state {unknown[0]!r}; it has "
                           f"{', '.join(codes)}")
        result = 0
        for state in states:
            result = result | (signal == codes[state])
        return result

    def elaborate(self, platform):
        return self._fragment
