"""AutoAttack's other "standard" attacks in plain PyTorch: APGD-T, FAB-T and Square (L-inf and L2).

The PyTorch twin of freeadv's src/attacks/{apgd,apgd-t,fab,square}.ts, written from the papers (Croce & Hein,
ICML 2020 x2; Andriushchenko et al., ECCV 2020) with the same settings and the same choices where the
algorithms leave room (start points, per-image squares, the fooled-within-eps rule of FAB), so that robust
accuracies can be compared on the same weights. Both sides draw from libtorch's CPU generator with the same
shapes in the same order, so after the same torch.manual_seed the random starts and squares coincide draw for
draw (Debian's PyTorch and freeadv's addon share libtorch 1.13); nothing here relies on that beyond
reproducibility. One difference in method is deliberate: the FAB projection here is a bisection on the
multiplier instead of freeadv's sort-and-solve, so the two check each other.

Every attack returns adversarial images in the eps-ball and [0, 1] and does not change model.train()/eval().
"""
import math

import torch
import torch.nn.functional as F


# ----------------------------------------------------------------------------------------------- helpers
def lp(d, norm):
    """Per-example norm of a perturbation batch."""
    d = d.flatten(1)
    return d.abs().amax(1) if norm == "linf" else d.norm(dim=1)


def bcast(v, like):
    return v.view(-1, *([1] * (like.dim() - 1)))


def project(z, x, eps, norm):
    """Onto the eps-ball around x, then [0, 1]."""
    if norm == "linf":
        z = torch.max(torch.min(z, x + eps), x - eps)
    else:
        d = z - x
        n = lp(d, "l2").clamp_min(1e-12)
        z = x + d * bcast(torch.clamp(eps / n, max=1.0), d)
    return z.clamp(0, 1)


def sphere_point(x, eps, norm):
    u = torch.rand_like(x) * 2 - 1 if norm == "linf" else torch.randn_like(x)
    return (x + eps * u / (bcast(lp(u, norm), u) + 1e-12)).clamp(0, 1)


def margin_loss(logits, y):
    """z_y - max_{j != y} z_j."""
    zy = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], -float("inf")).amax(1)
    return zy - other


def dlr_targeted(logits, y, t):
    s = logits.sort(1, descending=True).values
    zy = logits.gather(1, y[:, None]).squeeze(1)
    zt = logits.gather(1, t[:, None]).squeeze(1)
    return -(zy - zt) / (s[:, 0] - 0.5 * (s[:, 2] + s[:, 3]) + 1e-12)


def nth_other_class(logits, y, i):
    """The i-th largest non-true logit's class (i = 1: runner-up)."""
    return logits.scatter(1, y[:, None], -float("inf")).sort(1, descending=True).indices[:, i - 1]


def run_on_robust(model, x, y, attack, stages, fallback_first=True):
    """AutoAttack's outer loop: each stage attacks the examples still classified correctly."""
    with torch.no_grad():
        robust = model(x).argmax(1) == y
    adv = x.clone()
    for k, stage in enumerate(stages):
        idx = robust.nonzero().flatten()
        if idx.numel() == 0:
            break
        a, fooled = attack(x[idx], y[idx], stage)
        if fallback_first and k == 0:
            adv[idx] = a
        else:
            adv[idx[fooled]] = a[fooled]
        robust[idx[fooled]] = False
    return adv


# ----------------------------------------------------------------------------------------------- APGD
def apgd(model, x, y, loss_fn, eps, norm="linf", n_iter=100, rho=0.75):
    """One APGD run maximising loss_fn(logits, y); returns (point per example, fooled mask)."""
    def grad_of(z):
        z = z.clone().requires_grad_(True)
        with torch.enable_grad():
            logits = model(z)
            loss = loss_fn(logits, y)
            g, = torch.autograd.grad(loss.sum(), z)
        return g.detach(), logits.detach(), loss.detach()

    def direction(g):
        return g.sign() if norm == "linf" else g / (bcast(lp(g, "l2"), g) + 1e-12)

    ck, shrink, least = max(int(0.22 * n_iter), 1), max(int(0.03 * n_iter), 1), max(int(0.06 * n_iter), 1)
    xk = sphere_point(x, eps, norm)
    g, logits, f = grad_of(xk)
    fooled = logits.argmax(1) != y
    x_fool = xk.clone()
    x_max, f_max, g_max = xk.clone(), f.clone(), g.clone()
    f_prev, f_max_ck = f.clone(), f.clone()
    halved_ck = torch.ones_like(fooled)
    ups = torch.zeros_like(f)
    eta = torch.full((x.shape[0],) + (1,) * (x.dim() - 1), 2.0 * eps)
    x_prev = xk.clone()
    since = 0
    for k in range(n_iter):
        with torch.no_grad():
            a = 1.0 if k == 0 else 0.75
            z = project(xk + eta * direction(g), x, eps, norm)
            nxt = project(xk + a * (z - xk) + (1 - a) * (xk - x_prev), x, eps, norm)
            x_prev, xk = xk, nxt
        g, logits, f = grad_of(xk)
        with torch.no_grad():
            hit = logits.argmax(1) != y
            new = hit & ~fooled
            x_fool[new] = xk[new]
            fooled |= hit
            up = f > f_max
            x_max[up], g_max[up], f_max[up] = xk[up], g[up], f[up]
            ups += (f > f_prev).float()
            f_prev = f
            since += 1
            if since == ck:
                halve = (ups <= rho * ck) | (~halved_ck & (f_max_ck >= f_max))
                halved_ck, f_max_ck = halve, f_max.clone()
                eta[halve] /= 2
                xk[halve], g[halve] = x_max[halve], g_max[halve]
                ups.zero_()
                since = 0
                ck = max(ck - shrink, least)
    out = torch.where(bcast(fooled, x), x_fool, x_max)
    return out, fooled


