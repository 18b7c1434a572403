"""The host runtime: one driver (:class:`Device`) for the emulator, the RTL simulation and boards.

Example
-------
>>> import tessera
>>> with tessera.connect("emu") as dev:          # doctest: +SKIP
...     y = dev.run(qmodel, x)
...     print(dev.counters()["utilisation"])
"""

from __future__ import annotations

from .device import Device, DeviceLink
from .emulator import Emulator
from .errors import (ConfigMismatch, DeviceError, DeviceTimeout, HazardError, LinkError,
                     ParameterError, TesseraError)
from .link import HostLink
from .transport import (EmulatorTransport, FaultyTransport, RecordingTransport, ReplayTransport,
                        Transport)

__all__ = [
    "connect", "TARGET_FORMS",
    "Device", "DeviceLink", "HostLink", "Emulator",
    "Transport", "EmulatorTransport", "FaultyTransport", "RecordingTransport", "ReplayTransport",
    "TesseraError", "DeviceError", "DeviceTimeout", "ConfigMismatch", "LinkError",
    "HazardError", "ParameterError",
]

#: The target strings :func:`connect` accepts.
TARGET_FORMS = ("emu", "sim", "sim:verilator", "sim:icarus", "sim:gates",
                "serial:///dev/ttyUSB1?baud=3000000")

_SIMULATORS = ("verilator", "icarus")


def _serial_timeout_s(config, baud) -> float:
    # The longest exchange is a full frame each way at 10 bits per byte, plus margin for the
    # device's work and the OS's USB latency.
    frame_s = 2 * (config.max_payload + 8) * 10 / baud
    return 0.5 + 4 * frame_s


def connect(target="emu", *, config=None, timeout_s=None, retries=5, **options):
    """Connect to a Tessera device and return a :class:`Device`.

    Parameters
    ----------
    target : str
        ``"emu"`` (bit-exact NumPy emulator, in process), ``"sim"``, ``"sim:verilator"`` or
        ``"sim:icarus"`` (the RTL in a simulator), ``"sim:gates"`` (a board's bitstream
        netlist in a simulator, with ``board=``; :mod:`tessera.sim.gates`), or
        ``"serial://PORT?baud=N"`` (a board).
    config : AcceleratorConfig, optional
        The accelerator configuration (default ``AcceleratorConfig()``). For ``emu`` and ``sim``
        the device is built from it; a board must have been built from it (checked).
    timeout_s : float, optional
        Per-request response timeout (default: 1 s for emu, derived from the baud rate for
        serial, chosen by the simulation backend for sim).
    retries : int
        Resends of a request before :class:`DeviceTimeout` is raised.
    **options
        Passed to the backend: for ``sim``, ``waves="run.fst"`` (dump a waveform, ``.fst`` or
        ``.vcd``), ``progress=False`` (no build steps on stderr), ``work_dir`` and
        ``transport_wrapper`` (see :func:`tessera.sim.backend.connect_sim`); for ``sim:gates``,
        ``board="icebreaker"`` (required), ``simulator``, ``progress`` and ``work_dir``; for
        ``emu``, ``transport_wrapper`` (a callable wrapping the emulator's transport, e.g. a
        :class:`FaultyTransport` factory, for tests).
    """
    from tessera.spec import AcceleratorConfig
    if target == "sim:gates":
        # The board's netlist (tessera.sim.gates); its configuration defaults to the board's.
        from tessera.sim.gates import connect_gates
        if "board" not in options:
            raise TypeError("connect('sim:gates') needs board=, a board of "
                            "`tessera build --list-boards` (e.g. board='icebreaker')")
        return connect_gates(config, options.pop("simulator", None), timeout_s=timeout_s,
                             retries=retries, **options)
    config = config if config is not None else AcceleratorConfig()
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"config must be an AcceleratorConfig, not {type(config).__name__}")
    if not isinstance(target, str):
        raise TypeError(f"target must be a string such as 'emu', not {type(target).__name__}")
    if target == "emu":
        wrapper = options.pop("transport_wrapper", None)
        if options:
            raise TypeError(f"Unknown option(s) for the emulator: {', '.join(sorted(options))}")
        transport = EmulatorTransport(Emulator(config))
        if wrapper is not None:
            transport = wrapper(transport)
        return _open(transport, config, 1.0 if timeout_s is None else timeout_s, retries)
    if target == "sim" or target.startswith("sim:"):
        simulator = target[4:] or None
        if simulator is not None and simulator not in _SIMULATORS:
            raise ValueError(f"Unknown simulator {simulator!r} in target {target!r}; use "
                             f"'sim', 'sim:verilator' or 'sim:icarus' (a board's netlist: "
                             f"'sim:gates' with board=)")
        try:
            from tessera.sim.backend import connect_sim
        except ModuleNotFoundError as e:
            if e.name is None or not e.name.startswith("tessera.sim"):
                from tessera.install import install_hint
                raise LinkError(f"The RTL simulation needs {e.name}, which is not installed: "
                                f"{install_hint('sim')}") from None
            raise LinkError("This installation has no RTL simulation backend "
                            "(tessera.sim.backend); install tessera-fpga with the sim extra "
                            "from a full source checkout: pip install -e '.[sim]'") from None
        return connect_sim(config, simulator, timeout_s=timeout_s, retries=retries, **options)
    if target.startswith("serial:"):
        from .serial import SerialTransport, parse_serial_url
        if options:
            raise TypeError(f"Unknown option(s) for a serial target: "
                            f"{', '.join(sorted(options))}; put the baud rate in the URL")
        where = parse_serial_url(target)
        if timeout_s is None:
            timeout_s = _serial_timeout_s(config, where["baud"])
        return _open(SerialTransport(**where), config, timeout_s, retries)
    raise ValueError(f"Unknown target {target!r}; valid targets are " +
                     ", ".join(repr(t) for t in TARGET_FORMS))


def _open(transport, config, timeout_s, retries) -> Device:
    try:
        return Device(transport, config, timeout_s=timeout_s, retries=retries)
    except BaseException:
        transport.close()
        raise
