"""Host-link framing in gateware: the frame receiver and the frame sender.

The frame format is :mod:`tessera.spec.protocol` (``docs/protocol.md``): ``SYNC kind seq len_lo
len_hi crc8``, the payload, and its CRC-16 (little-endian). Bytes travel as ``lib.stream`` byte
streams (one byte per transfer), so the same blocks sit behind a UART on a board and behind the
cocotb stream bridge in simulation.
"""

from amaranth.hdl import C, Cat, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from tessera.spec import protocol

from .crc import CRC8_INIT, CRC16_INIT, crc8_update, crc16_update
from .ports import ReadSignature
from .ram import block_ram, registered_read

__all__ = ["FRAME_INFO", "RESPONSE_HEADER", "FrameReceiver", "FrameSender", "header_crc8"]

#: Descriptor of one received frame (its payload is in the receiver's frame buffer).
#: ``status`` is ``OK``, ``BAD_CRC`` (payload CRC mismatch) or ``BAD_LENGTH`` (length above
#: ``max_payload``; the payload was skipped, the buffer holds nothing of it).
FRAME_INFO = data.StructLayout({
    "status": unsigned(8), "kind": unsigned(8), "seq": unsigned(8), "length": unsigned(16),
})

#: Header fields of a frame to send; the sender adds SYNC and both CRCs.
RESPONSE_HEADER = data.StructLayout({
    "kind": unsigned(8), "seq": unsigned(8), "length": unsigned(16),
})


def header_crc8(header_bytes):
    """Return the header CRC-8 over a sequence of byte-wide Amaranth values (bytes 0..4)."""
    return crc8_update(C(CRC8_INIT, 8), list(header_bytes))


