// The `freeadv` command line: train, eval, info. Bad input ends with a clear message naming the option or file
// and a non-zero exit code (2 for bad input, 1 for failures at run time, 130 when interrupted).
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { readFileSync, existsSync } from 'node:fs';
import { join, extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { resolveConfig, ConfigError, camel, parseNumber, type TrainConfig } from '../train/config.js';
import { train, evaluateOn, loadData, readRunConfig, InterruptedError, TrainingError, fmtEps, RUN_FILES, type Summary } from '../train/loop.js';
import { createModel, checkModel, describeModels } from '../models/index.js';
import { parseAttackName } from '../eval/index.js';
import { loadSafetensors, CheckpointError, WriteError } from '../io/index.js';
import { DataError } from '../data/index.js';
import { setNumThreads, getNumThreads, manualSeed, version, cuda, TorchError } from '../torch/index.js';
import type { Module } from '../nn/index.js';
import { buildReport, ReportError, REPORT_DEFAULTS, type ReportOptions } from '../report/index.js';
import { dist } from '../torch/index.js';
import { rendezvousFromEnv } from '../torch/dist.js';
import { launch } from './launch.js';
import { cpus } from 'node:os';
import { Writable } from 'node:stream';

/** Whether args[i] is a data-parallel launcher option or its value. */
function isDistArg(args: string[], i: number): boolean {
  const name = (a: string) => a.replace(/^--/, '').split('=')[0]!;
  const a = args[i]!;
  if (a.startsWith('--') && DIST_OPTS.includes(name(a))) return true;
  const p = args[i - 1];
  return p !== undefined && p.startsWith('--') && !p.includes('=') && DIST_OPTS.includes(name(p));
}

const TRAIN_HELP = `freeadv train — adversarial training for free (Shafahi et al. 2019) and its baselines

Usage: freeadv train [options]
       freeadv train --resume <run folder>

Data and model
  --dataset NAME        fashion-mnist (default, Debian's dataset-fashion-mnist), mnist, cifar10, cifar100, imagefolder
  --data-dir DIR        data folder (IDX files; CIFAR binaries or train/<class>/*.jpg; ImageFolder)
  --image-size S        imagefolder: training crop (RandomResizedCrop + flip) and eval centre crop side (default 224)
  --skip-bad            imagefolder: leave out undecodable images (counted and reported) instead of stopping
  --augment, --no-augment  training augmentation on or off (default on for CIFAR and image folders: pad-4 crop
                        + flip, RandomResizedCrop + flip; off for 28×28 data)
  --model NAME          default: small-cnn for 28×28 data, resnet-cifar-small for CIFAR on CPU
${describeModels()}
Method
  --method NAME         free (default), pgd, fgsm, natural
  --replays M           free: minibatch replays m (default 4)
  --eps E               L∞ radius in pixel units: 0.1 or 8/255 (default 0.1 for Fashion-MNIST, 8/255 for CIFAR)
  --step-size S         free: ε; fgsm: 1.25ε; pgd: 2.5ε/k (defaults)
  --attack-steps K      pgd: steps k (default 7)
Optimisation
  --epochs N            budget in natural-training epochs (free makes ceil(N/m) passes; default 8 for Fashion-MNIST)
  --batch-size B        (default 128)
  --lr LR               peak learning rate (default 0.05 Fashion-MNIST, 0.1 CIFAR)
  --lr-schedule S       cosine, multistep, cyclic, piecewise, constant
  --momentum M          (default 0.9)     --weight-decay W (default 5e-4)     --nesterov
  --max-steps N         stop after N SGD steps
Run
  --out DIR             run folder (default runs/<method>-<dataset>-<time>)
  --resume DIR          continue an interrupted run exactly where it stopped
  --config FILE         JSON or YAML file with the same keys (kebab-case or camelCase); options override it
  --seed S              (default 0)        --threads T (default: all cores)        --device cpu|cuda[:N]
  --eval-attacks LIST   attacks after training (default pgd-20): pgd-K, pgd-K-l2, cw-K, fgsm, apgd-ce, apgd-dlr
  --eval-limit N        evaluate on the first N test images (default all)
  --eval-batch-size B   (default 500)      --eval-restarts R (default 1)
  --log-every N         SGD steps per line of metrics.jsonl (default 50)
  --checkpoint-every N  also checkpoint every N SGD steps (default: at the end of every pass)
  --json                print the summary as JSON
  -h, --help
Several processes (data parallel over c10d/Gloo; --batch-size stays the global batch, B/N per process)
  --nproc N             start N training processes on this machine (threads per process: cores / N)
  --nnodes M            machines in the job (default 1); with --node-rank K, --master-addr A, --master-port P
  --node-rank K         this machine's index in [0, M)
  --master-addr A       address of rank 0's machine (default 127.0.0.1)
  --master-port P       its TCP port (default: a free port with one machine, 29500 with several)
  --dist-timeout S      seconds before a dead or hung peer stops the job with an error (default 300)
  A process started with torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK) joins
  that job: freeadv runs under torchrun, SLURM or any launcher that sets them.
  Gradients are all-reduced in buckets during the backward pass (c10d's Reducer, as PyTorch DDP);
  FREEADV_GRAD_SYNC=after-backward all-reduces them after it instead, FREEADV_BUCKET_MB sets the bucket size (25).

A run folder holds config.json, metrics.jsonl, latest.safetensors, best.safetensors and summary.json.
Ctrl-C finishes the current step, writes a checkpoint and prints how to resume.`;

const EVAL_HELP = `freeadv eval — robustness evaluation (clean, each attack, worst case per example)

Usage: freeadv eval --run <run folder> [options]
       freeadv eval --weights <file.safetensors> --model <name> [--dataset NAME] [options]

  --run DIR             a run folder of freeadv train (uses its best.safetensors, or --checkpoint latest)
  --checkpoint WHICH    best (default) or latest
  --weights FILE        a safetensors file of model weights (PyTorch key names)
  --model NAME          the model of --weights
  --dataset NAME        (default fashion-mnist, or the run's)      --data-dir DIR
  --eps E               0.1 or 8/255 (default: the run's, else the data set's)
  --attacks LIST        default pgd-20; e.g. pgd-20,pgd-100,fgsm,apgd-ce,apgd-dlr
  --restarts R          restarts per PGD/APGD attack (default 1)
  --limit N             first N test examples (default all)
  --batch-size B        (default 500)      --seed S      --threads T      --device cpu|cuda
  --json                print one JSON object: clean_accuracy, robust_accuracy{attack..., worst_case}, eps, examples
  -h, --help`;

const REPORT_HELP = `freeadv report — one self-contained HTML page (works offline) from one or more run folders

Usage: freeadv report <run folder> [<run folder> …] [options]

The page shows training curves (runs overlaid), a comparison table shaped like the paper's Table 1,
robustness curves, an adversarial gallery, the loss surface around test images, input-gradient saliency
and large-ε targeted attacks. The analyses use each run's best.safetensors (else latest) on its first test
images and are cached in the run folder (report-cache.json), so re-rendering is instant.

  --out FILE            the HTML file to write (default report.html)
  --checkpoint WHICH    best (default; falls back to latest) or latest
  --images K            test images in the gallery and the analyses (default ${REPORT_DEFAULTS.images})
  --attack-steps K      PGD steps of the gallery's adversarial examples (default ${REPORT_DEFAULTS.attackSteps})
  --surface-points N    loss-surface grid points per axis, odd (default ${REPORT_DEFAULTS.surfacePoints})
  --surface-range R     loss-surface half-width in multiples of the run's ε (default ${REPORT_DEFAULTS.surfaceRange})
  --target-eps E        radius of the large-ε targeted attacks (default 4ε for linf, ε·√(pixels) for l2)
  --target-norm N       linf (default) or l2
  --target-steps K      steps of the targeted attacks (default ${REPORT_DEFAULTS.targetSteps})
  --target-class C      target class (index or name) for every image (default: the next class after the label)
  --robustness-curve    compute (or reuse from the cache) accuracy under PGD as ε grows
  --curve-eps LIST      the curve's ε values as multiples of the run's ε (default ${REPORT_DEFAULTS.curveEps.join(',')})
  --curve-steps K       PGD steps of the curve (default ${REPORT_DEFAULTS.curveSteps})
  --limit N             test images of the curve (default ${REPORT_DEFAULTS.limit})
  --data-dir DIR        the runs' data folder, when it moved since training
  --no-cache            recompute everything (the cache is still updated)
  --title TEXT          the page's title
  --seed S              (default 0)        --threads T (default: all cores)
  -h, --help`;

const HELP = `freeadv — adversarially robust training at the cost of natural training, on libtorch

Usage: freeadv <command> [options]

Commands
  train     train with free-m, PGD-k, FGSM-RS or natural training, then evaluate
  eval      evaluate a trained model under attacks
  report    an HTML page of runs: curves, comparison table, robustness, gallery, the paper's analyses
  info      versions, threads and devices

Run 'freeadv <command> --help' for its options.`;

class UsageError extends Error {}

const TRAIN_OPTS: ParseArgsConfig['options'] = {
  dataset: { type: 'string' }, 'data-dir': { type: 'string' }, model: { type: 'string' }, method: { type: 'string' },
  replays: { type: 'string' }, eps: { type: 'string' }, 'step-size': { type: 'string' }, 'attack-steps': { type: 'string' },
  epochs: { type: 'string' }, 'batch-size': { type: 'string' }, lr: { type: 'string' }, 'lr-schedule': { type: 'string' },
  momentum: { type: 'string' }, 'weight-decay': { type: 'string' }, nesterov: { type: 'boolean' }, seed: { type: 'string' },
  threads: { type: 'string' }, device: { type: 'string' }, out: { type: 'string' }, resume: { type: 'string' },
  config: { type: 'string' }, 'eval-attacks': { type: 'string' }, 'eval-limit': { type: 'string' },
  'eval-batch-size': { type: 'string' }, 'eval-restarts': { type: 'string' }, 'max-steps': { type: 'string' },
  'log-every': { type: 'string' }, 'checkpoint-every': { type: 'string' }, augment: { type: 'boolean' },
  'no-augment': { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  'image-size': { type: 'string' }, 'skip-bad': { type: 'boolean' },
  nproc: { type: 'string' }, nnodes: { type: 'string' }, 'node-rank': { type: 'string' }, 'master-addr': { type: 'string' },
  'master-port': { type: 'string' }, 'dist-timeout': { type: 'string' },
};

const DIST_OPTS = ['nproc', 'nnodes', 'node-rank', 'master-addr', 'master-port', 'dist-timeout'];

const EVAL_OPTS: ParseArgsConfig['options'] = {
  run: { type: 'string' }, checkpoint: { type: 'string' }, weights: { type: 'string' }, model: { type: 'string' },
  dataset: { type: 'string' }, 'data-dir': { type: 'string' }, eps: { type: 'string' }, attacks: { type: 'string' },
  restarts: { type: 'string' }, limit: { type: 'string' }, 'batch-size': { type: 'string' }, seed: { type: 'string' },
  threads: { type: 'string' }, device: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
};

const REPORT_OPTS: ParseArgsConfig['options'] = {
  out: { type: 'string' }, checkpoint: { type: 'string' }, images: { type: 'string' }, 'attack-steps': { type: 'string' },
  'surface-points': { type: 'string' }, 'surface-range': { type: 'string' }, 'target-eps': { type: 'string' },
  'target-norm': { type: 'string' }, 'target-steps': { type: 'string' }, 'target-class': { type: 'string' },
  'robustness-curve': { type: 'boolean' }, 'curve-eps': { type: 'string' }, 'curve-steps': { type: 'string' },
  limit: { type: 'string' }, 'data-dir': { type: 'string' }, 'no-cache': { type: 'boolean' }, title: { type: 'string' },
  seed: { type: 'string' }, threads: { type: 'string' }, help: { type: 'boolean', short: 'h' },
};

function parse(args: string[], options: ParseArgsConfig['options']): Record<string, string | boolean | undefined> {
  return parseWithPositionals(args, options, false).values;
}

function parseWithPositionals(args: string[], options: ParseArgsConfig['options'], allowPositionals: boolean): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const r = parseArgs({ args, options, strict: true, allowPositionals });
    return { values: r.values as Record<string, string | boolean | undefined>, positionals: r.positionals };
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/^TypeError \[[A-Z_]+\]: /, ''));
  }
}

