"""The accelerator's internal memory ports as :class:`wiring.Signature` classes.

A port is declared once here, parameterised by its widths (as amaranth-soc's
``csr.Signature(addr_width=, data_width=)``), and joined with :func:`wiring.connect`: the
initiator (the executor) has it as ``Out``, the target (the Core, the frame receiver) as ``In``.

- :class:`WriteSignature`: one entry into a buffer chosen by ``buffer``, handshaked with
  ``ready`` -- the executor's ``LOAD`` writes into the Core's ACT, WGT, PARAM and LUT buffers;
- :class:`ReadSignature`: a synchronous read -- the executor's reads of ACT (``STORE``, ``READ``)
  and of the received payload in the frame buffer.

The ``for_*`` constructors derive the widths from an :class:`~tessera.spec.AcceleratorConfig`.
"""

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .layouts import PARAM_ENTRY

__all__ = ["BUFFER_WIDTH", "HOST_ADDR_WIDTH", "BusSignature", "ReadSignature", "WriteSignature",
           "write_width"]

#: Width of a host buffer address: the ISA's 16-bit ``addr`` fields.
HOST_ADDR_WIDTH = 16
#: Width of the buffer select (:class:`tessera.spec.isa.Buffer`: ACT, WGT, PARAM, LUT).
BUFFER_WIDTH = 2


def write_width(config) -> int:
    """Return the width of the host write port's data: the widest entry, in whole bytes.

    ``8 * max(act_entry_bytes, weight_entry_bytes)`` or the 72-bit PARAM entry, whichever is
    wider (``max(rows*8, cols*8, 72)`` with 8-bit operands).
    """
    return max(8 * config.act_entry_bytes, 8 * config.weight_entry_bytes, PARAM_ENTRY.size)


def _check_width(what, value):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise TypeError(f"{what} must be a positive integer, not {value!r}")


class BusSignature(wiring.Signature):
    """A signature class whose instances are equal when their members are (and hash alike).

    ``wiring.Signature`` compares instances of a subclass by identity; the buses of the
    accelerator are values (two ``ReadSignature.for_act(config)`` are the same port).
    """

    def __eq__(self, other):
        return type(other) is type(self) and self.members == other.members

    def __hash__(self):
        return hash((type(self), tuple((path, member.flow, repr(member.shape))
                                       for path, member in self.members.flatten())))


class ReadSignature(BusSignature):
    """A synchronous read port, from the initiator's side.

    The entry at ``addr`` in a cycle with ``en`` is on ``data`` in the next cycle. (The frame
    buffer also holds ``data`` while ``en`` is low; the Core's ACT port does not promise it.)

    Parameters
    ----------
    addr_width, data_width : int
        Positive widths.

    Members
    -------
    en : Out(1)
    addr : Out(addr_width)
    data : In(data_width)
    """

    def __init__(self, *, addr_width, data_width):
        _check_width("Address width", addr_width)
        _check_width("Data width", data_width)
        self._addr_width = addr_width
        self._data_width = data_width
        super().__init__({"en": Out(1), "addr": Out(addr_width), "data": In(data_width)})

    @classmethod
    def for_act(cls, config):
        """Return the host's ACT read port of ``config``: 16-bit entry address, the entry's bytes.

        ``data`` is ``8 * act_entry_bytes`` wide, padding bits zero.
        """
        return cls(addr_width=HOST_ADDR_WIDTH, data_width=8 * config.act_entry_bytes)

    @classmethod
    def for_frame_buffer(cls, config):
        """Return the frame buffer's read port of ``config``: a payload byte offset, one byte."""
        return cls(addr_width=max(1, ceil_log2(config.max_payload)), data_width=8)

    @property
    def addr_width(self):
        """Width of ``addr``."""
        return self._addr_width

    @property
    def data_width(self):
        """Width of ``data``."""
        return self._data_width

    def __repr__(self):
        return f"ReadSignature(addr_width={self._addr_width}, data_width={self._data_width})"


class WriteSignature(BusSignature):
    """A buffer-entry write port with a ready handshake, from the initiator's side.

    One entry is written in each cycle with ``en & ready``; the initiator holds ``en``,
    ``buffer``, ``addr`` and ``data`` until then (``en`` does not wait for ``ready``).

    Parameters
    ----------
    data_width : int
        Positive width of an entry (see :func:`write_width`).

    Members
    -------
    en : Out(1)
    buffer : Out(2)
        The target buffer (:class:`tessera.spec.isa.Buffer`).
    addr : Out(16)
        Entry address in that buffer.
    data : Out(data_width)
        Entry byte *i* in ``data[8i:8i+8]`` (the bytes of
        :func:`tessera.spec.config.pack_operands`); a narrower entry takes the low bits.
    ready : In(1)
        The target takes the entry this cycle if ``en``.
    """

    def __init__(self, *, data_width):
        _check_width("Data width", data_width)
        self._data_width = data_width
        super().__init__({
            "en": Out(1),
            "buffer": Out(BUFFER_WIDTH),
            "addr": Out(HOST_ADDR_WIDTH),
            "data": Out(data_width),
            "ready": In(1),
        })

    @classmethod
    def for_config(cls, config):
        """Return the host write port of ``config`` (``data`` :func:`write_width` wide)."""
        return cls(data_width=write_width(config))

    @property
    def data_width(self):
        """Width of ``data``."""
        return self._data_width

    def __repr__(self):
        return f"WriteSignature(data_width={self._data_width})"
