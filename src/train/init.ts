// Fine-tuning: `--init FILE` starts training from weights (a plain state dict with PyTorch names, or a freeadv
// checkpoint's model). Every tensor must fit the model by name and shape, except the final classification layer:
// when the data set's classes differ from the file's, `--num-classes N` (the data set's number of classes) asks for
// a new, freshly initialised classifier, and without it the mismatch is refused naming the tensor.
import { existsSync, statSync } from 'node:fs';
import { noGrad, type Tensor } from '../torch/index.js';
import { Linear, type Module } from '../nn/index.js';
import { readModelWeights, checkWeights } from '../io/index.js';
import { ConfigError } from '../options/index.js';

/** The model's final classification layer: its last Linear, with its state-dict prefix. */
export function classifierOf(model: Module): { name: string; layer: Linear } | undefined {
  let last: { name: string; layer: Linear } | undefined;
  for (const [name, m] of model.namedModules()) if (m instanceof Linear) last = { name, layer: m };
  return last;
}

const shape = (t: Tensor) => `[${t.shape.join(', ')}]`;

/**
 * Copies the weights of `file` into `model` (built for a data set with `dataClasses` classes). Returns a line for
 * the log. Refuses (ConfigError naming --init, the file and the tensor) missing or unexpected tensors and shapes
 * that differ, except the classifier's when `numClasses` is given.
 */
function checkNumClasses(numClasses: number | undefined, dataClasses: number): void {
  if (numClasses !== undefined && numClasses !== dataClasses)
    throw new ConfigError('num-classes', `is ${numClasses}, but the data set has ${dataClasses} classes (the classifier has one output per class of the data set)`);
}

export function loadInitialWeights(model: Module, file: string, o: { dataClasses: number; numClasses?: number; modelName?: string }): string {
  checkNumClasses(o.numClasses, o.dataClasses);
  if (!existsSync(file)) throw new ConfigError('init', `${file}: no such file`);
  if (statSync(file).isDirectory()) throw new ConfigError('init', `${file}: is a folder; give a weights file (e.g. a run's best.safetensors)`);
  let sd: Record<string, Tensor>;
  try {
    sd = readModelWeights(file);
  } catch (e) {
    throw new ConfigError('init', (e as Error).message);
  }
  try {
    const own = model.stateDict();
    const head = classifierOf(model);
    const headKeys = head ? [`${head.name}.weight`, `${head.name}.bias`] : [];
    const model_ = o.modelName ? `model ${o.modelName}` : 'the model';
    const missing = Object.keys(own).filter((k) => !(k in sd));
    const unexpected = Object.keys(sd).filter((k) => !(k in own));
    if (missing.length || unexpected.length) {
      const parts = [...(missing.length ? [`${model_} has ${missing.map((k) => `'${k}'`).join(', ')} which the file lacks`] : []), ...(unexpected.length ? [`the file has ${unexpected.map((k) => `'${k}'`).join(', ')} which ${model_} lacks`] : [])];
      throw new ConfigError('init', `${file}: does not fit ${model_}: ${parts.join('; ')}`);
    }
    const replaced: string[] = [];
    for (const [k, t] of Object.entries(own)) {
      const s = sd[k]!;
      if (s.shape.join(',') === t.shape.join(',')) continue;
      if (!headKeys.includes(k)) throw new ConfigError('init', `${file}: tensor '${k}' has shape ${shape(s)} there and ${shape(t)} in ${model_}; only the final classification layer ('${head?.name}') may differ`);
      if (o.numClasses === undefined) {
        throw new ConfigError('init', `${file}: the classifier '${k}' has shape ${shape(s)} there and ${shape(t)} for the data set's ${o.dataClasses} classes; give --num-classes ${o.dataClasses} to train a new, freshly initialised classifier`);
      }
      replaced.push(k);
    }
    // the classifier goes as a whole (weight and bias): it keeps the model's own fresh initialisation (this seed)
    if (replaced.length) for (const k of headKeys) if (k in own && !replaced.includes(k)) replaced.push(k);
    try {
      checkWeights(Object.fromEntries(Object.entries(sd).filter(([k]) => !replaced.includes(k))), own, file);
    } catch (e) {
      throw new ConfigError('init', (e as Error).message);
    }
    noGrad(() => {
      for (const [k, t] of Object.entries(own)) if (!replaced.includes(k)) t.copy_(sd[k]!);
    });
    const n = Object.keys(own).length - replaced.length;
    return `initialised from ${file}: ${n} tensors${replaced.length ? `; new classifier '${head!.name}' for ${o.dataClasses} classes (freshly initialised)` : ''}`;
  } finally {
    for (const t of Object.values(sd)) t.dispose();
  }
}

/** The training loop's call right after the model is built (not when resuming): --num-classes and --init. */
export function initModel(model: Module, cfg: { init?: string; numClasses?: number; model: string }, dataClasses: number, log: (line: string) => void): void {
  if (cfg.init === undefined) return checkNumClasses(cfg.numClasses, dataClasses);
  log(loadInitialWeights(model, cfg.init, { dataClasses, numClasses: cfg.numClasses, modelName: cfg.model }));
}
