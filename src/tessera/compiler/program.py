"""What the compiler hands to a device: EXEC payloads, where their STORE data goes, and how to
put the responses back together into the output (``config.output_bits``-wide operands).

A :class:`Program` is one batch worth of ``EXEC`` payloads. Each payload holds whole encoded
instructions (``LOAD`` payloads included) and is at most ``config.max_payload`` bytes; a frame
that ends with a ``STORE`` gets a response carrying activation entries, and
:attr:`Program.stores` says which part of the output those bytes are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..spec.packing import entry_bytes, operand_dtype, unpack_entries

__all__ = ["StoreTarget", "Program", "assemble_outputs"]


@dataclass(frozen=True)
class StoreTarget:
    """Where the response of a ``STORE`` frame belongs in the output.

    The response is ``n_count`` activation entries of ``rows`` operands each (packed by
    :func:`tessera.spec.pack_operands`); operand *r* of entry *e* is
    ``out[m_start + r, n_start + e]`` for ``r < m_rows`` (the others are padding rows).

    Parameters
    ----------
    m_start, m_rows : int
        First output row and number of valid rows (at most ``config.rows``).
    n_start, n_count : int
        First output column and number of columns (entries in the response).
    """

    m_start: int
    m_rows: int
    n_start: int
    n_count: int


@dataclass
class Program:
    """The per-batch EXEC payloads of a compiled model.

    Parameters
    ----------
    frames : list of bytes
        EXEC payloads in the order they must be sent; each at most ``config.max_payload`` bytes,
        whole instructions only, a ``STORE`` only as the last instruction of a frame.
    stores : dict of int to StoreTarget
        Frame index -> where that frame's STORE response bytes go.
    out_shape : tuple of int
        ``(M, N_out)`` of the output.
    macs : int
        Useful multiply-accumulates of the batch (padding rows and columns not counted).
    rows : int
        ``config.rows``: the operands per activation entry in a STORE response.
    n_instructions : int
        Instructions in all frames (``LOAD`` payloads not counted).
    bits : int
        ``config.output_bits``: the width of each output operand (4, 8 or 16).
    """

    frames: list
    stores: dict
    out_shape: tuple
    macs: int
    rows: int = 0
    n_instructions: int = 0
    bits: int = 8

    @property
    def entry_bytes(self) -> int:
        """Bytes of one activation entry in a STORE response (``ceil(rows * bits / 8)``)."""
        return entry_bytes(self.rows, self.bits)

    @property
    def request_bytes(self) -> int:
        """Payload bytes of all frames (without the link's frame overhead)."""
        return sum(len(f) for f in self.frames)

    @property
    def response_bytes(self) -> int:
        """Payload bytes of all STORE responses."""
        return sum(t.n_count for t in self.stores.values()) * self.entry_bytes


def assemble_outputs(program: Program, responses: dict) -> np.ndarray:
    """Return the output ``(M, N_out)`` built from the STORE responses.

    The output holds ``program.bits``-wide operands: int8 up to 8 bits, int16 for 16.

    Parameters
    ----------
    program : Program
    responses : dict of int to bytes
        Frame index -> response payload, for every index in ``program.stores`` (other entries
        are ignored, so passing the responses of every frame is fine).

    Raises
    ------
    ValueError
        A STORE response is missing or has the wrong length, or some output element is not
        covered by any STORE (a compiler bug).
    """
    rows = program.rows
    if rows <= 0:
        raise ValueError("Program.rows must be the accelerator's row count (set by the compiler)")
    size = program.entry_bytes
    out = np.zeros(program.out_shape, dtype=operand_dtype(program.bits))
    covered = np.zeros(program.out_shape, dtype=bool)
    for index, target in program.stores.items():
        if index not in responses:
            raise ValueError(f"No response for frame {index}, which ends with a STORE of "
                             f"{target.n_count} entries; pass the response of every STORE frame")
        data = responses[index]
        expected = target.n_count * size
        if len(data) != expected:
            raise ValueError(f"Response of frame {index} is {len(data)} bytes but its STORE "
                             f"returns {target.n_count} entries x {size} bytes = {expected}")
        block = unpack_entries(data, target.n_count, rows, program.bits)
        m0, n0 = target.m_start, target.n_start
        out[m0:m0 + target.m_rows, n0:n0 + target.n_count] = block[:, :target.m_rows].T
        covered[m0:m0 + target.m_rows, n0:n0 + target.n_count] = True
    if not covered.all():
        m, n = np.argwhere(~covered)[0]
        raise ValueError(f"Output element ({m}, {n}) is not written by any STORE of the program")
    return out
