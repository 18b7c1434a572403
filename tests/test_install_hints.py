"""Install hints name the distribution that exists: ``tessera-fpga``, not PyPI's unrelated
``tessera``, and each extra they name is one pyproject.toml defines.
"""

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

import tessera.cli.compile
import tessera.cli.options
import tessera.cli.quantize
import tessera.install
import tessera.numpy_files
import tessera.quantize.errors
from tessera.install import DISTRIBUTION, MissingDependencyError, install_hint

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_distribution_name_is_the_one_hints_give():
    assert PYPROJECT["project"]["name"] == DISTRIBUTION == "tessera-fpga"
    assert install_hint("sim") == ("pip install 'tessera-fpga[sim]' (in a checkout: pip install "
                                   "-e '.[sim]')")
    assert issubclass(MissingDependencyError, ImportError)


def test_extras_refer_to_themselves_by_the_distribution_name():
    extras = PYPROJECT["project"]["optional-dependencies"]
    for name, requirements in extras.items():
        for requirement in requirements:
            match = re.match(r"([A-Za-z0-9_.-]+)\[([^\]]+)\]", requirement)
            if match and match.group(1).lower().startswith("tessera"):
                assert match.group(1) == DISTRIBUTION, (name, requirement)
                assert set(match.group(2).split(",")) <= set(extras), (name, requirement)


def _tracked_text_files():
    out = subprocess.run(["git", "ls-files", "src", "hw", "sim", "examples", "docs", "bench",
                          "README.md", "Makefile", "pyproject.toml"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / p for p in out if p.endswith((".py", ".md", ".toml")) or p == "Makefile"]


def test_no_hint_names_the_wrong_package():
    files = _tracked_text_files()
    assert len(files) > 50
    wrong = []
    extras = set(PYPROJECT["project"]["optional-dependencies"])
    for path in files:
        text = path.read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), 1):
            # "tessera[sim]" without "-fpga" installs PyPI's unrelated package.
            if re.search(r"(?<![\w-])tessera\[", line):
                wrong.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
            for extra in re.findall(r"tessera-fpga\[([\w,]+)\]", line):
                if not set(extra.split(",")) <= extras:
                    wrong.append(f"{path.relative_to(ROOT)}:{number}: unknown extra {extra}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("module", [tessera.install, tessera.quantize.errors,
                                    tessera.cli.options, tessera.cli.quantize, tessera.numpy_files,
                                    tessera.cli.compile])
def test_all_names_resolve(module):
    assert len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        assert getattr(module, name) is not None
