"""Time one training step on random data: free (fwd, bwd, SGD-momentum step, delta update) or natural.

--kind natural,free interleaves the kinds step by step in one process and reports each kind's median step
time (ms_median), as bench/step-worker.ts does."""
import argparse
import json
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

import models


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="small-cnn", choices=list(models.MODELS))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--input-shape", default=None, help="C,H,W (default: the model's)")
    ap.add_argument("--kind", default="free", help="free, natural or a comma list (interleaved)")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--amp", default="none", choices=["none", "bf16"], help="bf16: forward and loss under autocast on the device")
    ap.add_argument("--eps", type=float, default=8 / 255)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    shape = tuple(int(s) for s in a.input_shape.split(",")) if a.input_shape else models.INPUT_SHAPE[a.model]
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = models.build(a.model, 10).to(dev).to(memory_format=fmt).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(a.batch, *shape).to(dev).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (a.batch,)).to(dev)
    delta = torch.zeros_like(x)

    kinds = a.kind.split(",")
    for k in kinds:
        if k not in ("free", "natural"):
            ap.error(f"--kind: {k} is not free or natural")

    def step(kind):
        nonlocal delta
        if kind == "free":
            inp = torch.clamp(x + delta, 0, 1).requires_grad_(True)
        else:
            inp = x
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.amp == "bf16"):
            loss = F.cross_entropy(model(inp), y)
        opt.zero_grad()
        loss.backward()
        if kind == "free":
            delta = (delta + a.eps * inp.grad.sign()).clamp(-a.eps, a.eps)
        opt.step()
        sync()

    for _ in range(a.warmup):
        for k in kinds:
            step(k)
    times = {k: [] for k in kinds}
    cpu = {k: [] for k in kinds}  # CPU time of the process per step (all threads), as step-worker.ts
    t0 = time.perf_counter()
    for _ in range(a.steps):
        for k in kinds:
            s0, c0 = time.perf_counter(), time.process_time()
            step(k)
            times[k].append(time.perf_counter() - s0)
            cpu[k].append(time.process_time() - c0)
    dt = (time.perf_counter() - t0) / a.steps / len(kinds)
    if os.environ.get("STEP_TIMES"):  # every step's wall and CPU time on stderr, as step-worker.ts
        print(json.dumps({**{k: [round(t * 1000) for t in v] for k, v in times.items()},
                          "cpu": {k: [round(t * 1000) for t in v] for k, v in cpu.items()}}), file=sys.stderr)
    print(json.dumps({
        "model": a.model, "kind": a.kind, "device": a.device, "batch": a.batch, "threads": a.threads,
        "input_shape": list(shape), "channels_last": a.channels_last, "amp": a.amp, "steps": a.steps,
        "images_per_second": round(a.batch / dt, 1), "ms_per_step": round(dt * 1000, 3),
        "ms_median": {k: round(sorted(v)[len(v) // 2] * 1000, 3) for k, v in times.items()},
        "cpu_ms_median": {k: round(sorted(v)[len(v) // 2] * 1000, 3) for k, v in cpu.items()},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
