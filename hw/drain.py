"""The drain: post-processes a tile of shadow accumulators and writes it back to ACT.

A drain starts in the cycle *h* of its ``i_cmd`` transfer (the GEMM engine's hand-off, in which
the array copies its accumulators into the shadow). It then sends one accumulator per cycle to the
PostProcessor, column by column: for ``c < n_cols``, ``r < m_rows``, element ``(r, c)`` goes out
in cycle ``h + 1 + c*m_rows + r`` with ``PARAM[param_addr + c]``, the post state captured with the
command, ``tag = r`` and ``last`` on the final row of the column. The shadow is walked by shifting
it (:class:`~tessera.hw.array.MacArray` ``shift_row``/``shift_col``), never through a wide
multiplexer. Results are collected by ``tag`` into an entry (``config.output_bits`` two's
complement bits per row, in the packing of :func:`tessera.spec.config.pack_operands`; rows
``r >= m_rows`` zero); the
result carrying ``last`` completes the entry, which is written to ``ACT[out_addr + c]`` in the next
cycle (the write has priority over the host on the ACT write port).

PARAM is read ahead. In a ``cnn`` configuration its read address is a register (``param_addr``),
as below; the dense configurations keep the version-2 read-ahead, their netlist unchanged (the
port shows the next column's entry, or at a column's end starts reading the one after it, and
while no element is sent it reads ``PARAM[i_cmd.payload.param_addr]``, valid from the cycle
before the transfer; the iCEBreaker's dense preset, at 90 % of the UP5K, missed its 30 MHz with
the queue below: 28.83 MHz). With the register neither the block
RAM's clock-to-output nor its address inputs meet the drain's control in the same cycle (on the
ULX3S-85F the block RAM's output through the PostProcessor's bias adder was 11.5 ns, 5.6 ns of it
the clock-to-output; on the ULX3S-25F the post-processors' readiness through the column's end
and an address multiplexer to PARAM's address pins 13.2 ns). The entry of the column being sent
is in a register (``param_q``), the next ones wait in a queue of two registers, and reads are
issued from an address counter while the queue, counting the read in flight, has room, so an
entry a cycle is read and consumed (columns of one cycle: ``m_rows <= drain_lanes``); the
column's end (``send``, the post-processors' readiness) only moves the queue and enables the
counter. Reads past the command's last entry are dropped at its end. While no element is being
sent the port reads ``PARAM[i_cmd.payload.param_addr]`` and ``PARAM[i_cmd.payload.param_addr +
1]`` in turn into the two queue registers; in the ``i_cmd`` transfer cycle *h* ``param_q`` takes
the first and the counter goes on at ``param_addr + 2``. So the payload's ``param_addr`` must be
valid from the fourth cycle before the transfer (the GEMM engine's command register holds it
from the cycle after its acceptance, at least ``k + 3 >= 4`` cycles before the hand-off). Read
ahead or not, an entry is read after any write that precedes the ``GEMM``'s issue (later writes
to the drained region are hazards the compiler excludes, docs/isa.md).

The drain occupies itself for exactly ``m_rows*n_cols*c + DRAIN_OVERHEAD_CYCLES`` cycles, *h ... h +
elements*c + DRAIN_OVERHEAD_CYCLES - 1*, with ``c = config.requant_cycles`` (an iterative requant
multiplier accepts one element every ``c`` cycles); ``i_cmd.ready`` (and with it the next hand-off)
comes back in the cycle after. The last write happens ``PostProcessor.latency + 1`` cycles after the
last element is sent, so the overhead must be at least ``latency + 2``; shorter pipelines are
padded, so the timing constant does not depend on the PostProcessor's implementation.

With ``config.cnn`` the command's ``kind`` picks the path: kinds 0 and 1 (convolution,
depthwise) as above; kinds 2 and 3 (average and max pool) send their elements, with the row's
``taps`` and the clamp bounds, to the :class:`~tessera.hw.pool_post.PoolPostProcessor` on
``o_pool``/``i_pool`` instead, at ``POOL_DIVIDE_CYCLES`` (average) or 1 (max) cycles per
element, which replace ``requant_cycles`` in the drain's duration (``tessera.runtime.cycles``).

With ``config.drain_lanes = L > 1`` the drain sends ``L`` rows of a column at once (the shadow's
``heads``; ``shift_row`` moves them by ``L``) to ``L`` post-processors in lockstep, lane *i* on
``o_post`` (*i* = 0) or ``o_post{i}`` (and ``o_pool``/``o_pool{i}``) with ``tag = row + i``;
results of rows ``>= m_rows`` (the padding lanes of the column's last group) are dropped. The
command's ``elements`` is then ``ceil(m_rows / L) * n_cols``, the issue slots.
"""

