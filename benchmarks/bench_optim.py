"""Time per training step of the ViT preset (mnist-vit) with SGD, SNGD and SPS.

The three optimizers run in interleaved rounds in the same process, on the same batches of the
embedded MNIST data, so machine load affects them alike; the ratios against SGD are the result.
A step is forward + backward + update (bf16 autocast on CUDA, as in training); the update alone
is timed too. On a GPU the adaptive optimizers should stay within 10 % of SGD.

    python benchmarks/bench_optim.py [--device auto|cpu|cuda] [--steps 20] [--rounds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
import torch.nn.functional as F

from realdata.config import PRESETS, RunConfig
from realdata.data import embedded_mnist
from realdata.models import ViT
from realdata.registry import get_optimizer_spec

NAMES = ("sgd", "sngd", "sps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per optimizer and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    dev = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and
                                                             torch.cuda.is_available()) else "cpu")
    spec = PRESETS["mnist-vit"]
    bundle = embedded_mnist()
    images = bundle.train.inputs.to(dev).float().div_(255.0)
    images = (images - images.mean()) / images.std()
    labels = bundle.train.labels.to(dev)
    batch = spec.batch_size
    n_batches = len(labels) // batch
    amp = (torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda"
           else contextlib.nullcontext())

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    runs = {}
    for name in NAMES:
        torch.manual_seed(0)
        model = ViT(**spec.model).to(dev)
        params = list(model.parameters())
        # The optimizers as training builds them: registry factory, the preset's hyper-parameters.
        opt_spec = get_optimizer_spec(name)
        opt = opt_spec.factory(params, RunConfig("mnist-vit", name, "bench").hyper())
        runs[name] = dict(model=model, opt=opt, needs_loss=opt_spec.needs_loss, pos=0, step=[],
                          update=[])

    def one_step(run, record):
        k = run["pos"] % n_batches
        run["pos"] += 1
        x, y = images[k * batch:(k + 1) * batch], labels[k * batch:(k + 1) * batch]
        sync()
        t0 = time.perf_counter()
        with amp:
            loss = F.cross_entropy(run["model"](x).float(), y)
        run["opt"].zero_grad(set_to_none=True)
        loss.backward()
        sync()
        t1 = time.perf_counter()
        run["opt"].step(loss=loss.detach()) if run["needs_loss"] else run["opt"].step()
        sync()
        t2 = time.perf_counter()
        if record:
            run["step"].append(t2 - t0)
            run["update"].append(t2 - t1)

    for run in runs.values():  # warm-up (allocator, kernels)
        for _ in range(3):
            one_step(run, record=False)
    for _ in range(args.rounds):
        for run in runs.values():
            for _ in range(args.steps):
                one_step(run, record=True)

    print(f"ViT preset (patch 4, depth 2, 8 heads, MLP 128, width 64), batch {batch}, "
          f"device {dev}{' (' + torch.cuda.get_device_name(dev) + ')' if dev.type == 'cuda' else ''}, "
          f"{args.rounds} x {args.steps} steps each")
    base_step = statistics.median(runs["sgd"]["step"])
    base_upd = statistics.median(runs["sgd"]["update"])
    print(f"{'optimizer':>9} {'step ms':>9} {'ratio':>7} {'update ms':>10} {'ratio':>7} "
          f"{'extra update / SGD step':>24}")
    for name, run in runs.items():
        s, u = statistics.median(run["step"]), statistics.median(run["update"])
        # Forward and backward do not depend on the optimizer: the update's extra time over
        # SGD's, relative to SGD's whole step, is the overhead free of load noise.
        print(f"{name:>9} {1e3 * s:9.3f} {s / base_step:7.3f} {1e3 * u:10.4f} {u / base_upd:7.2f} "
              f"{100 * (u - base_upd) / base_step:23.2f}%")

if __name__ == "__main__":
    main()
