"""Command line: ``python -m realdata train|compare|presets ...`` (also under ``torchrun``).

Examples::

    python -m realdata train --preset mnist-vit --optimizer sngd --steps 500 -o runs/mnist-sngd
    python -m realdata compare --preset mnist-vit --steps 400 --seeds 0 1 2 -o runs/mnist
    torchrun --nproc_per_node 4 -m realdata compare --preset mnli-bert --data glue/MNLI -o runs/mnli
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict

from .train import OPTIMIZERS, PRESETS, compare, train


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", required=True, choices=sorted(PRESETS))
    p.add_argument("--data", default=None, help="dataset path (default: the preset's embedded data)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, default=None, help="number of optimizer steps")
    length.add_argument("--epochs", type=float, default=None, help="number of epochs")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--max-seq-len", type=int, default=None, help="BERT token limit (default 128)")
    p.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt")
    p.add_argument("--batch-size", type=int, default=None, help="override the preset's batch size")
    p.add_argument("--eta-max", type=float, default=None, help="override the SNGD/SPS cap")
    p.add_argument("--model-dir", default=None,
                   help="local Hugging Face BERT folder (default: the bundled MiniLM-L6)")
    p.add_argument("--embed-dim", type=int, default=None, help="ViT width (default 64)")
    p.add_argument("--depth", type=int, default=None, help="ViT depth (default 2)")
    p.add_argument("--eval-max", type=int, default=None, help="held-out examples to evaluate")
    p.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-o", "--out", required=True, help="output folder")


def _kwargs(args) -> dict:
    overrides = {k: v for k, v in (("embed_dim", args.embed_dim), ("depth", args.depth))
                 if v is not None}
    return dict(steps=args.steps, epochs=args.epochs, device=args.device, data=args.data,
                progress=not args.no_progress, resume=args.resume,
                checkpoint_every=args.checkpoint_every, max_seq_len=args.max_seq_len,
                batch_size=args.batch_size, eta_max=args.eta_max, model_dir=args.model_dir,
                model_overrides=overrides or None, eval_max=args.eval_max, amp=not args.no_amp)


def _setup_distributed(device: str) -> bool:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    import torch
    import torch.distributed as dist

    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m realdata", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train", help="train one preset with one optimizer")
    _common(p_train)
    p_train.add_argument("--optimizer", required=True, choices=OPTIMIZERS)
    p_train.add_argument("--seed", type=int, default=0)
    p_train.add_argument("--lr", type=float, default=None, help="override the preset's lr")
    p_cmp = sub.add_parser("compare", help="run several optimizers and write summary.csv")
    _common(p_cmp)
    p_cmp.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS), choices=OPTIMIZERS)
    p_cmp.add_argument("--seeds", nargs="+", type=int, default=[0])
    sub.add_parser("presets", help="print the presets' hyper-parameters")
    args = parser.parse_args(argv)

    if args.command == "presets":
        print(json.dumps({k: asdict(v) for k, v in PRESETS.items()}, indent=2))
        return 0
    distributed = _setup_distributed(args.device)
    try:
        if args.command == "train":
            result = train(args.preset, args.optimizer, args.out, seed=args.seed, lr=args.lr,
                           **_kwargs(args))
            results = [result]
        else:
            results = compare(args.preset, args.out, optimizers=args.optimizers,
                              seeds=args.seeds, **_kwargs(args))
        if int(os.environ.get("RANK", "0")) == 0:
            for r in results:
                flag = f"  DIVERGED at step {r.diverged_at}" if r.diverged_at is not None else ""
                print(f"{r.optimizer:>5} seed {r.seed}: {r.steps} steps, final train loss "
                      f"{r.final_train_loss:.4f}, held-out acc {r.heldout_acc:.4f}, "
                      f"{1000 * r.mean_step_time_s:.1f} ms/step{flag}")
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if distributed:
            import torch.distributed as dist

            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
