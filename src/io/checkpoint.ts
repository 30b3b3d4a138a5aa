// A run checkpoint is one safetensors file: model tensors under 'model.<key>' (PyTorch names), optimizer state
// under 'optim.<key>', other tensors (free training's δ, RNG state) under their own names, and the rest of the
// run's state as JSON in the metadata entry 'freeadv'. Written atomically.
import { Tensor } from '../torch/index.js';
import { saveSafetensors, loadSafetensors, CheckpointError } from './safetensors.js';

export const CHECKPOINT_FORMAT = 1;

export interface Checkpoint {
  model: Record<string, Tensor>;
  optimizer: Record<string, Tensor>;
  tensors: Record<string, Tensor>;
  state: Record<string, unknown>;
}

export function saveCheckpoint(path: string, c: { model: Record<string, Tensor>; optimizer?: Record<string, Tensor>; tensors?: Record<string, Tensor>; state: object }): void {
  const all: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(c.model)) all[`model.${k}`] = t;
  for (const [k, t] of Object.entries(c.optimizer ?? {})) all[`optim.${k}`] = t;
  for (const [k, t] of Object.entries(c.tensors ?? {})) {
    if (k.startsWith('model.') || k.startsWith('optim.')) throw new Error(`checkpoint tensor name '${k}' is reserved`);
    all[k] = t;
  }
  saveSafetensors(path, all, { freeadv: JSON.stringify({ format: CHECKPOINT_FORMAT, ...c.state }) });
}

/** Loads a checkpoint; the caller owns (and disposes) every tensor in it. */
export function loadCheckpoint(path: string): Checkpoint {
  const { tensors, metadata } = loadSafetensors(path);
  const out: Checkpoint = { model: {}, optimizer: {}, tensors: {}, state: {} };
  for (const [k, t] of Object.entries(tensors)) {
    if (k.startsWith('model.')) out.model[k.slice(6)] = t;
    else if (k.startsWith('optim.')) out.optimizer[k.slice(6)] = t;
    else out.tensors[k] = t;
  }
  if (metadata.freeadv !== undefined) {
    try {
      const s = JSON.parse(metadata.freeadv) as unknown;
      if (typeof s !== 'object' || s === null) throw new Error('not an object');
      out.state = s as Record<string, unknown>;
    } catch (e) {
      for (const t of Object.values(tensors)) t.dispose();
      throw new CheckpointError(`${path}: metadata 'freeadv' is not valid JSON state (${(e as Error).message})`);
    }
  }
  return out;
}
