// Errors of a training run that are not bad input.
export class TrainingError extends Error {
  override name = 'TrainingError';
}

export class InterruptedError extends Error {
  override name = 'InterruptedError';
}
