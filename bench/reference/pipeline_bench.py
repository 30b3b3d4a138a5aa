"""The PyTorch twin of bench/pipeline-worker.ts: an epoch of torchvision ImageFolder + DataLoader training
batches (RandomResizedCrop(size) + RandomHorizontalFlip + ToTensor, PIL decoding, num_workers worker
processes, shuffled, batch 64), timed in the main process. CPU time: this process and its workers (reaped at
the end of the epoch). Prints one JSON line."""
import argparse
import json
import os
import resource
import time

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms


def cpu_seconds():
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def running_cpu_seconds(it):
    """This process and its running (not yet reaped) DataLoader workers, from /proc."""
    total = cpu_seconds()
    tick = os.sysconf("SC_CLK_TCK")
    for w in getattr(it, "_workers", []):
        with open(f"/proc/{w.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prefetch", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    tf = transforms.Compose([transforms.RandomResizedCrop(a.size), transforms.RandomHorizontalFlip(), transforms.ToTensor()])
    ds = datasets.ImageFolder(a.dir, transform=tf)
    extra = {"prefetch_factor": a.prefetch} if a.workers > 0 else {}
    loader = DataLoader(ds, batch_size=a.batch, shuffle=True, num_workers=a.workers, **extra)
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    images = first = 0
    first_at = None
    cpu_first = 0.0
    it = iter(loader)
    for x, y in it:
        assert x.dtype == torch.float32 and x.shape[1:] == (3, a.size, a.size)
        images += x.shape[0]
        if first_at is None:
            first_at = time.perf_counter()
            cpu_first = running_cpu_seconds(it) - cpu0
            first = x.shape[0]
    t1 = time.perf_counter()
    del it, loader  # the epoch's iterator has joined its workers; their CPU time is in RUSAGE_CHILDREN
    cpu = cpu_seconds() - cpu0
    print(json.dumps({
        "images": images, "workers": a.workers,
        "seconds": t1 - t0,
        "first_batch_ms": (first_at - t0) * 1000,
        "images_per_second": images / (t1 - t0),
        "steady_images_per_second": (images - first) / (t1 - first_at),
        "cpu_ms_per_image": cpu * 1000 / images,
        "steady_cpu_ms_per_image": (cpu - cpu_first) * 1000 / (images - first),
    }))


if __name__ == "__main__":
    main()
