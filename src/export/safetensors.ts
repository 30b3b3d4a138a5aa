// Export as a plain PyTorch state dict in safetensors: the model's parameters and persistent buffers under their
// PyTorch names (no 'model.' prefix, no optimizer, δ or RNG), so that `model.load_state_dict(load_file(path))`
// works strictly on the PyTorch twin; the metadata say what the model is and how robust it was measured to be.
import { saveSafetensors } from '../io/index.js';
import type { Module } from '../nn/index.js';

/** Writes the model's state dict with metadata to `path` atomically. */
export function exportSafetensors(model: Module, metadata: Record<string, string>, path: string): void {
  // 'format: pt' is the safetensors convention for PyTorch state dicts
  saveSafetensors(path, model.stateDict(), { format: 'pt', ...metadata });
}
