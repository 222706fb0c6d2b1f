"""The README's non-doctest Python example (use 3, a rate test) runs and asserts what it says."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _rate_example():
    text = (ROOT / "README.md").read_text()
    section = text.split("### 3. Assert a rate in your own test", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_rate_example_passes():
    namespace = {}
    exec(compile(_rate_example(), "README.md", "exec"), namespace)
    namespace["test_ngd_excess_loss_rate"]()


def test_readme_rate_example_catches_a_one_percent_error():
    law = "dataclasses.replace(pred.excess, rate=1.01 * pred.excess.rate)"
    source = _rate_example().replace("**pred.excess,", f"**{law},")
    assert law in source
    namespace = {}
    exec(compile("import dataclasses\n" + source, "README.md", "exec"), namespace)
    with pytest.raises(AssertionError):
        namespace["test_ngd_excess_loss_rate"]()
