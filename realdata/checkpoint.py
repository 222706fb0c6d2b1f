"""Checkpoints of a run: written atomically, checked against the run's settings on resume.

A checkpoint holds the step, model and optimizer state, every process's RNG state, the timing
sums and a fingerprint of the settings that define the run; resuming with other settings is
refused. A process killed while writing leaves a hidden temporary beside the checkpoint;
:func:`remove_stale_files` deletes those of dead processes when the run is resumed.
"""

from __future__ import annotations

from pathlib import Path

import torch

from theory.atomic import atomic_path, remove_stale_temporaries

__all__ = ["CHECKPOINT", "RUN_FILES", "fingerprint", "save_checkpoint", "load_checkpoint",
           "remove_stale_files"]

CHECKPOINT = "checkpoint.pt"
# Every file a run writes (their stale temporaries are removed on resume).
RUN_FILES = ("config.json", "metrics.csv", "eval.csv", CHECKPOINT, "result.json")
_FINGERPRINT_KEYS = ("preset", "optimizer", "seed", "lr", "eta_max", "sps_c", "sngd_cap",
                     "batch_size", "dataset", "n_train", "model_config", "max_seq_len",
                     "world_size")


def fingerprint(config: dict) -> dict:
    """The settings of ``config`` (a run's ``config.json``) that a resumed run must share."""
    out = {k: config.get(k) for k in _FINGERPRINT_KEYS}
    # The BERT folder may move (another virtual environment): its contents identify the run.
    out["model_config"] = {k: v for k, v in (out["model_config"] or {}).items() if k != "model_dir"}
    return out


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (a reader never sees half a checkpoint)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, config: dict) -> dict:
    """The checkpoint at ``path`` after checking it belongs to the run described by ``config``.

    Raises
    ------
    ValueError
        If the checkpoint's settings differ from ``config``'s (the differences are listed).
    """
    # On the CPU: RNG states must stay CPU tensors; load_state_dict moves the rest.
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    old, new = ckpt["fingerprint"], fingerprint(config)
    # Records written before SNGD had cap options used the step-size cap.
    if old.get("optimizer") == "sngd" and "sngd_cap" not in old:
        old = {**old, "sngd_cap": "step_size"}
    diff = {k: (old.get(k), new[k]) for k in new if old.get(k) != new[k]}
    if diff:
        raise ValueError(f"{path} belongs to a different run; differing settings "
                         f"(checkpoint, now): {diff}")
    return ckpt


def remove_stale_files(run_dir: Path) -> list[Path]:
    """Remove the temporaries that killed writers left beside the run's files."""
    removed = []
    for name in RUN_FILES:
        removed += remove_stale_temporaries(Path(run_dir) / name)
    return removed
