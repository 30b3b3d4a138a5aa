// What a training checkpoint holds: the model, the optimizer's momentum, the method's persistent tensors (free
// training's δ), the RNG and the loop's position. With several processes the per-row method state is gathered
// into the one-process layout, so a run can resume with any number of processes.
import { Tensor, getRngState, setRngState, scope, noGrad, type dist } from '../torch/index.js';
import type { Module } from '../nn/index.js';
import type { SGD, GradScaler, GradScalerState } from '../optim/index.js';
import { saveCheckpoint, loadCheckpoint, disposeCheckpoint } from '../io/index.js';
import { TrainingError } from './errors.js';
import { gatherRows, localRows, isRoot } from './distributed.js';

export interface LoopState {
  /** SGD steps done. */
  step: number;
  /** Passes over the training data done. */
  pass: number;
  /** Next batch of `pass` to train on. */
  batch: number;
  trainSeconds: number;
  images: number;
  /** Validation after the last pass, and the best one (its robust accuracy picked best.safetensors). */
  lastVal?: PassValidation;
  bestVal?: PassValidation;
  stoppedEarly?: string;
}

export interface PassValidation {
  /** The pass it followed (1-based: passes done). */
  pass: number;
  clean_accuracy: number;
  robust_accuracy: number;
}

export interface TrainingParts {
  model: Module;
  opt: SGD;
  methodState: Map<string, Tensor>;
  position: LoopState;
  group?: dist.Rank;
  /** The global batch (the first dimension of per-row method state in checkpoints). */
  batchSize: number;
  /** --amp fp16: the gradient scaler (its scale and growth tracker are checkpointed). */
  scaler?: GradScaler;
}

/** Writes a checkpoint (rank 0; every rank takes part in gathering the method state). */
export function saveState(path: string, p: TrainingParts): void {
  scope(() => {
    const tensors = p.group ? Object.fromEntries([...p.methodState].map(([k, t]) => [k, gatherRows(t, p.group!)])) : Object.fromEntries(p.methodState);
    if (!isRoot(p.group)) return;
    saveCheckpoint(path, {
      model: p.model.stateDict(),
      optimizer: p.opt.stateDict(),
      tensors: { ...tensors, 'rng.cpu': getRngState() },
      state: { ...p.position, ...(p.scaler && { grad_scaler: p.scaler.stateDict() }), format: 1 },
    });
  });
}

/** Restores every part from a checkpoint; a rank takes its rows of the method state. */
export function restoreState(path: string, p: TrainingParts): void {
  const ck = loadCheckpoint(path);
  try {
    p.model.loadStateDict(ck.model);
    p.opt.loadStateDict(ck.optimizer);
    for (const [k, t] of p.methodState) {
      const s = ck.tensors[k];
      if (!s) throw new TrainingError(`${path}: checkpoint lacks '${k}'`);
      noGrad(() => scope(() => t.copy_(p.group && s.ndim > 0 && s.size(0) === p.batchSize ? localRows(s, p.group) : s)));
    }
    if (ck.tensors['rng.cpu']) setRngState(ck.tensors['rng.cpu']);
    const { grad_scaler, ...position } = ck.state as Partial<LoopState> & { grad_scaler?: GradScalerState };
    if (p.scaler) {
      if (!grad_scaler) throw new TrainingError(`${path}: checkpoint lacks the gradient scaler's state (was the run trained with --amp fp16?)`);
      p.scaler.loadStateDict(grad_scaler);
    }
    Object.assign(p.position, position);
  } finally {
    disposeCheckpoint(ck);
  }
}

/** Loads only the model weights of a checkpoint. */
export function restoreWeights(model: Module, path: string): void {
  const ck = loadCheckpoint(path);
  try {
    model.loadStateDict(ck.model);
  } finally {
    disposeCheckpoint(ck);
  }
}
