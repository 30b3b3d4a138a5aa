// A run checkpoint is one safetensors file: model tensors under 'model.<key>' (PyTorch names), optimizer state
// under 'optim.<key>', other tensors (free training's perturbation 'delta', the RNG state 'rng.cpu', ...) under
// their own names, and the rest of the run's state (step, epoch, position, schedule, config) as JSON in the
// metadata entry 'freeadv', with the format version under 'format'. Written atomically; nothing here knows
// about modules or optimizers, only Records of tensors.
import { Tensor, isFloating, scope } from '../torch/index.js';
import { saveSafetensors, loadSafetensors, CheckpointError, put } from './safetensors.js';

/** The checkpoint layout version written into state.format; files with a newer one are refused. */
export const CHECKPOINT_FORMAT = 1;
/** The metadata entry that holds the JSON state. */
export const STATE_KEY = 'freeadv';

export interface Checkpoint {
  model: Record<string, Tensor>;
  optimizer: Record<string, Tensor>;
  tensors: Record<string, Tensor>;
  /** The saved state, with `format` set to the layout version. */
  state: Record<string, unknown>;
}

export interface CheckpointContents {
  model: Record<string, Tensor>;
  optimizer?: Record<string, Tensor>;
  /** Other tensors by name, e.g. { delta, 'rng.cpu': getRngState() }; names may not start with 'model.' or 'optim.'. */
  tensors?: Record<string, Tensor>;
  /** JSON-serializable run state. */
  state: object;
}

/** Writes a checkpoint atomically (the previous file at `path` survives any failure). Tensors are not disposed. */
export function saveCheckpoint(path: string, c: CheckpointContents): void {
  const all: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(c.model)) put(all, `model.${k}`, t);
  for (const [k, t] of Object.entries(c.optimizer ?? {})) put(all, `optim.${k}`, t);
  for (const [k, t] of Object.entries(c.tensors ?? {})) {
    if (k.startsWith('model.') || k.startsWith('optim.')) throw new TypeError(`checkpoint tensor name '${k}' is reserved (model./optim. prefixes)`);
    put(all, k, t);
  }
  const json = JSON.stringify({ ...c.state, format: CHECKPOINT_FORMAT });
  saveSafetensors(path, all, { [STATE_KEY]: json });
}

/** Loads a checkpoint written by saveCheckpoint; the caller owns (and disposes) every tensor in it. */
export function loadCheckpoint(path: string): Checkpoint {
  const { tensors, metadata } = loadSafetensors(path);
  const refuse = (msg: string): never => {
    for (const t of Object.values(tensors)) t.dispose();
    throw new CheckpointError(`${path}: ${msg}`);
  };
  const json = metadata[STATE_KEY];
  if (json === undefined) refuse(`not a freeadv checkpoint (no '${STATE_KEY}' metadata)`);
  let state: unknown;
  try {
    state = JSON.parse(json!);
  } catch (e) {
    refuse(`metadata '${STATE_KEY}' is not valid JSON (${(e as Error).message})`);
  }
  if (typeof state !== 'object' || state === null || Array.isArray(state)) refuse(`metadata '${STATE_KEY}' is not a JSON object`);
  const format = (state as { format?: unknown }).format;
  if (!Number.isInteger(format) || (format as number) < 1) refuse(`checkpoint format ${JSON.stringify(format)} is not a version number`);
  if ((format as number) > CHECKPOINT_FORMAT) refuse(`checkpoint format ${format} is newer than this freeadv reads (${CHECKPOINT_FORMAT}); upgrade freeadv`);
  const out: Checkpoint = { model: {}, optimizer: {}, tensors: {}, state: state as Record<string, unknown> };
  for (const [k, t] of Object.entries(tensors)) {
    if (k.startsWith('model.')) put(out.model, k.slice(6), t);
    else if (k.startsWith('optim.')) put(out.optimizer, k.slice(6), t);
    else put(out.tensors, k, t);
  }
  return out;
}

/** Disposes every tensor of a loaded checkpoint. */
export function disposeCheckpoint(c: Pick<Checkpoint, 'model' | 'optimizer' | 'tensors'>): void {
  for (const group of [c.model, c.optimizer, c.tensors]) for (const t of Object.values(group)) t.dispose();
}

/**
 * Model weights from a safetensors file: a freeadv checkpoint (its 'model.' tensors) or a plain state dict
 * (PyTorch key names). The caller owns (and disposes) the tensors.
 */
export function readModelWeights(path: string): Record<string, Tensor> {
  const { tensors, metadata } = loadSafetensors(path);
  if (metadata[STATE_KEY] === undefined) return tensors;
  const model: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(tensors)) {
    if (k.startsWith('model.')) put(model, k.slice(6), t);
    else t.dispose();
  }
  return model;
}

/**
 * Weights that are not numbers are refused, naming the tensor: NaN or infinite values, and an integer or bool
 * tensor where the model has a floating one (it would be cast silently).
 */
export function checkWeights(sd: Record<string, Tensor>, own: Record<string, Tensor>, path: string): void {
  for (const [k, t] of Object.entries(sd)) {
    const mine = own[k];
    if (!mine || !isFloating(mine.dtype)) continue;
    if (!isFloating(t.dtype)) throw new CheckpointError(`${path}: tensor '${k}' is ${t.dtype}; the model's is ${mine.dtype} (weights must be floating-point)`);
    if (!scope(() => t.isfinite().all().item())) throw new CheckpointError(`${path}: tensor '${k}' holds NaN or infinite values`);
  }
}

/** Loads weights from a file into a model (anything with loadStateDict), naming the file on a mismatch. */
export function loadWeights(model: { loadStateDict(sd: Record<string, Tensor>): void; stateDict(): Record<string, Tensor> }, path: string): void {
  const sd = readModelWeights(path);
  try {
    checkWeights(sd, model.stateDict(), path);
    model.loadStateDict(sd);
  } catch (e) {
    throw new CheckpointError(`${path}: ${(e as Error).message}`);
  } finally {
    for (const t of Object.values(sd)) t.dispose();
  }
}
