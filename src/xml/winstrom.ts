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

/** success true with a few plain fields (a login's session id, say); a list of names is one element each (`<tenants><tenant>…`). */
export function successDocument(fields: Record<string, string | boolean | string[]>, format: Format): string {
  if (format === 'json') return `${JSON.stringify({ success: true, ...fields })}\n`;
  const inner = Object.entries(fields)
    .map(([k, v]) => (Array.isArray(v) ? `<${k}>${v.map((item) => leaf(k.replace(/s$/, ''), item)).join('')}</${k}>` : leaf(k, v)))
    .join('');
  return `${XML_DECLARATION}<winstrom version="1.0"><success>true</success>${inner}</winstrom>\n`;
}

/**
 * A listing: in JSON `{"winstrom": {"@version": "1.0", key: items}}`, in XML one element per item,
 * each written by `toXml`. With `rowCount` (`add-row-count=true`), the number of rows of the whole
 * listing is there too, as the original product writes it: `"@rowCount": "123"`, `rowCount="123"`.
 */
export function listDocument<T>(key: string, items: readonly T[], format: Format, toJson: (item: T) => unknown, toXml: (item: T) => string, rowCount?: number): string {
  const counted = rowCount === undefined ? {} : { '@rowCount': String(rowCount) };
  if (format === 'json') return `${JSON.stringify({ winstrom: { '@version': '1.0', ...counted, [key]: items.map(toJson) } }, null, 2)}\n`;
  const attribute = rowCount === undefined ? '' : ` rowCount="${rowCount}"`;
  return `${XML_DECLARATION}<winstrom version="1.0"${attribute}>\n${items.map((i) => `  ${toXml(i)}\n`).join('')}</winstrom>\n`;
}
