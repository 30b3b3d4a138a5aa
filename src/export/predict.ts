// Predictions on image files: each image is decoded and brought to the model's input with its data set's eval
// transform (Resize of the short side + CenterCrop, as src/data/imagefolder.ts does for image folders; grey for
// 1-channel models, with PIL's luma weights), then the model — libtorch, or an ONNX file through ONNX Runtime —
// gives class probabilities, of which the top k are reported.
import { existsSync, readdirSync, statSync, readFileSync } from 'node:fs';
import { join, extname } from 'node:path';
import { fromTypedArray, noGrad, scope } from '../torch/index.js';
import type { Module } from '../nn/index.js';
import { DataError, decodeEval, IMAGE_EXTENSIONS } from '../data/index.js';
import { ConfigError } from '../options/index.js';
import { onnxSchema } from './onnx-schema.js';

/** How an image becomes a model input: C×size×size in [0, 1] after Resize(resize) + CenterCrop(size). */
export interface InputTransform {
  channels: number;
  size: number;
  resize: number;
}

/** The eval transform of a data set for a model input C×H×W (image folders: short side 256/224 of the crop, torchvision's). */
export function inputTransform(dataset: string | undefined, inputShape: readonly number[]): InputTransform {
  const [channels, size] = [inputShape[0]!, inputShape[1]!];
  return { channels, size, resize: dataset === 'imagefolder' ? Math.round((size * 256) / 224) : size };
}

/** The image files named: files as given, folders as the images directly inside them (sorted). */
export function listImages(paths: string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    if (!existsSync(p)) throw new DataError('no such file or folder', p);
    if (statSync(p).isDirectory()) {
      const files = readdirSync(p).filter((f) => !f.startsWith('.') && IMAGE_EXTENSIONS.includes(extname(f).toLowerCase())).sort().map((f) => join(p, f));
      if (!files.length) throw new DataError(`no images in this folder (${IMAGE_EXTENSIONS.join(', ')})`, p);
      out.push(...files);
    } else out.push(p);
  }
  return out;
}

/** Decodes one image into `dst` (C×size×size floats in [0, 1]); DataError naming the file when it is not an image. */
export async function loadImage(file: string, t: InputTransform, dst: Float32Array, offset = 0): Promise<void> {
  if (t.channels !== 1 && t.channels !== 3) throw new RangeError(`models with ${t.channels} input channels are not supported`);
  const plane = t.size * t.size;
  const rgb = new Uint8Array(3 * plane);
  await decodeEval(file, t.size, t.resize, rgb);
  if (t.channels === 3) {
    for (let i = 0; i < 3 * plane; i++) dst[offset + i] = rgb[i]! / 255;
    return;
  }
  // PIL's convert('L'): L = (299 R + 587 G + 114 B) / 1000, rounded to 8 bits; grey images stay as they are
  for (let i = 0; i < plane; i++) dst[offset + i] = Math.round((299 * rgb[i]! + 587 * rgb[plane + i]! + 114 * rgb[2 * plane + i]!) / 1000) / 255;
}

/** Softmax of each row of logits (batch × k). */
export function softmaxRows(logits: Float32Array, k: number): Float32Array {
  const p = new Float32Array(logits.length);
  for (let r = 0; r < logits.length / k; r++) {
    let max = -Infinity;
    for (let j = 0; j < k; j++) max = Math.max(max, logits[r * k + j]!);
    let sum = 0;
    for (let j = 0; j < k; j++) sum += Math.exp(logits[r * k + j]! - max);
    for (let j = 0; j < k; j++) p[r * k + j] = Math.exp(logits[r * k + j]! - max) / sum;
  }
  return p;
}

export interface Prediction {
  index: number;
  class: string;
  probability: number;
}

/** The top k classes of one row of probabilities, most probable first (ties: lower index first). */
export function topK(probs: ArrayLike<number>, k: number, classNames: readonly string[]): Prediction[] {
  const idx = Array.from({ length: probs.length }, (_, i) => i).sort((a, b) => probs[b]! - probs[a]! || a - b);
  return idx.slice(0, Math.min(k, probs.length)).map((i) => ({ index: i, class: classNames[i] ?? String(i), probability: probs[i]! }));
}

/** Something that turns a batch of inputs (n × C×H×W floats) into logits (n × classes). */
export interface Classifier {
  numClasses: number;
  logits(x: Float32Array, n: number): Promise<Float32Array>;
  dispose(): Promise<void> | void;
}

