/**
 * Writing XML: escaping, and the small pieces every answer is built from (xml/result.ts for the
 * result document, xml/winstrom.ts for the <winstrom> envelope and its listings).
 */
export const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n';

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

/** Whether a text may need any of it: most names and messages need none, and this test is cheaper than the replace. */
// eslint-disable-next-line no-control-regex
const MAY_NEED = /[&<>"'\u0000-\u001f\ud800-\udfff\ufffe\uffff]/;

/** Text for element content: markup escaped, characters XML forbids replaced by U+FFFD. */
export function escapeXml(text: string): string {
  return MAY_NEED.test(text) ? text.replace(IN_TEXT, escape) : text;
}

/** Text for an attribute value (in double or single quotes): as escapeXml, and whitespace kept as it was. */
export function escapeXmlAttribute(text: string): string {
  return MAY_NEED.test(text) ? text.replace(IN_ATTRIBUTE, escape) : text;
}

/** `<name>value</name>`, or `<name/>` for null and undefined. */
export function leaf(name: string, value: unknown): string {
  return value === null || value === undefined ? `<${name}/>` : `<${name}>${escapeXml(String(value))}</${name}>`;
}
