// The analyses of the report, after those of Shafahi et al. (2019): the loss surface around test
// images along the adversarial and a random direction, input-gradient saliency, adversarial examples, and
// large-ε targeted attacks. Everything runs with the model in eval mode (BatchNorm statistics stay put) and
// frees every tensor it does not return.
import { Tensor, scope, noGrad, withGradEnabled, fromTypedArray, cat, where } from '../torch/index.js';
import { inEvalMode, type Module } from '../nn/index.js';
import { PGD, ceLoss, lossInputGrad, perExample } from '../attacks/index.js';
import { Rng, hashSeed } from '../data/index.js';
import { pngLevels, perturbationLevels, quantizeInBall } from './png.js';

/** ∇ₓ of the cross-entropy loss, per example (the gradient of the sum, so examples do not mix). Same shape as x. */
export function inputGradient(model: Module, x: Tensor, y: Tensor): Tensor {
  return inEvalMode(model, () => withGradEnabled(true, () => scope(() => lossInputGrad(model, x, y, ceLoss).g)));
}

/**
 * Saliency maps: the input gradient, and a display version in [0, 1] per image (0.5 is zero, the largest
 * |gradient| of the image maps to 0 or 1).
 */
export function saliency(model: Module, x: Tensor, y: Tensor): { grad: Tensor; display: Tensor } {
  return scope(() => {
    const g = inputGradient(model, x, y);
    const m = g.abs().flatten(1).amax(1).clamp(1e-12, null).view(-1, ...Array(x.ndim - 1).fill(1));
    return { grad: g, display: g.div(m).mul(0.5).add(0.5).clamp(0, 1) };
  });
}

/** Per-example predicted class. */
export function predict(model: Module, x: Tensor): number[] {
  return inEvalMode(model, () => scope(() => Array.from(noGrad(() => model.forward(x).argmax(1)).toTypedArray(), Number)));
}

/** Per-example cross-entropy loss (no autograd). */
export function lossAt(model: Module, x: Tensor, y: Tensor): number[] {
  return inEvalMode(model, () => scope(() => Array.from(noGrad(() => ceLoss(model.forward(x), y)).toTypedArray() as Float32Array)));
}

export interface SurfaceOptions {
  eps: number;
  /** The grid spans [−range·ε, range·ε] in both directions (default 2). */
  range?: number;
  /** Points per axis, odd so that 0 is on the grid (default 11). */
  points?: number;
  /** Seed of the random direction (default 0). */
  seed?: number;
  /**
   * The random stream of the random directions, continued from an earlier call (the images of one set, taken in
   * several batches, get the directions one call on all of them would give); default a stream from `seed`.
   */
  rng?: Rng;
  /** Most grid points evaluated at once (default the whole grid of an image, points²). */
  batchSize?: number;
}

/**
 * The two directions of the loss surface: g = sign(∇ₓ loss) (the FGSM direction) and r, a random ±1 direction
 * drawn from `seed` (the same r for the same seed and shape; an Rng continues that stream), both with L∞ norm 1.
 */
export function surfaceDirections(model: Module, x: Tensor, y: Tensor, seed: number | Rng = 0): { g: Tensor; r: Tensor } {
  return scope(() => {
    const g = inputGradient(model, x, y).sign();
    const n = x.shape.reduce((a, b) => a * b, 1);
    const rng = typeof seed === 'number' ? surfaceRng(seed) : seed;
    const r = new Float32Array(n);
    for (let i = 0; i < n; i++) r[i] = rng.nextU32() & 1 ? 1 : -1;
    return { g, r: fromTypedArray(r, [...x.shape], 'float32', x.device) };
  });
}

/** The random stream of the loss surface's random directions. */
export function surfaceRng(seed: number): Rng {
  return new Rng(hashSeed(seed, 0x5eed));
}

/** The grid coordinates: `points` values evenly spaced in [−range·ε, range·ε]. */
export function surfaceAxis(o: SurfaceOptions): number[] {
  const points = o.points ?? 11;
  const span = (o.range ?? 2) * o.eps;
  if (!Number.isInteger(points) || points < 3 || points % 2 === 0) throw new RangeError(`surface points must be an odd integer >= 3, got ${points}`);
  return Array.from({ length: points }, (_, i) => (i === (points - 1) / 2 ? 0 : -span + (2 * span * i) / (points - 1)));
}

export interface LossSurface {
  /** Offsets along the adversarial direction g (pixel units). */
  a: number[];
  /** Offsets along the random direction r. */
  b: number[];
  /** loss[k][i][j] = L(x_k + a_i·g_k + b_j·r_k, y_k), unclipped. */
  loss: number[][][];
}