class FrameReceiver(wiring.Component):
    """Receive frames from a byte stream into a frame buffer, checking both CRCs.

    A header is recognised wherever the last six bytes are ``SYNC`` followed by four bytes and
    their CRC-8 -- a sliding window, so a false ``SYNC`` in noise or a corrupted header never
    hides a good header that starts inside it (the same rule as the host's ``FrameParser``).
    A header announcing more than ``max_payload`` bytes makes the receiver skip the frame's
    payload and CRC bytes and then report ``BAD_LENGTH``. A frame whose bytes stop arriving for
    ``config.rx_timeout_cycles`` cycles is dropped, as are the bytes of a partial header.

    A completed frame is offered on ``o_frame`` and held, with its payload in the frame buffer,
    until the consumer accepts the descriptor; no byte is accepted on ``i`` meanwhile.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig

    Members
    -------
    i : In(stream.Signature(8))
        Received bytes.
    o_frame : Out(stream.Signature(FRAME_INFO))
        One descriptor per frame; accept it once the payload is no longer needed.
    frame_buf : In(ReadSignature.for_frame_buffer(config))
        Frame-buffer read port (``addr`` is the payload byte offset); ``data`` is valid the
        cycle after ``en`` and held while ``en`` is low.
    busy : Out(1)
        A frame is being received (after its header), or one is waiting on ``o_frame``.
    """

    def __init__(self, config):
        self._config = config
        self._addr_bits = max(1, ceil_log2(config.max_payload))
        super().__init__({
            "i": In(stream.Signature(8)),
            "o_frame": Out(stream.Signature(FRAME_INFO)),
            "frame_buf": In(ReadSignature.for_frame_buffer(config)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        cfg = self._config
        m = Module()

        # No collision logic (hw/ram.py): bytes are written only while no frame is handed out,
        # so the executor never reads what is being written.
        m.submodules.buffer = buffer = block_ram(shape=8, depth=cfg.max_payload)
        wr = buffer.write_port()
        rd = registered_read(m, buffer, platform, en=self.frame_buf.en, name="buf_rd_data")
        m.d.comb += [
            rd.addr.eq(self.frame_buf.addr),
            self.frame_buf.data.eq(rd.data),
        ]

        window = Signal(40)            # the last five bytes seen while hunting, oldest lowest
        fill = Signal(range(6))        # how many of them are real received bytes
        # the header CRC-8 of the window, kept as a register beside it: the header decision
        # compares it with the received byte (no CRC tree from the window to the decisions)
        zero_crc = protocol.crc8(bytes(5), CRC8_INIT)
        window_crc = Signal(8, init=zero_crc)
        kind = Signal(8)
        seq = Signal(8)
        length = Signal(16)
        # payload bytes received so far, and length - 1 registered with the header (no subtract
        # in front of the PAYLOAD state's compare); a stored payload is at most max_payload
        index = Signal(self._addr_bits)
        last_index = Signal(self._addr_bits)
        skip = Signal(17)              # bytes left to skip of an oversized frame
        crc = Signal(16)
        crc_lo = Signal(8)
        status = Signal(8)
        idle = Signal(range(cfg.rx_timeout_cycles + 1))

        byte = self.i.payload
        took = Signal()
        m.d.comb += took.eq(self.i.valid & self.i.ready)

        candidate = Cat(window, byte)
        header_found = Signal()
        m.d.comb += header_found.eq(
            (fill == 5) & (candidate[0:8] == protocol.SYNC) &
            (window_crc == byte))
        new_length = candidate[24:40]

        m.d.comb += [
            self.o_frame.payload.status.eq(status),
            self.o_frame.payload.kind.eq(kind),
            self.o_frame.payload.seq.eq(seq),
            self.o_frame.payload.length.eq(length),
        ]

        active = Signal()    # something that the timeout should drop
        # idle == rx_timeout_cycles - 1, kept as a register (no wide compare in front of the
        # FSM's decisions: on the iCEBreaker it reached the SKIP counter's enable)
        at_limit = Signal(init=cfg.rx_timeout_cycles == 1)
        timeout = Signal()
        m.d.comb += timeout.eq(at_limit & active & ~took)
        with m.If(took | ~active | at_limit):
            m.d.sync += [idle.eq(0), at_limit.eq(cfg.rx_timeout_cycles == 1)]
        with m.Else():
            m.d.sync += [idle.eq(idle + 1), at_limit.eq(idle == cfg.rx_timeout_cycles - 2)]

        with m.FSM(name="rx") as fsm:
            with m.State("HUNT"):
                m.d.comb += [self.i.ready.eq(1), active.eq(fill != 0)]
                with m.If(timeout):
                    m.d.sync += [window.eq(0), window_crc.eq(zero_crc), fill.eq(0)]
                with m.Elif(took):
                    m.d.sync += [window.eq(candidate[8:]), window_crc.eq(
                        header_crc8([candidate[8 * i + 8:8 * i + 16] for i in range(5)]))]
                    with m.If(fill != 5):
                        m.d.sync += fill.eq(fill + 1)
                    with m.If(header_found):
                        m.d.sync += [
                            window.eq(0), window_crc.eq(zero_crc), fill.eq(0),
                            kind.eq(candidate[8:16]), seq.eq(candidate[16:24]),
                            length.eq(new_length), index.eq(0), crc.eq(CRC16_INIT),
                            last_index.eq(new_length - 1),
                            skip.eq(new_length + protocol.TRAILER_BYTES),
                        ]
                        with m.If(new_length > cfg.max_payload):
                            m.next = "SKIP"
                        with m.Elif(new_length == 0):
                            m.next = "CRC_LO"
                        with m.Else():
                            m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                m.d.comb += [self.i.ready.eq(1), active.eq(1)]
                m.d.comb += [wr.addr.eq(index), wr.data.eq(byte), wr.en.eq(took)]
                with m.If(timeout):
                    m.next = "HUNT"
                with m.Elif(took):
                    m.d.sync += [index.eq(index + 1), crc.eq(crc16_update(crc, byte))]
                    with m.If(index == last_index):
                        m.next = "CRC_LO"
            with m.State("CRC_LO"):
                m.d.comb += [self.i.ready.eq(1), active.eq(1)]
                with m.If(timeout):
                    m.next = "HUNT"
                with m.Elif(took):
                    m.d.sync += crc_lo.eq(byte)
                    m.next = "CRC_HI"
            with m.State("CRC_HI"):
                m.d.comb += [self.i.ready.eq(1), active.eq(1)]
                with m.If(timeout):
                    m.next = "HUNT"
                with m.Elif(took):
                    with m.If(Cat(crc_lo, byte) == crc):
                        m.d.sync += status.eq(protocol.Status.OK)
                    with m.Else():
                        m.d.sync += status.eq(protocol.Status.BAD_CRC)
                    m.next = "DONE"
            with m.State("SKIP"):
                m.d.comb += [self.i.ready.eq(1), active.eq(1)]
                with m.If(timeout):
                    m.next = "HUNT"
                with m.Elif(took):
                    m.d.sync += skip.eq(skip - 1)
                    with m.If(skip == 1):
                        m.d.sync += status.eq(protocol.Status.BAD_LENGTH)
                        m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += self.o_frame.valid.eq(1)
                with m.If(self.o_frame.ready):
                    m.next = "HUNT"
        m.d.comb += self.busy.eq(~fsm.ongoing("HUNT"))
        return m


class FrameSender(wiring.Component):
    """Send one frame: a header from ``i_start``, then ``length`` bytes from ``i_payload``.

    The sender adds ``SYNC``, the header CRC-8 and the payload CRC-16. Payload bytes pass through
    combinationally (``o`` carries ``i_payload`` while the payload is being sent).

    Members
    -------
    i_start : In(stream.Signature(RESPONSE_HEADER))
        One transfer starts a frame (accepted only while the sender is idle).
    i_payload : In(stream.Signature(8))
        Exactly ``length`` bytes per frame.
    o : Out(stream.Signature(8))
        The frame's bytes.
    busy : Out(1)
        A frame is being sent (its last byte has not been transferred yet).
    """

    i_start: In(stream.Signature(RESPONSE_HEADER))
    i_payload: In(stream.Signature(8))
    o: Out(stream.Signature(8))
    busy: Out(1)

    def elaborate(self, platform):
        m = Module()

        header = Signal(48)
        sent = Signal(range(protocol.HEADER_BYTES + 1))
        length = Signal(16)
        remaining = Signal(16)
        crc = Signal(16)
        start = self.i_start.payload
        fields = [C(protocol.SYNC, 8), start.kind, start.seq, start.length[0:8], start.length[8:16]]

        with m.FSM(name="tx") as fsm:
            with m.State("IDLE"):
                m.d.comb += self.i_start.ready.eq(1)
                with m.If(self.i_start.valid):
                    m.d.sync += [
                        header.eq(Cat(*fields, header_crc8(fields))),
                        length.eq(start.length), remaining.eq(start.length),
                        sent.eq(0), crc.eq(CRC16_INIT),
                    ]
                    m.next = "HEADER"
            with m.State("HEADER"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(header[0:8])]
                with m.If(self.o.ready):
                    m.d.sync += [header.eq(header[8:]), sent.eq(sent + 1)]
                    with m.If(sent == protocol.HEADER_BYTES - 1):
                        with m.If(length == 0):
                            m.next = "CRC_LO"
                        with m.Else():
                            m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                m.d.comb += [
                    self.o.valid.eq(self.i_payload.valid),
                    self.o.payload.eq(self.i_payload.payload),
                    self.i_payload.ready.eq(self.o.ready),
                ]
                with m.If(self.o.valid & self.o.ready):
                    m.d.sync += [remaining.eq(remaining - 1),
                                 crc.eq(crc16_update(crc, self.i_payload.payload))]
                    with m.If(remaining == 1):
                        m.next = "CRC_LO"
            with m.State("CRC_LO"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(crc[0:8])]
                with m.If(self.o.ready):
                    m.next = "CRC_HI"
            with m.State("CRC_HI"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(crc[8:16])]
                with m.If(self.o.ready):
                    m.next = "IDLE"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m