def apgd_t(model, x, y, eps, norm="linf", n_iter=100, n_targets=9, restarts=1):
    with torch.no_grad():
        n_cls = model(x[:1]).shape[1]
    k = min(n_targets, n_cls - 1)

    def attack(xs, ys, stage):
        i, _ = stage
        with torch.no_grad():
            t = nth_other_class(model(xs), ys, i)
        return apgd(model, xs, ys, lambda z, yy: dlr_targeted(z, yy, t), eps, norm, n_iter)

    return run_on_robust(model, x, y, attack, [(i, r) for i in range(1, k + 1) for r in range(restarts)])


# ----------------------------------------------------------------------------------------------- FAB
def hyperplane_box_step(t, w, b, norm, iters=100):
    """Least-norm delta with <w, t + delta> = b and 0 <= t + delta <= 1 (rows); bisection on the multiplier.

    Each coordinate moves towards the box face in the direction that changes <w, .> the right way, by
    min(lam, room) (L-inf) or |w|*min(mu, room/|w|) (L2); the constraint is monotone in lam/mu. Where the
    hyperplane misses the box: the corner that comes closest.
    """
    t, w, b = t.double(), w.double(), b.double()
    need = b - (w * t).sum(1)
    s = torch.where(need < 0, -1.0, 1.0).double()
    v = w * s[:, None]
    room = torch.where(v > 0, 1 - t, t)
    if norm == "linf":
        weight, cap = v.abs(), room
        step = lambda lam: v.sign() * torch.minimum(lam[:, None], cap)
    else:
        nz = v != 0
        weight = v * v
        cap = torch.where(nz, room / v.abs().clamp_min(1e-300), torch.zeros_like(room))
        step = lambda mu: v * torch.minimum(mu[:, None], cap)
    total = (weight * cap).sum(1)
    target = need.abs()
    lo = torch.zeros_like(target)
    hi = cap.amax(1)
    for _ in range(iters):
        mid = (lo + hi) / 2
        short = (weight * torch.minimum(mid[:, None], cap)).sum(1) < target
        lo = torch.where(short, mid, lo)
        hi = torch.where(short, hi, mid)
    lam = torch.where(total < target, cap.amax(1), hi)
    return step(lam).float()


def fab_t(model, x, y, eps, norm="linf", n_iter=100, n_targets=9, restarts=1, alpha_max=0.1, eta=1.05, beta=0.9):
    with torch.no_grad():
        n_cls = model(x[:1]).shape[1]
    k = min(n_targets, n_cls - 1)

    def attack(x0, ys, stage):
        i, r = stage
        with torch.no_grad():
            t = nth_other_class(model(x0), ys, i)
        xk = x0.clone() if r == 0 else sphere_point(x0, eps / 2, norm)
        best = x0.clone()
        best_d = torch.full((x0.shape[0],), float("inf"))
        n = x0.shape[0]
        for _ in range(n_iter):
            z = xk.clone().requires_grad_(True)
            with torch.enable_grad():
                logits = model(z)
                f = (logits.gather(1, t[:, None]) - logits.gather(1, ys[:, None])).squeeze(1)
                g, = torch.autograd.grad(f.sum(), z)
            with torch.no_grad():
                w = g.flatten(1)
                b = (w * xk.flatten(1)).sum(1) - f.detach()
                both = hyperplane_box_step(torch.cat([xk.flatten(1), x0.flatten(1)]), torch.cat([w, w]), torch.cat([b, b]), norm)
                d, d0 = both[:n].view_as(x0), both[n:].view_as(x0)
                a, a0 = lp(d, norm).clamp_min(1e-8), lp(d0, norm).clamp_min(1e-8)
                alpha = bcast((a / (a + a0)).clamp(0, alpha_max), x0)
                xk = ((1 - alpha) * (xk + eta * d) + alpha * (x0 + eta * d0)).clamp(0, 1)
                fooled = model(xk).argmax(1) != ys
                dist = lp(xk - x0, norm)
                closer = fooled & (dist < best_d)
                best[closer], best_d[closer] = xk[closer], dist[closer]
                xk[fooled] = x0[fooled] + beta * (xk[fooled] - x0[fooled])
        ok = best_d <= eps
        return torch.where(bcast(ok, x0), best, x0), ok

    return run_on_robust(model, x, y, attack, [(i, r) for i in range(1, k + 1) for r in range(restarts)], fallback_first=False)


