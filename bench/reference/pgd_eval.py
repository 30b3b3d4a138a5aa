"""Run PGD-k with PyTorch on given weights, inputs and start noise (to compare freeadv's PGD against).

Inputs file (safetensors): "images" F32 [N,C,H,W] in [0,1], "labels" (any int or float dtype) [N],
"start" F32 [N,C,H,W] start perturbation (e.g. uniform in [-eps, eps]; zeros = no random start).
Output file (safetensors): "adv" F32 [N,C,H,W], "logits_clean"/"logits_adv" F32 [N,K],
"correct_clean"/"correct_adv" U8 [N]. --json additionally writes accuracies and per-example lists.
--make-inputs PATH writes an inputs file from the first --n Fashion-MNIST test images and exits.
"""
import argparse
import json

import torch

import data
import models
from attacks import pgd, uniform_start
from safetensors_io import load_into, load_safetensors, save_safetensors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="small-cnn", choices=list(models.MODELS))
    ap.add_argument("--weights")
    ap.add_argument("--inputs")
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--step-size", type=float, default=None, help="default 2.5*eps/steps")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", default=None, help="output safetensors")
    ap.add_argument("--json", default=None, help="output JSON")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--make-inputs", default=None)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    if a.make_inputs:
        x, y = data.load(data.FMNIST_DIR, train=False)
        start = uniform_start(x[:a.n].shape, a.eps, torch.Generator().manual_seed(a.seed))
        save_safetensors(a.make_inputs, {"images": x[:a.n], "labels": y[:a.n], "start": start},
                         {"eps": a.eps, "seed": a.seed})
        return

    model = load_into(models.build(a.model, 10), a.weights).eval()
    t = load_safetensors(a.inputs)
    x, y, start = t["images"].float(), t["labels"].long(), t["start"].float()
    alpha = a.step_size if a.step_size is not None else 2.5 * a.eps / a.steps
    adv = pgd(model, x, y, a.eps, alpha, a.steps, start)
    with torch.no_grad():
        lc, la = model(x), model(adv)
    cc, ca = (lc.argmax(1) == y), (la.argmax(1) == y)
    if a.out:
        save_safetensors(a.out, {"adv": adv, "logits_clean": lc, "logits_adv": la,
                                 "correct_clean": cc.to(torch.uint8), "correct_adv": ca.to(torch.uint8)},
                         {"model": a.model, "eps": a.eps, "step_size": alpha, "steps": a.steps})
    res = {"model": a.model, "eps": a.eps, "step_size": alpha, "steps": a.steps, "n": len(y),
           "clean_accuracy": cc.float().mean().item(), "robust_accuracy": ca.float().mean().item(),
           "max_linf": (adv - x).abs().max().item(),
           "correct_clean": cc.int().tolist(), "correct_adv": ca.int().tolist()}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f)
    print(json.dumps({k: v for k, v in res.items() if not k.startswith("correct_")}))


if __name__ == "__main__":
    main()
