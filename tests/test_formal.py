"""Formal proofs of the link, the PostProcessor's stream and the executor (``formal/``).

The quick checks of ``formal.checks.CHECKS`` run here (``make formal`` runs them all); each is
paired with a deliberately broken variant of the design, for which the prover must find a
counterexample -- a property that cannot fail proves nothing.
"""

import sys
from pathlib import Path

import pytest
from amaranth.hdl import Const, Fragment

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from formal.answers import ANSWERS_CONFIG, answer_bound  # noqa: E402
from formal.checks import CHECKS, run_check  # noqa: E402
from formal.probe import Probe  # noqa: E402
from formal.sby import missing_tools  # noqa: E402
from formal.streams import link_config  # noqa: E402

from tessera.hw import link, requant_tflite  # noqa: E402
from tessera.hw.executor import Executor  # noqa: E402
from tessera.hw.link import FrameReceiver, FrameSender  # noqa: E402
from tessera.hw.postproc import PostProcessor  # noqa: E402
from tessera.hw.uart import UARTReceiver  # noqa: E402
from tessera.spec.protocol import Kind  # noqa: E402

QUICK = [name for name, check in CHECKS.items() if check.quick]


def test_tools_installed():
    assert missing_tools() == {}


@pytest.mark.parametrize("name", QUICK)
def test_property_holds(name, tmp_path):
    verdict = run_check(CHECKS[name], tmp_path)
    assert verdict.status == "PASS", verdict.log


# -- broken variants ----------------------------------------------------------------------------

class _WithdrawingReceiver(FrameReceiver):
    # withdraws its frame descriptor whenever a byte is offered
    def elaborate(self, platform):
        m = super().elaborate(platform)
        with m.If(self.i.valid):
            m.d.comb += self.o_frame.valid.eq(0)
        return m


class _FidgetingSender(FrameSender):
    # changes the byte it offers while it waits for ready
    def elaborate(self, platform):
        m = super().elaborate(platform)
        with m.If(~self.o.ready & self.i_payload.valid):
            m.d.comb += self.o.payload.eq(~self.i_payload.payload)
        return m


class _WithdrawingUART(UARTReceiver):
    # drops a waiting byte when the line goes low (as if a new start bit overran it)
    def elaborate(self, platform):
        m = super().elaborate(platform)
        with m.If(~self.rx & ~self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m


class _WithdrawingPostProcessor(PostProcessor):
    # drops its result's valid when a new element is offered and the output is stalled
    def elaborate(self, platform):
        m = super().elaborate(platform)
        with m.If(self.i.valid & ~self.o.ready):
            m.d.comb += self.o.valid.eq(0)
        return m


class _OffByOneExecutor(Executor):
    # LOAD writes one entry further than the decoder checked
    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.write.addr.eq(
            m.submodules.sequencer.write.addr + 1)
        return m


class _SilentExecutor(Executor):
    # never answers HELLO
    def elaborate(self, platform):
        m = super().elaborate(platform)
        with m.If(m.submodules.requests.o_resp.payload.kind == Kind.HELLO):
            m.d.comb += self.o_resp.valid.eq(0)
        return m


def _crc_ignoring_bit7(crc, data):
    return _real_crc16_update(crc, data & Const(0x7F, 8))


_real_crc16_update = link.crc16_update

BROKEN = {
    "stream_receiver": dict(receiver_class=_WithdrawingReceiver),
    "stream_sender": dict(sender_class=_FidgetingSender),
    "stream_uart": dict(receiver_class=_WithdrawingUART),
    "stream_postproc": dict(postproc_class=_WithdrawingPostProcessor),
    "stream_postproc_ram": dict(postproc_class=_WithdrawingPostProcessor),
    # built with a timeout one cycle longer than the one it is checked against
    "receiver_timeout": dict(config=link_config(max_payload=2, rx_timeout_cycles=5),
                             timeout_cycles=4),
    "receiver_crc": dict(),   # with a CRC that ignores bit 7 of each byte, patched below
    "executor_bounds": dict(executor_class=_OffByOneExecutor),
    # and each executor_answers_<board> preset, added below
    "executor_answers": dict(executor_class=_SilentExecutor),
    "requant_tflite_small": dict(),  # INT32_MIN * INT32_MIN not recognised, patched below
    "requant_tflite": dict(),
    "requant_tflite_iterative": dict(),
}

BROKEN.update({name: BROKEN["executor_answers"] for name in CHECKS
               if name.startswith("executor_answers_")})


@pytest.mark.parametrize("name", QUICK)
def test_broken_variant_fails(name, tmp_path, monkeypatch):
    if name == "receiver_crc":
        monkeypatch.setattr(link, "crc16_update", _crc_ignoring_bit7)
    if name.startswith("requant_tflite"):
        monkeypatch.setattr(requant_tflite, "_INT32_MIN", 0)
    verdict = run_check(CHECKS[name], tmp_path, name=f"{name}_broken", **BROKEN[name])
    assert verdict.status == "FAIL", verdict.log


def test_every_check_has_a_broken_variant():
    assert set(BROKEN) == set(CHECKS)


@pytest.mark.parametrize("module", ["formal.bench", "formal.sby", "formal.streams",
                                    "formal.receiver", "formal.executor", "formal.answers",
                                    "formal.probe", "formal.requant", "formal.checks"])
def test_all_names_resolve(module):
    imported = __import__(module, fromlist=["__all__"])
    assert len(set(imported.__all__)) == len(imported.__all__)
    for name in imported.__all__:
        assert hasattr(imported, name), name


def test_unknown_check_is_refused(capsys):
    from formal.__main__ import main
    assert main(["no_such_check"]) == 2
    assert capsys.readouterr().err.startswith(
        "python -m formal: unknown check 'no_such_check'; choose from stream_receiver, ")


def test_answer_bound_of_the_proved_configuration():
    # docs/verification.md states it: 1 + 2 * 64 + 9 + 6 + 3 * 64 + 2 + 1
    assert answer_bound(ANSWERS_CONFIG) == 339
    assert answer_bound(ANSWERS_CONFIG, core_wait=3) == 1 + 4 * 64 + 15 + 6 + 3 * 64 + 2 + 1


def test_probe_names_a_missing_register():
    probe = Probe(FrameSender())
    assert probe.state("tx", "IDLE", "HEADER") is not None
    with pytest.raises(KeyError, match=r"No signal 'no_such' driven in submodule '' of "
                                       r"FrameSender; the gateware changed: update the "
                                       r"invariants of formal/"):
        probe["no_such"]
    with pytest.raises(KeyError, match=r"FSM 'tx' has no state 'NOWHERE'; it has IDLE, "):
        probe.state("tx", "NOWHERE")
    Fragment.get(probe, None)   # used: no UnusedElaboratable warning


def test_induction_catches_a_write_outside_a_buffer(tmp_path):
    # executor_answers proves the in-bounds assertions too: with LOAD writing one entry further,
    # its induction step breaks "write outside a buffer" (no LOAD fits in the base case's steps)
    verdict = run_check(CHECKS["executor_answers"], tmp_path, name="executor_answers_broken_load",
                        executor_class=_OffByOneExecutor)
    source = (ROOT / "formal" / "executor.py").read_text().splitlines()
    line = next(number for number, text in enumerate(source, 1)
                if '"write outside a buffer"' in text)
    assert verdict.status == "ERROR", verdict.log
    assert any(failed.endswith(f"formal/executor.py:{line}") for failed in verdict.failed), \
        verdict.log
