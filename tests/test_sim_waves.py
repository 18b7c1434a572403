"""Waveforms of the RTL simulation: ``connect("sim", waves=...)``, ``tessera run --waves``,
and a failing cocotb run naming the waveform it left.

Each file is checked for what a viewer needs: an FST header block and the hierarchy (the
top's ports by name; Icarus compresses it with zlib, Verilator with LZ4), or a VCD's
``$timescale`` and ``$var`` definitions. Verilator writes FST when the C++ compiler finds the
lz4 and zlib headers and VCD otherwise; Icarus, where installed, writes both.
"""

import gzip
import struct

import numpy as np
import pytest

from sim_helpers import CONFIGS, simulators

import tessera
from tessera.cli import main
from tessera.sim import runner, waves

CONFIG = CONFIGS["2x4"]
#: Names the hierarchy of ``tessera_top`` must hold (module and ports).
NAMES = ("tessera_top", "clk", "rst", "busy")


def _lz4_block(data: bytes) -> bytes:
    """Decompress one LZ4 block (the format of FST's LZ4 hierarchy block)."""
    out, i = bytearray(), 0

    def length(value):
        nonlocal i
        if value == 15:
            while True:
                extra = data[i]
                i += 1
                value += extra
                if extra != 255:
                    break
        return value

    while i < len(data):
        token = data[i]
        i += 1
        literals = length(token >> 4)
        out += data[i:i + literals]
        i += literals
        if i >= len(data):
            break
        offset = data[i] | data[i + 1] << 8
        i += 2
        for _ in range(length(token & 15) + 4):
            out.append(out[-offset])
    return bytes(out)


def fst_hierarchy(path) -> bytes:
    """Return the uncompressed hierarchy of an FST file, after checking its header block."""
    data = path.read_bytes()
    assert data[0] == 0 and struct.unpack(">Q", data[1:9])[0] == 329, "no FST header block"
    assert struct.unpack("<d", data[25:33])[0] == pytest.approx(2.718281828459045)
    pos, hierarchy = 0, None
    while pos < len(data):
        kind, size = data[pos], struct.unpack(">Q", data[pos + 1:pos + 9])[0]
        body = data[pos + 9:pos + 1 + size]
        if kind == 4:      # FST_BL_HIER: gzip
            hierarchy = gzip.decompress(body[8:])
        elif kind == 6:    # FST_BL_HIER_LZ4
            hierarchy = _lz4_block(body[8:])
            assert len(hierarchy) == struct.unpack(">Q", body[:8])[0]
        pos += 1 + size
    assert hierarchy is not None, "no hierarchy block"
    return hierarchy


def check_waveform(path):
    """Assert ``path`` is a non-empty FST or VCD file holding the top's signals."""
    assert path.stat().st_size > 0
    if path.suffix == ".fst":
        hierarchy = fst_hierarchy(path)
        for name in NAMES:
            assert name.encode() + b"\0" in hierarchy, name
    else:
        text = path.read_text()
        assert "$timescale" in text and "$enddefinitions" in text
        assert "$scope module tessera_top $end" in text
        for name in NAMES[1:]:
            assert f" {name} $end" in text, name
        assert "\n#" in text.split("$enddefinitions", 1)[1], "no value changes"


def _combinations():
    """(simulator, suffix) pairs this machine writes: Verilator's default format, Icarus both."""
    pairs = [("verilator", waves.waves_format(True, "verilator"))]
    if "icarus" in simulators():
        pairs += [("icarus", ".fst"), ("icarus", ".vcd")]
    return [pytest.param(sim, suffix, id=f"{sim}{suffix}") for sim, suffix in pairs
            if sim in simulators()]


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(11)
    x = rng.uniform(-1, 1, size=(5, 6)).astype(np.float32)
    layers = [(rng.normal(size=(6, 5)), rng.normal(size=5), "relu"),
              (rng.normal(size=(5, 3)), np.zeros(3), None)]
    return tessera.quantize(layers, calibration=x), x


