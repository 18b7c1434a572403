"""How to install Tessera's optional parts: the one place every install hint comes from.

The distribution is named ``tessera-fpga`` — ``tessera`` on the package index is an unrelated
project — while the import name stays ``tessera``. A hint names both ways to get an extra: from
the package index, and from a checkout of the repository (editable).
"""

from __future__ import annotations

__all__ = ["DISTRIBUTION", "install_hint", "MissingDependencyError"]

#: The name to give ``pip install`` (``[project] name`` in pyproject.toml).
DISTRIBUTION = "tessera-fpga"


def install_hint(extra: str) -> str:
    """Return the commands that install the optional dependencies ``extra`` (e.g. ``"sim"``).

    >>> install_hint("sim")
    "pip install 'tessera-fpga[sim]' (in a checkout: pip install -e '.[sim]')"
    """
    return f"pip install '{DISTRIBUTION}[{extra}]' (in a checkout: pip install -e '.[{extra}]')"


class MissingDependencyError(ImportError):
    """An optional package a feature needs is not installed; the message says how to get it.

    The command line reports it as a user error (one line, exit status 2).
    """
