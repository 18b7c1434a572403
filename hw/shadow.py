"""The MAC array's shifting shadow: a copy of the accumulators drained through one output.

Shared by the generic array (``hw/array.py``) and the iCE40 one (``hw/mac_ice40.py``); see the
:class:`~tessera.hw.array.MacArray` docstring for why the shadow shifts instead of multiplexing.
"""

from amaranth import Signal

__all__ = ["shifting_shadow"]


def shifting_shadow(m, array, acc):
    """Add the shadow of ``acc`` to ``m``, driven by ``array``'s controls and driving its ``head``.

    Parameters
    ----------
    m : Module
        The module elaborating ``array``.
    array : MacArray
        Gives ``shadow_load``, ``shift_row``, ``shift_col`` and ``head`` (whose shape the shadow
        takes), and ``heads`` with ``drain_lanes > 1`` (``shift_row`` then moves column 0 up by
        ``drain_lanes`` rows).
    acc : list of list of Value
        The accumulators, ``acc[r][c]``, copied by ``shadow_load``.
    """
    rows, cols = len(acc), len(acc[0])
    lanes = array.config.drain_lanes
    shadow = [[Signal(array.head.shape(), name=f"shadow_{r}_{c}") for c in range(cols)]
              for r in range(rows)]
    for r in range(rows):
        for c in range(cols):
            with m.If(array.shadow_load):
                m.d.sync += shadow[r][c].eq(acc[r][c])
            with m.Elif(array.shift_col):
                if c + 1 < cols:
                    m.d.sync += shadow[r][c].eq(shadow[r][c + 1])
            if c == 0 and r + lanes < rows:
                with m.If(~array.shadow_load & ~array.shift_col & array.shift_row):
                    m.d.sync += shadow[r][0].eq(shadow[r + lanes][0])
    m.d.comb += array.head.eq(shadow[0][0])
    if lanes > 1:
        m.d.comb += [array.heads[i].eq(shadow[i][0]) for i in range(lanes)]
    return shadow
