"""The result of a bitstream build: resources, Fmax and whether timing is met.

:class:`BuildReport` is filled from the tools' own outputs, never estimated: nextpnr's
``--report`` JSON (cells used/available per type, achieved and constrained frequency per clock,
the critical path) and, for the iCE40 LUT4/flip-flop split that nextpnr folds into logic cells,
the ``stat`` summary at the end of the Yosys log. It is saved as JSON next to the bitstream and
read back by ``bench/boards.py`` to generate ``docs/boards.md``.
"""

import json
import re
from dataclasses import asdict, dataclass, field

__all__ = ["BuildReport", "parse_nextpnr_report", "parse_yosys_stat", "ice40_logic_resources",
           "late_endpoints", "RESOURCE_CELLS"]

#: nextpnr cell types behind each resource column, per family.
RESOURCE_CELLS = {
    "ice40": {"logic": "ICESTORM_LC", "dsp": "ICESTORM_DSP", "bram": "ICESTORM_RAM",
              "spram": "ICESTORM_SPRAM", "io": "SB_IO", "pll": "ICESTORM_PLL"},
    "ecp5": {"lut4": "TRELLIS_COMB", "ff": "TRELLIS_FF", "dsp": "MULT18X18D",
             "bram": "DP16KD", "io": "TRELLIS_IO", "pll": "EHXPLLL"},
}

#: Summary lines of Yosys ``stat`` that are not cell types.
_STAT_TOTALS = {"wires", "cells", "submodules", "ports", "memories", "processes", "top"}


@dataclass
class BuildReport:
    """What one build produced.

    Attributes
    ----------
    board, device, design : str
        Board name, FPGA part, ``"accelerator"`` or ``"loopback"``.
    config : dict
        The :class:`~tessera.spec.AcceleratorConfig` as a dict.
    config_hash : str
        Its hash (what the bitstream reports in its ID record).
    target_mhz : float
        Frequency of the design clock (what the PLL produces).
    baud : int
        UART baud rate.
    resources : dict
        ``{name: {"used": int, "available": int}}`` for ``lut4``, ``ff``, ``dsp``, ``bram``,
        ``spram`` (iCE40), ``io``, ``pll`` and ``logic`` (iCE40 logic cells).
    fmax_mhz : dict
        ``{clock net: achieved MHz}``.
    constraint_mhz : dict
        ``{clock net: constrained MHz}``.
    timing_met : bool
        Every clock reaches its constraint.
    critical_path : list of str
        The slowest path of the design clock, one ``"delay ns  from -> to"`` line per hop.
    late_endpoints : list of dict
        When timing is not met: the registers whose inputs arrive after the design clock's
        period, ``{"register", "worst_ns", "endpoints"}``, latest first, at most 20
        (:func:`late_endpoints`). The critical path names only the worst of them.
    tools : dict
        ``{tool: "origin: version/command"}``.
    elapsed_s : float
        Wall time of the tool run.
    bitstream : str
        File name of the bitstream inside the build directory.
    """

    board: str
    device: str
    design: str
    config: dict
    config_hash: str
    target_mhz: float
    baud: int
    resources: dict = field(default_factory=dict)
    fmax_mhz: dict = field(default_factory=dict)
    constraint_mhz: dict = field(default_factory=dict)
    timing_met: bool = False
    critical_path: list = field(default_factory=list)
    late_endpoints: list = field(default_factory=list)
    tools: dict = field(default_factory=dict)
    elapsed_s: float = 0.0
    bitstream: str = ""

    @property
    def macs_per_cycle(self):
        """MACs per cycle of the configuration (0 for the loopback design)."""
        return self.config["rows"] * self.config["cols"] if self.design == "accelerator" else 0

    @property
    def fmax_design_mhz(self):
        """Achieved Fmax of the design clock (the slowest constrained clock)."""
        constrained = [f for net, f in self.fmax_mhz.items() if net in self.constraint_mhz]
        values = constrained or list(self.fmax_mhz.values())
        return min(values) if values else 0.0

    @property
    def critical_path_summary(self):
        """One line: source and destination of the critical path, its delay and logic levels."""
        if not self.critical_path:
            return ""
        hops = [line.split(None, 3) for line in self.critical_path]
        total = sum(float(h[0]) for h in hops)
        logic = sum(1 for h in hops if h[2] == "logic" and float(h[0]) > 0)
        source = hops[0][3].split(" -> ")[0]
        sink = hops[-1][3].split(" -> ")[-1]
        return f"{source} -> {sink}: {total:.2f} ns, {logic} logic/carry hops"

    def used(self, resource):
        """Return ``(used, available)`` of ``resource`` or ``(None, None)``."""
        entry = self.resources.get(resource)
        return (entry["used"], entry["available"]) if entry else (None, None)

    def to_dict(self):
        """Return the report as a JSON-compatible dict."""
        return asdict(self)

    def to_json(self):
        """Return the report as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def save(self, path):
        """Write the report as JSON to ``path``."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_json() + "\n")

    @classmethod
    def load(cls, path):
        """Read a report written by :meth:`save`."""
        with open(path, encoding="utf-8") as f:
            return cls(**json.load(f))

    def summary(self):
        """Return a short human-readable table."""
        lines = [f"{self.board} ({self.device}), design {self.design}, "
                 f"config {self.config['rows']}x{self.config['cols']} "
                 f"[{self.config_hash}], {self.baud} baud"]
        for name in ("lut4", "ff", "logic", "dsp", "bram", "spram", "io", "pll"):
            used, available = self.used(name)
            if used is not None:
                share = f"{100 * used / available:5.1f} %" if available else ""
                lines.append(f"  {name:<6} {used:>6} / {available:<6} {share}")
        for net, fmax in sorted(self.fmax_mhz.items()):
            target = self.constraint_mhz.get(net)
            status = "" if target is None else \
                f"(target {target:.2f} MHz, {'met' if fmax >= target else 'NOT MET'})"
            lines.append(f"  Fmax {net}: {fmax:.2f} MHz {status}")
        if self.critical_path:
            lines.append(f"  critical path: {self.critical_path_summary}")
        if self.late_endpoints:
            lines.append("  registers whose inputs arrive after the clock period (worst first):")
            lines += [f"    {e['worst_ns']:7.2f} ns  {e['register']} ({e['endpoints']} inputs)"
                      for e in self.late_endpoints[:8]]
        lines.append(f"  timing {'met' if self.timing_met else 'NOT MET'}; "
                     f"tools ran {self.elapsed_s:.0f} s")
        return "\n".join(lines)


