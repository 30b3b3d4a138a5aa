// Module: the base of every layer and model. Parameters, buffers and sub-modules are registered under names,
// and hierarchical names are PyTorch's ('layer1.0.conv1.weight', 'bn1.running_mean'), so that state dicts move
// between freeadv and PyTorch unchanged. A module owns its tensors: they are kept out of every scope and freed
// by dispose().
import { Tensor, keep, noGrad, isFloating, type DType } from '../torch/index.js';

export class StateDictError extends Error {
  override name = 'StateDictError';
  constructor(
    message: string,
    readonly missing: string[] = [],
    readonly unexpected: string[] = [],
    readonly mismatched: string[] = [],
  ) {
    super(message);
  }
}

/**
 * Applies the steps in order and frees each intermediate result as soon as the next step has consumed it, as
 * Python frees an activation when its last reference goes: autograd holds its own reference to whatever it saved
 * for the backward pass, so nothing it needs is lost, and activations it did not save (a BatchNorm output fed to
 * a ReLU, a residual branch before the add) no longer wait for the end of the step's scope. The input and the
 * result are not freed.
 */
export function chain(x: Tensor, ...steps: ((t: Tensor) => Tensor)[]): Tensor {
  let h = x;
  for (const f of steps) {
    const next = f(h);
    if (h !== x && next !== h) h.dispose();
    h = next;
  }
  return h;
}

/** Runs fn with the model in eval mode (BatchNorm statistics stay put), restoring its previous mode afterwards. */
export function inEvalMode<T>(model: Module, fn: () => T): T {
  const was = model.training;
  model.eval();
  try {
    return fn();
  } finally {
    model.train(was);
  }
}

/** Frees intermediate tensors now (a no-op for tensors already freed); see chain. */
export function release(...ts: (Tensor | undefined)[]): void {
  for (const t of ts) t?.dispose();
}

export abstract class Module {
  training = true;
  private readonly params = new Map<string, Tensor | undefined>();
  private readonly buffers = new Map<string, { t: Tensor; persistent: boolean }>();
  private readonly children = new Map<string, Module>();

  abstract forward(x: Tensor): Tensor;

  /** Same as forward (reads like PyTorch's module(x)). */
  call(x: Tensor): Tensor {
    return this.forward(x);
  }

  protected param(name: string, t: Tensor | undefined): Tensor {
    if (t) keep(t).requiresGrad_(true);
    this.params.set(name, t);
    return t as Tensor;
  }
  /** A buffer: state that is not trained (running statistics). Non-persistent buffers stay out of state dicts. */
  protected buffer(name: string, t: Tensor, persistent = true): Tensor {
    this.buffers.set(name, { t: keep(t), persistent });
    return t;
  }
  protected module<M extends Module>(name: string, m: M): M {
    this.children.set(name, m);
    return m;
  }
  /** Replaces the tensor behind a registered buffer (used by layers that update buffers out of place). */
  protected setBuffer(name: string, t: Tensor): void {
    const b = this.buffers.get(name);
    if (!b) throw new Error(`no buffer '${name}'`);
    if (b.t !== t) b.t.dispose();
    b.t = keep(t);
  }
  protected getBuffer(name: string): Tensor {
    return this.buffers.get(name)!.t;
  }

