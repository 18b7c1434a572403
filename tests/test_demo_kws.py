"""The KWS part of ``tessera demo`` (tessera.cli.demo_kws), on the emulator.

The oracle is TFLite Micro (the ``tflite-micro`` wheel): the demo must find Tessera's reference
and the emulator equal to it on discriminating inputs, and count one output changed by one; the
latency rows are checked against ``tessera profile`` and the JSON keys against
docs/quickstart.md. The RTL half of the part is the
same ``connect("sim")`` path as tests/test_sim_cnn_mlperf.py; here its report is checked through
:func:`demo_failures` and the table.
"""

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
from tflite_builder import run_tflm

from tessera.cli import main
from tessera.cli.demo import demo_failures
from tessera.cli.demo_kws import KWS_MODEL, format_kws, kws_inputs, run_kws
from tessera.compiler import CNN_PRESETS
from tessera.compiler.profile import profile_model

TESTS_COPY = Path(__file__).parent / "data" / "mlperf_tiny"
INPUTS = 12

#: The keys of the KWS report, as docs/quickstart.md lists them.
KWS_KEYS = {"model", "mode", "inputs", "input_count", "preset", "clock_mhz", "config",
            "config_hash", "reference", "devices", "profile", "published_latency_ms", "samples"}


@pytest.fixture(scope="module")
def report():
    return run_kws(board="icebreaker", inputs=INPUTS, rtl=False, log=lambda msg: None)


def test_the_packaged_model_is_the_published_one():
    for name in ("kws_ref_model.tflite", "LICENSE"):
        assert (KWS_MODEL.parent / name).read_bytes() == (TESTS_COPY / name).read_bytes()


@pytest.mark.parametrize("name", ["tessera.cli.demo", "tessera.cli.demo_kws"])
def test_all_names_resolve(name):
    module = importlib.import_module(name)
    assert len(set(module.__all__)) == len(module.__all__)
    assert all(getattr(module, attr) is not None for attr in module.__all__)


def test_inputs_are_deterministic_and_reach_both_ends():
    x = kws_inputs((49, 10, 1), 83, INPUTS)
    assert x.dtype == np.int8 and x.shape == (INPUTS, 49, 10, 1)
    np.testing.assert_array_equal(x, kws_inputs((49, 10, 1), 83, INPUTS))
    assert (x[0] == -128).all() and (x[1] == 127).all() and (x[2] == 83).all()
    assert x[3, 0, 0, 0] == -128 and x[3, 0, 1, 0] == 127 and x[4, 0, 0, 0] == 127
    assert (abs(x[5:10].astype(int) - 83) <= 3).all()
    assert len(kws_inputs((49, 10, 1), 83, 3)) == 3


def test_reference_and_emulator_equal_tflite_micro(report):
    assert set(report) == KWS_KEYS and set(report["devices"]) == {"emu"}
    assert report["reference"] == {"bit_identical": INPUTS, "outputs_identical": True}
    emu = report["devices"]["emu"]
    assert emu["bit_identical"] == INPUTS and emu["outputs_identical"]
    assert demo_failures({"kws": report}) == []
    model = (TESTS_COPY / "kws_ref_model.tflite").read_bytes()
    expected = [run_tflm(model, [sample[None]])[0][0] for sample in kws_inputs((49, 10, 1), 83,
                                                                               INPUTS)]
    assert len({row.tobytes() for row in expected}) > INPUTS // 2     # the inputs discriminate
    # Steady state: the cycles of one inference are the profile's plus the input's load.
    profile = report["profile"][0]["cycles"]
    assert profile < emu["cycles_per_inference"] < profile * 1.01


def test_the_real_samples_come_first_with_their_keywords(report):
    # The MLPerf Tiny repository's two KWS samples, then the synthetic maps.
    sources = [s["source"] for s in report["samples"]]
    assert [s.split(":")[1].rsplit("/", 1)[1] for s in sources] == [
        "kws_input_data.cc", "marvin_617de221_0.wav"]
    assert all(s.startswith("mlcommons/tiny@1afd2c9820f7:benchmark/") for s in sources)
    assert [s["expected"] for s in report["samples"]] == [None, "unknown"]
    assert [s["tflite_micro"] for s in report["samples"]] == ["on", "unknown"]
    assert all(s["emu"] == s["tflite_micro"] for s in report["samples"])
    lines = format_kws(report).splitlines()
    assert lines[2] == ("  mlcommons/tiny kws_input_data.cc: no keyword given; TFLite Micro "
                        "'on', emulator 'on'")
    assert lines[3].endswith("marvin_617de221_0.wav: expected 'unknown'; TFLite Micro "
                             "'unknown', emulator 'unknown'")
    assert len(run_kws(inputs=1, rtl=False, log=lambda msg: None)["samples"]) == 1


def test_one_output_off_by_one_is_counted(monkeypatch):
    from tessera.cli import demo_kws
    oracle = demo_kws.tflite_micro_outputs

    def off_by_one(path, x):
        out = oracle(path, x)
        out[3, 7] += 1 if out[3, 7] < 127 else -1
        return out

    monkeypatch.setattr(demo_kws, "tflite_micro_outputs", off_by_one)
    report = run_kws(inputs=5, rtl=False, log=lambda msg: None)
    assert report["reference"] == {"bit_identical": 4, "outputs_identical": False}
    assert report["devices"]["emu"]["bit_identical"] == 4
    assert demo_failures({"kws": report}) == [
        "kws: Tessera's reference differs from TFLite Micro",
        "kws: the emu outputs differ from TFLite Micro"]


