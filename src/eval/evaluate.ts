// Robustness evaluation as the paper and RobustBench report it: clean accuracy, accuracy under each attack,
// and the worst case over all attacks per example; followed by AutoAttack-style sanity checks that warn when
// the evaluation is likely fooled (gradient masking, noise beating the attack, non-monotone attack strength,
// probability outputs).
import { Tensor, noGrad, scope, autograd, randnLike } from '../torch/index.js';
import type { Module } from '../nn/index.js';
import { nextTurn } from '../data/index.js';
import { correct, ceLoss, makeAttack, checkAttackName, stoppable, AttackInterrupted, AutoAttack, type AttackSettings } from '../attacks/index.js';

export interface Batch {
  x: Tensor;
  y: Tensor;
}

export interface EvalResult {
  clean_accuracy: number;
  robust_accuracy: Record<string, number>;
  eps: number;
  examples: number;
  attacks: string[];
  /** Ensembles (autoattack): robust accuracy after each of their attacks, in order. */
  stages?: Record<string, Record<string, number>>;
  warnings: string[];
  seconds: number;
  /** Set when the evaluation ran under autocast (--attack-amp): its low-precision type. */
  amp?: string;
}

export interface EvalOptions extends AttackSettings {
  attacks: string[];
  /** Called after each batch with examples done so far. */
  onBatch?: (done: number) => void;
  /** Skip the sanity checks. */
  noChecks?: boolean;
  /**
   * Stops the evaluation before any attack of a batch when aborted (throwing its reason), and inside an attack at
   * its next iteration when a signal arrives (the caller's handlers have armed the native flag: src/train/signals.ts).
   * One process only: ranks would not agree.
   */
  signal?: AbortSignal;
}

/** Evaluates `model` on batches (consumed once). Disposes nothing it did not create. */
export async function evaluate(model: Module, batches: AsyncIterable<Batch> | Iterable<Batch>, opts: EvalOptions): Promise<EvalResult> {
  for (const a of opts.attacks) {
    const why = checkAttackName(a); // before any work
    if (why) throw new RangeError(why);
  }
  const t0 = performance.now();
  const wasTraining = model.training;
  model.eval();
  const attacks = opts.attacks.map((a) => makeAttack(a, model, opts));
  let n = 0;
  let clean = 0;
  let worst = 0;
  let noise = 0;
  let zeroGrad = 0;
  let probLike = 0;
  let randomised = false;
  const robust: Record<string, number> = Object.fromEntries(opts.attacks.map((a) => [a, 0]));
  try {
    for await (const { x, y } of batches as AsyncIterable<Batch>) {
      // each attack in a scope of its own, with a turn of the event loop before it when `signal` can stop it
      const [logits, ok] = scope(() => {
        const l = noGrad(() => model.forward(x));
        return [l, correct(l, y)] as const;
      });
      let all = ok;
      try {
        clean += scope(() => ok.sum().item());
        for (const [i, atk] of attacks.entries()) {
          if (opts.signal) {
            await nextTurn();
            if (opts.signal.aborted) throw opts.signal.reason;
          }
          const name = opts.attacks[i]!;
          let next: Tensor;
          try {
            next = scope(() => {
              // with `signal`, a signal stops the attack at its next iteration (the native flag: attack.ts)
              const adv = opts.signal ? stoppable(() => atk.run(x, y)) : atk.run(x, y);
              const okA = noGrad(() => correct(model.forward(adv), y)).logicalAnd(ok);
              robust[name] = robust[name]! + okA.sum().item();
              return all.logicalAnd(okA);
            });
          } catch (e) {
            if (!(e instanceof AttackInterrupted)) throw e;
            // the signal's handler runs at the next poll of the event loop (one or two turns): the evaluation then
            // stops as it does between batches
            for (let turn = 0; turn < 50 && !opts.signal?.aborted; turn++) await nextTurn();
            throw opts.signal?.aborted ? opts.signal.reason : e;
          }
          if (all !== ok) all.dispose();
          all = next;
        }
        worst += scope(() => all.sum().item());
        scope(() => {
          const b = x.size(0);
          if (!opts.noChecks) {
            // random sign noise of size ε
            const xn = x.add(randnLike(x).sign().mul(opts.eps)).clamp(0, 1);
            noise += noGrad(() => correct(model.forward(xn), y)).sum().item();
            // zero input gradients
            const xr = x.detach().requiresGrad_();
            const out = model.forward(xr);
            const l = ceLoss(out, y).sum();
            const [g] = l.requiresGrad ? autograd.grad(l, [xr], { allowUnused: true }) : [undefined];
            zeroGrad += g ? g.abs().flatten(1).amax(1).eq(0).sum().item() : b;
            // outputs that look like probabilities
            const inUnit = logits.min().item() >= 0 && logits.max().item() <= 1;
            if (inUnit && logits.sum(1).sub(1).abs().max().item() < 1e-3) probLike += b;
            // a deterministic model gives the same logits twice (AutoAttack's check for randomised defences)
            if (!randomised) randomised = !noGrad(() => model.forward(x)).equal(logits);
          }
          n += b;
        });
      } finally {
        for (const t of new Set([logits, ok, all])) t.dispose();
      }
      opts.onBatch?.(n);
    }
  } finally {
    model.train(wasTraining);
  }
  const acc = (c: number) => (n ? c / n : 0);
  const result: EvalResult = {
    clean_accuracy: acc(clean),
    robust_accuracy: { ...Object.fromEntries(Object.entries(robust).map(([k, v]) => [k, acc(v)])), worst_case: acc(worst) },
    eps: opts.eps,
    examples: n,
    attacks: opts.attacks,
    warnings: [],
    seconds: (performance.now() - t0) / 1000,
  };
  const ensembles = attacks.filter((a): a is AutoAttack => a instanceof AutoAttack);
  if (ensembles.length) result.stages = Object.fromEntries(ensembles.map((a) => [opts.attacks[attacks.indexOf(a)]!, a.stageAccuracy()]));
  if (!opts.noChecks && n > 0) result.warnings = [...sanityChecks(result, acc(noise), zeroGrad / n, probLike / n), ...ensembleChecks(result, randomised)];
  return result;
}

