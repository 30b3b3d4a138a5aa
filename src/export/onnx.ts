// ONNX export. The graph is emitted per layer and per model block, each emitter writing the computation its
// module's forward() does (in eval mode: BatchNorm with running statistics), so the graph is the model as freeadv
// runs it: the input stays images in [0, 1] (dynamic batch), normalisation (Sub, Div) is inside the graph, the
// output is the logits. Initializers carry the PyTorch state-dict names. Written with protobufjs from the ONNX
// schema in onnx-schema.ts.
import { noGrad, scope, type Tensor } from '../torch/index.js';
import { Module, Conv2d, Linear, BatchNorm2d, Normalize, Sequential, ReLU, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Flatten, Identity, Dropout } from '../nn/index.js';
import { TwoConvNet } from '../models/cnn.js';
import { PreActResNet18, PreActBlock, WideResNet, WideStage, WideBasic, ResNetCifarSmall, BasicBlock, ResNet50, Bottleneck } from '../models/resnet.js';
import { onnxSchema, ONNX_IR_VERSION, ONNX_OPSET } from './onnx-schema.js';
import { exportMetadata, describeModelInfo, type ModelInfo } from './source.js';
import { freeadvVersion } from './version.js';

/** A model (or a layer inside it) that has no ONNX emitter. */
export class OnnxExportError extends Error {
  override name = 'OnnxExportError';
}

const ATTR = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7 } as const;
const FLOAT = 1;

type Attr = { type: number; f?: number; i?: number; s?: Uint8Array; floats?: number[]; ints?: number[] };
/** Typed attribute values (an ONNX attribute's type is explicit: 1.0 is a FLOAT, 1 an INT). */
export const attr = {
  f: (v: number): Attr => ({ type: ATTR.FLOAT, f: v }),
  i: (v: number): Attr => ({ type: ATTR.INT, i: v }),
  s: (v: string): Attr => ({ type: ATTR.STRING, s: Buffer.from(v, 'utf8') }),
  ints: (v: number[]): Attr => ({ type: ATTR.INTS, ints: v }),
};

interface NodeSpec { op_type: string; input: string[]; output: string[]; name: string; attribute: (Attr & { name: string })[] }
interface TensorSpec { name: string; dims: number[]; data_type: number; raw_data: Uint8Array }

/** A graph under construction: nodes in topological order (emission order) and initializers. */
export class OnnxGraph {
  readonly nodes: NodeSpec[] = [];
  readonly initializers: TensorSpec[] = [];
  private readonly used = new Set<string>();
  private readonly counters = new Map<string, number>();

  /** A unique value name from a hint: the hint, then hint_1, hint_2, … */
  fresh(hint: string): string {
    let name = hint;
    while (this.used.has(name)) {
      const k = (this.counters.get(hint) ?? 0) + 1;
      this.counters.set(hint, k);
      name = `${hint}_${k}`;
    }
    this.used.add(name);
    return name;
  }

  /** A float32 initializer (a copy of the tensor's values), named `name` (PyTorch's state-dict key). */
  tensor(name: string, t: Tensor): string {
    const raw = scope(() => noGrad(() => t.to('cpu').to('float32').contiguous().toBytes()));
    const n = this.fresh(name);
    this.initializers.push({ name: n, dims: [...t.shape], data_type: FLOAT, raw_data: raw });
    return n;
  }

  /** A float32 constant from numbers. */
  constant(name: string, values: number[], dims: number[]): string {
    const f = Float32Array.from(values);
    const n = this.fresh(name);
    this.initializers.push({ name: n, dims, data_type: FLOAT, raw_data: new Uint8Array(f.buffer, f.byteOffset, f.byteLength) });
    return n;
  }

  /** Adds a node with one output, named after `hint`; returns the output's name. */
  op(opType: string, inputs: string[], attrs: Record<string, Attr> = {}, hint = opType.toLowerCase()): string {
    const out = this.fresh(hint);
    this.nodes.push({
      op_type: opType, input: inputs, output: [out], name: `${opType}_${this.nodes.length}`,
      attribute: Object.entries(attrs).map(([name, a]) => ({ name, ...a })),
    });
    return out;
  }
}

/** Emits the graph of module `m` applied to value `x`; `p` is m's state-dict prefix ('' for the model). */
export type Emitter<M extends Module = Module> = (g: OnnxGraph, m: M, x: string, p: string) => string;

