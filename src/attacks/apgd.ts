/**
 * APGD — Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
 * parameter-free attacks" (ICML 2020), the step-size-free attack of AutoAttack. L∞. Momentum 0.75; the step
 * size starts at 2ε and is halved per example at checkpoints where the loss oscillated (fewer than 75% of the
 * steps since the last checkpoint increased it) or where neither the step size nor the best loss changed since
 * the previous checkpoint, restarting from the best point. Checkpoint spacing: 22% of the iterations, shrinking by
 * 3% to at least 6%. Losses: 'ce' (APGD-CE) and 'dlr' (APGD-DLR). Returns, per example, a point that fools the
 * model if one was found, else the point of highest loss.
 */
import { Tensor, keep, unkeep, noGrad, scope, where, full, zeros } from '../torch/index.js';
import type { Module } from '../nn/index.js';
import { Attack, correct, checkSteps } from './attack.js';
import { Linf } from './threat.js';
import { lossFn, type LossName } from './losses.js';
import type { AttackEntry } from './registry.js';

export class APGD extends Attack {
  readonly name: string;
  readonly steps: number;
  readonly loss: LossName;
  readonly restarts: number;
  constructor(model: Module, opts: { eps: number; steps?: number; loss?: LossName; restarts?: number }) {
    super(model, new Linf(opts.eps));
    this.steps = opts.steps ?? 100;
    this.loss = opts.loss ?? 'ce';
    this.restarts = Math.max(1, opts.restarts ?? 1);
    this.name = `apgd-${this.loss}`;
  }

  protected perturb(x: Tensor, y: Tensor): Tensor {
    // examples never fooled end with the highest-loss point of the first run
    let out = keep(x.clone());
    let fooled = keep(noGrad(() => correct(this.model.forward(x), y).logicalNot()));
    for (let r = 0; r < this.restarts && !fooled.all().item(); r++) {
      const [adv, hit] = this.once(x, y);
      const take = hit.logicalAnd(fooled.logicalNot());
      const [no, nf] = scope(() => [keep(where(this.bcast(take, x), adv, out)), keep(fooled.logicalOr(hit))]);
      out.dispose(); fooled.dispose(); adv.dispose(); hit.dispose();
      out = no!; fooled = nf!;
    }
    fooled.dispose();
    return unkeep(out);
  }

  private bcast(mask: Tensor, like: Tensor): Tensor {
    return mask.view(-1, ...Array(like.ndim - 1).fill(1));
  }

  /** One APGD run; returns [point per example, fooled mask] (both kept). */
  private once(x: Tensor, y: Tensor): [Tensor, Tensor] {
    const eps = this.threat.eps;
    const n = this.steps;
    const kInit = Math.max(Math.round(0.22 * n), 1);
    const kMin = Math.max(Math.round(0.06 * n), 1);
    const kDecr = Math.max(Math.round(0.03 * n), 1);
    const loss = lossFn(this.loss);
    const B = x.size(0);
    const state: Record<string, Tensor> = {};
    const set = (k: string, t: Tensor) => {
      if (state[k] && state[k] !== t) state[k]!.dispose();
      state[k] = keep(t);
    };
    const bc = (m: Tensor) => this.bcast(m, x);
    const clip = (t: Tensor) => t.clamp(x.sub(eps), x.add(eps)).clamp_(0, 1);

    scope(() => {
      set('xadv', this.threat.randomStart(x));
      const { g, logits, loss: l } = this.inputGrad(state.xadv!, y, loss);
      set('grad', g);
      set('gradBest', g.clone());
      set('fooled', correct(logits, y).logicalNot());
      set('xBestAdv', state.xadv!.clone());
      set('xBest', state.xadv!.clone());
      set('lossBest', l);
      set('lossPrev', l.clone());
      set('lossBestLastCheck', l.clone());
      set('reducedLastCheck', full([B], true, { dtype: 'bool' }));
      set('increases', zeros([B]));
      set('step', full([B, ...Array(x.ndim - 1).fill(1)], 2 * eps));
      set('xOld', state.xadv!.clone());
    });
    let k = kInit;
    let sinceCheck = 0;
    for (let i = 0; i < n; i++) {
      scope(() => {
        const s = state;
        const a = i > 0 ? 0.75 : 1.0;
        const z = noGrad(() => clip(s.xadv!.add(s.step!.mul(s.grad!.sign()))));
        const moved = noGrad(() => clip(s.xadv!.add(z.sub(s.xadv!).mul(a)).add(s.xadv!.sub(s.xOld!).mul(1 - a))));
        set('xOld', s.xadv!);
        state.xadv = keep(moved);
        const { g, logits, loss: l } = this.inputGrad(moved, y, loss);
        set('grad', g);
        const hit = correct(logits, y).logicalNot();
        set('xBestAdv', where(bc(hit.logicalAnd(s.fooled!.logicalNot())), moved, s.xBestAdv!));
        set('fooled', s.fooled!.logicalOr(hit));
        const improved = l.gt(s.lossBest!);
        set('xBest', where(bc(improved), moved, s.xBest!));
        set('gradBest', where(bc(improved), g, s.gradBest!));
        set('lossBest', where(improved, l, s.lossBest!));
        set('increases', s.increases!.add(l.gt(s.lossPrev!).float()));
        set('lossPrev', l);
        sinceCheck++;
        if (sinceCheck === k) {
          const oscillating = s.increases!.le(full([B], k * 0.75));
          const stalled = s.reducedLastCheck!.logicalNot().logicalAnd(s.lossBestLastCheck!.ge(s.lossBest!));
          const reduce = oscillating.logicalOr(stalled);
          set('reducedLastCheck', reduce);
          set('lossBestLastCheck', s.lossBest!.clone());
          set('step', where(bc(reduce), s.step!.mul(0.5), s.step!));
          set('xadv', where(bc(reduce), s.xBest!, s.xadv!));
          set('grad', where(bc(reduce), s.gradBest!, s.grad!));
          set('increases', zeros([B]));
          sinceCheck = 0;
          k = Math.max(k - kDecr, kMin);
        }
      });
    }
    // fooled examples return their fooling point, the others their highest-loss point
    const result = scope(() => keep(where(bc(state.fooled!), state.xBestAdv!, state.xBest!)));
    const fooled = state.fooled!;
    delete state.fooled;
    for (const t of Object.values(state)) t.dispose();
    return [result, fooled];
  }
}

export const apgdAttacks: AttackEntry[] = [
  {
    usage: 'apgd-ce, apgd-dlr, apgd-ce-K (K iterations, default 100)',
    pattern: /^apgd-(ce|dlr)(?:-(\d+))?$/,
    check: (m) => checkSteps(m[2]),
    make: (m, model, s) => new APGD(model, { eps: s.eps, steps: m[2] ? Number(m[2]) : 100, loss: m[1] as 'ce' | 'dlr', restarts: s.restarts ?? 1 }),
  },
];
