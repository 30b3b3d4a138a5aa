// `freeadv export --format onnx`: every model freeadv ships as an ONNX graph that Debian's python3-onnx checker
// accepts (full_check), with a dynamic batch and the metadata; ONNX Runtime (onnxruntime-node, CPU) gives libtorch's
// logits within 1e-4 on clean images and on freeadv's PGD adversarial examples (same predictions). The schema
// subset in src/export/onnx-schema.ts is checked field by field against Debian's onnx.proto.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import * as ort from 'onnxruntime-node';
import protobuf from 'protobufjs';
import * as T from '../src/torch/index.js';
import { run } from '../src/cli/main.js';
import { saveSafetensors } from '../src/io/index.js';
import { modelFor } from '../src/models/index.js';
import type { Module } from '../src/nn/index.js';
import { PGD } from '../src/attacks/index.js';
import { describeDataset, exportOnnx, onnxSchema, ONNX_OPSET } from '../src/export/index.js';
import { PYTHON } from './helpers/python.js';
import type { DatasetName } from '../src/data/index.js';

const DEBIAN_ONNX_PROTO = '/usr/lib/python3/dist-packages/onnx/onnx.proto';
const hasOnnxPython = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import onnx'], { encoding: 'utf8' }).status === 0;
const SKIP_NO_ONNX = hasOnnxPython ? false : "Debian's python3-onnx is missing (apt-get install python3-onnx)";
const tmp = mkdtempSync(join(tmpdir(), 'freeadv-onnx-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const code = await run(args, (s) => (out += s + '\n'), (s) => (err += s + '\n'));
  return { code, out, err };
}

/** Runs onnx.checker.check_model(full_check=True) on each file; returns what the model says of itself. */
function checkOnnx(files: string[]): Record<string, { ir: number; opset: number; input: (number | string)[]; output: (number | string)[]; meta: Record<string, string>; ops: string[] }> {
  const r = spawnSync(PYTHON, ['-c', String.raw`
import json, sys, onnx
out = {}
for f in sys.argv[1:]:
    m = onnx.load(f)
    onnx.checker.check_model(m, full_check=True)
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
    out[f] = {"ir": m.ir_version, "opset": [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")][0],
              "input": dims(m.graph.input[0]), "output": dims(m.graph.output[0]),
              "meta": {p.key: p.value for p in m.metadata_props}, "ops": sorted({n.op_type for n in m.graph.node})}
print(json.dumps(out))
`, ...files], { encoding: 'utf8', maxBuffer: 1 << 26, timeout: 120_000 });
  assert.equal(r.status, 0, `onnx checker: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

/** Weights with BatchNorm statistics and affine parameters away from their initial values (eval mode is exercised). */
function randomized(name: string, dataset: DatasetName, seed: number, imageSize?: number): Module {
  T.manualSeed(seed);
  const model = modelFor(name, describeDataset(dataset, { imageSize, numClasses: () => 10 }));
  T.noGrad(() => {
    for (const [k, t] of Object.entries(model.stateDict())) {
      if (k.endsWith('running_mean')) t.copy_(T.randLike(t).sub(0.5).mul(0.2));
      else if (k.endsWith('running_var')) t.copy_(T.randLike(t).add(0.5));
    }
    for (const [k, t] of model.namedParameters()) {
      if (t.ndim === 1 && /(bn\d?|downsample\.1|shortcut\.1)\.weight$/.test(k)) t.copy_(T.randLike(t).mul(0.5).add(0.75));
      else if (t.ndim === 1 && /(bn\d?|downsample\.1|shortcut\.1)\.bias$/.test(k)) t.copy_(T.randLike(t).sub(0.5).mul(0.2));
    }
  });
  return model.eval();
}

async function ortLogits(file: string, x: T.Tensor): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(file, { intraOpNumThreads: 2, interOpNumThreads: 1 });
  try {
    const r = await s.run({ input: new ort.Tensor('float32', x.toTypedArray() as Float32Array, x.shape) });
    assert.deepEqual(r.logits!.dims, [x.size(0), (r.logits!.dims as number[])[1]]);
    return r.logits!.data as Float32Array;
  } finally {
    await s.release();
  }
}

const argmax = (a: Float32Array, k: number) => Array.from({ length: a.length / k }, (_, i) => {
  let best = 0;
  for (let j = 1; j < k; j++) if (a[i * k + j]! > a[i * k + best]!) best = j;
  return best;
});
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const SMALL: [string, DatasetName, number, number][] = [
  ['small-cnn', 'fashion-mnist', 1, 28], ['madry-cnn', 'mnist', 1, 28], ['resnet-cifar-small', 'cifar10', 3, 32], ['preact-resnet18', 'cifar10', 3, 32],
];

test('ONNX of the small models (via the CLI): the checker accepts them; ONNX Runtime = libtorch within 1e-4 on clean and PGD images, dynamic batch', { skip: SKIP_NO_ONNX }, async (t) => {
  const files: string[] = [];
  const cases: { name: string; file: string; model: Module; x: T.Tensor; adv: T.Tensor }[] = [];
  for (const [i, [name, dataset, c, s]] of SMALL.entries()) {
    const model = randomized(name, dataset, 10 + i);
    const weights = join(tmp, `${name}.safetensors`);
    saveSafetensors(weights, model.stateDict());
    const file = join(tmp, `${name}.onnx`);
    const r = await cli(['export', '--weights', weights, '--model', name, '--dataset', dataset, '--out', file]);
    assert.equal(r.code, 0, r.err);
    files.push(file);
    T.manualSeed(100 + i);
    const x = T.rand([5, c, s, s]).keep();
    const logits = T.noGrad(() => model.forward(x));
    const y = logits.argmax(1).keep();
    logits.dispose();
    const adv = new PGD(model, { eps: c === 1 ? 0.1 : 8 / 255, steps: 5 }).run(x, y).keep();
    y.dispose();
    cases.push({ name, file, model, x, adv });
  }
  const info = checkOnnx(files);
  for (const [name, dataset, c, s] of SMALL) {
    const m = info[join(tmp, `${name}.onnx`)]!;
    assert.equal(m.opset, ONNX_OPSET);
    assert.ok(m.opset >= 13);
    assert.deepEqual(m.input, ['batch', c, s, s], `${name}: dynamic batch, C×H×W input`);
    assert.deepEqual(m.output, ['batch', 10]);
    assert.equal(m.meta.model, name);
    assert.equal(m.meta.dataset, dataset);
    assert.equal(m.meta.threat_model, 'linf');
    assert.equal(JSON.parse(m.meta.class_names!).length, 10);
    assert.ok(m.ops.includes('Sub') && m.ops.includes('Div'), 'normalisation is inside the graph');
  }
  for (const { name, file, model, x, adv } of cases) {
    for (const [what, input] of [['clean', x], ['PGD', adv]] as const) {
      const mine = T.noGrad(() => model.forward(input)).toTypedArray() as Float32Array;
      const theirs = await ortLogits(file, input);
      assert.ok(maxDiff(mine, theirs) <= 1e-4, `${name} ${what}: max |Δlogit| ${maxDiff(mine, theirs)}`);
      t.diagnostic(`${name} ${what}: max |Δlogit| ${maxDiff(mine, theirs).toExponential(2)}, logits up to ${Math.max(...Array.from(mine, Math.abs)).toFixed(2)}`);
      assert.deepEqual(argmax(theirs, 10), argmax(mine, 10), `${name} ${what}: same predictions`);
    }
    // another batch size through the same graph
    const one = x.narrow(0, 0, 1);
    assert.ok(maxDiff(T.noGrad(() => model.forward(one)).toTypedArray() as Float32Array, await ortLogits(file, one)) <= 1e-4);
    model.dispose();
    x.dispose();
    adv.dispose();
  }
});

const LARGE: [string, DatasetName, number][] = [['wrn-28-10', 'cifar10', 32], ['wrn-34-10', 'cifar10', 32], ['resnet50', 'imagefolder', 224]];

test('ONNX of the large models (wrn-28-10, wrn-34-10, resnet50): the checker accepts them; ONNX Runtime = libtorch on one image', { skip: SKIP_NO_ONNX }, async (t) => {
  for (const [i, [name, dataset, s]] of LARGE.entries()) {
    const model = randomized(name, dataset, 20 + i, s);
    const file = join(tmp, `${name}.onnx`);
    writeFileSync(file, exportOnnx(model, { inputShape: [3, s, s], numClasses: 10 }));
    const m = checkOnnx([file])[file]!;
    assert.deepEqual(m.input, ['batch', 3, s, s]);
    T.manualSeed(200 + i);
    const x = T.rand([1, 3, s, s]);
    const mine = T.noGrad(() => model.forward(x)).toTypedArray() as Float32Array;
    const theirs = await ortLogits(file, x);
    const scale = Math.max(1, ...Array.from(mine, Math.abs));
    assert.ok(maxDiff(mine, theirs) <= 1e-4 * scale, `${name}: max |Δlogit| ${maxDiff(mine, theirs)} (logits up to ${scale})`);
    assert.deepEqual(argmax(theirs, 10), argmax(mine, 10));
    t.diagnostic(`${name}: max |Δlogit| ${maxDiff(mine, theirs).toExponential(2)}, logits up to ${scale.toFixed(2)}`);
    x.dispose();
    model.dispose();
    rmSync(file);
  }
});

test("the ONNX schema subset has onnx.proto's field numbers and types (Debian's python3-onnx)", { skip: existsSync(DEBIAN_ONNX_PROTO) ? false : SKIP_NO_ONNX || 'no onnx.proto' }, (t) => {
  const theirs = protobuf.parse(readFileSync(DEBIAN_ONNX_PROTO, 'utf8'), { keepCase: true }).root;
  const mine = onnxSchema();
  let checked = 0;
  const walk = (ns: protobuf.NamespaceBase) => {
    for (const obj of ns.nestedArray) {
      if (obj instanceof protobuf.Type) {
        const other = theirs.lookupType(obj.fullName);
        for (const f of obj.fieldsArray) {
          const o = other.fields[f.name];
          assert.ok(o, `${obj.fullName}.${f.name} is in onnx.proto`);
          assert.equal(o.id, f.id, `${obj.fullName}.${f.name} field number`);
          assert.equal(o.type.replace(/^.*\./, ''), f.type.replace(/^.*\./, ''), `${obj.fullName}.${f.name} type`);
          assert.equal(o.repeated, f.repeated, `${obj.fullName}.${f.name} repeated`);
          checked++;
        }
      } else if (obj instanceof protobuf.Enum) {
        const other = theirs.lookupEnum(obj.fullName);
        for (const [k, v] of Object.entries(obj.values)) assert.equal(other.values[k], v, `${obj.fullName}.${k}`);
      }
      if (obj instanceof protobuf.Namespace || obj instanceof protobuf.Type) walk(obj as protobuf.NamespaceBase);
    }
  };
  walk(mine);
  assert.ok(checked > 50, `${checked} fields checked`);
  t.diagnostic(`${checked} fields checked`);
});
