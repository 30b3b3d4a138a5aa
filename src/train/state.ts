// What a training checkpoint holds: the model, the optimizer's momentum, the method's persistent tensors (free
// training's δ), the RNG (the CPU's, and on a GPU that GPU's) and the loop's position. With several processes the per-row method state is gathered
// into the one-process layout, so a run can resume with any number of processes.
import { Tensor, getRngState, setRngState, scope, noGrad, type dist } from '../torch/index.js';
import type { Module } from '../nn/index.js';
import type { SGD, GradScaler, GradScalerState } from '../optim/index.js';
import { saveCheckpoint, loadCheckpoint, disposeCheckpoint, CheckpointError } from '../io/index.js';
import { StateDictError } from '../nn/index.js';
import { S, check } from '../options/index.js';
import { TrainingError } from './errors.js';
import { gatherRows, localRows, isRoot } from './distributed.js';

export interface LoopState {
  /** SGD steps done. */
  step: number;
  /** Passes over the training data done. */
  pass: number;
  /** Next batch of `pass` to train on. */
  batch: number;
  /** SGD steps already made on that batch (free training's replays; 0 at its start). */
  replay: number;
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

/**
 * The GPU a model is on ('cuda:N'), or undefined on the CPU: random numbers of GPU tensors (FGSM's and PGD's random
 * starts) come from that GPU's generator, whose state a checkpoint keeps beside the CPU's ('rng.cuda').
 */
export function gpuOf(model: Module): string | undefined {
  const device = model.parameters()[0]?.device; // 'cuda:N' (the device option may say 'cuda')
  return device?.startsWith('cuda') ? device : undefined;
}

/** Writes a checkpoint (rank 0; every rank takes part in gathering the method state). */
export function saveState(path: string, p: TrainingParts): void {
  const gpu = gpuOf(p.model);
  scope(() => {
    const tensors = p.group ? Object.fromEntries([...p.methodState].map(([k, t]) => [k, gatherRows(t, p.group!)])) : Object.fromEntries(p.methodState);
    if (!isRoot(p.group)) return;
    saveCheckpoint(path, {
      model: p.model.stateDict(),
      optimizer: p.opt.stateDict(),
      tensors: { ...tensors, 'rng.cpu': getRngState(), ...(gpu && { 'rng.cuda': getRngState(gpu) }) },
      state: { ...p.position, ...(p.scaler && { grad_scaler: p.scaler.stateDict() }), format: 1 },
    });
  });
}

const VAL = S.obj({ pass: S.int(0), clean_accuracy: S.num(0, 1), robust_accuracy: S.num(0, 1) });
/** The loop's position as a checkpoint's metadata holds it (checked when read, like every file of a run folder). */
const POSITION_SCHEMA = S.obj(
  { step: S.int(0), pass: S.int(0), batch: S.int(0), replay: S.int(0), trainSeconds: S.num(0), images: S.num(0), lastVal: VAL, bestVal: VAL, stoppedEarly: S.str() },
  ['replay', 'lastVal', 'bestVal', 'stoppedEarly'], // replay: absent in checkpoints from before steps within a minibatch
);

/**
 * Restores every part from a checkpoint; a rank takes its rows of the method state. A checkpoint that does not
 * fit the run (another model, data set or batch) is refused with a CheckpointError naming the file and `run`
 * (what the run's config.json describes).
 */
export function restoreState(path: string, p: TrainingParts, run = 'this run'): void {
  const ck = loadCheckpoint(path);
  const refuse = (why: string): never => {
    throw new CheckpointError(`${path}: does not fit ${run}: ${why}`);
  };
  try {
    const position = check<LoopState>(ck.state, POSITION_SCHEMA, `${path} (metadata)`);
    try {
      p.model.loadStateDict(ck.model);
      p.opt.loadStateDict(ck.optimizer);
    } catch (e) {
      if (e instanceof StateDictError || e instanceof RangeError) refuse(e.message);
      throw e;
    }
    for (const [k, t] of p.methodState) {
      const s = ck.tensors[k];
      if (!s) throw new TrainingError(`${path}: checkpoint lacks '${k}'`);
      const global = [p.batchSize, ...t.shape.slice(1)];
      if (s.shape.join() !== global.join()) refuse(`its '${k}' has shape [${s.shape}], the run's is [${global}]`);
      noGrad(() => scope(() => t.copy_(p.group && s.ndim > 0 && s.size(0) === p.batchSize ? localRows(s, p.group) : s)));
    }
    if (ck.tensors['rng.cpu']) setRngState(ck.tensors['rng.cpu']);
    const gpu = gpuOf(p.model);
    if (gpu && ck.tensors['rng.cuda']) setRngState(ck.tensors['rng.cuda'], gpu);
    const { grad_scaler } = ck.state as { grad_scaler?: GradScalerState };
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