function sanityChecks(r: EvalResult, noiseAcc: number, zeroGradShare: number, probShare: number): string[] {
  const w: string[] = [];
  if (zeroGradShare > 0.1)
    w.push(`${(zeroGradShare * 100).toFixed(1)}% of examples have an all-zero input gradient: gradient masking likely, gradient attacks may be fooled`);
  if (probShare > 0.5) w.push('the model outputs look like probabilities (rows in [0,1] summing to 1), not logits: cross-entropy attacks are weakened; remove the final softmax');
  for (const [name, a] of Object.entries(r.robust_accuracy)) {
    if (name === 'worst_case' || r.eps === 0) continue;
    if (noiseAcc < a - 0.005)
      w.push(`random noise of size ε lowers accuracy more (${pct(noiseAcc)}) than ${name} (${pct(a)}): the attack is not working`);
  }
  const pgds = Object.entries(r.robust_accuracy)
    .map(([name, a]) => ({ name, a, p: /^(pgd|cw)-(\d+)$/.exec(name) }))
    .filter((e) => e.p)
    .map((e) => ({ ...e, kind: e.p![1], steps: Number(e.p![2]) }));
  for (const s of pgds)
    for (const t of pgds)
      if (s.kind === t.kind && t.steps > s.steps && t.a > s.a + 0.005)
        w.push(`robust accuracy rises with more attack steps (${s.name}: ${pct(s.a)}, ${t.name}: ${pct(t.a)}): the attack is not converging`);
  return w;
}

/** AutoAttack's own checks of its result. */
function ensembleChecks(r: EvalResult, randomised: boolean): string[] {
  const w: string[] = [];
  if (randomised) w.push("the model's output is randomised (two forward passes on the same images differ): attacks that assume a deterministic model, AutoAttack's standard version among them, can overstate robustness; use an adaptive attack (e.g. with expectation over transformation)");
  for (const [name, stages] of Object.entries(r.stages ?? {})) {
    const names = Object.keys(stages);
    const last = names[names.length - 1]!, before = names[names.length - 2];
    // Square uses no gradients: if it still breaks many points the gradient attacks left, they are being masked
    if (last === 'square' && before !== undefined && stages[before]! - stages.square! > 0.002)
      w.push(`${name}: the black-box Square attack lowered robust accuracy from ${pct(stages[before]!)} to ${pct(stages.square!)} after the gradient attacks: their gradients may be masked, and the evaluation may overstate robustness`);
  }
  return w;
}

const pct = (v: number) => `${(v * 100).toFixed(2)}%`;
