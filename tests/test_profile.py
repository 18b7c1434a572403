"""``tessera profile``: one inference of a model on a board's CNN preset, from the cycle model."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tessera
from tessera.compiler import CNN_PRESETS, compile_graph
from tessera.compiler.profile import PROFILE_KEYS, profile_model
from tessera.runtime import Emulator
from tessera.spec.protocol import Kind, encode_frame

MODELS = Path(__file__).parent / "data" / "mlperf_tiny"
KWS = MODELS / "kws_ref_model.tflite"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tessera", "profile", *map(str, args)],
                          capture_output=True, text=True)


def test_json_has_exactly_the_issue_keys_and_consistent_figures():
    done = _cli(KWS, "--board", "ulx3s-85f", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert tuple(result) == PROFILE_KEYS
    preset = CNN_PRESETS["ulx3s-85f-cnn"]
    assert result["fits"] is True
    assert result["latency_ms"] == pytest.approx(result["cycles"] / (preset.clock_mhz * 1e3))
    assert result["utilisation"] == pytest.approx(result["macs"] / (128 * result["cycles"]))
    assert result["macs"] == 2_664_768          # 2,656,768 in the graph + the padded FC rows
    layers = result["layers"]
    assert sum(row["cycles"] for row in layers) == result["cycles"]
    assert [row["where"] for row in layers][-2:] == ["device", "host"]   # FC, then SOFTMAX
    assert {row["kind"] for row in layers if row["where"] == "alias"} == {"RESHAPE"}
    usage = result["memory"]
    assert set(usage) == {"ACT", "WGT", "PARAM"} and usage["WGT"]["bytes"] == 38_400
    # WGT: 4,800 entries of 8 weights (16x8): the conv 320, each depthwise 576 (one weight an
    # entry), each pointwise 512, the FC 128.
    # The input map: 490 one-byte pixels in 31 entries of 16 lanes, framed, at 3 Mbaud.
    assert 1.6 < result["input_transfer_ms"] < 2.0


def test_profile_cycles_are_the_emulator_counters_of_one_inference():
    model = tessera.load_model(KWS, mode="tflite")
    config = CNN_PRESETS["icebreaker-cnn"].config
    compiled = compile_graph(model, config)
    emu = Emulator(config)
    first = compiled.setup_frames + compiled.input_frames(np.zeros(model.input_shape, np.int8))
    for seq, frame in enumerate(first):
        emu.feed(encode_frame(Kind.EXEC, seq & 0xFF, frame))
        emu.read(1 << 20)
    before = emu.cycles.counters()
    for seq, frame in enumerate(compiled.frames, start=len(first)):
        emu.feed(encode_frame(Kind.EXEC, seq & 0xFF, frame))
        emu.read(1 << 20)
    after = emu.cycles.counters()
    result = profile_model(model, "icebreaker")
    assert result["cycles"] == after["cycles"] - before["cycles"]
    assert result["macs"] == after["macs"] - before["macs"]


def test_a_model_whose_weights_do_not_fit_streams_them_and_pays_the_link():
    # ResNet-8: 77,360 B of weights, 65,536 B of WGT on the iCEBreaker.
    result = profile_model(MODELS / "pretrainedResnet_quant.tflite", "icebreaker")
    assert tuple(result) == PROFILE_KEYS
    assert result["fits"] is False and result["cycles"] > 0
    wgt = result["memory"]["WGT"]
    assert wgt["bytes"] <= wgt["available_bytes"] and wgt["streamed_bytes"] > 0
    assert result["streamed_bytes"] == wgt["streamed_bytes"]
    assert sum(row["transfer_bytes"] for row in result["layers"]) == result["streamed_bytes"]
    preset = CNN_PRESETS["icebreaker-cnn"]
    assert result["link_ms"] == pytest.approx(result["streamed_bytes"] * 10 / preset.baud * 1e3)
    assert result["latency_ms"] == pytest.approx(result["cycles"] / (preset.clock_mhz * 1e3) +
                                                 result["link_ms"])


def test_text_table_and_errors():
    done = _cli(KWS, "--board", "icebreaker")
    assert done.returncode == 0 and "icebreaker-cnn (4x2 at 30 MHz" in done.stdout
    # a preset whose bitstream does not meet its clock yet says its latency is at the target
    assert "at 30 MHz target, not met yet, cycle model)" in done.stdout
    met = _cli(KWS, "--board", "orangecrab-25f")
    assert met.returncode == 0 and "(8x2 at 100 MHz, cycle model)" in met.stdout
    assert "DEPTHWISE_CONV_2D" in done.stdout and "host" in done.stdout
    bad = _cli(KWS, "--board", "nope")
    assert bad.returncode == 2 and "Unknown CNN board preset 'nope'" in bad.stderr
    onnx = _cli(KWS, "--board", "icebreaker", "--mode", "onnx")
    assert onnx.returncode == 2 and "in mode 'tflite' only" in onnx.stderr


def test_a_dense_chain_has_per_layer_cycles_that_add_up():
    result = profile_model(MODELS / "ad01_int8.tflite", "ulx3s-85f")
    assert tuple(result) == PROFILE_KEYS
    layers = result["layers"]
    assert len(layers) == 10 and {row["kind"] for row in layers} == {"FULLY_CONNECTED"}
    assert sum(row["cycles"] for row in layers) == result["cycles"]
    assert sum(row["macs"] for row in layers) == 264_192
    assert result["fits"] is True      # 264,192 B of weights in WGT's 294,912 B (36,864 x 8)
    # on the OrangeCrab-25F (WGT 16,384 x 2 B) the weights stream
    assert profile_model(MODELS / "ad01_int8.tflite", "orangecrab-25f")["fits"] is False


def test_a_graph_the_host_runs_entirely_is_profiled_as_host_operations():
    from tflite_builder import TFLiteGraph
    g = TFLiteGraph()
    x = g.input("x", (1, 4, 4, 2), scale=0.05, zero_point=-3)
    qgraph = tessera.load_model(g.build([g.concatenation([x, x])]), mode="tflite")
    result = profile_model(qgraph, "icebreaker")
    assert result["cycles"] == 0 and result["macs"] == 0 and result["link_ms"] == 0
    assert [(row["kind"], row["where"]) for row in result["layers"]] == [("CONCATENATION",
                                                                          "host")]
    x_q = np.arange(64, dtype=np.int8).reshape(2, 4, 4, 2)
    with tessera.connect("emu", config=CNN_PRESETS["icebreaker-cnn"].config) as dev:
        np.testing.assert_array_equal(dev.run(qgraph, x_q, raw=True),
                                      np.concatenate([x_q, x_q], axis=-1))
