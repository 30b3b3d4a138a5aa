// `freeadv predict`: top-k classes with probabilities for image files (PNG, JPEG, …), from a run, a weights file with
// its model and data set, or an exported ONNX file (run by ONNX Runtime).
import { ConfigError, formatHelp, resolveOptions, type OptionTable } from '../options/index.js';
import { setNumThreads } from '../torch/index.js';
import { TRAIN_OPTIONS } from '../train/index.js';
import { openModel, predictImages, listImages, inputTransform, torchClassifier, onnxClassifier, readOnnxInfo, describeModelInfo, type Classifier, type InputTransform } from '../export/index.js';
import { parseCommand, UsageError } from './args.js';
import { MODEL_SOURCE_OPTIONS } from './export.js';

const OUT = 'Output';
const PREDICT_COMMAND = {
  ...MODEL_SOURCE_OPTIONS,
  onnx: { type: 'string', arg: 'FILE', group: MODEL_SOURCE_OPTIONS.run.group, optional: true, help: 'an ONNX file of freeadv export (run by ONNX Runtime: the onnxruntime-node package)' },
  top: { type: 'int', arg: 'K', group: OUT, min: 1, max: 1000, default: 3, help: 'classes per image' },
  threads: { ...TRAIN_OPTIONS.threads, group: OUT },
  json: { type: 'bool', group: OUT, optional: true, help: 'print one JSON object: model, dataset, predictions[{file, top[{index, class, probability}]}]' },
  help: { type: 'bool', group: OUT, optional: true, short: 'h', help: 'this help' },
} satisfies OptionTable;

function help(): string {
  return `freeadv predict — the most probable classes of images

Usage: freeadv predict <images or folders…> --run <run folder> [--top K] [--json]
       freeadv predict <images or folders…> --onnx <model.onnx>
       freeadv predict <images or folders…> --weights <file.safetensors> --model <name> --dataset <name>

${formatHelp(PREDICT_COMMAND)}

Each image is brought to the model's input with its data set's eval transform: the short side resized to the
input size (image folders: 256/224 of it) and the centre cropped; grey for 1-channel models (Fashion-MNIST and MNIST
are light objects on a dark background). A folder stands for the images directly inside it.`;
}

export async function cmdPredict(args: string[], out: (s: string) => void): Promise<number> {
  const { values, positionals } = parseCommand(PREDICT_COMMAND, args, true);
  if (values.help) {
    out(help());
    return 0;
  }
  const v = resolveOptions(PREDICT_COMMAND, values);
  if (!positionals.length) throw new UsageError('give the image files or folders to classify');
  setNumThreads(v.threads);
  let classifier: Classifier, transform: InputTransform, classNames: string[], about: Record<string, unknown>, line: string;
  if (v.onnx !== undefined) {
    const others = (['run', 'weights', 'model', 'dataset'] as const).filter((k) => v[k] !== undefined);
    if (others.length) throw new ConfigError('onnx', `takes the model from the ONNX file; drop --${others.join(', --')}`);
    const info = readOnnxInfo(v.onnx);
    const files = listImages(positionals);
    let names: unknown;
    try {
      names = info.metadata.class_names !== undefined ? JSON.parse(info.metadata.class_names) : undefined;
    } catch {
      names = undefined;
    }
    classNames = Array.isArray(names) && names.length === info.numClasses ? names.map(String) : Array.from({ length: info.numClasses }, (_, i) => String(i));
    transform = inputTransform(info.metadata.dataset, info.inputShape);
    about = { onnx: v.onnx, model: info.metadata.model, dataset: info.metadata.dataset };
    line = `${v.onnx} (ONNX Runtime): ${info.metadata.model ?? 'model'} · ${info.metadata.dataset ?? 'unknown data set'} · ${info.numClasses} classes`;
    classifier = await onnxClassifier(v.onnx, info, v.threads);
    return report(files);
  }
  const { model, info } = openModel(v);
  let files: string[];
  try {
    files = listImages(positionals);
  } catch (e) {
    model.dispose();
    throw e;
  }
  classifier = torchClassifier(model, info.inputShape, info.numClasses);
  transform = inputTransform(info.dataset, info.inputShape);
  classNames = info.classNames;
  about = { model: info.model, dataset: info.dataset, weights: info.weights };
  line = `${info.run ?? info.weights}: ${describeModelInfo(info)}`;
  return report(files);

  async function report(files: string[]): Promise<number> {
    try {
      const preds = await predictImages(files, classifier, transform, classNames, v.top);
      if (v.json) out(JSON.stringify({ ...about, predictions: preds }));
      else {
        out(line);
        const w = Math.max(...preds.flatMap((p) => p.top.map((t) => t.class.length)), 5);
        for (const p of preds) {
          out(p.file);
          for (const t of p.top) out(`  ${t.class.padEnd(w)}  ${(t.probability * 100).toFixed(2).padStart(6)}%`);
        }
      }
    } finally {
      await classifier.dispose();
    }
    return 0;
  }
}
