// What the commands print.
const pct = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? '—' : `${(v * 100).toFixed(2)}%`);

/** An ensemble's robust accuracy after each of its attacks, one line per ensemble. */
export function stageLines(stages: Record<string, Record<string, number>> | undefined): string[] {
  return Object.entries(stages ?? {}).map(([name, s]) => `${name}: ${Object.entries(s).map(([k, v]) => `after ${k} ${pct(v)}`).join(', ')}`);
}

/** Clean accuracy and each attack's, one per line. */
export function accuracyTable(clean: number, robust: Record<string, number>): string {
  const rows: [string, string][] = [['clean', pct(clean)], ...Object.entries(robust).map(([k, v]) => [k === 'worst_case' ? 'worst case' : k, pct(v)] as [string, string])];
  const w = Math.max(...rows.map((r) => r[0].length), 8);
  return [`${'accuracy'.padEnd(w)}  `, ...rows.map(([k, v]) => `${k.padEnd(w)}  ${v.padStart(7)}`)].join('\n');
}
