// freeadv's version, from its package.json (written into exported files).
import { readFileSync } from 'node:fs';

let cached: string | undefined;
export function freeadvVersion(): string {
  if (cached === undefined) {
    try {
      // dist/src/export/version.js → the package root
      cached = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
    } catch {
      cached = 'unknown';
    }
  }
  return cached;
}
