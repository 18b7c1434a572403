"""The received payload as a cursor: the executor's one reader of the frame buffer.

:class:`PayloadReader` reads the payload of the frame the executor holds one byte per cycle
through the frame buffer's read port and shows it on a :class:`CursorSignature` port, which the
request handler (``READ`` requests) and the program sequencer (instructions, ``LOAD`` payloads)
both watch: ``seek`` presents offset 0 in the next cycle, ``take`` consumes the byte shown and
presents the next one. Everything a decision needs is kept in registers beside the offset
(``rest``, ``rest_zero``, ``rest_short``, ``rest_whole``, ``pos + 1``): the decisions to take or
seek drive the frame buffer's read enable and address, on the iCEBreaker's and the ECP5's
critical paths, and meet one multiplexer there.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tessera.spec import isa, protocol

from .ports import BusSignature, ReadSignature

__all__ = ["CursorSignature", "PayloadReader", "byte_count_width"]

#: Bytes of one counter in the ``COUNTERS`` response (a u64).
COUNTER_BYTES = 8


def byte_count_width(config) -> int:
    """Return the width of the executor's byte offsets and lengths, from the configuration.

    Wide enough for ``max_payload`` (a longer frame is refused by the receiver, a response is
    at most ``max_payload`` bytes) and for the fixed records (``COUNTERS``, the ID), rather than
    the protocol's 16-bit fields.
    """
    return max(config.max_payload, COUNTER_BYTES * len(protocol.COUNTER_NAMES),
               protocol.ID_LAYOUT.nbytes).bit_length()


class CursorSignature(BusSignature):
    """The payload at the cursor, from the reader's side (every member is ``Out``).

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig

    Members
    -------
    byte : Out(8)
        The payload byte at offset ``pos`` (the frame buffer's read data).
    pos : Out(byte_count_width(config))
        Offset of ``byte``.
    rest : Out(byte_count_width(config))
        ``length - pos``: bytes from ``byte`` to the end of the payload.
    rest_zero, rest_short, rest_whole : Out(1)
        ``rest == 0``, ``rest < 16`` and ``rest >= 16`` (an instruction can be fetched), as
        registers.
    window : Out(128)
        The last 16 bytes presented on ``byte``, the newest in the top byte: shifted every
        cycle, taken or not (once an instruction's 16 bytes were taken in a row they are its
        bytes, first byte lowest).
    """

    def __init__(self, config):
        width = byte_count_width(config)
        super().__init__({
            "byte": Out(8),
            "pos": Out(width),
            "rest": Out(width),
            "rest_zero": Out(1),
            "rest_short": Out(1),
            "rest_whole": Out(1),
            "window": Out(isa.INSN_BYTES * 8),
        })


class PayloadReader(wiring.Component):
    """Read the held frame's payload one byte per cycle and show it as a cursor.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig

    Members
    -------
    frame_buf : Out(ReadSignature.for_frame_buffer(config))
        To the frame receiver's buffer.
    seek : In(1)
        Present offset 0 in the next cycle, with ``rest = length``.
    length : In(byte_count_width(config))
        The payload length, sampled with ``seek``.
    take : In(1)
        Consume ``cursor.byte``; the next byte is presented in the next cycle.
    cursor : Out(CursorSignature(config))
    """

    def __init__(self, config):
        self._config = config
        width = byte_count_width(config)
        super().__init__({
            "frame_buf": Out(ReadSignature.for_frame_buffer(config)),
            "seek": In(1),
            "length": In(width),
            "take": In(1),
            "cursor": Out(CursorSignature(config)),
        })

    def elaborate(self, platform):
        m = Module()
        cursor, length = self.cursor, self.length
        pos, rest = cursor.pos, cursor.rest
        pos_r = Signal.like(pos)
        rest_r = Signal.like(rest)
        # rest == 0 and rest < INSN_BYTES, kept as registers too: the decision to take the
        # next instruction drives the frame buffer's read enable (a timing path on the ECP5)
        rest_zero, rest_short = Signal(init=1), Signal(init=1)
        rest_whole = Signal()  # rest >= INSN_BYTES: an instruction can be fetched (one flag)
        # pos + 1 (wrapping like it), kept as a register: the read address is one multiplexer
        # after the late take/seek decisions (on the iCEBreaker an incrementer rippling
        # through LUTs behind them was the critical path)
        pos_next = Signal(len(pos), init=1)
        window = Signal(isa.INSN_BYTES * 8)
        byte = self.frame_buf.data
        m.d.comb += [
            self.frame_buf.en.eq(self.take | self.seek),
            self.frame_buf.addr.eq(Mux(self.seek, 0, pos_next)),
            cursor.byte.eq(byte),
            pos.eq(pos_r), rest.eq(rest_r),
            cursor.rest_zero.eq(rest_zero), cursor.rest_short.eq(rest_short),
            cursor.rest_whole.eq(rest_whole),
            cursor.window.eq(window),
        ]
        with m.If(self.seek):
            m.d.sync += [pos_r.eq(0), pos_next.eq(1), rest_r.eq(length),
                         rest_zero.eq(length == 0),
                         rest_short.eq(length < isa.INSN_BYTES),
                         rest_whole.eq(length >= isa.INSN_BYTES)]
        with m.Elif(self.take):
            m.d.sync += [pos_r.eq(pos_next), pos_next.eq(pos_next + 1), rest_r.eq(rest_r - 1),
                         rest_zero.eq(rest_r == 1),
                         rest_short.eq((rest_r != 0) & (rest_r <= isa.INSN_BYTES)),
                         rest_whole.eq(rest_r > isa.INSN_BYTES)]
        # `window` shifts in the read-port byte every cycle (no enable on 128 flip-flops): the
        # last bytes shifted in are always the ones read last.
        m.d.sync += window.eq(Cat(window[8:], byte))
        return m
