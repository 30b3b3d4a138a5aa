// `freeadv export`: a run's checkpoint, or a weights file with its model and data set, as a plain PyTorch state dict
// (safetensors) or an ONNX graph, each with metadata (model, data set, classes, ε and threat model, the run's clean
// and robust accuracy with the attacks named).
import { existsSync, statSync } from 'node:fs';
import { dirname, extname, resolve } from 'node:path';
import { ConfigError, formatHelp, resolveOptions, type OptionTable } from '../options/index.js';
import { writeFileAtomic } from '../io/index.js';
import { TRAIN_OPTIONS } from '../train/index.js';
import { openModel, exportMetadata, exportSafetensors, exportModelOnnx, describeModelInfo, freeadvVersion, ONNX_OPSET } from '../export/index.js';
import { parseCommand } from './args.js';

const WHAT = 'What to export', HOW = 'Output';
const train = TRAIN_OPTIONS;
export const MODEL_SOURCE_OPTIONS = {
  run: { type: 'string', arg: 'DIR', group: WHAT, optional: true, help: 'a run folder of freeadv train (its best.safetensors, or --checkpoint latest)' },
  checkpoint: { type: 'string', arg: 'WHICH', group: WHAT, choices: ['best', 'latest'] as const, default: 'best', help: "which of the run's checkpoints" },
  weights: { type: 'string', arg: 'FILE', group: WHAT, optional: true, help: 'a safetensors file of model weights (PyTorch key names) or a freeadv checkpoint; needs --model and --dataset' },
  model: { ...train.model, optional: true, default: undefined, defaultText: "the run's", help: 'the architecture of --weights' },
  dataset: { ...train.dataset, optional: true, default: undefined, defaultText: "the run's", help: 'the data set the weights were trained on (input shape, normalisation, class names)' },
  dataDir: { ...train.dataDir, help: "image folders: the data folder, for the class names (default: the run's)" },
  imageSize: { type: 'int', arg: 'S', group: WHAT, optional: true, min: 8, max: 1024, help: "image folders: the input side (default: the run's, else 224)" },
} satisfies OptionTable;

const EXPORT_COMMAND = {
  ...MODEL_SOURCE_OPTIONS,
  format: { type: 'string', arg: 'F', group: HOW, choices: ['safetensors', 'onnx'] as const, optional: true, defaultText: 'from the --out extension', help: 'safetensors: the plain PyTorch state dict; onnx: the graph (opset 17, dynamic batch, normalisation inside)' },
  out: { type: 'string', arg: 'FILE', group: HOW, optional: true, help: 'the file to write (required)' },
  eps: { ...train.eps, group: HOW, optional: true, default: undefined, defaultText: "the run's", help: 'L∞ radius to record in the metadata (pixel units)' },
  json: { type: 'bool', group: HOW, optional: true, help: 'print what was written as JSON (path, format, bytes, metadata)' },
  help: { type: 'bool', group: HOW, optional: true, short: 'h', help: 'this help' },
} satisfies OptionTable;

function help(): string {
  return `freeadv export — a trained model for PyTorch (safetensors state dict) or ONNX Runtime (ONNX graph)

Usage: freeadv export --run <run folder> --out model.onnx [--checkpoint best|latest]
       freeadv export --weights <file.safetensors> --model <name> --dataset <name> --out model.safetensors

${formatHelp(EXPORT_COMMAND)}

Both formats take images in [0, 1] (N×C×H×W): the data set's normalisation is inside the model. The metadata
(safetensors __metadata__, ONNX metadata_props) hold model, dataset, class_names, input_shape, mean, std,
threat_model (linf), eps and, for a finished run, clean_accuracy, robust_accuracy, robust_attack and
robust_accuracies from its summary.json.`;
}

/** --out must name a file in an existing folder. */
export function checkOutFile(out: string, option = 'out'): void {
  if (existsSync(out) && statSync(out).isDirectory()) throw new ConfigError(option, `${out}: is a folder; give a file name`);
  const dir = dirname(resolve(out));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new ConfigError(option, `${out}: the folder ${dir} does not exist`);
}

export async function cmdExport(args: string[], out: (s: string) => void): Promise<number> {
  const { values } = parseCommand(EXPORT_COMMAND, args);
  if (values.help) {
    out(help());
    return 0;
  }
  const v = resolveOptions(EXPORT_COMMAND, values);
  if (v.out === undefined) throw new ConfigError('out', 'is required: the file to write (e.g. model.onnx or model.safetensors)');
  checkOutFile(v.out);
  const ext = extname(v.out).toLowerCase();
  const format = v.format ?? (ext === '.onnx' ? 'onnx' : ext === '.safetensors' ? 'safetensors' : undefined);
  if (!format) throw new ConfigError('format', `give --format safetensors or onnx (the extension of --out ${v.out} does not tell)`);
  const { model, info } = openModel(v);
  try {
    if (resolve(v.out) === info.weights) throw new ConfigError('out', `${v.out} is the weights file being exported; write to another file`);
    const metadata = exportMetadata(info, freeadvVersion());
    let bytes: number;
    if (format === 'safetensors') {
      exportSafetensors(model, metadata, v.out);
      bytes = statSync(v.out).size;
    } else {
      const buf = exportModelOnnx(model, info);
      writeFileAtomic(v.out, buf);
      bytes = buf.byteLength;
    }
    if (v.json) out(JSON.stringify({ path: resolve(v.out), format, bytes, ...(format === 'onnx' && { opset: ONNX_OPSET }), metadata }));
    else out(`wrote ${v.out} (${format === 'onnx' ? `ONNX, opset ${ONNX_OPSET}` : 'safetensors state dict'}, ${(bytes / 2 ** 20).toFixed(1)} MiB): ${describeModelInfo(info)}`);
  } finally {
    model.dispose();
  }
  return 0;
}
