import { leaf, XML_DECLARATION } from './writer';

/**
 * The `<winstrom version="1.0">` envelope of the original product, in XML or (for `.json` paths)
 * as its JSON twin: every answer but a batch's result document is one — an error, a login, a
 * listing.
 */
export type Format = 'xml' | 'json';

export function formatOf(path: string): Format {
  return path.endsWith('.json') ? 'json' : 'xml';
}

export const CONTENT_TYPES: Readonly<Record<Format, string>> = { xml: 'application/xml', json: 'application/json' };

/** A request-level error (SPEC §3): success false and one sentence. */
export function errorDocument(message: string, format: Format): string {
  if (format === 'json') return `${JSON.stringify({ winstrom: { '@version': '1.0', success: false, message } })}\n`;
  return `${XML_DECLARATION}<winstrom version="1.0"><success>false</success>${leaf('message', message)}</winstrom>\n`;
}

/** success true with a few plain fields (a login's session id, say). */
export function successDocument(fields: Record<string, string | boolean>, format: Format): string {
  if (format === 'json') return `${JSON.stringify({ success: true, ...fields })}\n`;
  const inner = Object.entries(fields).map(([k, v]) => leaf(k, v)).join('');
  return `${XML_DECLARATION}<winstrom version="1.0"><success>true</success>${inner}</winstrom>\n`;
}

/**
 * A listing: in JSON `{"winstrom": {"@version": "1.0", key: items}}`, in XML one element per item,
 * each written by `toXml`; `extra` (a row count, say) goes beside the items.
 */
export function listDocument<T>(key: string, items: readonly T[], format: Format, toJson: (item: T) => unknown, toXml: (item: T) => string, extra: Record<string, unknown> = {}): string {
  if (format === 'json') return `${JSON.stringify({ winstrom: { '@version': '1.0', ...extra, [key]: items.map(toJson) } }, null, 2)}\n`;
  const head = Object.entries(extra).map(([k, v]) => leaf(k, v));
  return `${XML_DECLARATION}<winstrom version="1.0">\n${head.map((h) => `  ${h}\n`).join('')}${items.map((i) => `  ${toXml(i)}\n`).join('')}</winstrom>\n`;
}
