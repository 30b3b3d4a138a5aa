// Attack specifications by name, as the CLI takes them: pgd-20, pgd-100, fgsm, apgd-ce, apgd-dlr, cw-30,
// pgd-20-l2 (L2 threat model), apgd-ce-50 (50 iterations).
import type { Module } from '../nn/index.js';
import { Attack, FGSM, PGD, APGD } from '../attacks/index.js';

export interface AttackSettings {
  eps: number;
  restarts?: number;
  /** L∞ step size override for PGD (default 2.5·ε/steps). */
  alpha?: number;
}

export function parseAttackName(spec: string): { kind: 'pgd' | 'cw' | 'fgsm' | 'apgd'; steps?: number; loss?: 'ce' | 'dlr'; norm: 'linf' | 'l2' } {
  const s = spec.trim().toLowerCase();
  let m: RegExpMatchArray | null;
  if (s === 'fgsm') return { kind: 'fgsm', norm: 'linf' };
  if ((m = s.match(/^(pgd|cw)-(\d+)(-(linf|l2))?$/))) {
    const steps = Number(m[2]);
    if (steps < 1) throw new RangeError(`attack '${spec}': steps must be >= 1`);
    return { kind: m[1] as 'pgd' | 'cw', steps, norm: (m[4] as 'linf' | 'l2') ?? 'linf' };
  }
  if ((m = s.match(/^apgd-(ce|dlr)(-(\d+))?$/))) return { kind: 'apgd', loss: m[1] as 'ce' | 'dlr', steps: m[3] ? Number(m[3]) : 100, norm: 'linf' };
  throw new RangeError(`unknown attack '${spec}' (use pgd-K, pgd-K-l2, cw-K, fgsm, apgd-ce, apgd-dlr, apgd-ce-K)`);
}

export function makeAttack(spec: string, model: Module, s: AttackSettings): Attack {
  const a = parseAttackName(spec);
  switch (a.kind) {
    case 'fgsm':
      return new FGSM(model, { eps: s.eps });
    case 'pgd':
    case 'cw': {
      return new PGD(model, { eps: s.eps, steps: a.steps, norm: a.norm, restarts: s.restarts ?? 1, loss: a.kind === 'cw' ? 'cw' : 'ce', alpha: s.alpha });
    }
    case 'apgd':
      return new APGD(model, { eps: s.eps, steps: a.steps, loss: a.loss, restarts: s.restarts ?? 1 });
  }
}
