// `freeadv train`: parses, resolves the configuration (command line over --config file, or a run's config.json
// with --resume), starts ranks when asked, trains, prints the summary.
import { cpus } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { ConfigError, formatHelp, kebab, resolveOptions, formatEps, type OptionTable } from '../options/index.js';
import { dist } from '../torch/index.js';
import { rendezvousFromEnv } from '../torch/dist.js';
import { describeModels } from '../models/index.js';
import { train, TRAIN_OPTIONS, resolveConfig, readRunConfig, methods, type TrainConfig, type Summary } from '../train/index.js';
import { joinJob, rankDevice, jobDeviceProblem } from '../train/distributed.js';
import { launch, LAUNCH_OPTIONS } from './launch.js';
import { parseCommand, readConfigFile, pick } from './args.js';
import { accuracyTable, stageLines } from './print.js';

const CONTROL = 'Run control';
const TRAIN_COMMAND = {
  ...TRAIN_OPTIONS,
  resume: { type: 'string', arg: 'DIR', group: CONTROL, cliOnly: true, optional: true, help: 'continue an interrupted run exactly where it stopped (its own config; --threads may change)' },
  config: { type: 'string', arg: 'FILE', group: CONTROL, cliOnly: true, optional: true, help: 'JSON or YAML file with the same keys (kebab-case or camelCase); options override it' },
  json: { type: 'bool', group: CONTROL, cliOnly: true, optional: true, help: 'print the summary as JSON' },
  help: { type: 'bool', group: CONTROL, cliOnly: true, optional: true, short: 'h', help: 'this help' },
  ...LAUNCH_OPTIONS,
} satisfies OptionTable;

function help(): string {
  return `freeadv train — adversarial training for free (Shafahi et al. 2019) and its baselines

Usage: freeadv train [options]
       freeadv train --resume <run folder>

${formatHelp(TRAIN_COMMAND)}

Models (--model):
${describeModels()}

A process started with torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK) joins that
job: freeadv runs under torchrun, SLURM or any launcher that sets them. Gradients are all-reduced in buckets during
the backward pass (c10d's Reducer, as PyTorch DDP); FREEADV_GRAD_SYNC=after-backward all-reduces them after it
instead, FREEADV_BUCKET_MB sets the bucket size (25).

A run folder holds config.json, metrics.jsonl, latest.safetensors, best.safetensors and summary.json.
--out must be a new or empty folder; while a run writes it holds DIR/.lock, and another train on that folder
is refused (the lock of a process that is no longer running is taken over).
Ctrl-C finishes the current step (during validation or the final evaluation: the current attack iteration),
writes a checkpoint and prints how to resume; pressed again, it exits at once without saving.`;
}

const LAUNCH_FLAGS = Object.keys(LAUNCH_OPTIONS).map(kebab);
/** Whether args[i] is a launcher option or its value (the ranks get the other arguments). */
function isLaunchArg(args: string[], i: number): boolean {
  const name = (a: string) => a.replace(/^--/, '').split('=')[0]!;
  const a = args[i]!;
  if (a.startsWith('--') && LAUNCH_FLAGS.includes(name(a))) return true;
  const p = args[i - 1];
  return p !== undefined && p.startsWith('--') && !p.includes('=') && LAUNCH_FLAGS.includes(name(p));
}

/** The run's configuration: a resumed run's own, or the command line over the config file over the defaults. */
function configure(values: Record<string, unknown>): TrainConfig {
  if (values.resume !== undefined) {
    const dir = String(values.resume);
    const others = Object.keys(values).filter((k) => !['resume', 'json', 'threads', ...Object.keys(LAUNCH_OPTIONS)].includes(k));
    if (others.length) throw new ConfigError('resume', `continues a run with its own config; drop ${others.map((o) => '--' + kebab(o)).join(', ')}`);
    const cfg = readRunConfig(dir, 'resume');
    return resolveConfig({ ...cfg, out: dir, ...(values.threads !== undefined && { threads: values.threads }) });
  }
  const file = values.config !== undefined ? resolveOptions(TRAIN_OPTIONS, readConfigFile(String(values.config)), { source: String(values.config), partial: true }) : {};
  const cfg = resolveConfig({ ...file, ...pick(TRAIN_OPTIONS, values) });
  return cfg;
}

