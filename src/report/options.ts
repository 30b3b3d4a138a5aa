// The report's options, each declared once (command line, --help and validation).
import type { OptionTable } from '../options/index.js';
import { REPORT_DEFAULTS as defaults } from './report.js';
import { TRAIN_OPTIONS } from '../train/index.js';

const PAGE = 'Page', ANALYSES = 'Analyses', CURVE = 'Robustness curve', RUN = 'Run';
const nonNegative = (s: string) => (!/^\s*\d*\.?\d+(e[+-]?\d+)?\s*$/i.test(s) ? `expected a comma-separated list of multiples of ε >= 0, got '${s}'` : undefined);

export const REPORT_OPTIONS = {
  out: { type: 'string', arg: 'FILE', group: PAGE, default: defaults.out, help: 'the HTML file to write: a new file or a page freeadv report wrote' },
  title: { type: 'string', arg: 'TEXT', group: PAGE, optional: true, help: "the page's title" },
  checkpoint: { type: 'string', arg: 'WHICH', group: PAGE, choices: ['best', 'latest'] as const, default: defaults.checkpoint, help: 'the weights the analyses use (best falls back to latest)' },
  images: { type: 'int', arg: 'K', group: ANALYSES, min: 1, max: 64, default: defaults.images, help: 'test images in the gallery and the analyses' },
  attackSteps: { type: 'int', arg: 'K', group: ANALYSES, min: 1, max: 10000, default: defaults.attackSteps, help: "PGD steps of the gallery's adversarial examples" },
  surfacePoints: { type: 'int', arg: 'N', group: ANALYSES, min: 3, max: 101, default: defaults.surfacePoints, check: (v) => (v % 2 === 0 ? `must be odd (so that the image itself is on the grid), got ${v}` : undefined), help: 'loss-surface grid points per axis, odd' },
  surfaceRange: { type: 'number', arg: 'R', group: ANALYSES, min: 0, max: 1000, above: true, default: defaults.surfaceRange, help: "loss-surface half-width in multiples of the run's ε" },
  targetEps: { type: 'number', arg: 'E', group: ANALYSES, min: 0, max: 10000, above: true, optional: true, defaultText: '4ε for linf, ε·√(pixels) for l2', help: 'radius of the large-ε targeted attacks' },
  targetNorm: { type: 'string', arg: 'N', group: ANALYSES, choices: ['linf', 'l2'] as const, default: defaults.targetNorm, help: 'norm of the targeted attacks' },
  targetSteps: { type: 'int', arg: 'K', group: ANALYSES, min: 1, max: 10000, default: defaults.targetSteps, help: 'steps of the targeted attacks' },
  targetClass: { type: 'string', arg: 'C', group: ANALYSES, optional: true, defaultText: 'the next class after the label', help: 'target class (index or name) for every image' },
  robustnessCurve: { type: 'bool', group: CURVE, default: false, help: 'compute (or reuse from the cache) accuracy under PGD as ε grows' },
  curveEps: { type: 'list', arg: 'LIST', group: CURVE, element: nonNegative, default: defaults.curveEps.map(String), help: "the curve's ε values as multiples of the run's ε" },
  curveSteps: { type: 'int', arg: 'K', group: CURVE, min: 1, max: 10000, default: defaults.curveSteps, help: 'PGD steps of the curve' },
  limit: { type: 'int', arg: 'N', group: CURVE, min: 1, max: Number.MAX_SAFE_INTEGER, default: defaults.limit, help: 'test images of the curve' },
  evalBatchSize: { ...TRAIN_OPTIONS.evalBatchSize, group: RUN, optional: true, default: undefined, defaultText: "the run's --eval-batch-size", help: 'examples per batch of the analyses and the robustness curve, and loss-surface points per batch: memory is bounded by it, not by --images or --limit' },
  dataDir: { ...TRAIN_OPTIONS.dataDir, group: RUN, help: "the runs' data folder, when it moved since training" },
  cache: { type: 'bool', group: RUN, negatable: true, default: true, help: 'reuse analyses cached in the run folders (--no-cache recomputes; the cache is still updated)' },
  seed: { ...TRAIN_OPTIONS.seed, group: RUN },
  threads: { ...TRAIN_OPTIONS.threads, group: RUN },
  device: { ...TRAIN_OPTIONS.device, group: RUN, help: 'where the analyses and the curve run: cpu, cuda or cuda:N' },
} satisfies OptionTable;