  namedChildren(): [string, Module][] {
    return [...this.children];
  }
  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [n, m] of this.children) yield* m.namedModules(prefix ? `${prefix}.${n}` : n);
  }
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [p, m] of this.namedModules(prefix))
      for (const [n, t] of m.params) if (t) out.push([p ? `${p}.${n}` : n, t]);
    return out;
  }
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }
  namedBuffers(prefix = '', persistentOnly = false): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [p, m] of this.namedModules(prefix))
      for (const [n, b] of m.buffers) if (!persistentOnly || b.persistent) out.push([p ? `${p}.${n}` : n, b.t]);
    return out;
  }
  /** Number of trainable parameter elements. */
  numParameters(): number {
    return this.parameters().reduce((a, t) => a + t.numel, 0);
  }

  /** Parameters and persistent buffers by PyTorch name. The tensors are the module's own (not copies). */
  stateDict(): Record<string, Tensor> {
    const sd: Record<string, Tensor> = {};
    for (const [p, m] of this.namedModules()) {
      for (const [n, t] of m.params) if (t) sd[p ? `${p}.${n}` : n] = t;
      for (const [n, b] of m.buffers) if (b.persistent) sd[p ? `${p}.${n}` : n] = b.t;
    }
    return sd;
  }

  /**
   * Copies values from a state dict into this module's tensors. Strict (default): every key must match in
   * name and shape, and the error names every missing, unexpected and mis-shaped key.
   */
  loadStateDict(sd: Record<string, Tensor>, opts: { strict?: boolean } = {}): void {
    const strict = opts.strict ?? true;
    const own = this.stateDict();
    const missing = Object.keys(own).filter((k) => !(k in sd));
    const unexpected = Object.keys(sd).filter((k) => !(k in own));
    const mismatched: string[] = [];
    for (const [k, t] of Object.entries(own)) {
      const s = sd[k];
      if (s && s.shape.join(',') !== t.shape.join(','))
        mismatched.push(`${k}: checkpoint [${s.shape}] vs model [${t.shape}]`);
    }
    if (mismatched.length || (strict && (missing.length || unexpected.length))) {
      const parts = [];
      if (missing.length) parts.push(`missing keys: ${missing.join(', ')}`);
      if (unexpected.length) parts.push(`unexpected keys: ${unexpected.join(', ')}`);
      if (mismatched.length) parts.push(`shape mismatches: ${mismatched.join('; ')}`);
      throw new StateDictError(`state dict does not fit the model (${parts.join('; ')})`, missing, unexpected, mismatched);
    }
    noGrad(() => {
      for (const [k, t] of Object.entries(own)) {
        const s = sd[k];
        if (s) t.copy_(s);
      }
    });
  }

  train(on = true): this {
    for (const [, m] of this.namedModules()) m.training = on;
    return this;
  }
  eval(): this {
    return this.train(false);
  }

  /** Moves (or casts) every parameter and buffer; a dtype cast changes floating tensors only. */
  to(target: string | DType): this {
    const isDevice = /^(cpu|cuda)/.test(target);
    return this.mapTensors((t) => (isDevice || isFloating(t.dtype) ? t.to(target) : undefined));
  }

  /** Stores 4-D weights in channels-last (NHWC) order: faster oneDNN convolutions with NHWC inputs. */
  channelsLast(): this {
    return this.mapTensors((t) => (t.ndim === 4 ? t.contiguous('channelsLast') : undefined));
  }

  /** Replaces every parameter and buffer by f(tensor) (unless f returns undefined), keeping requires-grad. */
  private mapTensors(f: (t: Tensor) => Tensor | undefined): this {
    for (const [, m] of this.namedModules()) {
      for (const [n, t] of m.params) {
        if (!t) continue;
        const moved = noGrad(() => f(t));
        if (!moved || moved === t) continue;
        t.dispose();
        m.params.set(n, keep(moved.detach()).requiresGrad_(true));
        moved.dispose();
      }
      for (const [n, b] of m.buffers) {
        const moved = noGrad(() => f(b.t));
        if (!moved || moved === b.t) continue;
        b.t.dispose();
        m.buffers.set(n, { t: keep(moved), persistent: b.persistent });
      }
    }
    return this;
  }
  /** A registered parameter (layers read them here, so that to() can replace them). */
  protected getParam(name: string): Tensor | undefined {
    return this.params.get(name);
  }

  /** Frees every tensor the module owns. */
  dispose(): void {
    for (const [, m] of this.namedModules()) {
      for (const t of m.params.values()) t?.dispose();
      for (const b of m.buffers.values()) b.t.dispose();
    }
  }
}
