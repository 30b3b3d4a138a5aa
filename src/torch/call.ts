// The one path from TypeScript to every ATen operator. `def('aten::name.overload')` returns a typed function;
// the operator's schema is looked up in libtorch's dispatcher on first use, arguments are converted by that
// schema (trailing arguments may be omitted: schema defaults apply) and outputs come back as Tensors.
import { native, type Handle } from './native.js';
import { rethrow } from './errors.js';

interface HasHandle {
  readonly handle: Handle;
}

let makeTensor: (h: Handle) => unknown = () => {
  throw new Error('tensor factory not registered');
};

/** Registered once by tensor.ts so that outputs can be wrapped without an import cycle. */
export function setTensorFactory(f: (h: Handle) => unknown): void {
  makeTensor = f;
}

function isHandleHolder(a: unknown): a is HasHandle {
  return typeof a === 'object' && a !== null && 'handle' in a;
}

function unwrap(a: unknown): unknown {
  if (isHandleHolder(a)) return a.handle;
  if (Array.isArray(a) && a.length > 0 && (isHandleHolder(a[0]) || a.some(isHandleHolder)))
    return a.map((e) => (isHandleHolder(e) ? e.handle : e));
  return a;
}

function wrapOut(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(wrapOut);
  if (typeof v === 'object' && v !== null) return makeTensor(v as Handle);
  return v;
}

function split(qualified: string): [string, string] {
  const dot = qualified.indexOf('.', qualified.indexOf('::') + 2);
  return dot < 0 ? [qualified, ''] : [qualified.slice(0, dot), qualified.slice(dot + 1)];
}

function resolver(qualified: string): () => number {
  let id = -1;
  return () => {
    if (id < 0) {
      const [name, overload] = split(qualified);
      try {
        id = native.resolve(name, overload)[0];
      } catch (e) {
        rethrow(e, qualified);
      }
    }
    return id;
  };
}

/** A typed function for an ATen operator that returns new tensors (or numbers). */
export function def<F extends (...args: any[]) => any>(qualified: string): F {
  const id = resolver(qualified);
  const f = (...args: unknown[]): unknown => {
    const a = args.map(unwrap);
    let out: unknown;
    try {
      out = native.call(id(), ...a);
    } catch (e) {
      rethrow(e, qualified);
    }
    return wrapOut(out);
  };
  return f as F;
}

/** A typed function for an in-place ATen operator: returns its first argument (no new wrapper). */
export function defInplace<F extends (self: any, ...args: any[]) => any>(qualified: string): F {
  const id = resolver(qualified);
  const f = (...args: unknown[]): unknown => {
    const a = args.map(unwrap);
    try {
      native.callVoid(id(), ...a);
    } catch (e) {
      rethrow(e, qualified);
    }
    return args[0];
  };
  return f as F;
}