# ----------------------------------------------------------------------------------------------- Square
def p_schedule(i, p_init, n_queries, rescale=False):
    it = int(i / n_queries * 10000) if rescale else i
    return p_init / 2 ** sum(it > c for c in (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000))


def eta_block(s):
    """s x s block: nested rectangles (weights 1/(k+1)^2) on top, their negative below, unit L2 norm."""
    def rects(rows, cols):
        ci, cj = rows // 2, cols // 2
        i = torch.arange(rows)[:, None]
        j = torch.arange(cols)[None, :]
        ring = torch.maximum((i - ci).abs(), (j - cj).abs())
        K = max(ci, cj) + 1
        w = 1.0 / torch.arange(1, K + 1, dtype=torch.float64) ** 2
        tail = w.flip(0).cumsum(0).flip(0)  # sum_{k >= ring} 1/(k+1)^2
        m = tail[ring]
        return m / m.norm()
    top = s // 2
    parts = ([rects(top, s)] if top > 0 else []) + [-rects(s - top, s)]
    m = torch.cat(parts, 0)
    return (m / m.norm()).float()


def random_squares(n, h, w, s):
    """Per image a random s x s square: mask [n, 1, h, w] and row/col offsets inside it."""
    top = torch.randint(0, h - s + 1, (n, 1))
    left = torch.randint(0, w - s + 1, (n, 1))
    ri = torch.arange(h)[None] - top
    ci = torch.arange(w)[None] - left
    mask = ((ri >= 0) & (ri < s))[:, None, :, None] & ((ci >= 0) & (ci < s))[:, None, None, :]
    return mask, ri.clamp(0, s - 1), ci.clamp(0, s - 1)


def rand_signs(*shape):
    return (torch.rand(shape) < 0.5).float() * 2 - 1


def square(model, x, y, eps, norm="linf", n_queries=5000, p_init=0.8, restarts=1, rescale=False):
    n_all, c, h, w = x.shape

    @torch.no_grad()
    def search(x0, ys, stage):
        n = x0.shape[0]
        if norm == "linf":
            best = (x0 + eps * rand_signs(n, c, 1, w)).clamp(0, 1)
        else:
            s0 = max(h // 5, 1)
            nh, nw = h // s0, w // s0
            top, left = (h - nh * s0) // 2, (w - nw * s0) // 2
            e = eta_block(s0)
            delta = torch.zeros_like(x0)
            for bi in range(nh):
                for bj in range(nw):
                    tr = torch.rand(n, 1, 1, 1) < 0.5
                    blk = torch.where(tr, e.t(), e) * rand_signs(n, c, 1, 1)
                    delta[:, :, top + bi * s0: top + (bi + 1) * s0, left + bj * s0: left + (bj + 1) * s0] = blk
            best = (x0 + eps * delta / (bcast(lp(delta, "l2"), delta) + 1e-12)).clamp(0, 1)
        m_best = margin_loss(model(best), ys)
        for i in range(n_queries):
            act = (m_best > 0).nonzero().flatten()
            if act.numel() == 0:
                break
            xa, xb, ya = x0[act], best[act], ys[act]
            k = act.numel()
            p = p_schedule(i, p_init, n_queries, rescale)
            s = max(int(round(math.sqrt(p * h * w))), 1 if norm == "linf" else 3)
            if norm == "l2" and s % 2 == 0:
                s += 1
            s = min(s, h, w)
            if norm == "linf":
                mask, _, _ = random_squares(k, h, w, s)
                vertex = (xa + eps * rand_signs(k, c, 1, 1)).clamp(0, 1)
                cand = torch.where(mask, vertex, xb)
            else:
                m1, r1, c1 = random_squares(k, h, w, s)
                m2, _, _ = random_squares(k, h, w, s)
                d = xb - xa
                nw1 = (d * m1).pow(2).sum((2, 3), keepdim=True).sqrt()
                nwu = (d * (m1 | m2)).pow(2).sum((2, 3), keepdim=True).sqrt()
                nimg = bcast(lp(d, "l2"), d)
                e = eta_block(s)
                rr, cc = r1[:, :, None], c1[:, None, :]
                tr = torch.rand(k, 1, 1) < 0.5
                placed = torch.where(tr, e[cc, rr], e[rr, cc])[:, None]
                fresh = (placed * rand_signs(k, c, 1, 1) + d / (nw1 + 1e-12)) * m1
                budget = ((eps ** 2 - nimg ** 2).clamp_min(0) / c + nwu ** 2).sqrt()
                fresh = fresh / (fresh.pow(2).sum((2, 3), keepdim=True).sqrt() + 1e-12) * budget
                d2 = torch.where(m1, fresh, torch.where(m2, torch.zeros_like(d), d))
                cand = (xa + eps * d2 / (bcast(lp(d2, "l2"), d2) + 1e-12)).clamp(0, 1)
            m = margin_loss(model(cand), ya)
            better = m < m_best[act]
            best[act[better]] = cand[better]
            m_best[act[better]] = m[better]
        return best, m_best <= 0

    return run_on_robust(model, x, y, search, list(range(restarts)))
