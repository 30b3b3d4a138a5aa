// The binding fuzzer: random calls into the tensor API with wrong shapes, dtypes, devices, out-of-range dims
// and indices, disposed tensors, NaN/inf scalars, empty tensors and arguments of the wrong type. Every call must
// either succeed or throw a JS error; the process must never abort. Run as a child process by
// test/fuzz.test.ts (a crash shows up as its exit status): node dist/test/fuzz-binding.js <iterations> <seed>
import * as T from '../src/torch/index.js';

const iters = Number(process.argv[2] ?? 10000);
let s = Number(process.argv[3] ?? 1) >>> 0;
const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
const pick = <X>(xs: readonly X[]): X => xs[Math.floor(rnd() * xs.length)]!;
const dtypes = ['float32', 'float64', 'int64', 'int32', 'uint8', 'bool', 'float16', 'bfloat16'] as const;

function randShape(): number[] {
  const nd = Math.floor(rnd() * 5);
  return Array.from({ length: nd }, () => pick([0, 1, 1, 2, 3, 4, 5]));
}

function randTensor(): T.Tensor {
  const shape = randShape();
  const t = T.rand(shape).mul(pick([1, 10, -5, 1e30])).to(pick(dtypes));
  if (rnd() < 0.05) t.dispose();
  return t;
}

function randArg(): unknown {
  const r = rnd();
  if (r < 0.45) return randTensor();
  if (r < 0.6) return pick([0, 1, -1, 2, 3, -7, 100, 2 ** 40, 0.5, NaN, Infinity, -Infinity]);
  if (r < 0.7) return randShape();
  if (r < 0.75) return [randTensor(), randTensor()];
  if (r < 0.8) return pick([true, false]);
  if (r < 0.85) return pick(['cpu', 'cuda:3', 'meta', 'nonsense', '']);
  if (r < 0.9) return pick([undefined, null]);
  if (r < 0.95) return pick([{}, [], 'x', () => 1, Symbol('s'), 10n]);
  return [pick([1, 2]), 'x', null];
}

const ops = Object.entries(T.ops).filter(([, f]) => typeof f === 'function') as [string, (...a: unknown[]) => unknown][];
const methods = ['add', 'sub', 'mul', 'div', 'view', 'reshape', 'permute', 'select', 'narrow', 'slice', 'indexSelect', 'gather', 'sum', 'mean', 'max', 'argmax', 'clamp', 'clamp_', 'add_', 'matmul', 'to', 'item', 'toArray', 'backward', 'expand', 'flatten', 'unsqueeze', 'squeeze', 'maskedFill', 'norm', 'topk', 'sort', 'copy_', 'fill_', 'uniform_', 'requiresGrad_', 'channelsLast', 'toBytes', 'std', 'var'] as const;
let ok = 0, threw = 0;
const bad: string[] = [];
for (let i = 0; i < iters; i++) {
  T.scope(() => {
    const useMethod = rnd() < 0.4;
    const nargs = Math.floor(rnd() * 6);
    const args = Array.from({ length: nargs }, randArg);
    let name = '';
    try {
      if (useMethod) {
        const t = randTensor();
        name = pick(methods);
        const out = (t as unknown as Record<string, (...a: unknown[]) => unknown>)[name]!(...args);
        void out;
      } else {
        const [n, f] = pick(ops);
        name = n;
        f(...args);
      }
      ok++;
    } catch (e) {
      threw++;
      if (!(e instanceof Error)) bad.push(`${name}: threw a non-Error ${String(e)}`);
    }
  });
}
// the engine still works afterwards
const check = T.scope(() => T.ones([2, 2]).add(1).sum().item());
console.log(JSON.stringify({ iterations: iters, ok, threw, nonErrors: bad.slice(0, 5), afterwards: check, live: T.liveTensors() }));
