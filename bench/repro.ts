// The reproduction table (the paper's Table 1, on the data we have): natural, free-m, FGSM-RS and PGD-7 trained
// by freeadv and by the PyTorch reference (bench/reference/train.py) with the same budget and hyper-parameters,
// every model then evaluated by the same evaluator (clean, PGD-20, PGD-100 with restarts; APGD-CE on CIFAR-10,
// where --quick leaves PGD-100 out to fit its time), and by AutoAttack's standard ensemble on a prefix of the test
// set (--aa-limit; 0 leaves it out), kept in its own file so that earlier evaluations are reused.
// Resumable: finished runs (their summary/eval files) are reused. Prints a Markdown table and writes JSON.
//   node dist/bench/repro.js [--quick] [--out bench-runs] [--dataset fashion-mnist|mnist|cifar10] [--data-dir D]
//                            [--threads N] [--impl both|freeadv|pytorch] [--table-only] [--seed N] [--methods a,b]
//                            [--aa-limit N]
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadDataset, type InMemoryDataset } from '../src/data/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const bin = join(root, 'bin', 'freeadv.js');
const { values: o } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    out: { type: 'string', default: 'bench-runs' },
    dataset: { type: 'string', default: 'fashion-mnist' },
    'data-dir': { type: 'string' },
    threads: { type: 'string', default: String(cpus().length) },
    impl: { type: 'string', default: 'both' },
    'table-only': { type: 'boolean', default: false },
    seed: { type: 'string', default: '0' },
    methods: { type: 'string' },
    'aa-limit': { type: 'string' },
  },
});
// --impl freeadv|pytorch: run one side only (two such processes with --threads 1 can share 2 cores); the table
// then shows the rows whose results exist.
if (!['both', 'freeadv', 'pytorch'].includes(o.impl!)) throw new Error(`--impl: both, freeadv or pytorch, not '${o.impl}'`);
// --table-only: print the table of the results that exist, run nothing (while other processes fill it in).
const runs = (impl: string) => !o['table-only'] && (o.impl === 'both' || o.impl === impl);
const quick = o.quick!;
const cifar = o.dataset === 'cifar10';
if (!['fashion-mnist', 'mnist', 'cifar10'].includes(o.dataset!)) throw new Error(`--dataset: fashion-mnist, mnist or cifar10, not '${o.dataset}'`);
if ((cifar || o.dataset === 'mnist') && !o['data-dir']) throw new Error(`--dataset ${o.dataset} needs --data-dir`);
// Per data set: the threat model, the model, the training hyper-parameters and what the evaluation runs.
const S = cifar
  ? {
      eps: 8 / 255, epsArg: '8/255', model: 'resnet-cifar-small', batch: 128, lr: 0.1, augment: true,
      freeStep: 8 / 255, // the paper's δ step ε
      stepsPerEpoch: 391, attacks: quick ? 'pgd-20,apgd-ce' : 'pgd-20,pgd-100,apgd-ce', evalLimit: quick ? 500 : 1000,
    }
  : {
      eps: o.dataset === 'mnist' ? 0.3 : 0.1, epsArg: o.dataset === 'mnist' ? '0.3' : '0.1', model: 'small-cnn', batch: 128, lr: 0.05, augment: false,
      freeStep: o.dataset === 'mnist' ? 0.3 : 0.1, // the paper's δ step ε
      stepsPerEpoch: 469, attacks: 'pgd-20,pgd-100', evalLimit: quick ? 500 : 10000,
      // the full table: clean and PGD-20 on all 10,000 test images, PGD-100 with 2 restarts on the first 2,000
      // (200 gradient steps an image: 12 min a model on all of them, 2.4 min on 2,000)
      strong: quick ? undefined : { attacks: 'pgd-100', limit: 2000 },
    };
