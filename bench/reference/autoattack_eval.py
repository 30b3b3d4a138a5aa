"""AutoAttack's standard ensemble in plain PyTorch on given weights and test images: the twin of
`freeadv eval --attacks autoattack` for the speed row of `npm run bench` and for accuracy comparisons.

APGD-CE, APGD-T (9 targets), FAB-T (9 targets), Square (5,000 queries) in turn, each on the examples still
robust, each after torch.manual_seed(0) as freeadv's ensemble seeds its stages. Prints one JSON line: clean and
robust accuracy after each stage, and the seconds the attacks took.

  python3 autoattack_eval.py --weights W.safetensors --model small-cnn --n 200 --eps 0.1 [--threads 2]
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

import data
import models
from autoattack import apgd, apgd_t, fab_t, square, run_on_robust
from safetensors_io import load_into


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="small-cnn", choices=list(models.MODELS))
    ap.add_argument("--weights", required=True)
    ap.add_argument("--data-dir", default=data.FMNIST_DIR)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--norm", default="linf", choices=["linf", "l2"])
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    x, y = data.load(a.data_dir, train=False)
    x, y = x[: a.n].float(), y[: a.n].long()
    model = load_into(models.build(a.model, 10), a.weights).eval()

    def ce(logits, yy):
        return F.cross_entropy(logits, yy, reduction="none")

    stages = [
        ("apgd-ce", lambda xs, ys: run_on_robust(model, xs, ys, lambda u, v, _: apgd(model, u, v, ce, a.eps, a.norm, 100), [0])),
        ("apgd-t", lambda xs, ys: apgd_t(model, xs, ys, a.eps, a.norm)),
        ("fab-t", lambda xs, ys: fab_t(model, xs, ys, a.eps, a.norm)),
        ("square", lambda xs, ys: square(model, xs, ys, a.eps, a.norm)),
    ]
    with torch.no_grad():
        robust = model(x).argmax(1) == y
    clean = robust.float().mean().item()
    after = {}
    t0 = time.perf_counter()
    for name, run in stages:
        idx = robust.nonzero().flatten()
        if idx.numel():
            torch.manual_seed(0)
            adv = run(x[idx], y[idx])
            with torch.no_grad():
                fooled = model(adv).argmax(1) != y[idx]
            robust[idx[fooled]] = False
        after[name] = robust.float().mean().item()
    print(json.dumps({"clean_accuracy": clean, "stages": after, "robust_accuracy": after["square"], "n": len(y), "seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