from amaranth import Array, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.spec.isa import ConvKind
from tessera.spec.timing import DRAIN_OVERHEAD_CYCLES, POOL_DIVIDE_CYCLES

from .gemm import drain_command
from .layouts import PARAM_ENTRY
from .pool_post import AVERAGE_LATENCY, pool_post_layouts
from .postproc import postproc_layouts

__all__ = ["Drain"]


class Drain(wiring.Component):
    """Drain of the shadow accumulators through the PostProcessor into the ACT buffer.

    Parameters
    ----------
    config : AcceleratorConfig
        Gives the array shape, the accumulator and output widths and the ACT/PARAM depths.
    postproc_latency : int
        :attr:`PostProcessor.latency`; must not exceed ``DRAIN_OVERHEAD_CYCLES - 2``.

    Members
    -------
    i_cmd : In(stream.Signature(drain_command(config)))
        Hand-off from the GEMM engine; ready when the previous drain's time is over. The
        payload's ``param_addr`` must be valid in the four cycles before the transfer too (PARAM
        is read ahead; in a dense configuration the cycle before).
    head : In(signed(acc_bits))
        The shadow's ``[0][0]`` accumulator.
    shift_row, shift_col : Out(1)
        Shadow shifts (see :class:`~tessera.hw.array.MacArray`).
    param_addr : Out(range(param_depth))
        PARAM read port address (synchronous read), a register.
    param_data : In(PARAM_ENTRY)
        PARAM read port data.
    o_post : Out(stream.Signature(postproc_layouts(config)[0]))
        To the PostProcessor's ``i``.
    i_post : In(stream.Signature(postproc_layouts(config)[1]))
        From the PostProcessor's ``o`` (always ready).
    wr_en, wr_addr, wr_data : Out
        ACT write request (this cycle; takes priority over the host); ``wr_data`` is
        ``rows * output_bits`` wide, row *r* in bits ``[r*output_bits, (r+1)*output_bits)``.
    busy : Out(1)
        A drain is in progress.
    o_pool : Out(stream.Signature(pool_post_layouts(config)[0]))
        Only with ``config.cnn``: to the PoolPostProcessor's ``i`` (kinds 2 and 3).
    i_pool : In(stream.Signature(pool_post_layouts(config)[1]))
        Only with ``config.cnn``: from the PoolPostProcessor's ``o`` (always ready).
    heads, o_post{i}, i_post{i}, o_pool{i}, i_pool{i} :
        Only with ``config.drain_lanes > 1``: the shadow's first ``drain_lanes`` rows and lanes
        1 ... ``drain_lanes - 1``'s streams (module docstring).
    """

    def __init__(self, config, *, postproc_latency):
        if not isinstance(postproc_latency, int) or postproc_latency < 0:
            raise ValueError(f"PostProcessor latency must be a non-negative integer, "
                             f"not {postproc_latency!r}")
        if postproc_latency + 2 > DRAIN_OVERHEAD_CYCLES:
            raise ValueError(f"PostProcessor latency {postproc_latency} needs "
                             f"DRAIN_OVERHEAD_CYCLES >= {postproc_latency + 2}, but "
                             f"tessera.spec.timing has {DRAIN_OVERHEAD_CYCLES}; raise the "
                             f"constant (and the emulator follows) or shorten the pipeline")
        if config.cnn and AVERAGE_LATENCY + 2 > DRAIN_OVERHEAD_CYCLES + POOL_DIVIDE_CYCLES - 1:
            raise ValueError(f"The average pool's latency {AVERAGE_LATENCY} does not fit in a "
                             f"drain of DRAIN_OVERHEAD_CYCLES = {DRAIN_OVERHEAD_CYCLES}")
        lanes = config.drain_lanes
        if lanes & (lanes - 1) or config.rows % lanes:
            self._MustUse__silence = True     # refused: never elaborated, no warning
            raise ValueError(f"The drain needs a power-of-two drain_lanes dividing rows "
                             f"({config.rows}), not {lanes}")
        self._config = config
        self._latency = postproc_latency
        post_in, post_out = postproc_layouts(config)
        pool_in, pool_out = pool_post_layouts(config) if config.cnn else (None, None)
        more = {}
        for i in range(1, lanes):
            more.update({f"o_post{i}": Out(stream.Signature(post_in)),
                         f"i_post{i}": In(stream.Signature(post_out)),
                         f"o_pool{i}": Out(stream.Signature(pool_in)),
                         f"i_pool{i}": In(stream.Signature(pool_out))})
        if lanes > 1:
            more["heads"] = In(data.ArrayLayout(signed(config.acc_bits), lanes))
        super().__init__({
            "i_cmd": In(stream.Signature(drain_command(config))),
            "head": In(signed(config.acc_bits)),
            "shift_row": Out(1),
            "shift_col": Out(1),
            "param_addr": Out(range(config.param_depth)),
            "param_data": In(PARAM_ENTRY),
            "o_post": Out(stream.Signature(post_in)),
            "i_post": In(stream.Signature(post_out)),
            "wr_en": Out(1),
            "wr_addr": Out(range(config.act_depth)),
            "wr_data": Out(config.rows * config.output_bits),
            "busy": Out(1),
            **({"o_pool": Out(stream.Signature(pool_in)),
                "i_pool": In(stream.Signature(pool_out))} if config.cnn else {}),
            **more,
        })

    def elaborate(self, platform):
        m = Module()
        config = self._config
        rows = config.rows

        cmd = Signal(drain_command(config))
        cpe = config.requant_cycles
        lanes = config.drain_lanes
        shift = lanes.bit_length() - 1

        def groups_left(m_rows):        # issue slots of a column, minus one
            return m_rows - 1 if lanes == 1 else (m_rows - 1) >> shift

        def one_group(m_rows):
            return m_rows == 1 if lanes == 1 else m_rows <= lanes
        most = max(cpe, POOL_DIVIDE_CYCLES) if config.cnn else cpe
        timer = Signal(range((1 << 16) * most + DRAIN_OVERHEAD_CYCLES))  # cycles left after this
        timing = Signal()                 # timer != 0, kept as a register: it is `busy`,
                                          # which reaches the executor's decisions through the
                                          # core's `idle` and the engine's `i_cmd.ready`
        active = Signal()                 # elements left to send
        row = Signal(range(max(rows, 2)))
        last_col = Signal()               # the column being sent is the last one, kept as a
                                          # register (no n_cols - 1 compare after o_post.ready)
        cols_left = Signal(range(max(config.cols, 2)))   # n_cols - 1 - column (n_cols <= cols)
        p_addr = Signal(16)               # (dense) PARAM address of the column after the one
        p_addr_next = Signal(16)          # being sent, and p_addr + 1 kept as a register
        rows_left = Signal(range(max(rows, 2)))   # m_rows - 1 - row
        end_of_col = Signal()             # rows_left == 0, kept as a register: it selects the
                                          # shadow shift (the whole array) and the PARAM
                                          # queue's move, and is the element's `last`
        one_row = Signal()                # m_rows == 1
        out_ptr = Signal(16)
        entry = Signal(data.ArrayLayout(config.output_bits, rows))
        wr_pending = Signal()

        start = Signal()
        send = Signal()
        receive = Signal()
        if config.cnn:
            pool = Signal()               # the command is a pool (kinds 2 and 3)
            m.d.comb += pool.eq(cmd.kind >= ConvKind.AVERAGE_POOL)
        m.d.comb += [
            # The timer covers the whole drain: every element is sent, post-processed and
            # written back before it runs out (DRAIN_OVERHEAD_CYCLES >= latency + 2, checked
            # above), so `busy` is that register alone (the tests check that the core never
            # writes a result while idle).
            self.busy.eq(timing),
            self.i_cmd.ready.eq(~self.busy),
            start.eq(self.i_cmd.valid & self.i_cmd.ready),
            send.eq(self.o_post.valid & self.o_post.ready),
            receive.eq(self.i_post.valid & self.i_post.ready),
        ]
        if config.cnn:
            m.d.comb += [
                send.eq((self.o_post.valid & self.o_post.ready) |
                        (self.o_pool.valid & self.o_pool.ready)),
                receive.eq(self.i_post.valid | self.i_pool.valid),
            ]

        # Timer: the drain's fixed duration.
        with m.If(start):
            # elements * cpe as shifts and adds (no hardware multiplier for a constant).
            elements = self.i_cmd.payload.elements
            scaled = sum(elements << b for b in range(cpe.bit_length()) if cpe >> b & 1)
            if config.cnn:
                # a pool's own cycles per element (POOL_DIVIDE_CYCLES a power of two)
                assert POOL_DIVIDE_CYCLES & (POOL_DIVIDE_CYCLES - 1) == 0
                kind = self.i_cmd.payload.kind
                scaled = Mux(kind == ConvKind.AVERAGE_POOL,
                             elements << (POOL_DIVIDE_CYCLES.bit_length() - 1),
                             Mux(kind == ConvKind.MAX_POOL, elements, scaled))
            m.d.sync += [timer.eq(scaled + (DRAIN_OVERHEAD_CYCLES - 1)),
                         timing.eq(DRAIN_OVERHEAD_CYCLES > 1)]
        with m.Elif(timing):
            m.d.sync += [timer.eq(timer - 1), timing.eq(timer != 1)]

        # Sending side: one shadow element per cycle, column-major.
        post = self.o_post.payload
        m.d.comb += [
            self.o_post.valid.eq(active & ~pool if config.cnn else active),
            post.acc.eq(self.head),
            post.mode.eq(cmd.mode),
            post.lut.eq(cmd.lut),
            post.zero_point.eq(cmd.zero_point),
            post.lo.eq(cmd.lo),
            post.hi.eq(cmd.hi),
            post.tag.eq(row),
            post.last.eq(end_of_col),
            self.shift_row.eq(send & ~end_of_col),
            self.shift_col.eq(send & end_of_col),
        ]
        if config.cnn:
            to_pool = self.o_pool.payload
            taps = Array(cmd.taps[r] for r in range(rows))
            m.d.comb += [
                self.o_pool.valid.eq(active & pool),
                to_pool.acc.eq(self.head), to_pool.taps.eq(taps[row]),
                to_pool.average.eq(cmd.kind == ConvKind.AVERAGE_POOL),
                to_pool.lo.eq(cmd.lo), to_pool.hi.eq(cmd.hi),
                to_pool.tag.eq(row), to_pool.last.eq(end_of_col),
            ]
        # PARAM read ahead (module docstring). `param_q` holds the entry of the column being
        # sent, `slots[0:count]` the next ones in order, and `param_data` (the read port's
        # register) the entry read from `rd_addr` in the cycle before if `arriving`. The read
        # address is a register: the column's end (`send & end_of_col`, the post-processors'
        # readiness through the drain's control) only enables registers.
        param_q = Signal(PARAM_ENTRY)
        if config.cnn:
            slots = [Signal(PARAM_ENTRY, name=f"param_slot{i}") for i in range(2)]
            count = Signal(range(3))          # entries in `slots` (while sending)
            arriving = Signal()               # param_data is a read-ahead entry not yet queued
            rd_addr = Signal.like(self.param_addr)
            phase = Signal()                  # which slot the refresh reads for (not sending)
        m.d.comb += [
            *([self.param_addr.eq(rd_addr)] if config.cnn else []),
            post.bias.eq(param_q.bias),
            post.multiplier.eq(param_q.multiplier),
            post.shift.eq(param_q.shift),
        ]
        # Lanes 1 ... L-1: rows row+i of the same column, in lockstep with lane 0 (identical
        # pipelines fed together are ready together).
        for i in range(1, lanes):
            lane_post, lane_pool = getattr(self, f"o_post{i}"), getattr(self, f"o_pool{i}")
            m.d.comb += [
                lane_post.valid.eq(self.o_post.valid),
                lane_post.payload.eq(post),
                lane_post.payload.acc.eq(self.heads[i]),
                lane_post.payload.tag.eq(row + i),
                lane_pool.valid.eq(self.o_pool.valid),
                lane_pool.payload.eq(to_pool),
                lane_pool.payload.acc.eq(self.heads[i]),
                lane_pool.payload.taps.eq(taps[(row + i)[:len(row)]]),
                lane_pool.payload.tag.eq(row + i),
            ]
        if config.cnn:
            pop = Signal()                    # the column ends: param_q takes the next entry
            m.d.comb += pop.eq(send & end_of_col)
            m.d.sync += phase.eq(~phase)
            with m.If(active):
                # The queue: param_q, slots[0:count], then param_data if arriving. A read is issued
                # (rd_addr advances) while what is queued after this cycle leaves room for it, so
                # an entry a cycle is read and consumed (a column of one cycle, e.g. m_rows <=
                # drain_lanes). Reads past the command's last entry are never used.
                with m.If(pop):
                    m.d.sync += param_q.eq(Mux(count == 0, self.param_data, slots[0]))
                    with m.If(count == 2):
                        m.d.sync += slots[0].eq(slots[1])
                    with m.Else():
                        m.d.sync += slots[0].eq(self.param_data)
                    m.d.sync += count.eq(count + arriving - 1)
                with m.Else():
                    with m.If(count == 0):
                        m.d.sync += slots[0].eq(self.param_data)
                    with m.Elif(count == 1):
                        m.d.sync += slots[1].eq(self.param_data)
                    m.d.sync += count.eq(count + arriving)
                advance = Signal()
                m.d.comb += advance.eq(count + arriving < 2 + pop)
                m.d.sync += arriving.eq(advance)
                with m.If(advance):
                    m.d.sync += rd_addr.eq(rd_addr + 1)
            with m.Elif(start):
                # the slots hold the command's first two entries (the refresh below); the third is
                # read from the next cycle on
                m.d.sync += [param_q.eq(slots[0]), slots[0].eq(slots[1]), count.eq(1),
                             arriving.eq(0),
                             rd_addr.eq(self.i_cmd.payload.param_addr + 2)]
            with m.Else():
                # Refresh: read PARAM[param_addr] and PARAM[param_addr + 1] of the pending command
                # in turn, each into its slot (slots[phase] takes the data of the address set two
                # cycles earlier, at the same phase), so that at the transfer they hold the entries
                # of the payload's param_addr of the 3rd and the 4th cycle before it.
                m.d.sync += [rd_addr.eq(Mux(phase, self.i_cmd.payload.param_addr + 1,
                                            self.i_cmd.payload.param_addr)),
                             arriving.eq(0)]
                with m.If(phase):
                    m.d.sync += slots[1].eq(self.param_data)
                with m.Else():
                    m.d.sync += slots[0].eq(self.param_data)

        else:
            # The dense configurations keep the version-2 read-ahead (their netlist unchanged:
            # the iCEBreaker's dense preset is at 90 % of the UP5K and its 30 MHz): `param_q`
            # holds the entry of the column being sent; the port shows the next column's entry
            # (address p_addr), or, when the column ends in this cycle, starts reading the one
            # after it (p_addr_next). While not sending it reads the pending command's first
            # entry, taken into `param_q` at the transfer.
            with m.If(active):
                with m.If(send & end_of_col):
                    m.d.comb += self.param_addr.eq(p_addr_next)
                    m.d.sync += param_q.eq(self.param_data)
                with m.Else():
                    m.d.comb += self.param_addr.eq(p_addr)
            with m.Elif(start):
                m.d.comb += self.param_addr.eq(p_addr)
                m.d.sync += param_q.eq(self.param_data)
            with m.Else():
                m.d.comb += self.param_addr.eq(self.i_cmd.payload.param_addr)
                m.d.sync += [p_addr.eq(self.i_cmd.payload.param_addr + 1),
                             p_addr_next.eq(self.i_cmd.payload.param_addr + 2)]

        with m.If(start):
            m.d.sync += [
                cmd.eq(self.i_cmd.payload),
                active.eq(1),
                row.eq(0),
                rows_left.eq(groups_left(self.i_cmd.payload.m_rows)),
                end_of_col.eq(one_group(self.i_cmd.payload.m_rows)),
                one_row.eq(one_group(self.i_cmd.payload.m_rows)),
                cols_left.eq(self.i_cmd.payload.n_cols - 1),
                last_col.eq(self.i_cmd.payload.n_cols == 1),
                out_ptr.eq(self.i_cmd.payload.out_addr),
            ]
        with m.Elif(send):
            with m.If(end_of_col):
                m.d.sync += [row.eq(0), rows_left.eq(groups_left(cmd.m_rows)),
                             end_of_col.eq(one_row),
                             cols_left.eq(cols_left - 1), last_col.eq(cols_left == 1)]
                if not config.cnn:
                    m.d.sync += [p_addr.eq(p_addr_next), p_addr_next.eq(p_addr_next + 1)]
                with m.If(last_col):
                    m.d.sync += active.eq(0)
            with m.Else():
                m.d.sync += [row.eq(row + lanes), rows_left.eq(rows_left - 1),
                             end_of_col.eq(rows_left == 1)]

        # Collecting side: results by tag; the column's last result completes the entry.
        result = self.i_post.payload
        if config.cnn:
            # one path at a time (a drain's results are all written before the next starts)
            result = Signal.like(self.i_post.payload)
            m.d.comb += [self.i_pool.ready.eq(1),
                         result.eq(Mux(self.i_pool.valid, self.i_pool.payload.as_value(),
                                       self.i_post.payload.as_value()))]
        completed = Signal.like(entry)
        m.d.comb += [self.i_post.ready.eq(1), completed.eq(entry)]
        for r in range(rows):
            with m.If(result.tag == r):
                m.d.comb += completed[r].eq(result.value)
        for i in range(1, lanes):
            # lane i's result arrives with lane 0's; rows past m_rows stay zero
            lane_post, lane_pool = getattr(self, f"i_post{i}"), getattr(self, f"i_pool{i}")
            lane = Signal.like(lane_post.payload, name=f"result{i}")
            m.d.comb += [lane_post.ready.eq(1), lane_pool.ready.eq(1),
                         lane.eq(Mux(lane_pool.valid, lane_pool.payload.as_value(),
                                     lane_post.payload.as_value()))]
            for r in range(i, rows):
                with m.If((lane.tag == r) & (r < cmd.m_rows)):
                    m.d.comb += completed[r].eq(lane.value)
        m.d.sync += wr_pending.eq(receive & result.last)
        with m.If(receive):
            with m.If(result.last):
                m.d.sync += [
                    entry.eq(0),
                    self.wr_data.eq(completed),
                    self.wr_addr.eq(out_ptr),
                    out_ptr.eq(out_ptr + 1),
                ]
            with m.Else():
                m.d.sync += entry.eq(completed)
        m.d.comb += self.wr_en.eq(wr_pending)
        return m