const key = (p: string, n: string) => (p ? `${p}.${n}` : n);
const pair = (v: number | [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : v);

/** Emitters by module class, most specific first (a subclass before its base class). */
const EMITTERS: [abstract new (...args: never[]) => Module, Emitter<never>][] = [];
/** Registers the ONNX emitter of a module class (layers and model blocks; a new model adds its own). */
export function registerOnnxEmitter<M extends Module>(cls: abstract new (...args: never[]) => M, e: Emitter<M>): void {
  EMITTERS.unshift([cls, e as Emitter<never>]);
}

/** Emits module `m` applied to `x` (its child `name` under prefix `p`). */
export function emit(g: OnnxGraph, m: Module, x: string, p: string): string {
  const hit = EMITTERS.find(([cls]) => m instanceof cls);
  if (!hit) throw new OnnxExportError(`no ONNX emitter for ${m.constructor.name}${p ? ` ('${p}')` : ''}; register one with registerOnnxEmitter`);
  return (hit[1] as Emitter)(g, m, x, p);
}
/** Emits m's child `name`. */
const child = (g: OnnxGraph, parent: string, name: string, m: Module, x: string) => emit(g, m, x, key(parent, name));

const relu = (g: OnnxGraph, x: string) => g.op('Relu', [x]);
const gapFlatten = (g: OnnxGraph, x: string) => g.op('Flatten', [g.op('GlobalAveragePool', [x], {}, 'gap')], { axis: attr.i(1) });

// ---- layers (src/nn/layers.ts) ----

registerOnnxEmitter(Normalize, (g, m, x, p) => {
  const c = m.mean.length;
  const sub = g.op('Sub', [x, g.constant(key(p, 'mean'), m.mean, [1, c, 1, 1])], {}, 'centred');
  return g.op('Div', [sub, g.constant(key(p, 'std'), m.std, [1, c, 1, 1])], {}, 'normalised');
});

registerOnnxEmitter(Conv2d, (g, m, x, p) => {
  const w = m.weight;
  const [ph, pw] = m.padding;
  const inputs = [x, g.tensor(key(p, 'weight'), w)];
  if (m.bias) inputs.push(g.tensor(key(p, 'bias'), m.bias));
  return g.op('Conv', inputs, {
    kernel_shape: attr.ints([w.shape[2]!, w.shape[3]!]), strides: attr.ints(m.stride), pads: attr.ints([ph, pw, ph, pw]),
    dilations: attr.ints(m.dilation), group: attr.i(m.groups),
  }, 'conv');
});

registerOnnxEmitter(BatchNorm2d, (g, m, x, p) => {
  // eval mode: y = (x − running_mean) / sqrt(running_var + eps) · weight + bias
  const sd = m.stateDict();
  const n = m.numFeatures;
  const scale = sd.weight ? g.tensor(key(p, 'weight'), sd.weight) : g.constant(key(p, 'weight'), Array(n).fill(1), [n]);
  const bias = sd.bias ? g.tensor(key(p, 'bias'), sd.bias) : g.constant(key(p, 'bias'), Array(n).fill(0), [n]);
  return g.op('BatchNormalization', [x, scale, bias, g.tensor(key(p, 'running_mean'), sd.running_mean!), g.tensor(key(p, 'running_var'), sd.running_var!)],
    { epsilon: attr.f(m.opts.eps ?? 1e-5) }, 'bn');
});

registerOnnxEmitter(Linear, (g, m, x, p) => {
  const inputs = [x, g.tensor(key(p, 'weight'), m.weight)];
  if (m.bias) inputs.push(g.tensor(key(p, 'bias'), m.bias));
  return g.op('Gemm', inputs, { transB: attr.i(1) }, 'linear');
});

registerOnnxEmitter(ReLU, (g, _m, x) => relu(g, x));
registerOnnxEmitter(Identity, (_g, _m, x) => x);
registerOnnxEmitter(Dropout, (_g, _m, x) => x); // eval mode
registerOnnxEmitter(Flatten, (g, m, x) => {
  if (m.end !== -1) throw new OnnxExportError(`Flatten(${m.start}, ${m.end}) has no ONNX emitter (only end = -1)`);
  return g.op('Flatten', [x], { axis: attr.i(m.start) });
});
const pool = (op: string) => (g: OnnxGraph, m: MaxPool2d | AvgPool2d, x: string) => {
  const [ph, pw] = pair(m.padding);
  return g.op(op, [x], { kernel_shape: attr.ints(pair(m.kernel)), strides: attr.ints(pair(m.stride)), pads: attr.ints([ph, pw, ph, pw]) }, 'pool');
};
registerOnnxEmitter(MaxPool2d, pool('MaxPool'));
registerOnnxEmitter(AvgPool2d, (g, m, x, p) => {
  // torch's avg_pool2d counts padding in the divisor by default
  if (pair(m.padding).some((v) => v !== 0)) throw new OnnxExportError(`AvgPool2d with padding ('${p}') has no ONNX emitter`);
  return pool('AveragePool')(g, m, x);
});
registerOnnxEmitter(AdaptiveAvgPool2d, (g, m, x, p) => {
  if (pair(m.size).some((v) => v !== 1)) throw new OnnxExportError(`AdaptiveAvgPool2d to ${m.size} ('${p}') has no ONNX emitter (only 1)`);
  return g.op('GlobalAveragePool', [x], {}, 'gap');
});
registerOnnxEmitter(Sequential, (g, m, x, p) => m.layers.reduce((h, l, i) => child(g, p, String(i), l, h), x));

// ---- model blocks and models (src/models) ----

// TwoConvNet.forward: norm → conv1 → relu → maxpool 2 → conv2 → relu → maxpool 2 → flatten → fc1 → relu → fc2
registerOnnxEmitter(TwoConvNet, (g, m, x, p) => {
  const pool2 = (h: string) => g.op('MaxPool', [h], { kernel_shape: attr.ints([2, 2]), strides: attr.ints([2, 2]) }, 'pool');
  let h = child(g, p, 'norm', m.norm, x);
  h = pool2(relu(g, child(g, p, 'conv1', m.conv1, h)));
  h = pool2(relu(g, child(g, p, 'conv2', m.conv2, h)));
  h = g.op('Flatten', [h], { axis: attr.i(1) });
  h = relu(g, child(g, p, 'fc1', m.fc1, h));
  return child(g, p, 'fc2', m.fc2, h);
});

// preActUnit: o = relu(bn1(x)); y = conv2(relu(bn2(conv1(o)))) + (shortcut(o) or x)
function preActUnit(g: OnnxGraph, b: PreActBlock | WideBasic, x: string, p: string, shortcut: [string, Module] | undefined): string {
  const o = relu(g, child(g, p, 'bn1', b.bn1, x));
  const sc = shortcut ? child(g, p, shortcut[0], shortcut[1], o) : x;
  const h = child(g, p, 'conv2', b.conv2, relu(g, child(g, p, 'bn2', b.bn2, child(g, p, 'conv1', b.conv1, o))));
  return g.op('Add', [h, sc], {}, 'residual');
}
registerOnnxEmitter(PreActBlock, (g, m, x, p) => preActUnit(g, m, x, p, m.shortcut && ['shortcut', m.shortcut]));
registerOnnxEmitter(WideBasic, (g, m, x, p) => preActUnit(g, m, x, p, m.convShortcut && ['convShortcut', m.convShortcut]));
registerOnnxEmitter(WideStage, (g, m, x, p) => child(g, p, 'layer', m.layer, x));

// BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))
registerOnnxEmitter(BasicBlock, (g, m, x, p) => {
  const h = child(g, p, 'bn2', m.bn2, child(g, p, 'conv2', m.conv2, relu(g, child(g, p, 'bn1', m.bn1, child(g, p, 'conv1', m.conv1, x)))));
  const sc = m.shortcut ? child(g, p, 'shortcut', m.shortcut, x) : x;
  return relu(g, g.op('Add', [h, sc], {}, 'residual'));
});

// Bottleneck: relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + downsample(x))
registerOnnxEmitter(Bottleneck, (g, m, x, p) => {
  let h = relu(g, child(g, p, 'bn1', m.bn1, child(g, p, 'conv1', m.conv1, x)));
  h = relu(g, child(g, p, 'bn2', m.bn2, child(g, p, 'conv2', m.conv2, h)));
  h = child(g, p, 'bn3', m.bn3, child(g, p, 'conv3', m.conv3, h));
  const sc = m.downsample ? child(g, p, 'downsample', m.downsample, x) : x;
  return relu(g, g.op('Add', [h, sc], {}, 'residual'));
});

const layers = (g: OnnxGraph, p: string, ls: Sequential[], x: string) => ls.reduce((h, l, i) => child(g, p, `layer${i + 1}`, l, h), x);

// PreActResNet18: norm → conv1 → layer1..4 → bn → relu → gap → flatten → linear
registerOnnxEmitter(PreActResNet18, (g, m, x, p) => {
  let h = child(g, p, 'conv1', m.conv1, child(g, p, 'norm', m.norm, x));
  h = relu(g, child(g, p, 'bn', m.bn, layers(g, p, m.layers, h)));
  return child(g, p, 'linear', m.linear, gapFlatten(g, h));
});

// WideResNet: norm → conv1 → block1..3 → bn1 → relu → gap → flatten → fc
registerOnnxEmitter(WideResNet, (g, m, x, p) => {
  let h = child(g, p, 'conv1', m.conv1, child(g, p, 'norm', m.norm, x));
  for (const [n, b] of [['block1', m.block1], ['block2', m.block2], ['block3', m.block3]] as const) h = child(g, p, n, b, h);
  h = relu(g, child(g, p, 'bn1', m.bn1, h));
  return child(g, p, 'fc', m.fc, gapFlatten(g, h));
});

// ResNetCifarSmall: norm → conv1 → bn1 → relu → layer1..3 → gap → flatten → fc
registerOnnxEmitter(ResNetCifarSmall, (g, m, x, p) => {
  const h = relu(g, child(g, p, 'bn1', m.bn1, child(g, p, 'conv1', m.conv1, child(g, p, 'norm', m.norm, x))));
  return child(g, p, 'fc', m.fc, gapFlatten(g, layers(g, p, m.layers, h)));
});

// ResNet50: norm → conv1 → bn1 → relu → maxpool 3/2/1 → layer1..4 → gap → flatten → fc
registerOnnxEmitter(ResNet50, (g, m, x, p) => {
  let h = relu(g, child(g, p, 'bn1', m.bn1, child(g, p, 'conv1', m.conv1, child(g, p, 'norm', m.norm, x))));
  h = g.op('MaxPool', [h], { kernel_shape: attr.ints([3, 3]), strides: attr.ints([2, 2]), pads: attr.ints([1, 1, 1, 1]) }, 'pool');
  return child(g, p, 'fc', m.fc, gapFlatten(g, layers(g, p, m.layers, h)));
});

export interface OnnxExportOptions {
  /** Input C×H×W (the batch dimension is dynamic, named 'batch'). */
  inputShape: [number, number, number];
  numClasses: number;
  /** metadata_props. */
  metadata?: Record<string, string>;
  producerVersion?: string;
  graphName?: string;
  docString?: string;
}

const dims = (ds: (number | string)[]) => ({ dim: ds.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) });

