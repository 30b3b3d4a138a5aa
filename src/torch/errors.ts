// Typed errors of the tensor layer. Every libtorch exception reaches JavaScript as a TorchError carrying
// libtorch's own message; misuse of the API (a disposed tensor, a wrong argument type) throws TypeError or
// TensorDisposedError. Nothing the binding is given can abort the process.

export class TorchError extends Error {
  override name = 'TorchError';
  /** The operator that raised it, when known (e.g. 'aten::conv2d'). */
  op?: string;
  constructor(message: string, op?: string) {
    super(op ? `${op}: ${message}` : message);
    this.op = op;
  }
}

export class TensorDisposedError extends Error {
  override name = 'TensorDisposedError';
  constructor(what = 'tensor') {
    super(`${what} was disposed and cannot be used`);
  }
}

/** Re-throws a native error as the matching typed JS error. */
export function rethrow(e: unknown, op?: string): never {
  if (e instanceof Error) {
    if (e.name === 'TorchError') throw new TorchError(e.message, op);
    if (e.message === 'tensor was disposed') throw new TensorDisposedError();
    if (op && !e.message.startsWith(op)) e.message = `${op}: ${e.message}`;
  }
  throw e;
}
