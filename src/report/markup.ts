// HTML escaped by default. The report's page is built with the `html` tagged template: every interpolated value
// is escaped (text and quoted attribute values alike) unless it is a fragment made by `html` itself; lists are
// joined. `raw` marks freeadv's own constants (its CSS, the bundled Chart.js code, its chart script) and nothing
// read from a run folder; `scriptJson` embeds data in a <script> element so that no string in it can end the
// element. A value is never put into the page by hand.

/** A fragment of HTML that is safe to put in a page as it is. */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
/** Text as HTML: safe in element content and in quoted attribute values. */
export const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => ENTITIES[c]!);

function piece(v: unknown): string {
  if (v instanceof Html) return v.text;
  if (Array.isArray(v)) return v.map(piece).join('');
  if (v === undefined || v === null || v === false) return '';
  return escapeHtml(String(v));
}

/** The tagged template: html`<td>${value}</td>` escapes value (unless it is Html); arrays are joined. */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  values.forEach((v, i) => (out += piece(v) + strings[i + 1]!));
  return new Html(out);
}

/** freeadv's own constant markup, code or CSS, as it is. Never for a value read from a file or given by a user. */
export const raw = (s: string): Html => new Html(s);

/**
 * A value as JSON inside <script>: '<', '>', '&' and the line separators U+2028/2029 become \u escapes, so no
 * string in the data can close the element (</script>) or open a comment, and the text is valid JavaScript too.
 */
export function scriptJson(v: unknown): Html {
  return new Html(JSON.stringify(v).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
}

/** The mark of a page written by `freeadv report` (its <meta name="generator">): only such a file is replaced by --out. */
export const GENERATOR = 'freeadv report';
