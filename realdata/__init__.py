"""Real-data transformer experiments: SNGD and SPS against SGD and Adam (docs/theory.md §4).

Modules: :mod:`realdata.optim` (the optimizers), :mod:`realdata.registry` (optimizer registry
and plot styles), :mod:`realdata.models` (ViT, BERT), :mod:`realdata.data` (offline loaders,
embedded stand-ins), :mod:`realdata.download` (the paper's datasets, checksum-verified),
:mod:`realdata.config` (presets, :class:`RunConfig`), :mod:`realdata.train` (:func:`train`,
:func:`compare`; ``python -m realdata``) with the loop, checkpoints, records and evaluation in
:mod:`realdata.loop`, :mod:`realdata.checkpoint`, :mod:`realdata.records`,
:mod:`realdata.evaluate`.
"""

from .optim import SNGD, SPS, global_grad_norm
from .registry import OPTIMIZER_REGISTRY, OptimizerSpec, register_optimizer, run_label
from .train import OPTIMIZERS, PRESETS, RunConfig, RunResult, compare, read_metrics, train

__all__ = ["SNGD", "SPS", "global_grad_norm", "OPTIMIZERS", "OPTIMIZER_REGISTRY",
           "OptimizerSpec", "register_optimizer", "run_label", "PRESETS", "RunConfig",
           "RunResult", "compare", "read_metrics", "train"]