def parse_nextpnr_report(data, family):
    """Return ``(resources, fmax_mhz, constraint_mhz, critical_path)`` from a ``--report`` dict."""
    util = data.get("utilization", {})
    resources = {}
    for name, cell in RESOURCE_CELLS[family].items():
        if cell in util:
            resources[name] = {"used": int(util[cell]["used"]),
                               "available": int(util[cell]["available"])}
    fmax, constraint = {}, {}
    for net, entry in data.get("fmax", {}).items():
        fmax[net] = round(float(entry["achieved"]), 2)
        constraint[net] = round(float(entry["constraint"]), 2)
    path = []
    for crit in data.get("critical_paths", [])[:1]:
        for hop in crit.get("path", []):
            src, dst = hop.get("from", {}), hop.get("to", {})
            path.append(f"{hop.get('delay', 0):6.2f} ns  {hop.get('type', ''):<10} "
                        f"{src.get('cell', '?')}.{src.get('port', '?')} -> "
                        f"{dst.get('cell', '?')}.{dst.get('port', '?')}")
    return resources, fmax, constraint, path


#: Suffixes Yosys and nextpnr append to a signal's name in the names of its cells.
_CELL_SUFFIX = re.compile(r"(_TRELLIS_|_SB_|\$|_LUT4|_PFUMX|_L6MUX|_CCU2C|_DO[AB]\d|_MULT18X18D"
                          r"|_DP16KD).*$")


def late_endpoints(data, period_ns, limit=20):
    """Return the registers whose inputs arrive later than ``period_ns``, latest first.

    ``data`` is nextpnr's ``--report`` dict written with ``--detailed-timing-report``: each net
    lists, per endpoint, when the data launched by a clock edge arrives there (min, max in ns,
    before the endpoint's setup time; on ECP5 the worst equals nextpnr's critical path, on the
    iCE40 it came out up to ~0.9 ns later than the critical path nextpnr's Fmax is computed
    from, so a register that just meets the period may be listed). Endpoints are grouped by
    the signal their cell is
    named after (the suffixes Yosys and nextpnr add, and trailing indices, dropped), so a
    32-bit register shows once: ``{"register": name, "worst_ns": latest arrival, "endpoints":
    count}``. Paths from and to pins are left out. Where to look when timing fails: the
    critical path names only the worst one.
    """
    groups = {}
    for net in data.get("detailed_net_timings", []):
        for endpoint in net.get("endpoints", []):
            arrival = max(endpoint.get("delay", [0.0]))
            if arrival <= period_ns or "<async>" in (net.get("event"), endpoint.get("event")):
                continue   # in time, or a path from or to a pin (not clocked here)
            name = re.sub(r"(_\d+)+$", "", _CELL_SUFFIX.sub("", endpoint["cell"]))
            worst, count = groups.get(name, (0.0, 0))
            groups[name] = (max(worst, arrival), count + 1)
    ranked = sorted(groups.items(), key=lambda item: -item[1][0])[:limit]
    return [{"register": name, "worst_ns": round(worst, 2), "endpoints": count}
            for name, (worst, count) in ranked]


def parse_yosys_stat(log_text):
    """Return ``{cell type: count}`` from the last whole-design ``stat`` summary of a Yosys log.

    Understands both the current layout (``"   127   SB_LUT4"``, after ``=== design hierarchy
    ===``) and the older one (``"     SB_LUT4    127"``, after ``Number of cells``).
    """
    for marker in ("=== design hierarchy ===", "Number of cells"):
        if marker in log_text:
            block = log_text.rsplit(marker, 1)[1]
            break
    else:
        return {}
    counts = {}
    for line in block.splitlines():
        match = re.match(r"^\s+(\d+)\s+(\$?[A-Za-z_][\w$]*)\s*$", line)
        if match:
            count, cell = int(match.group(1)), match.group(2)
        else:
            match = re.match(r"^\s+(\$?[A-Za-z_][\w$]*)\s+(\d+)\s*$", line)
            if not match:
                continue
            cell, count = match.group(1), int(match.group(2))
        if cell not in _STAT_TOTALS:
            counts[cell] = count
    return counts


def ice40_logic_resources(stat, logic):
    """Return ``lut4``/``ff`` usage from Yosys ``stat`` counts for an iCE40 with ``logic`` LCs."""
    lut4 = sum(n for cell, n in stat.items() if cell == "SB_LUT4")
    ff = sum(n for cell, n in stat.items() if cell.startswith("SB_DFF"))
    available = logic["available"]
    return {"lut4": {"used": lut4, "available": available},
            "ff": {"used": ff, "available": available}}
