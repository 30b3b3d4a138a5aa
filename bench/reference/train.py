"""Reference training: natural | free (Shafahi et al. 2019) | pgd (Madry et al.) | fgsm (Wong et al. 2020)."""
import argparse
import json
import math
import os
import resource
import time

import torch
import torch.nn.functional as F

import data
import models
from attacks import pgd, uniform_start
from safetensors_io import save_safetensors


def lr_at(step, total, base, schedule):
    """LR for 0-indexed SGD step `step` of `total` (set before the step)."""
    p = step / total
    if schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * p))
    if schedule == "multistep":
        return base * (0.1 if p >= 0.5 else 1.0) * (0.1 if p >= 0.75 else 1.0)
    if schedule == "cyclic":  # one cycle: 0 -> base at 40%, -> 0 at 100%
        return base * (p / 0.4 if p < 0.4 else (1 - p) / 0.6)
    raise ValueError(schedule)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", choices=["natural", "free", "pgd", "fgsm"], default="free")
    ap.add_argument("--model", default="small-cnn", choices=list(models.MODELS))
    ap.add_argument("--data-dir", default=data.FMNIST_DIR)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--replays", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--lr-schedule", choices=["cosine", "multistep", "cyclic"], default="cosine")
    ap.add_argument("--attack-steps", type=int, default=7)
    ap.add_argument("--step-size", type=float, default=None,
                    help="training attack step; default eps (free), 2.5*eps/k (pgd), 1.25*eps (fgsm)")
    ap.add_argument("--augment", action="store_true", help="CIFAR pad-4 random crop + horizontal flip")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-steps", type=int, default=None, help="stop after this many SGD steps")
    ap.add_argument("--eval-limit", type=int, default=None, help="evaluate on the first N test images")
    ap.add_argument("--eval-batch-size", type=int, default=500)
    ap.add_argument("--out", default=None)
    ap.add_argument("--save-weights", default=None)
    ap.add_argument("--checkpoint", default=None,
                    help="file written at the end of every pass; a run started with it present continues from it")
    ap.add_argument("--stop-after-passes", type=int, default=None,
                    help="(to test resuming) exit with status 3 after this many passes of this invocation")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xtr, ytr = data.load(a.data_dir, train=True)
    xte, yte = data.load(a.data_dir, train=False)
    if a.eval_limit:
        xte, yte = xte[:a.eval_limit], yte[:a.eval_limit]
    model = models.build(a.model, 10)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum, weight_decay=a.weight_decay)

    m = a.replays if a.method == "free" else 1
    passes = math.ceil(a.epochs / m) if a.method == "free" else a.epochs
    n_batches = math.ceil(xtr.shape[0] / a.batch_size)
    total = passes * n_batches * m
    if a.max_steps:
        total = min(total, a.max_steps)  # the schedule runs to completion over the truncated run
    k = a.attack_steps
    step_size = a.step_size or {"free": a.eps, "pgd": 2.5 * a.eps / k, "fgsm": 1.25 * a.eps, "natural": 0.0}[a.method]
    backward_per_step = {"natural": 1, "free": 1, "pgd": k + 1, "fgsm": 2}[a.method]

    def sgd_step(x, y):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    model.train()
    aug_gen = torch.Generator().manual_seed(a.seed + 777)
    delta = torch.zeros(a.batch_size, *xtr.shape[1:])  # free: persistent perturbation, starts at 0
    step, images, first_pass, seconds_before = 0, 0, 0, 0.0
    # what the run's result depends on: a checkpoint written under other settings is refused
    run_config = {k: v for k, v in vars(a).items() if k not in ("out", "save_weights", "checkpoint", "stop_after_passes")}
    if a.checkpoint and os.path.exists(a.checkpoint):
        ck = torch.load(a.checkpoint)
        if ck["config"] != run_config:
            diff = sorted(k for k in run_config.keys() | ck["config"].keys() if run_config.get(k) != ck["config"].get(k))
            raise SystemExit(f"--checkpoint {a.checkpoint}: written by a run with other settings ({', '.join(diff)})")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        delta.copy_(ck["delta"])
        torch.set_rng_state(ck["rng"])
        aug_gen.set_state(ck["aug_rng"])
        step, images, first_pass, seconds_before = ck["step"], ck["images"], ck["next_pass"], ck["train_seconds"]
    t0 = time.perf_counter()
    for p in range(first_pass, passes):
        for x, y in data.batches(xtr, ytr, a.batch_size, a.seed, p):
            if step >= total:
                break
            if a.augment:
                x = data.pad_crop_flip(x, aug_gen)
            n = x.shape[0]
            for _ in range(m):
                if step >= total:
                    break
                for g in opt.param_groups:
                    g["lr"] = lr_at(step, total, a.lr, a.lr_schedule)
                if a.method == "natural":
                    sgd_step(x, y)
                elif a.method == "free":
                    # gradient w.r.t. the model input clip(x + delta) (Algorithm 1's grad_x), not through the clip
                    x_adv = torch.clamp(x + delta[:n], 0, 1).requires_grad_(True)
                    loss = F.cross_entropy(model(x_adv), y)
                    opt.zero_grad()
                    loss.backward()  # one backward: parameter grads and input grad
                    delta[:n] = (delta[:n] + step_size * x_adv.grad.sign()).clamp(-a.eps, a.eps)
                    opt.step()
                elif a.method == "pgd":  # model stays in train mode during the attack (official code)
                    x_adv = x + uniform_start(x.shape, a.eps)
                    x_adv = torch.min(torch.max(x_adv, x - a.eps), x + a.eps).clamp(0, 1)
                    for _ in range(k):
                        x_adv.requires_grad_(True)
                        (g,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
                        x_adv = torch.min(torch.max(x_adv.detach() + step_size * g.sign(), x - a.eps), x + a.eps).clamp(0, 1)
                    sgd_step(x_adv, y)
                elif a.method == "fgsm":  # Wong et al.: random start, one 1.25*eps step
                    d = uniform_start(x.shape, a.eps)
                    d = (torch.clamp(x + d, 0, 1) - x).requires_grad_(True)
                    (g,) = torch.autograd.grad(F.cross_entropy(model(x + d), y), d)
                    d = (d.detach() + step_size * g.sign()).clamp(-a.eps, a.eps)
                    d = torch.clamp(x + d, 0, 1) - x
                    sgd_step(x + d, y)
                step += 1
                images += n
        if a.checkpoint:  # everything the rest of the run depends on, written atomically
            torch.save({"config": run_config, "model": model.state_dict(), "opt": opt.state_dict(), "delta": delta, "rng": torch.get_rng_state(),
                        "aug_rng": aug_gen.get_state(), "step": step, "images": images, "next_pass": p + 1,
                        "train_seconds": seconds_before + time.perf_counter() - t0}, a.checkpoint + ".tmp")
            os.replace(a.checkpoint + ".tmp", a.checkpoint)
        if a.stop_after_passes and p + 1 - first_pass >= a.stop_after_passes and p + 1 < passes:
            raise SystemExit(3)
    train_seconds = seconds_before + time.perf_counter() - t0

    model.eval()
    gen = torch.Generator().manual_seed(a.seed + 12345)
    clean = robust = 0
    t1 = time.perf_counter()
    for x, y in data.batches(xte, yte, a.eval_batch_size, 0, 0, shuffle=False):
        with torch.no_grad():
            clean += (model(x).argmax(1) == y).sum().item()
        x_adv = pgd(model, x, y, a.eps, 2.5 * a.eps / 20, 20, uniform_start(x.shape, a.eps, gen))
        with torch.no_grad():
            robust += (model(x_adv).argmax(1) == y).sum().item()
    eval_seconds = time.perf_counter() - t1

    res = {
        "method": a.method, "model": a.model, "replays": m, "eps": a.eps, "epochs": a.epochs,
        "passes": passes, "sgd_steps": step, "backward_passes": step * backward_per_step,
        "train_seconds": round(train_seconds, 3), "eval_seconds": round(eval_seconds, 3),
        "eval_images": xte.shape[0],
        "clean_accuracy": clean / xte.shape[0], "robust_accuracy": {"pgd-20": robust / xte.shape[0]},
        "images_per_second": round(images / train_seconds, 1),  # images through SGD steps (replays counted)
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": a.threads, "seed": a.seed, "torch": torch.__version__,
    }
    print(json.dumps(res, indent=2))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=2)
    if a.save_weights:
        save_safetensors(a.save_weights, model.state_dict(),
                         {"model": a.model, "method": a.method, "eps": a.eps, "replays": m})


if __name__ == "__main__":
    main()
