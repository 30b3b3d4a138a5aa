// `freeadv eval`: a run's checkpoint, or weights with a model, under attacks on the test set.
import { ConfigError, formatHelp, resolveOptions, formatEps, type OptionTable } from '../options/index.js';
import { setNumThreads, manualSeed } from '../torch/index.js';
import { modelFor } from '../models/index.js';
import { loadSplit } from '../data/index.js';
import { loadWeights } from '../io/index.js';
import { evaluateDataset } from '../eval/index.js';
import { attackUsage, checkAttackName } from '../attacks/index.js';
import { TRAIN_OPTIONS, AMP_NAMES, ampType, resolveConfig, readRunConfig, runCheckpoint, RUN_FILES } from '../train/index.js';
import { parseCommand, UsageError } from './args.js';
import { accuracyTable, stageLines } from './print.js';

const WHAT = 'What to evaluate', HOW = 'Evaluation', OUT = 'Output';
const train = TRAIN_OPTIONS;
const EVAL_COMMAND = {
  run: { type: 'string', arg: 'DIR', group: WHAT, optional: true, help: 'a run folder of freeadv train (its best.safetensors, or --checkpoint latest)' },
  checkpoint: { type: 'string', arg: 'WHICH', group: WHAT, choices: ['best', 'latest'] as const, default: 'best', help: "which of the run's checkpoints" },
  weights: { type: 'string', arg: 'FILE', group: WHAT, optional: true, help: 'a safetensors file of model weights (PyTorch key names) or a freeadv checkpoint' },
  model: { ...train.model, optional: true, default: undefined, defaultText: "the run's", help: 'the model of --weights' },
  dataset: { ...train.dataset, optional: true, default: undefined, defaultText: "the run's, else fashion-mnist" },
  dataDir: train.dataDir,
  eps: { ...train.eps, group: HOW, optional: true, default: undefined, defaultText: "the run's, else the data set's" },
  attacks: { ...train.evalAttacks, group: HOW, help: `attacks, each on every example: ${attackUsage()}` },
  restarts: { ...train.evalRestarts, group: HOW },
  limit: { ...train.evalLimit, group: HOW },
  batchSize: { ...train.evalBatchSize, group: HOW, optional: true, default: undefined, defaultText: "the run's --eval-batch-size, else 500; 64 for image folders", help: 'examples per batch (memory is bounded by it, not by --limit)' },
  seed: { ...train.seed, group: HOW },
  threads: { ...train.threads, group: HOW },
  device: { ...train.device, group: HOW },
  attackAmp: { type: 'string', arg: 'T', group: HOW, choices: AMP_NAMES.filter((a) => a !== 'none'), optional: true, check: (v, c) => train.amp.check(v, { dtype: 'float32', device: c.device }), help: 'evaluate and attack under bf16 or fp16 autocast (default: float32); attacks in low precision can understate robustness, so the result carries a warning' },
  json: { type: 'bool', group: OUT, optional: true, help: 'print one JSON object: clean_accuracy, robust_accuracy{attack…, worst_case}, eps, examples' },
  help: { type: 'bool', group: OUT, optional: true, short: 'h', help: 'this help' },
} satisfies OptionTable;

function help(): string {
  return `freeadv eval — robustness evaluation (clean, each attack, worst case per example)

Usage: freeadv eval --run <run folder> [options]
       freeadv eval --weights <file.safetensors> --model <name> [--dataset NAME] [options]

${formatHelp(EVAL_COMMAND)}`;
}

export async function cmdEval(args: string[], out: (s: string) => void): Promise<number> {
  const { values } = parseCommand(EVAL_COMMAND, args);
  if (values.help) {
    out(help());
    return 0;
  }
  const v = resolveOptions(EVAL_COMMAND, values);
  let weights: string;
  let base: Partial<ReturnType<typeof readRunConfig>> = {};
  if (v.run !== undefined) {
    base = readRunConfig(v.run, 'run');
    const ck = runCheckpoint(v.run, v.checkpoint);
    if (!ck) throw new ConfigError('run', `${v.run}: the run has no checkpoint yet (${RUN_FILES.latest})`);
    weights = ck;
  } else {
    if (v.weights === undefined || v.model === undefined) throw new UsageError('give --run <run folder>, or --weights <file> with --model <name>');
    weights = v.weights;
  }
  const dataset = v.dataset ?? base.dataset;
  // the data set's defaults (ε) and the run's settings, checked like a training configuration
  const cfg = resolveConfig({
    dataset,
    dataDir: v.dataDir ?? base.dataDir,
    model: v.model ?? base.model,
    eps: v.eps ?? base.eps,
    ...(dataset === 'imagefolder' && { imageSize: base.imageSize, skipBad: base.skipBad }),
  });
  setNumThreads(v.threads);
  manualSeed(v.seed);
  const data = await loadSplit(cfg, 'test');
  for (const a of v.attacks) {
    const why = checkAttackName(a, data.numClasses);
    if (why) throw new ConfigError('attacks', why);
  }
  const model = modelFor(cfg.model, data, { device: v.device });
  try {
    loadWeights(model, weights);
    const r = await evaluateDataset(model, data, { eps: cfg.eps, attacks: v.attacks, limit: v.limit, batchSize: v.batchSize ?? base.evalBatchSize ?? cfg.evalBatchSize, restarts: v.restarts, seed: v.seed, device: v.device, ...(v.attackAmp && { amp: ampType(v.attackAmp) }) });
    if (v.json) out(JSON.stringify({ clean_accuracy: r.clean_accuracy, robust_accuracy: r.robust_accuracy, ...(r.stages && { stages: r.stages }), eps: r.eps, examples: r.examples, attacks: r.attacks, ...(r.amp && { amp: r.amp }), warnings: r.warnings, seconds: r.seconds }));
    else {
      out(`${cfg.model} · ${cfg.dataset} · ε=${formatEps(cfg.eps)} · ${r.examples} test images · ${r.seconds.toFixed(0)} s${r.amp ? ` · under ${r.amp} autocast` : ''}`);
      out(accuracyTable(r.clean_accuracy, r.robust_accuracy));
      for (const l of stageLines(r.stages)) out(l);
      for (const w of r.warnings) out(`warning: ${w}`);
    }
  } finally {
    model.dispose();
  }
  return 0;
}
