// Explicit tensor lifetime. Native memory is invisible to JavaScript's garbage collector, so freeadv frees
// tensors deterministically: every tensor created inside a scope is disposed when the scope ends, except the
// ones it returns (which move to the enclosing scope) and the ones passed to keep(). Scopes nest. A finalizer
// in the addon is only a backstop for tensors that escape every scope and are never disposed.
//
//   const loss = scope(() => model.forward(x).crossEntropy(y));   // intermediates freed, loss kept
//   { using s = openScope(); ...; }                              // the same with `using`

export interface Disposable {
  dispose(): void;
  readonly isDisposed: boolean;
}

const stack: Disposable[][] = [];
const kept = new WeakSet<Disposable>();

/** Called by the Tensor constructor: registers a new tensor with the innermost open scope. */
export function track(t: Disposable): void {
  const top = stack[stack.length - 1];
  if (top !== undefined) top.push(t);
}

/** Exempts tensors from disposal by any scope (the caller now owns them). Returns its argument. */
export function keep<T>(value: T): T {
  visit(value, (t) => kept.add(t));
  return value;
}

/** Lets a kept tensor be collected by the enclosing scope again. */
export function unkeep<T>(value: T): T {
  visit(value, (t) => {
    kept.delete(t);
    track(t);
  });
  return value;
}

function isDisposable(v: unknown): v is Disposable {
  return typeof v === 'object' && v !== null && typeof (v as Disposable).dispose === 'function' && 'isDisposed' in v;
}

/** Calls f on every disposable in a value: a tensor, or arrays/maps/plain objects holding tensors. */
function visit(v: unknown, f: (t: Disposable) => void, depth = 0): void {
  if (depth > 8 || v === null || typeof v !== 'object') return;
  if (isDisposable(v)) return f(v);
  if (Array.isArray(v)) for (const e of v) visit(e, f, depth + 1);
  else if (v instanceof Map) for (const e of v.values()) visit(e, f, depth + 1);
  else if (Object.getPrototypeOf(v) === Object.prototype) for (const e of Object.values(v)) visit(e, f, depth + 1);
}

/** An open scope; close it (or let `using` close it) to dispose what was created in it. */
export class Scope {
  private readonly items: Disposable[] = [];
  private closed = false;
  constructor() {
    stack.push(this.items);
  }
  /** Disposes everything created since the scope opened, except `result`'s tensors, which move outward. */
  close(result?: unknown): void {
    if (this.closed) return;
    this.closed = true;
    const i = stack.lastIndexOf(this.items);
    if (i !== stack.length - 1) throw new Error('scopes must be closed in the reverse order they were opened');
    stack.pop();
    const survivors = new Set<Disposable>();
    visit(result, (t) => survivors.add(t));
    const parent = stack[stack.length - 1];
    for (const t of this.items) {
      if (t.isDisposed) continue;
      if (survivors.has(t)) parent?.push(t);
      else if (!kept.has(t)) t.dispose();
    }
    this.items.length = 0;
  }
  [Symbol.dispose](): void {
    this.close();
  }
}

export function openScope(): Scope {
  return new Scope();
}

/**
 * Runs fn in a new scope and returns its result; every tensor created in fn that is not part of the result
 * (a tensor, or an array/object/Map of tensors) and not kept is disposed. fn must be synchronous.
 */
export function scope<T>(fn: () => T): T {
  const s = new Scope();
  let result: T;
  try {
    result = fn();
  } catch (e) {
    s.close();
    throw e;
  }
  if (result instanceof Promise) {
    s.close();
    throw new Error('scope(fn): fn must be synchronous (it returned a Promise); use openScope() around awaits');
  }
  s.close(result);
  return result;
}

/** How many scopes are open now. */
export function scopeDepth(): number {
  return stack.length;
}

/** A record of tensors carried from step to step of a loop (see carry). */
export type Carried<T extends Record<string, Disposable>> = T & {
  /** Hands one slot's tensor to the enclosing scope and frees the others. */
  take<K extends keyof T>(key: K): T[K];
  /** Frees every slot. */
  free(): void;
};

/**
 * State that outlives the scopes of a loop's iterations. Assigning a slot keeps the new tensor and frees the one
 * it replaces (unless another slot holds it), so an iteration reads like its algorithm:
 *
 *   const s = carry({ best: x.clone(), done: success(x) });
 *   for (…) scope(() => { s.best = where(hit, xa, s.best); s.done = s.done.logicalOr(hit); });
 *   return s.take('best');
 *
 * The initial tensors must belong to the caller (not someone else's inputs): they are freed when replaced.
 */
export function carry<T extends Record<string, Disposable>>(init: T): Carried<T> {
  const slots: Record<string, Disposable> = {};
  for (const [k, t] of Object.entries(init)) slots[k] = keep(t);
  const heldElsewhere = (t: Disposable, key: string) => Object.entries(slots).some(([k, o]) => k !== key && o === t);
  const methods = {
    take(key: string) {
      const t = slots[key]!;
      for (const [k, o] of Object.entries(slots)) if (k !== key && o !== t) o.dispose();
      for (const k of Object.keys(slots)) delete slots[k];
      return unkeep(t);
    },
    free() {
      for (const t of new Set(Object.values(slots))) t.dispose();
      for (const k of Object.keys(slots)) delete slots[k];
    },
  };
  return new Proxy(slots, {
    get: (_, k: string) => (k in methods ? methods[k as keyof typeof methods] : slots[k]),
    set: (_, k: string, t: Disposable) => {
      const old = slots[k];
      slots[k] = keep(t);
      if (old && old !== t && !heldElsewhere(old, k)) old.dispose();
      return true;
    },
  }) as unknown as Carried<T>;
}