/** A freeadv model (eval mode) as a classifier. */
export function torchClassifier(model: Module, inputShape: readonly number[], numClasses: number): Classifier {
  return {
    numClasses,
    logits: async (x, n) => scope(() => noGrad(() => model.forward(fromTypedArray(x, [n, ...inputShape])).toTypedArray() as Float32Array)),
    dispose: () => model.dispose(),
  };
}

/** What an ONNX file says about itself: its metadata_props and its input and output shapes. */
export interface OnnxInfo {
  metadata: Record<string, string>;
  /** Input dims after the batch dimension (C, H, W). */
  inputShape: number[];
  numClasses: number;
  inputName: string;
  outputName: string;
}

/** Reads an ONNX file's metadata and input/output shapes (refused naming the file and option when it is not a usable model). */
export function readOnnxInfo(file: string, option = 'onnx'): OnnxInfo {
  if (!existsSync(file)) throw new ConfigError(option, `${file}: no such file`);
  if (statSync(file).isDirectory()) throw new ConfigError(option, `${file}: is a folder, not an ONNX file`);
  type Dim = { dim_value?: number | { toNumber(): number }; dim_param?: string };
  type VI = { name: string; type?: { tensor_type?: { shape?: { dim?: Dim[] } } } };
  let m: { graph?: { input?: VI[]; output?: VI[]; initializer?: { name: string }[] }; metadata_props?: { key: string; value: string }[] };
  try {
    m = onnxSchema().lookupType('onnx.ModelProto').decode(readFileSync(file)) as unknown as typeof m;
  } catch (e) {
    throw new ConfigError(option, `${file}: not an ONNX model (${(e as Error).message})`);
  }
  const inits = new Set((m.graph?.initializer ?? []).map((t) => t.name));
  const input = (m.graph?.input ?? []).find((v) => !inits.has(v.name));
  const output = m.graph?.output?.[0];
  const dims = (v: VI | undefined) => (v?.type?.tensor_type?.shape?.dim ?? []).map((d) => (d.dim_value !== undefined && d.dim_value !== null ? Number(d.dim_value) : NaN));
  const inDims = dims(input), outDims = dims(output);
  if (!input || !output || inDims.length !== 4 || outDims.length !== 2 || inDims.slice(1).some((d) => !(d > 0)) || !(outDims[1]! > 0)) {
    throw new ConfigError(option, `${file}: not an image classifier with an N×C×H×W input and an N×classes output`);
  }
  return {
    metadata: Object.fromEntries((m.metadata_props ?? []).map((p) => [p.key, p.value])),
    inputShape: inDims.slice(1), numClasses: outDims[1]!, inputName: input.name, outputName: output.name,
  };
}

/** An ONNX file run by ONNX Runtime (the onnxruntime-node package, loaded when needed). */
export async function onnxClassifier(file: string, info: OnnxInfo, threads?: number): Promise<Classifier> {
  let ort: typeof import('onnxruntime-node');
  try {
    ort = await import('onnxruntime-node');
  } catch {
    throw new ConfigError('onnx', 'running an ONNX file needs ONNX Runtime for Node: npm install onnxruntime-node (set ONNXRUNTIME_NODE_INSTALL=skip on Linux without CUDA)');
  }
  let session: import('onnxruntime-node').InferenceSession;
  try {
    session = await ort.InferenceSession.create(file, { ...(threads && { intraOpNumThreads: threads }), interOpNumThreads: 1 });
  } catch (e) {
    throw new ConfigError('onnx', `${file}: ONNX Runtime cannot load it (${(e as Error).message.split('\n')[0]})`);
  }
  return {
    numClasses: info.numClasses,
    logits: async (x, n) => {
      const r = await session.run({ [info.inputName]: new ort.Tensor('float32', x, [n, ...info.inputShape]) });
      return r[info.outputName]!.data as Float32Array;
    },
    dispose: () => session.release(),
  };
}

export interface ImagePrediction {
  file: string;
  top: Prediction[];
}

/** Top-k predictions for image files, decoded and classified in batches. */
export async function predictImages(files: string[], c: Classifier, t: InputTransform, classNames: readonly string[], k: number, batch = 32): Promise<ImagePrediction[]> {
  const per = t.channels * t.size * t.size;
  const out: ImagePrediction[] = [];
  for (let s = 0; s < files.length; s += batch) {
    const chunk = files.slice(s, s + batch);
    const x = new Float32Array(chunk.length * per);
    for (const [i, f] of chunk.entries()) await loadImage(f, t, x, i * per);
    const probs = softmaxRows(await c.logits(x, chunk.length), c.numClasses);
    chunk.forEach((f, i) => out.push({ file: f, top: topK(probs.subarray(i * c.numClasses, (i + 1) * c.numClasses), k, classNames) }));
  }
  return out;
}
