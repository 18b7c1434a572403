"""Board presets with the CNN features (ISA version 3).

Each :class:`CnnPreset` names a board of ``tessera.hw.boards``, the configuration a CNN build
for it carries, the target clock and the UART rate. The emulator and the RTL (in simulation,
``connect("sim", config=preset.config)``, counter for counter equal) run them; ``tessera build
--preset NAME`` builds one (orangecrab-25f-cnn meets its 100 MHz, the other two not yet:
docs/boards.md, #15);
``tessera profile`` and the MLPerf Tiny table use the emulator's cycle model. The memories follow the chips: on the iCE40UP5K the four SB_SPRAM256KA
(``ACT`` two of them, 16 K x 32 bits in banks of two lanes; ``WGT`` two, 32 K x 16 bits) and
block RAM for ``PARAM``; on the ECP5 parts block RAM sized per preset (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..spec import AcceleratorConfig

__all__ = ["CnnPreset", "CNN_PRESETS", "get_preset", "presets_that_fit"]


@dataclass(frozen=True)
class CnnPreset:
    """A board's CNN configuration.

    Attributes
    ----------
    name, board : str
        Preset name and the ``tessera.hw.boards`` board it is for.
    config : AcceleratorConfig
    clock_mhz : float
        Target clock (the board's default).
    baud : int
        UART rate of the host link.
    not_met : str
        Empty when the preset's bitstream meets ``clock_mhz`` (its report is in
        ``bench/results/boards``); else what its build does today, in one sentence (issue #15):
        ``tessera build`` prints it before building, ``tessera profile`` marks its latencies as
        at the target clock.
    """

    name: str
    board: str
    config: AcceleratorConfig
    clock_mhz: float
    baud: int = 3_000_000
    not_met: str = ""

    @property
    def memory_bytes(self) -> int:
        c = self.config
        return (c.act_depth * c.act_entry_bytes + c.weight_depth * c.weight_entry_bytes +
                c.param_depth * c.param_entry_bytes)


CNN_PRESETS = {p.name: p for p in [
    # 8 MACs on the 8 SB_MAC16; mode tflite only with a 4-cycle iterative requant (32x8 digit
    # product), no LUT, 32-bit counters: the onnx float requant's cells pay for the CNN units.
    CnnPreset("icebreaker-cnn", "icebreaker", AcceleratorConfig(
        rows=4, cols=2, act_depth=16384, weight_depth=32768, param_depth=768, max_payload=1024,
        requant_modes=("tflite",), requant_cycles=4, lut=False, counter_bits=32, cnn=True,
        act_bank_lanes=2), clock_mhz=30.0,
        not_met="does not fit the UP5K yet: 13,912 of its 5,280 logic cells after packing"),
    CnnPreset("orangecrab-25f-cnn", "orangecrab-25f", AcceleratorConfig(
        rows=8, cols=2, act_depth=4096, weight_depth=16384, param_depth=1024, cnn=True,
        requant_modes=("tflite",), lut=False), clock_mhz=100.0),
    # 16x8 with 8 drain lanes: the 128-MAC shape that fits the LFE5U-85F. 32x4 (KWS 0.50 ms on
    # paper) needs 90,530 of its 83,640 TRELLIS_COMB (its 32-lane gather alone 30,076 LUT4); 16x8
    # needs 54,825 but does not meet 100 MHz yet (issue #15). ACT 4096 x 16 B holds the largest
    # map plan (AD 3,840 entries), WGT 36,864 x 8 B VWW's 35,971, PARAM 3072 its 2,738: 188 of
    # 208 DP16KD by tessera build's estimate, 189 in the synthesised netlist.
    CnnPreset("ulx3s-85f-cnn", "ulx3s-85f", AcceleratorConfig(
        rows=16, cols=8, act_depth=4096, weight_depth=36864, param_depth=3072, cnn=True,
        requant_modes=("tflite",), lut=False, drain_lanes=8, max_payload=2048),
        clock_mhz=100.0,
        not_met="does not meet 100 MHz yet: 59.5 MHz routed at seed 1 (b8e65f4); the build "
                "takes about 80 minutes"),
]}


def get_preset(name) -> CnnPreset:
    """Return the preset called ``name`` or the CNN preset of board ``name``."""
    if name in CNN_PRESETS:
        return CNN_PRESETS[name]
    for preset in CNN_PRESETS.values():
        if preset.board == name:
            return preset
    raise ValueError(f"Unknown CNN board preset {name!r}; the presets are "
                     f"{', '.join(CNN_PRESETS)} (boards "
                     f"{', '.join(p.board for p in CNN_PRESETS.values())})")


def presets_that_fit(fits) -> list:
    """Return the names of the presets for which ``fits(config)`` holds, smallest first."""
    ordered = sorted(CNN_PRESETS.values(), key=lambda p: p.memory_bytes)
    return [p.name for p in ordered if fits(p.config)]
