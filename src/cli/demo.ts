// `freeadv demo`: a static page that runs a robust run's model (and a natural run's, to compare) in the browser with
// ONNX Runtime Web, on the first test images, their adversarial examples and any image the visitor brings.
import { ConfigError, formatHelp, resolveOptions, formatEps, type OptionTable } from '../options/index.js';
import { checkAttackName, attackUsage } from '../attacks/index.js';
import { TRAIN_OPTIONS } from '../train/index.js';
import { buildDemo, serveDemo, DEMO_DEFAULTS } from '../export/index.js';
import { parseCommand, UsageError } from './args.js';

const PAGE = 'Page', RUN = 'Run';
const attackName = (s: string) => checkAttackName(s) ?? (/-l2$/i.test(s.trim()) ? `the page shows L∞ adversarial examples (the runs' threat model); '${s}' is an L2 attack` : undefined);
const DEMO_COMMAND = {
  out: { type: 'string', arg: 'DIR', group: PAGE, optional: true, help: 'the folder to write (required): a new or empty folder, or an earlier demo folder, which is replaced' },
  images: { type: 'int', arg: 'K', group: PAGE, min: 1, max: 64, default: DEMO_DEFAULTS.images, help: 'test images shown (the first K), each with its adversarial examples' },
  attack: { type: 'string', arg: 'NAME', group: PAGE, default: DEMO_DEFAULTS.attack, check: attackName, help: `the L∞ attack that crafts the adversarial examples against each model, at the robust run's ε (PGD and CW take all their steps): ${attackUsage()}` },
  checkpoint: { type: 'string', arg: 'WHICH', group: PAGE, choices: ['best', 'latest'] as const, default: DEMO_DEFAULTS.checkpoint, help: "which of the runs' checkpoints (best falls back to latest)" },
  serve: { type: 'bool', group: PAGE, optional: true, help: 'then serve the folder on http://127.0.0.1:PORT/ until Ctrl-C' },
  port: { type: 'int', arg: 'PORT', group: PAGE, min: 0, max: 65535, default: 8000, help: 'the port of --serve (0: any free port)' },
  dataDir: { ...TRAIN_OPTIONS.dataDir, group: RUN, help: "the runs' data folder, when it moved since training" },
  seed: { ...TRAIN_OPTIONS.seed, group: RUN },
  threads: { ...TRAIN_OPTIONS.threads, group: RUN },
  help: { type: 'bool', group: RUN, optional: true, short: 'h', help: 'this help' },
} satisfies OptionTable;

function help(): string {
  return `freeadv demo — a page that shows a robust model working, in the browser (ONNX Runtime Web, offline)

Usage: freeadv demo <robust run> [<natural run>] --out DIR [--serve]

Writes DIR: the models as ONNX (robust.onnx, natural.onnx), the first K test images and their adversarial
examples against each model (PNG, in the robust run's ε-ball) with freeadv's own predictions (manifest.json),
index.html with its script, and ONNX Runtime Web's WebAssembly build (ort/). The page classifies the stored images
and any image you upload or pick, and shows each model's top 3 classes: on adversarial examples crafted against it
the natural model is fooled, the robust one mostly not.

Browsers do not run WebAssembly modules in pages opened from disk (file://): serve the folder, with --serve or any
static server (python3 -m http.server -d DIR), and open http://localhost:PORT/.

${formatHelp(DEMO_COMMAND)}`;
}

export async function cmdDemo(args: string[], out: (s: string) => void): Promise<number> {
  const { values, positionals } = parseCommand(DEMO_COMMAND, args, true);
  if (values.help) {
    out(help());
    return 0;
  }
  const v = resolveOptions(DEMO_COMMAND, values);
  if (!positionals.length) throw new UsageError('give the robust run folder (and a natural run to compare with): freeadv demo <run> [<natural run>] --out DIR');
  if (positionals.length > 2) throw new UsageError(`give at most two run folders (a robust run, then a natural run), got ${positionals.length}`);
  if (v.out === undefined) throw new ConfigError('out', 'is required: the folder to write the page into');
  const r = await buildDemo(positionals[0]!, positionals[1], {
    out: v.out, images: v.images, attack: v.attack, checkpoint: v.checkpoint, dataDir: v.dataDir, seed: v.seed, threads: v.threads,
  }, out);
  const m = r.manifest;
  for (const d of m.models) {
    const own = m.images.filter((i) => i.against === d.id);
    out(`${d.id} (${d.run}): right on ${m.images.filter((i) => i.kind === 'clean' && i.predicted[d.id] === i.label).length} of ${own.length} test images, on ${own.filter((i) => i.predicted[d.id] === i.label).length} of their ${m.attack} examples (ε=${formatEps(m.eps)}) against it`);
  }
  out(`demo: ${r.out} (${(r.bytes / 2 ** 20).toFixed(1)} MiB, ${r.seconds.toFixed(1)} s)`);
  if (!v.serve) {
    out(`open it through a web server: freeadv demo … --serve, or python3 -m http.server -d ${v.out} (pages opened from disk cannot run WebAssembly modules)`);
    return 0;
  }
  const s = await serveDemo(r.out, v.port).catch((e: NodeJS.ErrnoException) => {
    throw new ConfigError('port', `cannot serve on 127.0.0.1:${v.port} (${e.code ?? e.message})`);
  });
  out(`serving ${r.out} on ${s.url} — open it in a browser; Ctrl-C stops`);
  await new Promise<void>((res) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void s.close().then(res);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  return 0;
}
