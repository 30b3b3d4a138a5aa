// Autograd entry points beyond Tensor.backward(): gradients of outputs w.r.t. chosen inputs, and scopes in
// which autograd records nothing (noGrad) or tensors are created as inference tensors (inferenceMode).
import { native } from './native.js';
import { Tensor } from './tensor.js';
import { rethrow } from './errors.js';

/**
 * Gradients of `outputs` w.r.t. `inputs` (like torch.autograd.grad). One call can ask for parameter and
 * input gradients together: free training takes both from a single backward pass.
 */
export function grad(
  outputs: Tensor | Tensor[],
  inputs: Tensor[],
  opts: { gradOutputs?: Tensor[]; retainGraph?: boolean; createGraph?: boolean; allowUnused?: boolean } = {},
): (Tensor | undefined)[] {
  const outs = Array.isArray(outputs) ? outputs : [outputs];
  try {
    const r = native.grad(
      outs.map((t) => t.handle),
      inputs.map((t) => t.handle),
      opts.gradOutputs?.map((t) => t.handle),
      opts.retainGraph ?? false,
      opts.createGraph ?? false,
      opts.allowUnused ?? false,
    );
    return r.map((h) => (h === null ? undefined : new Tensor(h)));
  } catch (e) {
    rethrow(e, 'autograd.grad');
  }
}

/** Back-propagates from several outputs at once. */
export function backward(outputs: Tensor[], gradOutputs?: Tensor[], retainGraph = false): void {
  try {
    native.backward(outputs.map((t) => t.handle), gradOutputs?.map((t) => t.handle), retainGraph, false);
  } catch (e) {
    rethrow(e, 'backward');
  }
}

export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}

/** Runs fn with gradient recording on or off, restoring the previous mode afterwards. */
export function withGradEnabled<T>(on: boolean, fn: () => T): T {
  const prev = native.isGradEnabled();
  native.setGradEnabled(on);
  try {
    return fn();
  } finally {
    native.setGradEnabled(prev);
  }
}

/** Runs fn without recording autograd history (like torch.no_grad()). */
export function noGrad<T>(fn: () => T): T {
  return withGradEnabled(false, fn);
}

/** Runs fn in inference mode (like torch.inference_mode()): faster, but its tensors can never join autograd. */
export function inferenceMode<T>(fn: () => T): T {
  native.enterInferenceMode();
  try {
    return fn();
  } finally {
    native.exitInferenceMode();
  }
}

export function isInferenceMode(): boolean {
  return native.isInferenceMode();
}
