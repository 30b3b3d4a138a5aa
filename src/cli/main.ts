// The `freeadv` command line: train, eval, report, info. Each command parses its options from one table,
// calls the library and prints. Bad input ends with a clear message naming the option or file and exit code 2;
// failures at run time exit 1; an interrupted run 130.
import { ConfigError, SchemaError } from '../options/index.js';
import { InterruptedError, TrainingError } from '../train/index.js';
import { CheckpointError, WriteError } from '../io/index.js';
import { DataError } from '../data/index.js';
import { getNumThreads, version, cuda, TorchError } from '../torch/index.js';
import { ReportError } from '../report/index.js';
import { UsageError } from './args.js';
import { cmdTrain } from './train.js';
import { cmdEval } from './eval.js';
import { cmdReport } from './report.js';
import { cmdExport } from './export.js';
import { cmdPredict } from './predict.js';
import { cmdPrepare } from './prepare.js';
import { cmdDemo } from './demo.js';

const HELP = `freeadv — adversarially robust training at the cost of natural training, on libtorch

Usage: freeadv <command> [options]

Commands
  train     train with free-m, PGD-k, FGSM-RS or natural training, then evaluate
  eval      evaluate a trained model under attacks
  report    an HTML page of runs: curves, comparison table, robustness, gallery, the paper's analyses
  export    a trained model as a PyTorch state dict (safetensors) or an ONNX graph, with metadata
  predict   the most probable classes of image files, from a run, weights or an ONNX file
  demo      a page that runs a robust model (and a natural one) in the browser, on adversarial examples too
  prepare   a copy of an image folder at bounded size (faster decoding, lower resolution)
  info      versions, threads and devices

Run 'freeadv <command> --help' for its options.`;

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
      case 'export':
        return await cmdExport(rest, out);
      case 'predict':
        return await cmdPredict(rest, out);
      case 'prepare':
        return await cmdPrepare(rest, out);
      case 'demo':
        return await cmdDemo(rest, out);
      case 'info':
        return cmdInfo(out);
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        out(HELP);
        return cmd === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command '${cmd}' (commands: train, eval, report, export, predict, demo, prepare, info)`);
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
    if (e instanceof DataError || e instanceof CheckpointError || e instanceof ReportError || e instanceof SchemaError) {
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
