"""Real-data transformer experiments: SNGD and SPS against SGD and Adam (SPEC section 4).

Modules: :mod:`realdata.optim` (the optimizers), :mod:`realdata.models` (ViT, BERT),
:mod:`realdata.data` (offline loaders, embedded stand-ins), :mod:`realdata.train` (presets,
training loop, comparisons; ``python -m realdata``).
"""

from .optim import SNGD, SPS, global_grad_norm
from .train import OPTIMIZERS, PRESETS, RunResult, compare, read_metrics

__all__ = ["SNGD", "SPS", "global_grad_norm", "OPTIMIZERS", "PRESETS", "RunResult", "compare",
           "read_metrics"]