/**
 * The ONNX model (ModelProto bytes) of `model` in eval mode: input 'input' (batch×C×H×W float32 in [0, 1]),
 * output 'logits' (batch×classes).
 */
export function exportOnnx(model: Module, o: OnnxExportOptions): Uint8Array {
  const g = new OnnxGraph();
  const input = g.fresh('input');
  g.fresh('logits');
  const last = emit(g, model, input, '');
  // name the graph's output 'logits'
  const producer = g.nodes.find((n) => n.output[0] === last);
  if (!producer) throw new OnnxExportError('the model emitted no node');
  producer.output[0] = 'logits';
  const root = onnxSchema();
  const ModelProto = root.lookupType('onnx.ModelProto');
  const msg = ModelProto.fromObject({
    ir_version: ONNX_IR_VERSION,
    opset_import: [{ domain: '', version: ONNX_OPSET }],
    producer_name: 'freeadv',
    producer_version: o.producerVersion ?? '',
    doc_string: o.docString ?? '',
    graph: {
      name: o.graphName ?? 'freeadv',
      node: g.nodes,
      initializer: g.initializers,
      input: [{ name: input, type: { tensor_type: { elem_type: FLOAT, shape: dims(['batch', ...o.inputShape]) } }, doc_string: 'images in [0, 1], N×C×H×W' }],
      output: [{ name: 'logits', type: { tensor_type: { elem_type: FLOAT, shape: dims(['batch', o.numClasses]) } }, doc_string: 'class logits (softmax gives probabilities)' }],
    },
    metadata_props: Object.entries(o.metadata ?? {}).map(([k, v]) => ({ key: k, value: v })),
  });
  return ModelProto.encode(msg).finish();
}

/** The ONNX model of a model opened by openModel, with its metadata (exportMetadata) and a one-line description. */
export function exportModelOnnx(model: Module, info: ModelInfo): Uint8Array {
  return exportOnnx(model, {
    inputShape: info.inputShape, numClasses: info.numClasses, metadata: exportMetadata(info, freeadvVersion()), producerVersion: freeadvVersion(),
    graphName: `${info.model}-${info.dataset}`, docString: describeModelInfo(info),
  });
}
