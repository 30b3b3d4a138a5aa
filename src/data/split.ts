// A validation split taken out of a training set: seeded and class-balanced (as equal a number of examples of
// every class as the size allows), independent of the order of the files.
import { Rng, hashSeed } from './prng.js';
import { DataError } from './errors.js';

const STREAM_SPLIT = 3;

export interface TrainValSplit {
  /** Indices of the examples left for training, ascending. */
  train: Int32Array;
  /** Indices of the validation examples, ascending. */
  val: Int32Array;
}

/** Takes `size` examples out of `labels` (numClasses classes): ⌊size/K⌋ or one more of each class. */
export function validationSplit(labels: ArrayLike<number>, numClasses: number, size: number, seed: number): TrainValSplit {
  const n = labels.length;
  if (!(Number.isInteger(size) && size >= 0 && size < n)) throw new DataError(`a validation split of ${size} examples does not fit a training set of ${n}`);
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  for (let i = 0; i < n; i++) byClass[labels[i]!]?.push(i);
  const present = byClass.map((ix, c) => [c, ix.length] as const).filter(([, k]) => k > 0).map(([c]) => c);
  const taken = new Uint8Array(n);
  const quota = new Map(present.map((c, j) => [c, Math.floor(size / present.length) + (j < size % present.length ? 1 : 0)]));
  for (const c of present) {
    const ix = byClass[c]!;
    const q = quota.get(c)!;
    if (q >= ix.length) throw new DataError(`a class-balanced validation split of ${size} examples needs ${q} of class ${c}, which has ${ix.length}`);
    // a seeded partial Fisher–Yates shuffle per class picks q of its examples
    const rng = new Rng(hashSeed(seed, c, STREAM_SPLIT));
    for (let i = 0; i < q; i++) {
      const j = i + Math.floor(rng.next() * (ix.length - i));
      [ix[i], ix[j]] = [ix[j]!, ix[i]!];
      taken[ix[i]!] = 1;
    }
  }
  const val = new Int32Array(size), train = new Int32Array(n - size);
  let v = 0, t = 0;
  for (let i = 0; i < n; i++) {
    if (taken[i]) val[v++] = i;
    else train[t++] = i;
  }
  return { train, val };
}
