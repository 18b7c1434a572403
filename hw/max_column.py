"""The max pool's running maxima beside a hard-MAC array (iCE40 SB_MAC16, ECP5 MULT18X18D).

ISA version 3's max pool (``CONV`` kind 3) keeps, per row lane, the maximum of the row's
activations over the command's steps (:class:`~tessera.hw.array.MacArray` ``maximum``). The
generic array does it in its accumulators; the hand-instantiated blocks hold their accumulators
inside the DSP and can only add, so :func:`max_column` keeps the maxima in ``rows`` fabric
registers of ``input_bits`` each (a max pool has one column: only column 0 is drained) and the
array's shadow loads column 0 from them after a max-pool command instead of from the blocks.

Timing: the maxima follow the generic array's accumulators (a step shown in cycle *t* is in them
at the end of *t + 2*), ``lag`` cycles later for an array whose shadow copies its accumulators
``lag`` cycles after ``shadow_load`` (the ECP5 one, ``hw/mac_ecp5.py``).
"""

from amaranth import Mux, Signal, signed

__all__ = ["max_column"]


def max_column(m, array, acc, *, lag=0):
    """Return ``acc`` with column 0 replaced by the running maxima while in max-pool mode.

    Parameters
    ----------
    m : Module
        The module elaborating ``array``.
    array : MacArray
        Gives ``a``, ``step``, ``clear`` and ``maximum`` (``config.cnn``).
    acc : list of list of Value
        The blocks' accumulators, ``acc[r][c]``.
    lag : int
        Extra cycles of the blocks' accumulators behind the generic array's.
    """
    rows = len(acc)
    a, step, first, mode = array.a, array.step, array.step & array.clear, Signal()
    with m.If(array.step):
        m.d.sync += mode.eq(array.maximum)      # the kind of the last step shown
    for stage in range(2 + lag):                 # to the generic accumulate cycle (+ lag)
        a_next = Signal(array.a.shape(), name=f"max_a{stage}")
        step_next, first_next = Signal(name=f"max_step{stage}"), Signal(name=f"max_first{stage}")
        m.d.sync += [a_next.eq(a), step_next.eq(step), first_next.eq(first)]
        a, step, first = a_next, step_next, first_next
    bits = array.config.input_bits
    best = [Signal(signed(bits), name=f"max_{r}") for r in range(rows)]
    view = []
    for r in range(rows):
        with m.If(step):
            m.d.sync += best[r].eq(Mux(first | (a[r] > best[r]), a[r], best[r]))
        column0 = Signal(signed(len(array.head)), name=f"acc_or_max_{r}")
        m.d.comb += column0.eq(Mux(mode, best[r], acc[r][0]))
        view.append([column0, *acc[r][1:]])
    return view