@pytest.mark.parametrize(("simulator", "suffix"), _combinations())
def test_connect_with_waves_writes_a_valid_file(simulator, suffix, model, tmp_path):
    qmodel, x = model
    path = tmp_path / f"run{suffix}"
    with tessera.connect(f"sim:{simulator}", config=CONFIG, waves=path, progress=False) as dev:
        np.testing.assert_array_equal(dev.run(qmodel, x), qmodel.predict(x))
    check_waveform(path)


def test_tessera_run_waves(model, tmp_path):
    qmodel, x = model
    qmodel.save(tmp_path / "model.npz")
    np.save(tmp_path / "x.npy", x)
    CONFIG.save(tmp_path / "config.json")
    path = tmp_path / f"cli{waves.waves_format(True, 'verilator')}"
    assert main(["run", str(tmp_path / "model.npz"), "--input", str(tmp_path / "x.npy"),
                 "--device", "sim:verilator", "--config", str(tmp_path / "config.json"),
                 "--waves", str(path), "--json"]) == 0
    check_waveform(path)


def test_failing_cocotb_run_names_its_waveform(tmp_path):
    simulator = simulators()[0]
    sim = runner.build(CONFIG, simulator, waves=True)
    with pytest.raises(AssertionError) as info:
        runner.run_test(sim, "system_selfcheck", test_dir=tmp_path, config=CONFIG)
    path = tmp_path / f"tessera_top{sim.waves[0]}"
    assert f"\nwaveform: {path}\n" in str(info.value)
    check_waveform(path)


def test_plain_build_under_waves_variable_says_how_to_get_a_waveform(tmp_path, monkeypatch):
    """cocotb's runner reads $WAVES itself: a plain build must stay plain and run under WAVES=1,
    and its failure says how to get a waveform."""
    monkeypatch.setenv("WAVES", "1")
    sim = runner.build(CONFIG, simulators()[0], waves=False)
    assert sim.waves == ()
    assert not list(sim.build_dir.glob("*.gch")), "compile-only files kept in the cache"
    with pytest.raises(AssertionError, match="\nno waveform \\(run with WAVES=1 to dump one\\)\n"):
        runner.run_test(sim, "system_selfcheck", test_dir=tmp_path, config=CONFIG)
    assert not list(tmp_path.glob("*.fst")) and not list(tmp_path.glob("*.vcd"))


@pytest.mark.parametrize(("name", "message"), [
    ("run.ghw", "^Waveform file run.ghw must end in .fst or .vcd \\(the format follows the "
                "suffix; verilator writes both\\)$"),
    ("missing/run.vcd", "^Cannot write the waveform .*/missing/run.vcd: directory "
                        ".*/missing does not exist$"),
])
def test_bad_waves_file_is_refused_before_building(name, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        tessera.connect("sim:verilator", config=CONFIG, waves=tmp_path / name)


def test_fst_on_verilator_without_lz4_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(waves, "fst_headers_missing", lambda: ("lz4.h",))
    with pytest.raises(ValueError, match=r"^Verilator cannot write the FST waveform run.fst: its "
                                         r"FST writer needs lz4.h, which the C\+\+ compiler does "
                                         r"not find; install them with `apt-get install "
                                         r"liblz4-dev`, or name the file .vcd, or use "
                                         r"'sim:icarus'$"):
        tessera.connect("sim:verilator", config=CONFIG, waves=tmp_path / "run.fst")
    assert waves.waves_format(True, "verilator") == ".vcd"


def test_tessera_run_waves_needs_the_simulation(model, tmp_path, capsys):
    qmodel, x = model
    qmodel.save(tmp_path / "model.npz")
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(tmp_path / "model.npz"), "--input", str(tmp_path / "x.npy"),
                 "--device", "emu", "--waves", str(tmp_path / "run.fst")]) == 2
    assert capsys.readouterr().err == (
        "tessera run: error: --waves needs --device sim (or sim:verilator, sim:icarus): only "
        "the RTL simulation has waveforms, not 'emu'\n")
    assert not (tmp_path / "run.fst").exists()