function readConfigFile(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new ConfigError('config', `${path}: no such file`);
  const text = readFileSync(path, 'utf8');
  let v: unknown;
  try {
    v = /\.ya?ml$/i.test(extname(path)) ? parseYaml(text) : JSON.parse(text);
  } catch (e) {
    throw new ConfigError('config', `${path}: ${(e as Error).message.split('\n')[0]}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError('config', `${path}: expected an object of options`);
  return v as Record<string, unknown>;
}

const pct = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? '—' : `${(v * 100).toFixed(2)}%`);

function table(clean: number, robust: Record<string, number>): string {
  const rows: [string, string][] = [['clean', pct(clean)], ...Object.entries(robust).map(([k, v]) => [k === 'worst_case' ? 'worst case' : k, pct(v)] as [string, string])];
  const w = Math.max(...rows.map((r) => r[0].length), 8);
  return [`${'accuracy'.padEnd(w)}  `, ...rows.map(([k, v]) => `${k.padEnd(w)}  ${v.padStart(7)}`)].join('\n');
}

async function cmdTrain(args: string[], out: (s: string) => void): Promise<number> {
  const v = parse(args, TRAIN_OPTS);
  if (v.help) {
    out(TRAIN_HELP);
    return 0;
  }
  // data-parallel options: taken out of the training config (a run does not depend on its number of processes)
  const nproc = intOpt(v, 'nproc', 1) ?? 1;
  const nnodes = intOpt(v, 'nnodes', 1) ?? 1;
  const nodeRank = intOpt(v, 'node-rank', 0) ?? 0;
  if (nodeRank >= nnodes) throw new ConfigError('node-rank', `must be below --nnodes ${nnodes}, got ${nodeRank}`);
  const masterPort = intOpt(v, 'master-port', 1, 65535);
  if (masterPort !== undefined && masterPort > 65535) throw new ConfigError('master-port', `must be in [1, 65535], got ${masterPort}`);
  const timeoutS = v['dist-timeout'] === undefined ? 300 : Number(v['dist-timeout']);
  if (!(timeoutS > 0)) throw new ConfigError('dist-timeout', `must be a number of seconds > 0, got '${String(v['dist-timeout'])}'`);
  const launching = nproc > 1 || nnodes > 1;
  let rdv: dist.Rendezvous | undefined;
  try {
    rdv = rendezvousFromEnv();
  } catch (e) {
    throw new ConfigError('nproc', (e as Error).message);
  }
  if (launching && rdv) throw new ConfigError('nproc', `this process was started as rank ${rdv.rank} of ${rdv.worldSize} (RANK/WORLD_SIZE are set); --nproc and --nnodes start ranks and cannot be used inside one`);
  const distArgs = Object.fromEntries(DIST_OPTS.map((k) => [k, v[k]]));
  for (const k of DIST_OPTS) delete v[k];

  let cfg: TrainConfig;
  const resume = v.resume !== undefined;
  if (v.resume) {
    const dir = String(v.resume);
    const others = Object.keys(v).filter((k) => !['resume', 'json', 'threads'].includes(k) && v[k] !== undefined);
    if (others.length) throw new ConfigError('resume', `continues a run with its own config; drop ${others.map((o) => '--' + o).join(', ')}`);
    cfg = { ...readRunConfig(dir), out: dir };
    if (v.threads !== undefined) cfg.threads = resolveConfig({ threads: v.threads }).threads;
  } else {
    const fromFile = v.config ? readConfigFile(String(v.config)) : {};
    const fromArgs: Record<string, unknown> = {};
    for (const [k, val] of Object.entries(v)) {
      if (val === undefined || ['config', 'json', 'help', 'resume', 'no-augment'].includes(k)) continue;
      fromArgs[k] = val;
    }
    if (v['no-augment']) fromArgs.augment = false;
    const merged = { ...Object.fromEntries(Object.entries(fromFile).map(([k, x]) => [camel(k), x])), ...Object.fromEntries(Object.entries(fromArgs).map(([k, x]) => [camel(k), x])) };
    cfg = resolveConfig(merged);
    for (const a of cfg.evalAttacks) {
      try {
        parseAttackName(a);
      } catch (e) {
        throw new ConfigError('eval-attacks', (e as Error).message);
      }
    }
    if (!cfg.out) {
      if (rdv && rdv.worldSize > 1) throw new ConfigError('out', 'is required when several processes train together (every rank must name the same run folder)');
      cfg.out = join('runs', `${cfg.method}${cfg.method === 'free' ? cfg.replays : ''}-${cfg.dataset}-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}`);
    }
  }

  if (launching) {
    const world = nproc * nnodes;
    if (cfg.batchSize % world !== 0) throw new ConfigError('batch-size', `the global batch ${cfg.batchSize} is not divisible by the ${world} processes (each takes batch-size / ${world})`);
    if (!dist.available()) throw new ConfigError('nproc', 'this build of the native addon has no c10d/Gloo: install libgloo-dev and run `npm run build:native`');
    if (nnodes > 1 && distArgs['master-addr'] === undefined) throw new ConfigError('master-addr', `is required with --nnodes ${nnodes} (the address of node 0)`);
    const threads = v.threads !== undefined ? cfg.threads : Math.max(1, Math.floor(cpus().length / nproc));
    const childArgs = resume
      ? ['--resume', cfg.out, ...(v.json ? ['--json'] : [])]
      : args.filter((_, i) => !isDistArg(args, i)).concat(v.out === undefined ? ['--out', cfg.out] : []);
    if (v.threads === undefined) childArgs.push('--threads', String(threads));
    childArgs.push('--dist-timeout', String(timeoutS));
    return launch(childArgs, {
      nproc, nnodes, nodeRank, threads,
      masterAddr: String(distArgs['master-addr'] ?? '127.0.0.1'),
      ...(masterPort !== undefined ? { masterPort } : nnodes > 1 ? { masterPort: 29500 } : {}),
    }, out, (s) => process.stderr.write(s + '\n'));
  }

  let D: { rank: number; worldSize: number } | undefined;
  if (rdv && rdv.worldSize > 1) {
    if (process.env.FREEADV_LAUNCHED && process.channel) {
      // launched by `freeadv train --nproc`: end with the launcher if it is killed
      process.on('disconnect', () => {
        process.stderr.write(`freeadv: rank ${rdv!.rank}: the launcher is gone; stopping\n`);
        process.exit(1);
      });
      process.channel.unref();
    }
    if (!dist.available()) throw new ConfigError('nproc', 'this build of the native addon has no c10d/Gloo: install libgloo-dev and run `npm run build:native`');
    dist.init({ ...rdv, timeoutMs: timeoutS * 1000 });
    D = { rank: rdv.rank, worldSize: rdv.worldSize };
    // one GPU per local rank, as torchrun users expect (cuda → cuda:LOCAL_RANK)
    if (cfg.device === 'cuda') cfg.device = `cuda:${rdv.localRank}`;
  }
  const root = !D || D.rank === 0;
  const quiet = () => undefined;
  const summary: Summary = await train(cfg, {
    resume,
    log: root ? out : quiet,
    ...(!root && { warn: quiet, progress: new Writable({ write: (_c, _e, cb) => cb() }) }),
    ...(D && { dist: D }),
  });
  if (D) {
    dist.barrier();
    dist.destroy();
  }
  if (!root) return 0;
  if (v.json) out(JSON.stringify(summary, null, 2));
  else {
    out('');
    out(`${summary.method}${summary.method === 'free' ? `-${summary.replays}` : ''} · ${summary.model} · ${summary.dataset} · ε=${fmtEps(summary.eps)} · ${summary.sgd_steps} SGD steps, ${summary.backward_passes} backward passes, ${(summary.train_seconds / 60).toFixed(1)} min training (${summary.images_per_second.toFixed(0)} images/s)`);
    out(table(summary.clean_accuracy, summary.robust_accuracy) + `\n(${summary.eval_examples} test images, ${summary.eval_seconds.toFixed(0)} s)`);
    for (const w of summary.warnings) out(`warning: ${w}`);
    if (summary.stopped_early) out(`note: ${summary.stopped_early}`);
    out(`run folder: ${summary.run_dir}`);
  }
  return 0;
}

async function cmdEval(args: string[], out: (s: string) => void): Promise<number> {
  const v = parse(args, EVAL_OPTS);
  if (v.help) {
    out(EVAL_HELP);
    return 0;
  }
  let base: Partial<TrainConfig> = {};
  let weights: string;
  if (v.run) {
    base = readRunConfig(String(v.run));
    const which = String(v.checkpoint ?? 'best');
    if (which !== 'best' && which !== 'latest') throw new ConfigError('checkpoint', `must be best or latest, got '${which}'`);
    weights = join(String(v.run), which === 'best' ? RUN_FILES.best : RUN_FILES.latest);
    if (!existsSync(weights)) weights = join(String(v.run), RUN_FILES.latest);
  } else {
    if (!v.weights || !v.model) throw new UsageError('give --run <run folder>, or --weights <file> with --model <name>');
    weights = String(v.weights);
  }
  const cfg = resolveConfig({
    dataset: v.dataset ?? base.dataset,
    dataDir: v['data-dir'] ?? base.dataDir,
    model: v.model ?? base.model,
    eps: v.eps ?? base.eps,
    seed: v.seed ?? 0,
    threads: v.threads,
    device: v.device ?? 'cpu',
    evalLimit: v.limit,
    evalBatchSize: v['batch-size'] ?? 500,
    evalRestarts: v.restarts ?? 1,
    evalAttacks: v.attacks ?? 'pgd-20',
    ...((v.dataset ?? base.dataset) === 'imagefolder' && { imageSize: base.imageSize, skipBad: base.skipBad }),
  });
  for (const a of cfg.evalAttacks) {
    try {
      parseAttackName(a);
    } catch (e) {
      throw new ConfigError('attacks', (e as Error).message);
    }
  }
  setNumThreads(cfg.threads);
  manualSeed(cfg.seed);
  const data = await loadData(cfg, 'test');
  const o = { numClasses: data.numClasses, inChannels: data.c, size: data.h, mean: data.mean, std: data.std };
  const why = checkModel(cfg.model, o);
  if (why) throw new ConfigError('model', why);
  const model: Module = createModel(cfg.model, o);
  const file = loadSafetensors(weights);
  try {
    const sd = Object.fromEntries(Object.entries(file.tensors).map(([k, t]) => [k.startsWith('model.') ? k.slice(6) : k, t]));
    const own = model.stateDict();
    const picked = Object.fromEntries(Object.entries(sd).filter(([k]) => k in own || !Object.keys(file.tensors).some((x) => x.startsWith('model.'))));
    try {
      model.loadStateDict(picked);
    } catch (e) {
      throw new CheckpointError(`${weights}: ${(e as Error).message}`);
    }
  } finally {
    for (const t of Object.values(file.tensors)) t.dispose();
  }
  if (cfg.device !== 'cpu') model.to(cfg.device);
  const r = await evaluateOn(model, data, cfg, cfg.evalAttacks);
  if (v.json) out(JSON.stringify({ clean_accuracy: r.clean_accuracy, robust_accuracy: r.robust_accuracy, eps: r.eps, examples: r.examples, attacks: r.attacks, warnings: r.warnings, seconds: r.seconds }));
  else {
    out(`${cfg.model} · ${cfg.dataset} · ε=${fmtEps(cfg.eps)} · ${r.examples} test images · ${r.seconds.toFixed(0)} s`);
    out(table(r.clean_accuracy, r.robust_accuracy));
    for (const w of r.warnings) out(`warning: ${w}`);
  }
  model.dispose();
  return 0;
}

/** A whole number in [min, max] from option `name`. */
function intOpt(v: Record<string, unknown>, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v[name] === undefined) return undefined;
  const n = parseNumber(name, v[name]);
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(name, `expected a whole number in [${min}, ${max === Number.MAX_SAFE_INTEGER ? '∞' : max}], got '${String(v[name])}'`);
  return n;
}

function posOpt(v: Record<string, unknown>, name: string): number | undefined {
  if (v[name] === undefined) return undefined;
  const n = parseNumber(name, v[name]);
  if (!(n > 0)) throw new ConfigError(name, `must be > 0, got '${String(v[name])}'`);
  return n;
}

async function cmdReport(args: string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const { values: v, positionals: dirs } = parseWithPositionals(args, REPORT_OPTS, true);
  if (v.help) {
    out(REPORT_HELP);
    return 0;
  }
  if (!dirs.length) throw new UsageError('give at least one run folder: freeadv report <run folder> [<run folder> …]');
  const checkpoint = String(v.checkpoint ?? 'best');
  if (checkpoint !== 'best' && checkpoint !== 'latest') throw new ConfigError('checkpoint', `must be best or latest, got '${checkpoint}'`);
  const targetNorm = String(v['target-norm'] ?? 'linf');
  if (targetNorm !== 'linf' && targetNorm !== 'l2') throw new ConfigError('target-norm', `must be linf or l2, got '${targetNorm}'`);
  const surfacePoints = intOpt(v, 'surface-points', 3, 101);
  if (surfacePoints !== undefined && surfacePoints % 2 === 0) throw new ConfigError('surface-points', `must be odd (so that the image itself is on the grid), got ${surfacePoints}`);
  let curveEps: number[] | undefined;
  if (v['curve-eps'] !== undefined) {
    curveEps = String(v['curve-eps']).split(',').map((s) => parseNumber('curve-eps', s));
    if (!curveEps.length || curveEps.some((e) => e < 0)) throw new ConfigError('curve-eps', `expected a comma-separated list of multiples of ε >= 0, got '${String(v['curve-eps'])}'`);
  }
  let targetClass: number | string | undefined = v['target-class'] === undefined ? undefined : String(v['target-class']);
  if (targetClass !== undefined && /^\d+$/.test(targetClass)) targetClass = Number(targetClass);
  const o: Partial<ReportOptions> = {
    out: v.out === undefined ? undefined : String(v.out),
    checkpoint,
    images: intOpt(v, 'images', 1, 64),
    attackSteps: intOpt(v, 'attack-steps', 1),
    surfacePoints,
    surfaceRange: posOpt(v, 'surface-range'),
    targetEps: posOpt(v, 'target-eps'),
    targetNorm,
    targetSteps: intOpt(v, 'target-steps', 1),
    robustnessCurve: Boolean(v['robustness-curve']),
    curveEps,
    curveSteps: intOpt(v, 'curve-steps', 1),
    limit: intOpt(v, 'limit', 1),
    dataDir: v['data-dir'] === undefined ? undefined : String(v['data-dir']),
    useCache: !v['no-cache'],
    title: v.title === undefined ? undefined : String(v.title),
    seed: intOpt(v, 'seed', 0),
    threads: intOpt(v, 'threads', 1),
    targetClass,
  };
  const r = await buildReport(dirs, o, (s) => out(s), (s) => err(`warning: ${s}`));
  for (const [i, run] of r.runs.entries()) {
    const c = r.cached[i]!;
    out(`${run.name}: analyses ${c.analyses ? 'from the cache' : `computed (${run.analyses.seconds.toFixed(1)} s)`}${run.curve ? `, robustness curve ${c.curve ? 'from the cache' : `computed (${run.curve.seconds.toFixed(1)} s)`}` : ''}`);
  }
  out(`report: ${r.out} (${r.runs.length} run(s), ${r.seconds.toFixed(1)} s)`);
  return 0;
}

function cmdInfo(out: (s: string) => void): number {
  const ver = version();
  out(JSON.stringify({ libtorch: ver.torch, threads: getNumThreads(), cuda: cuda.isAvailable(), cudaDevices: cuda.deviceCount(), parallel: ver.parallel.split('\n').filter(Boolean).slice(0, 6) }, null, 2));
  return 0;
}

/** Runs the CLI; returns the exit code. */
export async function run(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s + '\n'), err: (s: string) => void = (s) => process.stderr.write(s + '\n')): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'train':
        return await cmdTrain(rest, out);
      case 'eval':
        return await cmdEval(rest, out);
      case 'report':
        return await cmdReport(rest, out, err);
      case 'info':
        return cmdInfo(out);
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        out(HELP);
        return cmd === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command '${cmd}' (commands: train, eval, report, info)`);
    }
  } catch (e) {
    if (e instanceof InterruptedError) {
      err(`freeadv: ${e.message}`);
      return 130;
    }
    if (e instanceof UsageError || e instanceof ConfigError || e instanceof RangeError) {
      err(`freeadv: error: ${e.message}\nRun 'freeadv ${cmd ?? ''} --help' for the options.`);
      return 2;
    }
    if (e instanceof DataError || e instanceof CheckpointError || e instanceof ReportError) {
      err(`freeadv: error: ${e.message}`);
      return 2;
    }
    if (e instanceof TrainingError || e instanceof TorchError || e instanceof WriteError) {
      err(`freeadv: error: ${e.message}`);
      return 1;
    }
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG' || code === 'EACCES' || code === 'EROFS' || code === 'ENOENT') {
      err(`freeadv: error: ${(e as Error).message}`);
      return 1;
    }
    err(`freeadv: internal error: ${(e as Error).stack ?? String(e)}`);
    return 1;
  }
}