/**
 * The loss of each image on the (a, b) grid around it, as in the loss-surface plots of Shafahi et al. (2019);
 * the grid points of an image are evaluated `batchSize` at a time.
 */
export function lossSurface(model: Module, x: Tensor, y: Tensor, o: SurfaceOptions): LossSurface {
  const a = surfaceAxis(o);
  const b = a.slice();
  const P = a.length;
  const chunk = Math.max(1, Math.floor(o.batchSize ?? P * P));
  const loss = scope(() => {
    const { g, r } = surfaceDirections(model, x, y, o.rng ?? o.seed ?? 0);
    const out: number[][][] = [];
    for (let k = 0; k < x.size(0); k++) {
      const grid: number[] = [];
      for (let s = 0; s < P * P; s += chunk) {
        const part = scope(() => {
          const xk = x.narrow(0, k, 1), gk = g.narrow(0, k, 1), rk = r.narrow(0, k, 1);
          const rows: Tensor[] = [];
          for (let p = s; p < Math.min(P * P, s + chunk); p++) rows.push(xk.add(gk, a[Math.floor(p / P)]!).add(rk, b[p % P]!));
          const batch = cat(rows, 0);
          return lossAt(model, batch, y.narrow(0, k, 1).expand(rows.length));
        });
        grid.push(...part);
      }
      out.push(Array.from({ length: P }, (_, i) => grid.slice(i * P, (i + 1) * P)));
    }
    return out;
  });
  return { a, b, loss };
}

export interface AdversarialGallery {
  /** The clean images as their PNG holds them: 8-bit (pngLevels / 255). */
  clean: Tensor;
  /** The adversarial examples as their PNG holds them: 8-bit, within ⌊255ε⌋ levels of `clean` (quantizeInBall). */
  adv: Tensor;
  /**
   * (adv − clean) / (2e/255) + 0.5 with e = ⌊255ε⌋ (at least 1): the 8-bit perturbation between the two images
   * shown, amplified to fill [0, 1] (−e levels black, 0 grey, +e white).
   */
  perturbation: Tensor;
  /** Predictions on exactly the pixels of `clean` and `adv`: what a reader of the PNGs gets from the model. */
  cleanPred: number[];
  advPred: number[];
}

/**
 * PGD-k (L∞, ε) adversarial examples of the 8-bit clean images, as 8-bit images inside the ε-ball (what their PNG
 * holds), their perturbations and the model's predictions on those pixels. PGD takes all its steps (no early
 * stop): the first point that fools the model is often so near the decision boundary that rounding to 8 bits
 * would undo it. An image the model already misclassifies is its own adversarial example (zero perturbation).
 */
export function adversarialGallery(model: Module, x: Tensor, y: Tensor, o: { eps: number; steps: number }): AdversarialGallery {
  return scope(() => {
    const clean8 = pngLevels(x);
    const clean = clean8.div(255);
    const cleanPred = predict(model, clean);
    const attacked = quantizeInBall(clean8, new PGD(model, { eps: o.eps, steps: o.steps, earlyStop: false }).run(clean, y), o.eps);
    // an image the model already gets wrong needs no perturbation: it is shown as it is (as an early-stopping PGD returns it)
    const wrong = fromTypedArray(BigInt64Array.from(cleanPred, BigInt), [cleanPred.length], 'int64', x.device).ne(y);
    const adv8 = where(perExample(wrong, clean8), clean8, attacked);
    const adv = adv8.div(255);
    const perturbation = adv8.sub(clean8).div(2 * perturbationLevels(o.eps)).add(0.5);
    return { clean, adv, perturbation, cleanPred, advPred: predict(model, adv) };
  });
}

export interface TargetedOptions {
  eps: number;
  norm: 'linf' | 'l2';
  steps: number;
}

/**
 * Large-ε targeted attacks (the "generative" behaviour of robust models): targeted PGD from the image itself
 * (no random start), all `steps` steps taken (no early stop, so the image keeps moving towards the target class).
 */
export function targetedAttack(model: Module, x: Tensor, targets: Tensor, o: TargetedOptions): { adv: Tensor; pred: number[] } {
  return scope(() => {
    const adv = new PGD(model, { eps: o.eps, steps: o.steps, norm: o.norm, targeted: true, earlyStop: false, randomStart: false }).run(x, targets);
    return { adv, pred: predict(model, adv) };
  });
}
