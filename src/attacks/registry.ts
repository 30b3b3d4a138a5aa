// Attacks by name, as `eval --attacks`, training's final evaluation and the report take them: pgd-20,
// pgd-100-l2, cw-30, fgsm, apgd-ce, apgd-dlr-50, …. Each attack file declares the names it answers to
// (AttackEntry); this list is the only place that gathers them.
import type { Module } from '../nn/index.js';
import type { Attack } from './attack.js';
import { fgsmAttacks } from './fgsm.js';
import { pgdAttacks } from './pgd.js';
import { apgdAttacks } from './apgd.js';
import { apgdtAttacks } from './apgd-t.js';
import { fabAttacks } from './fab.js';
import { squareAttacks } from './square.js';
import { autoAttacks } from './autoattack.js';

/** Settings an evaluation gives every attack. */
export interface AttackSettings {
  eps: number;
  /** Restarts of the attacks that restart (PGD, APGD). */
  restarts?: number;
  /**
   * PGD and CW: false takes every step for every example (each ends at its last iterate, as in Madry et al.) instead
   * of keeping the first point that fools the model (default true: an evaluation needs only whether one exists).
   */
  earlyStop?: boolean;
}

export interface AttackEntry {
  /** The name's form in help texts, e.g. 'pgd-K[-l2]'. */
  usage: string;
  pattern: RegExp;
  /** What is wrong with a name that matches the pattern (e.g. 0 steps), or undefined. */
  check?: (m: RegExpMatchArray) => string | undefined;
  /** Classes the data set needs (targeted attacks over several target classes). */
  minClasses?: number;
  make(m: RegExpMatchArray, model: Module, s: AttackSettings): Attack;
}

const ATTACKS: AttackEntry[] = [...fgsmAttacks, ...pgdAttacks, ...apgdAttacks, ...apgdtAttacks, ...fabAttacks, ...squareAttacks, ...autoAttacks];

export function attackUsage(): string {
  return ATTACKS.map((a) => a.usage).join(', ');
}

function lookup(name: string): { entry: AttackEntry; m: RegExpMatchArray } | string {
  const s = name.trim().toLowerCase();
  for (const entry of ATTACKS) {
    const m = s.match(entry.pattern);
    if (!m) continue;
    const why = entry.check?.(m);
    return why ? `attack '${name}': ${why}` : { entry, m };
  }
  return `unknown attack '${name.length > 40 ? name.slice(0, 37) + '…' : name}' (known: ${attackUsage()})`;
}

/** Why `name` is not a usable attack name (for a data set of `classes` classes, when given), or undefined. */
export function checkAttackName(name: string, classes?: number): string | undefined {
  const r = lookup(name);
  if (typeof r === 'string') return r;
  const need = r.entry.minClasses;
  if (classes !== undefined && need !== undefined && classes < need) return `attack '${name}' needs a data set of at least ${need} classes; this one has ${classes}`;
  return undefined;
}

/** The attack a name stands for. Throws RangeError for names checkAttackName refuses. */
export function makeAttack(name: string, model: Module, s: AttackSettings): Attack {
  const r = lookup(name);
  if (typeof r === 'string') throw new RangeError(r);
  return r.entry.make(r.m, model, s);
}
