"""Command line of the real-data experiments (also under torchrun).

examples:
  python -m realdata train --preset mnist-vit --optimizer sngd --steps 500 -o runs/mnist-sngd
  python -m realdata compare --preset mnist-vit --steps 400 --seeds 0 1 2 -o runs/mnist
  python -m realdata compare --preset mnist-vit --download --device cuda -o runs/mnist-full
  python -m realdata download mnli
  torchrun --nproc_per_node 4 -m realdata compare --preset mnli-bert --data glue/MNLI -o runs/mnli

Each subcommand has its own --help.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap

from .config import PRESETS, DeviceError
from .download import DATASETS, DownloadError, fetch
from .optim import SNGD_CAPS
from .registry import OPTIMIZER_REGISTRY
from .sweep import add_parser as add_sweep_parser
from .train import OPTIMIZERS, compare, train

__all__ = ["main", "build_parser"]


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions kept as written, every option followed by its default.

    Options whose default is None say in words what they default to; flags default to off.
    """

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", required=True, choices=sorted(PRESETS),
                   help="experiment: model, data and the paper's hyper-parameters")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--data", default=None,
                        help="dataset path (default: the preset's embedded or bundled data)")
    source.add_argument("--download", action="store_true",
                        help="fetch the preset's dataset (MNIST, CIFAR-10, MNLI, Civil Comments) "
                             "from its official source into the cache, checksum-verified")
    p.add_argument("--cache-dir", default=None,
                   help="download cache (default: $ATTNBIAS_CACHE or ~/.cache/attnbias)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, default=None,
                        help="number of optimizer steps (default: the preset's epochs)")
    length.add_argument("--epochs", type=float, default=None,
                        help="number of epochs (default: the preset's)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=None,
                   help="global batch size (default: the preset's)")
    p.add_argument("--eta-max", type=float, default=None,
                   help="cap of SNGD and SPS (default: the preset's)")
    p.add_argument("--sngd-cap", default="step_size", choices=SNGD_CAPS,
                   help="where SNGD's eta_max enters: step_size min(lr/|g|, eta_max); none "
                        "lr/|g|; step_length min(lr, eta_max)/|g|")
    p.add_argument("--sps-c", type=float, default=None,
                   help="SPS constant c (default: the preset's, 0.5)")
    p.add_argument("--embed-dim", type=int, default=None, help="ViT width (default: 64)")
    p.add_argument("--depth", type=int, default=None, help="ViT depth (default: 2)")
    p.add_argument("--model-dir", default=None,
                   help="local Hugging Face BERT folder (default: the bundled MiniLM-L6)")
    p.add_argument("--max-seq-len", type=int, default=None,
                   help="BERT token limit (default: the preset's, 128)")
    p.add_argument("--eval-max", type=int, default=None,
                   help="held-out examples evaluated (default: all)")
    p.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt")
    p.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-o", "--out", required=True, help="output folder")


def _settings(args) -> dict:
    overrides = {k: v for k, v in (("embed_dim", args.embed_dim), ("depth", args.depth))
                 if v is not None}
    data = args.data
    if args.download:
        name = PRESETS[args.preset].download
        if name is None:
            raise ValueError(f"preset {args.preset} has no download; it uses its bundled data "
                             "or --data")
        data = fetch(name, args.cache_dir, progress=not args.no_progress)
    return dict(steps=args.steps, epochs=args.epochs, device=args.device, data=data,
                progress=not args.no_progress, resume=args.resume,
                checkpoint_every=args.checkpoint_every, max_seq_len=args.max_seq_len,
                batch_size=args.batch_size, eta_max=args.eta_max, model_dir=args.model_dir,
                model_overrides=overrides or None, eval_max=args.eval_max, amp=not args.no_amp,
                sngd_cap=args.sngd_cap, sps_c=args.sps_c)


def _report(results) -> int:
    if int(os.environ.get("RANK", "0")) == 0:
        for r in results:
            flag = f"  DIVERGED at step {r.diverged_at}" if r.diverged_at is not None else ""
            print(f"{r.optimizer:>5} seed {r.seed}: {r.steps} steps, final train loss "
                  f"{r.final_train_loss:.4f}, held-out acc {r.heldout_acc:.4f}, "
                  f"{1000 * r.mean_step_time_s:.1f} ms/step{flag}")
    return 0


def _train(args) -> int:
    settings = _settings(args)
    return _report([train(args.preset, args.optimizer, args.out, seed=args.seed, lr=args.lr,
                          **settings)])


def _compare(args) -> int:
    return _report(compare(args.preset, args.out, optimizers=args.optimizers, seeds=args.seeds,
                           **_settings(args)))


def _presets(args) -> int:
    print(json.dumps({k: v.describe() for k, v in PRESETS.items()}, indent=2))
    return 0


def _download(args) -> int:
    for name in args.names:
        print(f"{name}: {fetch(name, args.cache_dir, progress=True)}")
    return 0


def _describe(text: str) -> str:
    return textwrap.fill(text, width=78)


def build_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """The parser and its subparsers object (``add_parser(sub)`` adds a subcommand).

    Each subcommand sets ``func``, a callable ``func(args) -> int`` that :func:`main` runs.
    """
    parser = argparse.ArgumentParser(prog="python -m realdata", description=__doc__,
                                     formatter_class=_Formatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("train", help="train one preset with one optimizer",
                       description=_describe(
                           "Train one preset with one optimizer; writes config.json, "
                           "metrics.csv, eval.csv, checkpoint.pt and result.json into the "
                           "output folder."), formatter_class=_Formatter)
    _common(p)
    p.add_argument("--optimizer", required=True, choices=tuple(OPTIMIZER_REGISTRY),
                   help="optimizer")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the initial model, data order and dropout")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (SNGD: step length; default: the preset's)")
    p.set_defaults(func=_train)
    p = sub.add_parser("compare", help="run several optimizers and seeds, write summary.csv",
                       description=_describe(
                           "Run several optimizers (and seeds) on one preset at the paper's "
                           "settings: one run folder each (OUT/<optimizer> or "
                           "OUT/<optimizer>-seed<k>) and OUT/summary.csv with one row per run. "
                           "Runs of one seed start from the same model and see the same "
                           "batches."), formatter_class=_Formatter)
    _common(p)
    p.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS),
                   choices=tuple(OPTIMIZER_REGISTRY), help="optimizers to run")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds to run")
    p.set_defaults(func=_compare)
    add_sweep_parser(sub)
    p = sub.add_parser("presets", help="print the presets' hyper-parameters",
                       description=_describe("Print every preset's hyper-parameters as JSON."),
                       formatter_class=_Formatter)
    p.set_defaults(func=_presets)
    p = sub.add_parser("download", help="fetch datasets into the cache",
                       description=_describe(
                           "Fetch datasets from their official sources into the cache, "
                           "checksum-verified; prints the folder to pass as --data."),
                       formatter_class=_Formatter)
    p.add_argument("names", nargs="+", choices=sorted(DATASETS), help="datasets")
    p.add_argument("--cache-dir", default=None,
                   help="cache folder (default: $ATTNBIAS_CACHE or ~/.cache/attnbias)")
    p.set_defaults(func=_download)
    return parser, sub


def _setup_distributed(device: str) -> bool:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    import torch
    import torch.distributed as dist

    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return True


def main(argv=None) -> int:
    """Run the command line; returns the exit status (2 with one ``error:`` line on bad input)."""
    parser, _ = build_parser()
    args = parser.parse_args(argv)
    distributed = _setup_distributed(getattr(args, "device", "cpu"))
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, DeviceError, DownloadError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if distributed:
            import torch.distributed as dist

            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
