// `freeadv prepare`: a bounded-size copy of an image folder, which the loader reads like the original.
import { availableParallelism } from 'node:os';
import { formatHelp, resolveOptions, type OptionTable } from '../options/index.js';
import { prepareImageFolder, Progress } from '../data/index.js';
import { parseCommand, UsageError } from './args.js';

const PREPARE_COMMAND = {
  out: { type: 'string', arg: 'DIR', group: 'Copy', help: 'the new folder for the copy (must not exist, or be empty)' },
  maxSide: { type: 'int', arg: 'S', group: 'Copy', min: 8, max: 65535, default: 256, help: 'longest side of the copied images; smaller images are copied byte for byte' },
  quality: { type: 'int', arg: 'Q', group: 'Copy', min: 1, max: 100, default: 90, help: 'JPEG quality of the resized images' },
  workers: { type: 'int', arg: 'N', group: 'Copy', min: 1, max: 1024, default: () => availableParallelism(), defaultText: 'all cores', help: 'images processed at once' },
  help: { type: 'bool', group: 'Copy', optional: true, short: 'h', help: 'this help' },
} satisfies OptionTable;

function help(): string {
  return `freeadv prepare — a copy of an image folder with every image at most S pixels on its longer side

Usage: freeadv prepare <image folder> --out DIR [--max-side 256] [--quality 90]

The copy has the same layout (train/, val/ or test/, one folder per class) and file names; images larger than
S × S are resized to fit (aspect kept, their own format), the others copied unchanged. Train and evaluate on it
with --data-dir DIR: decoding is faster, at the cost of resolution (RandomResizedCrop and the evaluation resize
then start from at most S pixels instead of the original's). Undecodable files are copied unchanged, so the
loader refuses them (or skips them with --skip-bad) as before; FIFOs, devices and sockets are left out.

${formatHelp(PREPARE_COMMAND)}`;
}

export async function cmdPrepare(args: string[], out: (s: string) => void): Promise<number> {
  const { values, positionals } = parseCommand(PREPARE_COMMAND, args, true);
  if (values.help) {
    out(help());
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('give one image folder: freeadv prepare <image folder> --out DIR');
  const v = resolveOptions(PREPARE_COMMAND, values);
  const t0 = performance.now();
  let progress: Progress | undefined;
  const r = await prepareImageFolder(positionals[0]!, v.out, {
    maxSide: v.maxSide,
    quality: v.quality,
    concurrency: v.workers,
    onFile: (done, total) => {
      progress ??= new Progress({ total, label: 'prepare', stream: process.stderr });
      progress.tick(1);
      if (done === total) progress.finish();
    },
  });
  const mb = (b: number) => (b / 2 ** 20).toFixed(1);
  out(`prepare: ${r.files} files in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${r.resized} resized to at most ${v.maxSide} px, ${r.copied} copied unchanged; ${mb(r.bytesIn)} MB → ${mb(r.bytesOut)} MB in ${v.out}`);
  if (r.undecodable.length) out(`${r.undecodable.length} undecodable file(s) copied unchanged: ${r.undecodable.slice(0, 10).join(', ')}${r.undecodable.length > 10 ? ', …' : ''}`);
  if (r.special.length) out(`${r.special.length} special file(s) left out: ${r.special.slice(0, 10).join(', ')}${r.special.length > 10 ? ', …' : ''}`);
  return 0;
}
