"""PGD L-inf attack shared by train.py (final evaluation) and pgd_eval.py."""
import torch
import torch.nn.functional as F


def pgd(model, x, y, eps, alpha, steps, start):
    """PGD-k from x + start (start: a perturbation, e.g. uniform in [-eps, eps]).

    Per step: x_adv <- clip_[0,1]( clip_[x-eps, x+eps]( x_adv + alpha * sign(grad_x CE_sum) ) ).
    The start point is projected the same way. Summed CE so each example's gradient is independent
    of batch size (sign is unchanged vs. mean). Does not change model.train()/eval() mode.
    """
    lo, hi = x - eps, x + eps
    x_adv = torch.min(torch.max(x + start, lo), hi).clamp(0, 1).detach()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, x_adv)
        x_adv = torch.min(torch.max(x_adv.detach() + alpha * g.sign(), lo), hi).clamp(0, 1)
    return x_adv.detach()


def uniform_start(shape, eps, generator=None):
    return (torch.rand(shape, generator=generator) * 2 - 1) * eps
