// Small trained models for attack tests.
import * as T from '../../src/torch/index.js';
import type { Module } from '../../src/nn/index.js';
import { createModel } from '../../src/models/index.js';
import { SGD } from '../../src/optim/index.js';
import type { InMemoryDataset } from '../../src/data/index.js';

/** A small-cnn trained briefly (seed 1, random batches of 128, SGD momentum), in eval mode. */
export function trainedSmallCnn(data: InMemoryDataset, steps: number): Module {
  T.manualSeed(1);
  const m = createModel('small-cnn', { numClasses: 10, inChannels: 1, size: 28, mean: data.mean, std: data.std });
  const opt = new SGD(m.parameters(), { lr: 0.05, momentum: 0.9 });
  for (let i = 0; i < steps; i++)
    T.scope(() => {
      const idx = T.randint(0, data.n, [128]).toArray() as number[];
      const x = T.fromTypedArray(Float32Array.from(idx.flatMap((j) => Array.from(data.images.subarray(j * 784, (j + 1) * 784), (v) => v / 255))), [128, 1, 28, 28]);
      const y = T.tensor(idx.map((j) => data.labels[j]!), { dtype: 'int64' });
      const loss = T.ops.crossEntropy(m.forward(x), y);
      opt.zeroGrad();
      loss.backward();
      opt.step();
    });
  opt.dispose();
  return m.eval();
}
