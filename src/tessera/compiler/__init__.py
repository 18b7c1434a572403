"""The Tessera compiler: a quantized model becomes encoded programs for one accelerator.

``compile_model(qmodel, config)`` lowers every layer (folded bias, hardware requant parameters,
clamp bounds, LUT, accumulator overflow proof at the configured widths), allocates the on-chip
buffers, tiles the GEMMs, emits instructions with hazard ``SYNC``s and packs them (entries at the
configured operand widths) into EXEC payloads. See docs/compiler.md.
"""

from .alloc import Allocation, LayerAlloc, WeightPlan, allocate
from .disasm import disassemble, format_instruction
from .lowering import HardwareLayer, hardware_layer, lower_layer, lower_model
from .graph_model import CompiledGraph, compile_graph
from .memplan import MemoryPlan, ModelTooLarge
from .model import CompiledModel, compile_gemm, compile_model
from .presets import CNN_PRESETS, CnnPreset, get_preset
from ..spec.packing import operand_dtype, pack_entries, unpack_entries
from .program import Program, StoreTarget, assemble_outputs

__all__ = [
    "compile_model", "compile_gemm", "CompiledModel", "compile_graph", "CompiledGraph",
    "MemoryPlan", "ModelTooLarge", "CNN_PRESETS", "CnnPreset", "get_preset",
    "Program", "StoreTarget", "assemble_outputs",
    "HardwareLayer", "hardware_layer", "lower_layer", "lower_model",
    "Allocation", "LayerAlloc", "WeightPlan", "allocate",
    "disassemble", "format_instruction",
    "pack_entries", "unpack_entries", "operand_dtype",
]
