import type { OperationResult, Status } from './plan';

const ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
  '\t': '&#9;',
  '\n': '&#10;',
  '\r': '&#13;',
};

/*
 * Besides markup, both replace what XML 1.0 does not allow in a document at all, not even as a
 * character reference: C0 controls but tab, LF and CR, U+FFFE, U+FFFF, and UTF-16 surrogates
 * without their other half. Those reach answers through decoded paths (`/u/a%01.xml`) and
 * quoted input; each becomes U+FFFD, so the answer stays XML and still shows where it was.
 * A parser turns a literal CR (or CRLF) in text into LF, and in an attribute also tabs and line
 * ends into spaces: as character references they stay what they were.
 */
// eslint-disable-next-line no-control-regex
const IN_TEXT = /[&<>"'\r\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
// eslint-disable-next-line no-control-regex
const IN_ATTRIBUTE = /[&<>"'\t\n\r\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

const escape = (ch: string): string => ESCAPES[ch] ?? '\uFFFD';

/** Text for element content: markup escaped, characters XML forbids replaced by U+FFFD. */
export function escapeXml(text: string): string {
  return text.replace(IN_TEXT, escape);
}

/** Text for an attribute value (in double or single quotes): as escapeXml, and whitespace kept as it was. */
export function escapeXmlAttribute(text: string): string {
  return text.replace(IN_ATTRIBUTE, escape);
}

export type Stats = Record<Lowercase<Status>, number>;

export function countResults(results: readonly OperationResult[]): Stats {
  const stats: Stats = { created: 0, updated: 0, deleted: 0, skipped: 0, failed: 0 };
  for (const r of results) stats[r.status.toLowerCase() as Lowercase<Status>]++;
  return stats;
}

/** How many operations of each entity type ended in each status, for the metrics. */
export function countByEntity(results: readonly OperationResult[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of results) {
    const key = `${r.type}\u0000${r.status}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

export interface ResultHeader {
  id: string;
  dryRun?: boolean;
}

/** The `<flexibee-batch-result>` of SPEC §5.1, one entry per operation in document order. */
export function renderResult(header: ResultHeader, results: readonly OperationResult[]): string {
  const parts: string[] = ['<?xml version="1.0" encoding="UTF-8"?>\n'];
  const dryRun = header.dryRun ? ' dry-run="true"' : '';
  parts.push(`<flexibee-batch-result id="${escapeXmlAttribute(header.id)}"${dryRun}>\n`);
  for (const r of results) {
    const message = r.message === undefined ? '' : `<message>${escapeXml(r.message)}</message>`;
    parts.push(
      `  <entry type="${r.type}" action="${r.action}" id="${escapeXmlAttribute(r.id)}"><status>${r.status}</status>${message}</entry>\n`,
    );
  }
  const s = countResults(results);
  parts.push(
    `  <stats created="${s.created}" updated="${s.updated}" deleted="${s.deleted}" skipped="${s.skipped}" failed="${s.failed}"/>\n`,
  );
  parts.push('</flexibee-batch-result>\n');
  return parts.join('');
}
