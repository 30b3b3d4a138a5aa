// Errors of the data layer. Every problem with input data (a wrong magic number, a truncated file, a label
// out of range, an undecodable image, a missing folder) surfaces as a DataError whose message names the file
// or folder and says what is wrong.

export class DataError extends Error {
  override name = 'DataError';
  /** The file or folder the problem was found in, when there is one. */
  readonly file?: string;
  constructor(message: string, file?: string, options?: { cause?: unknown }) {
    super(file ? `${file}: ${message}` : message, options);
    this.file = file;
  }
}