// the strong attack on a prefix of the test set, where the full table has one
const strong = 'strong' in S ? S.strong : undefined;
// AutoAttack (standard ensemble: APGD-CE, APGD-T, FAB-T, Square) on the first aaLimit test images
const aaLimit = Number(o['aa-limit'] ?? (quick ? 500 : 1000));
if (!Number.isInteger(aaLimit) || aaLimit < 0) throw new Error(`--aa-limit: a non-negative integer, not '${o['aa-limit']}'`);
const epochs = 8;
// --quick: every method gets the SGD steps of one natural epoch (the paper's equal-cost comparison, shortened):
// natural, FGSM-RS and PGD-7 one epoch; free-m the first 1/m of a pass, replayed m times. The schedule spans them.
const quickSteps = S.stepsPerEpoch;
// --seed N (N ≠ 0): the same table with another seed (weights, data order, δ start), in its own folder, to
// measure the seed-to-seed spread that the comparison between implementations has to be read against.
const seed = Number(o.seed);
if (!Number.isInteger(seed) || seed < 0) throw new Error(`--seed: a non-negative integer, not '${o.seed}'`);
const outDir = resolve(o.out!, `${quick ? `${o.dataset}-quick` : o.dataset!}${seed ? `-seed${seed}` : ''}`);
mkdirSync(outDir, { recursive: true });
const ms = quick || cifar ? [2, 4, 8] : [2, 4, 8, 10];
function budget(m: number): string[] {
  return quick ? ['--epochs', String(m), '--max-steps', String(quickSteps)] : ['--epochs', String(epochs)];
}
const allRows: { name: string; args: string[] }[] = [
  { name: 'natural', args: ['--method', 'natural', ...budget(1)] },
  ...ms.map((m) => ({ name: `free-${m}`, args: ['--method', 'free', '--replays', String(m), '--step-size', String(S.freeStep), ...budget(m)] })),
  { name: 'fgsm-rs', args: ['--method', 'fgsm', ...budget(1)] },
  { name: 'pgd-7', args: ['--method', 'pgd', '--attack-steps', '7', ...budget(1)] },
];
// --methods free-8,natural: only these rows (for extra seeds, say)
const only = o.methods?.split(',');
for (const m of only ?? []) if (!allRows.some((r) => r.name === m)) throw new Error(`--methods: '${m}' is not one of ${allRows.map((r) => r.name).join(', ')}`);
const rows = only ? allRows.filter((r) => only.includes(r.name)) : allRows;
const dataArgs = o['data-dir'] ? ['--data-dir', o['data-dir']] : [];
const common = ['--model', S.model, '--batch-size', String(S.batch), '--lr', String(S.lr), '--lr-schedule', 'cosine', '--threads', o.threads!, '--seed', String(seed)];
// the reference trains on the whole training set: so does freeadv here (no validation split)
const freeadvCommon = [...common, '--eps', S.epsArg, '--val-size', '0', ...(S.augment ? ['--augment'] : ['--no-augment'])];
const refCommon = [...common, '--eps', String(S.eps), ...(S.augment ? ['--augment'] : [])];