export async function cmdTrain(args: string[], out: (s: string) => void): Promise<number> {
  const { values } = parseCommand(TRAIN_COMMAND, args);
  if (values.help) {
    out(help());
    return 0;
  }
  // launcher options are not part of the run: a run does not depend on its number of processes
  const job = resolveOptions(LAUNCH_OPTIONS, pick(LAUNCH_OPTIONS, values), { allowCliOnly: true });
  let rdv: dist.Rendezvous | undefined;
  try {
    rdv = rendezvousFromEnv();
  } catch (e) {
    throw new ConfigError('nproc', (e as Error).message);
  }
  const launching = job.nproc > 1 || job.nnodes > 1;
  if (launching && rdv) throw new ConfigError('nproc', `this process was started as rank ${rdv.rank} of ${rdv.worldSize} (RANK/WORLD_SIZE are set); --nproc and --nnodes start ranks and cannot be used inside one`);
  if (job.nnodes > 1 && job.masterAddr === undefined) throw new ConfigError('master-addr', `is required with --nnodes ${job.nnodes} (the address of node 0)`);

  const cfg = configure(values);
  if (!cfg.out) {
    if (rdv && rdv.worldSize > 1) throw new ConfigError('out', 'is required when several processes train together (every rank must name the same run folder)');
    cfg.out = join('runs', `${methods[cfg.method]!.label(cfg)}-${cfg.dataset}-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}`);
  }

  if (launching) {
    const world = job.nproc * job.nnodes;
    if (cfg.batchSize % world !== 0) throw new ConfigError('batch-size', `the global batch ${cfg.batchSize} is not divisible by the ${world} processes (each takes batch-size / ${world})`);
    if (!dist.available()) throw new ConfigError('nproc', dist.UNAVAILABLE);
    const bad = jobDeviceProblem(cfg.device, job.nproc);
    if (bad) throw new ConfigError(bad.option, bad.why);
    const threads = values.threads !== undefined ? cfg.threads : Math.max(1, Math.floor(cpus().length / job.nproc));
    const childArgs = values.resume !== undefined
      ? ['--resume', cfg.out, ...(values.json ? ['--json'] : [])]
      : args.filter((_, i) => !isLaunchArg(args, i)).concat(values.out === undefined ? ['--out', cfg.out] : []);
    if (values.threads === undefined) childArgs.push('--threads', String(threads));
    childArgs.push('--dist-timeout', String(job.distTimeout));
    return launch(childArgs, {
      nproc: job.nproc, nnodes: job.nnodes, nodeRank: job.nodeRank, threads,
      ...(job.masterAddr !== undefined && { masterAddr: job.masterAddr }),
      ...(job.masterPort !== undefined ? { masterPort: job.masterPort } : job.nnodes > 1 ? { masterPort: 29500 } : {}),
    }, out, (s) => process.stderr.write(s + '\n'));
  }

  let rank: dist.Rank | undefined;
  if (rdv && rdv.worldSize > 1) {
    if (process.env.FREEADV_LAUNCHED && process.channel) {
      // launched by `freeadv train --nproc`: end with the launcher if it is killed
      process.on('disconnect', () => {
        process.stderr.write(`freeadv: rank ${rdv!.rank}: the launcher is gone; stopping\n`);
        process.exit(1);
      });
      process.channel.unref();
    }
    rank = joinJob(rdv, job.distTimeout, cfg.device);
  }
  const root = !rank || rank.rank === 0;
  const quiet = () => undefined;
  const summary: Summary = await train(cfg, {
    resume: values.resume !== undefined,
    log: root ? out : quiet,
    ...(!root && { warn: quiet, progress: new Writable({ write: (_c, _e, cb) => cb() }) }),
    ...(rank && { dist: rank, device: rankDevice(cfg.device, rdv!.localRank) }), // config.json keeps cfg.device
  });
  if (rank) {
    dist.barrier();
    dist.destroy();
  }
  if (!root) return 0;
  if (values.json) out(JSON.stringify(summary, null, 2));
  else {
    out('');
    out(`${summary.label} · ${summary.model} · ${summary.dataset} · ε=${formatEps(summary.eps)} · ${summary.sgd_steps} SGD steps, ${summary.backward_passes} backward passes, ${(summary.train_seconds / 60).toFixed(1)} min training (${summary.images_per_second.toFixed(0)} images/s)`);
    out(accuracyTable(summary.clean_accuracy, summary.robust_accuracy) + `\n(${summary.eval_examples} test images, ${summary.eval_seconds.toFixed(0)} s)`);
    for (const l of stageLines(summary.attack_stages)) out(l);
    for (const w of summary.warnings) out(`warning: ${w}`);
    if (summary.stopped_early) out(`note: ${summary.stopped_early}`);
    out(`run folder: ${summary.run_dir}`);
  }
  return 0;
}
