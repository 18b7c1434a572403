"""CNN weights that do not fit ``WGT`` are streamed per inference; feature maps never are.

ResNet-8 (MLPerf Tiny image classification, 77,360 B of weights) on the iCEBreaker's CNN preset
(65,536 B of ``WGT``) keeps most weights resident and loads the others into one shared region
before their layers, every inference; it must equal TFLite Micro bit for bit on 100 inputs. The
DAG of ``test_device_cnn`` on a ``WGT`` too small for it streams too, and every ``SYNC`` of its
frames (around the weight loads included) is needed. A model whose feature maps do not fit is
still refused, naming each memory and the smallest preset that holds it.
"""

import numpy as np
import pytest

import tessera
from graph_helpers import assert_every_sync_is_needed
from test_device_cnn import CONFIGS, _dag, _inputs
from test_mlperf_device import MODELS, _inputs as mlperf_inputs, _tflm
from tessera.compiler import CNN_PRESETS, ModelTooLarge, compile_graph
from tessera.spec import isa

RESNET = "pretrainedResnet_quant.tflite"


def test_resnet8_streams_weights_on_icebreaker_and_equals_tflite_micro():
    model = tessera.load_model(MODELS / RESNET, mode="tflite")
    config = CNN_PRESETS["icebreaker-cnn"].config
    compiled = compile_graph(model, config)
    plan = compiled.plan
    usage = plan.usage(config)["WGT"]
    total = sum(len(s.weights) for s in compiled.steps if s.weights is not None)
    assert total * config.weight_entry_bytes == 77_360 > usage["available_bytes"]
    assert plan.streamed and usage["entries"] <= config.weight_depth
    # Resident weights, then one region as large as the largest streamed layer.
    assert usage["entries"] == total - plan.streamed_entries + max(plan.streamed.values())
    assert {plan.weight_addr[i] for i in plan.streamed} == {usage["entries"] -
                                                           max(plan.streamed.values())}
    setup_loads = [i for i in isa.decode_program(b"".join(compiled.setup_frames), config)
                   if isinstance(i, isa.Load) and i.buffer == isa.Buffer.WGT]
    assert sum(i.count for i in setup_loads) == total - plan.streamed_entries
    x = mlperf_inputs(model.input_shape, model.input_zero_point, seed=8)
    expected, _ = _tflm(RESNET, x, "")
    assert len({row.tobytes() for row in expected}) > 50
    with tessera.connect("emu", config=config) as dev:
        np.testing.assert_array_equal(dev.run(model, x, raw=True), expected)
    assert compiled.why_not_resident().startswith("its weights are not resident: 21,120 bytes")


def test_every_sync_around_streamed_weights_is_needed():
    g, out = _dag()
    qgraph = tessera.load_model(g.build([out]), mode="tflite")
    full = compile_graph(qgraph, CONFIGS[1])
    config = CONFIGS[1].replace(weight_depth=full.plan.weight_entries * 3 // 4)
    compiled = compile_graph(qgraph, config)
    assert compiled.plan.streamed and compiled.plan.weight_entries <= config.weight_depth
    x = _inputs(qgraph.graph.tensor(qgraph.graph.inputs[0]).shape, -5, 12)
    with tessera.connect("emu", config=config) as dev:
        np.testing.assert_array_equal(dev.run(qgraph, x, raw=True), qgraph.predict(x, raw=True))
    insns = assert_every_sync_is_needed(compiled, x[0])
    syncs = [i for i, insn in enumerate(insns) if isinstance(insn, isa.Sync)]
    loads = [i for i, insn in enumerate(insns) if isinstance(insn, isa.Load)]
    assert loads and any(s + 1 in loads for s in syncs)        # a SYNC guards a weight load


def test_feature_maps_that_do_not_fit_are_refused_naming_each_memory():
    model = tessera.load_model(MODELS / "vww_96_int8.tflite", mode="tflite")
    with pytest.raises(ModelTooLarge, match=r"does not fit the device resident: ACT needs "
                                             r"55,296 bytes \(6,912 entries\), 32,768 available "
                                             r"\(4,096\); WGT needs .*; PARAM needs .* \(feature "
                                             r"maps and PARAM entries must be resident; .*\); "
                                             r"the smallest preset that fits it is "
                                             r"'ulx3s-85f-cnn'"):
        compile_graph(model, CNN_PRESETS["orangecrab-25f-cnn"].config)
    # On the iCEBreaker its maps fit but its 2,738 PARAM entries do not (768): refused too.
    with pytest.raises(ModelTooLarge, match=r"PARAM needs 24,642 bytes \(2,738 entries\), "
                                             r"6,912 available \(768\)"):
        compile_graph(model, CNN_PRESETS["icebreaker-cnn"].config)


def test_a_layer_larger_than_wgt_is_refused():
    g, out = _dag()
    qgraph = tessera.load_model(g.build([out]), mode="tflite")
    with pytest.raises(ModelTooLarge, match=r"WGT needs [\d,]+ bytes \([\d,]+ entries\), 64 "
                                             r"available \(64\)"):
        compile_graph(qgraph, CONFIGS[1].replace(weight_depth=64))