/** The reference reads CIFAR-10 in the official binary format: written once from freeadv's decoded (cached) JPEGs. */
async function referenceDataDir(): Promise<string[]> {
  const dir = o['data-dir'];
  if (!cifar) return dir ? ['--data-dir', dir] : [];
  if (existsSync(join(dir!, 'test_batch.bin'))) return ['--data-dir', dir!];
  const binDir = join(outDir, 'cifar10-bin');
  if (!existsSync(join(binDir, 'test_batch.bin'))) {
    mkdirSync(binDir, { recursive: true });
    for (const split of ['train', 'test'] as const) {
      const ds = (await loadDataset({ name: 'cifar10', dataDir: dir!, split, eager: true })) as InMemoryDataset;
      const per = 3 * 32 * 32;
      const files = split === 'train' ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`) : ['test_batch.bin'];
      const each = ds.n / files.length;
      files.forEach((f, fi) => {
        const out = Buffer.alloc(each * (1 + per));
        for (let k = 0; k < each; k++) {
          const i = fi * each + k;
          out[k * (1 + per)] = ds.labels[i]!;
          out.set(ds.images.subarray(i * per, (i + 1) * per), k * (1 + per) + 1);
        }
        writeFileSync(join(binDir, f), out);
      });
    }
  }
  return ['--data-dir', binDir];
}
const refData = await referenceDataDir();

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: root, maxBuffer: 64 * 2 ** 20, env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr.slice(-3000)}`);
  return r.stdout;
}
const lastJson = (s: string) => JSON.parse(s.trim().split('\n').pop()!);
const log = (s: string) => process.stderr.write(s + '\n');

const ev = (weights: string, attacks: string, limit: number) =>
  lastJson(sh(process.execPath, [bin, 'eval', '--weights', weights, '--model', S.model, '--dataset', o.dataset!, ...dataArgs, '--eps', S.epsArg, '--attacks', attacks, '--restarts', quick ? '1' : '2', '--limit', String(limit), '--threads', o.threads!, '--json']));

function evaluate(weights: string, file: string): Record<string, any> {
  const aaFile = file.replace(/\.json$/, '-autoattack.json');
  const withAA = (r: Record<string, any>) => {
    if (!aaLimit) return r;
    if (!existsSync(aaFile)) writeFileSync(aaFile, JSON.stringify(ev(weights, 'autoattack', aaLimit), null, 2));
    const a = JSON.parse(readFileSync(aaFile, 'utf8'));
    return { ...r, autoattack: { examples: a.examples, clean_accuracy: a.clean_accuracy, robust_accuracy: a.robust_accuracy.autoattack, stages: a.stages?.autoattack, seconds: a.seconds } };
  };
  if (existsSync(file)) return withAA(JSON.parse(readFileSync(file, 'utf8')));
  const ev1 = (attacks: string, limit: number) => ev(weights, attacks, limit);
  let r = ev1(strong ? 'pgd-20' : S.attacks, S.evalLimit);
  if (strong) {
    // the strong attack on a prefix of the test set: its own clean count and example count are kept beside it
    const s2 = ev1(strong.attacks, strong.limit);
    r = { ...r, robust_accuracy: { ...r.robust_accuracy, ...Object.fromEntries(Object.entries(s2.robust_accuracy).filter(([k]) => k !== 'worst_case')) }, strong: { examples: s2.examples, clean_accuracy: s2.clean_accuracy, attacks: s2.attacks, seconds: s2.seconds } };
  }
  writeFileSync(file, JSON.stringify(r, null, 2));
  return withAA(r);
}
const row = (impl: string, method: string, e: Record<string, any>, minutes: number, backward: number) => ({
  impl, method, clean: e.clean_accuracy, pgd20: e.robust_accuracy['pgd-20'], pgd100: e.robust_accuracy['pgd-100'], apgd: e.robust_accuracy['apgd-ce'], minutes, backward,
  strongClean: e.strong?.clean_accuracy, aaClean: e.autoattack?.clean_accuracy, aa: e.autoattack?.robust_accuracy,
});

// Runs go in order of what the comparison needs most (natural, free-8, PGD-7 first), the table in the usual order.
const priority = ['natural', 'free-8', 'pgd-7', 'free-4', 'fgsm-rs', 'free-2', 'free-10'];
const byName = new Map<string, Record<string, any>[]>();
for (const r of [...rows].sort((a, b) => priority.indexOf(a.name) - priority.indexOf(b.name))) {
  const table: Record<string, any>[] = [];
  byName.set(r.name, table);
  // freeadv
  const run = join(outDir, `freeadv-${r.name}`);
  if (runs('freeadv') && !existsSync(join(run, 'summary.json'))) {
    log(`freeadv ${r.name}...`);
    // a run stopped part-way (Ctrl-C, a kill) continues from its last checkpoint
    if (existsSync(join(run, 'latest.safetensors'))) sh(process.execPath, [bin, 'train', '--resume', run]);
    else sh(process.execPath, [bin, 'train', '--dataset', o.dataset!, ...dataArgs, ...freeadvCommon, ...r.args, '--eval-limit', '100', '--out', run]);
  }
  if (existsSync(join(run, 'summary.json')) && (runs('freeadv') || existsSync(join(run, 'eval.json')))) {
    const s = JSON.parse(readFileSync(join(run, 'summary.json'), 'utf8'));
    const e = evaluate(join(run, 'latest.safetensors'), join(run, 'eval.json'));
    table.push(row('freeadv', r.name, e, s.train_seconds / 60, s.backward_passes));
  }
  // PyTorch reference
  const ref = join(outDir, `pytorch-${r.name}`);
  if (runs('pytorch') && !existsSync(join(ref, 'result.json'))) {
    log(`pytorch ${r.name}...`);
    mkdirSync(ref, { recursive: true });
    // checkpointed every pass: a stopped run continues where it was (CIFAR-10's PGD-7 row takes hours)
    const ck = join(ref, 'checkpoint.pt');
    sh('/usr/bin/python3', [join(root, 'bench', 'reference', 'train.py'), ...r.args, ...refCommon, ...refData, '--eval-limit', '100', '--out', join(ref, 'result.json'), '--save-weights', join(ref, 'weights.safetensors'), '--checkpoint', ck]);
    rmSync(ck, { force: true });
  }
  if (existsSync(join(ref, 'result.json')) && (runs('pytorch') || existsSync(join(ref, 'eval.json')))) {
    const rs = JSON.parse(readFileSync(join(ref, 'result.json'), 'utf8'));
    const re = evaluate(join(ref, 'weights.safetensors'), join(ref, 'eval.json'));
    table.push(row('pytorch', r.name, re, rs.train_seconds / 60, rs.backward_passes));
  }
}
const table = rows.flatMap((r) => byName.get(r.name)!);
const hasPgd100 = table.every((r) => r.pgd100 !== undefined);
const hasAA = aaLimit > 0 && table.every((r) => r.aa !== undefined);

const pct = (v: number) => (v * 100).toFixed(2);
// With the strong attack on a prefix, its column comes with the clean accuracy of that prefix.
const pgd100Head = strong ? ` clean % (first ${strong.limit}) | PGD-100 % (first ${strong.limit}) |` : ' PGD-100 % |';
const pgd100Cell = (r: Record<string, any>) => (strong ? ` ${pct(r.strongClean)} | ${pct(r.pgd100)} |` : ` ${pct(r.pgd100)} |`);
// AutoAttack on its prefix, beside the clean accuracy of that prefix
const aaHead = hasAA ? ` clean % (first ${aaLimit}) | AutoAttack % (first ${aaLimit}) |` : '';
const aaCell = (r: Record<string, any>) => (hasAA ? ` ${pct(r.aaClean)} | ${pct(r.aa)} |` : '');
const md = [
  `${o.dataset}, ε = ${S.epsArg}, budget ${quick ? `${quickSteps} SGD steps (one natural epoch) per method` : `${epochs} natural epochs`}, ${S.model}, batch ${S.batch}, lr ${S.lr} cosine${S.augment ? ', pad-4 crop + flip' : ''}${seed ? `, seed ${seed}` : ''}, δ step ${+S.freeStep.toFixed(4)}, ${S.evalLimit} test images${strong ? ` (${strong.attacks} with 2 restarts: the first ${strong.limit})` : ''}; ${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model}`,
  '',
  `| method | impl | clean % | PGD-20 % |${hasPgd100 ? pgd100Head : ''}${cifar ? ' APGD-CE % |' : ''}${aaHead} train min | backward passes |`,
  `|---|---|---|---|${hasPgd100 ? (strong ? '---|---|' : '---|') : ''}${cifar ? '---|' : ''}${hasAA ? '---|---|' : ''}---|---|`,
  ...table.map((r) => `| ${r.method} | ${r.impl} | ${pct(r.clean)} | ${pct(r.pgd20)} |${hasPgd100 ? pgd100Cell(r) : ''}${cifar ? ` ${pct(r.apgd)} |` : ''}${aaCell(r)} ${r.minutes.toFixed(1)} | ${r.backward} |`),
].join('\n');
writeFileSync(join(outDir, 'table.json'), JSON.stringify(table, null, 2));
writeFileSync(join(outDir, 'table.md'), md + '\n');
process.stdout.write(md + '\n');