def test_latency_rows_are_tessera_profile(report):
    assert [row["preset"] for row in report["profile"]] == list(CNN_PRESETS)
    for row in report["profile"]:
        want = profile_model(KWS_MODEL, row["preset"])
        assert (row["cycles"], row["latency_ms"], row["fits"]) == \
            (want["cycles"], want["latency_ms"], want["fits"])
        assert row["latency_ms"] == pytest.approx(row["cycles"] / (row["clock_mhz"] * 1e3))
    assert report["published_latency_ms"]["STM32L4R5 (Cortex-M4, 120 MHz)"] == 43.0


def test_a_mismatch_fails_the_demo_and_shows_in_the_table(report):
    bad = json.loads(json.dumps(report))
    bad["devices"]["rtl"] = {"target": "sim", "bit_identical": 1, "outputs_identical": False,
                             "inputs": 2, "counters": {"cycles": 5}, "emulator_counters": {},
                             "counters_equal_emulator": False, "wall_seconds": 1.0}
    bad["reference"]["outputs_identical"] = False
    assert demo_failures({"kws": bad}) == [
        "kws: Tessera's reference differs from TFLite Micro",
        "kws: the rtl outputs differ from TFLite Micro",
        "kws: the rtl counters differ from the emulator's"]
    table = format_kws(bad).splitlines()
    head = table.index(next(line for line in table if line.startswith("vs TFLite Micro")))
    assert table[head].split("  ")[-3:] == ["cycles", "counters = emulator", "wall time"]
    assert table[head + 2].split()[-1] == f"{INPUTS}/{INPUTS}"          # the reference
    emu = report["devices"]["emu"]
    assert table[head + 3].split()[:4] == ["emulator", f"{INPUTS}/{INPUTS}",
                                           f"{emu['cycles_per_inference']:,.0f}", "each"]
    assert table[head + 4].split() == ["RTL", "(sim)", "1/2", "5", "in", "all", "(weights",
                                       "+", "2)", "NO", "1.0", "s"]
    text = format_kws(report)
    assert "icebreaker-cnn preset (4x2 at 30 MHz" in text and "NO" not in text
    assert "STM32L4R5 (Cortex-M4, 120 MHz)               43 ms" in text


def test_quickstart_latency_table_is_the_demo_s(report):
    # docs/quickstart.md shows the table the demo prints; a cycle-model change must update it.
    doc = (Path(__file__).parent.parent / "docs" / "quickstart.md").read_text()
    table = format_kws(report).splitlines()
    start = table.index(next(line for line in table if line.startswith("preset ")))
    assert "\n".join(table[start:start + 2 + len(CNN_PRESETS)]) in doc


def test_cli_kws_json(capsys):
    status = main(["demo", "--model", "kws", "--no-rtl", "--kws-inputs", "3", "--board",
                   "ulx3s-85f", "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    reports = json.loads(captured.out)
    assert set(reports) == {"kws"} and set(reports["kws"]) == KWS_KEYS
    assert reports["kws"]["preset"] == "ulx3s-85f-cnn"
    assert reports["kws"]["devices"]["emu"]["bit_identical"] == 3


def test_quickstart_lists_the_json_keys(report):
    doc = (Path(__file__).parent.parent / "docs" / "quickstart.md").read_text()
    rows = {line.split("|")[1].strip(" `"): line.split("|")[2]
            for line in doc.splitlines() if line.startswith("| `kws")}
    assert all(f"`{key}`" in rows["kws"] for key in KWS_KEYS)
    for name, device in report["devices"].items():
        assert all(f"`{key}`" in rows[f"kws.devices.{name}"] for key in device)
    assert all(f"`{key}`" in rows["kws.profile[]"] for key in report["profile"][0])
    assert all(f"`{key}`" in rows["kws.reference"] for key in report["reference"])


def test_cli_refuses_an_unknown_board_before_any_work(capsys):
    assert main(["demo", "--board", "de10"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tessera demo: error: Unknown CNN board preset 'de10'; the presets "
                          "are icebreaker-cnn, ") and err.count("\n") == 1


@pytest.mark.slow
def test_one_input_on_the_rtl():
    # The icebreaker-cnn build is the one tests/test_sim_cnn_mlperf.py makes (cached): ~30 s.
    report = run_kws(inputs=1, rtl_inputs=1, log=lambda msg: None)
    rtl = report["devices"]["rtl"]
    assert (rtl["target"], rtl["inputs"], rtl["bit_identical"]) == ("sim", 1, 1)
    assert rtl["counters_equal_emulator"] and rtl["counters"] == rtl["emulator_counters"]
    assert rtl["counters"]["cycles"] > report["profile"][0]["cycles"]     # weights + inference
    assert demo_failures({"kws": report}) == []
    doc = (Path(__file__).parent.parent / "docs" / "quickstart.md").read_text()
    row = next(line for line in doc.splitlines() if line.startswith("| `kws.devices.rtl`"))
    assert all(f"`{key}`" in row for key in rtl)
