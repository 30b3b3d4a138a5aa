// `freeadv report`: one HTML page from run folders.
import { formatHelp, resolveOptions, parseNumber, type OptionTable } from '../options/index.js';
import { buildReport, REPORT_OPTIONS } from '../report/index.js';
import { parseCommand, UsageError } from './args.js';

const REPORT_COMMAND = {
  ...REPORT_OPTIONS,
  help: { type: 'bool', optional: true, short: 'h', group: 'Run', help: 'this help' },
} satisfies OptionTable;

function help(): string {
  return `freeadv report — one self-contained HTML page (works offline) from one or more run folders

Usage: freeadv report <run folder> [<run folder> …] [options]

The page shows training curves (runs overlaid), a comparison table shaped like the paper's Table 1,
robustness curves, an adversarial gallery, the loss surface around test images, input-gradient saliency
and large-ε targeted attacks. The analyses use each run's best.safetensors (else latest) on its first test
images and are cached in the run folder (report-cache.json), so re-rendering is instant.

${formatHelp(REPORT_COMMAND)}`;
}

export async function cmdReport(args: string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const { values, positionals: dirs } = parseCommand(REPORT_COMMAND, args, true);
  if (values.help) {
    out(help());
    return 0;
  }
  if (!dirs.length) throw new UsageError('give at least one run folder: freeadv report <run folder> [<run folder> …]');
  const v = resolveOptions(REPORT_COMMAND, values);
  const targetClass = v.targetClass !== undefined && /^\d+$/.test(v.targetClass) ? Number(v.targetClass) : v.targetClass;
  const r = await buildReport(dirs, {
    out: v.out,
    checkpoint: v.checkpoint,
    images: v.images,
    attackSteps: v.attackSteps,
    surfacePoints: v.surfacePoints,
    surfaceRange: v.surfaceRange,
    targetEps: v.targetEps,
    targetNorm: v.targetNorm,
    targetSteps: v.targetSteps,
    robustnessCurve: v.robustnessCurve,
    curveEps: v.curveEps.map((s) => parseNumber('curve-eps', s)),
    curveSteps: v.curveSteps,
    device: v.device,
    limit: v.limit,
    dataDir: v.dataDir,
    useCache: v.cache,
    title: v.title,
    seed: v.seed,
    threads: v.threads,
    evalBatchSize: v.evalBatchSize,
    targetClass,
  }, (s) => out(s), (s) => err(`warning: ${s}`));
  for (const [i, run] of r.runs.entries()) {
    const c = r.cached[i]!;
    out(`${run.name}: analyses ${c.analyses ? 'from the cache' : `computed (${run.analyses.seconds.toFixed(1)} s)`}${run.curve ? `, robustness curve ${c.curve ? 'from the cache' : `computed (${run.curve.seconds.toFixed(1)} s)`}` : ''}`);
  }
  out(`report: ${r.out} (${r.runs.length} run(s), ${r.seconds.toFixed(1)} s)`);
  return 0;
}
