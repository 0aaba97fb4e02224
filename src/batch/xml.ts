import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { FlexiError } from '../errors';

/** One element of a parsed document, with entities decoded and names restored. */
export interface XmlElement {
  name: string;
  attributes: Map<string, string>;
  children: XmlElement[];
  /** Concatenated character data directly inside the element (trimmed). */
  text: string;
}

const MAX_DEPTH = 32;

/** fast-xml-parser refuses these names outright; we rename them on the way in and back on the way out. */
const RESERVED_NAMES = new Set([
  '__proto__',
  'constructor',
  'prototype',
  'hasOwnProperty',
  'toString',
  'valueOf',
  '__defineGetter__',
  '__defineSetter__',
  '__lookupGetter__',
  '__lookupSetter__',
  'isPrototypeOf',
  'propertyIsEnumerable',
  'toLocaleString',
]);
const RESERVED_PREFIX = '#reserved:';
const escapeReserved = (name: string): string => (RESERVED_NAMES.has(name) ? RESERVED_PREFIX + name : name);
const restoreName = (name: string): string =>
  name.startsWith(RESERVED_PREFIX) ? name.slice(RESERVED_PREFIX.length) : name;

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  processEntities: false,
  htmlEntities: false,
  cdataPropName: '#cdata',
  ignoreDeclaration: true,
  ignorePiTags: true,
  maxNestedTags: MAX_DEPTH,
  transformTagName: escapeReserved,
  transformAttributeName: escapeReserved,
});

const PREDEFINED: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function isXmlChar(cp: number): boolean {
  return (
    cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff)
  );
}

/** Decodes the five predefined entities and character references; anything else is refused. */
export function decodeEntities(raw: string): string {
  if (!raw.includes('&')) return raw;
  return raw.replace(/&([^;&\s]{0,32});?/g, (match, body: string) => {
    if (!match.endsWith(';')) throw badXml(`'&' must be written as &amp; (near '${raw.slice(0, 40)}')`);
    if (Object.hasOwn(PREDEFINED, body)) return PREDEFINED[body];
    const ref = /^#x([0-9a-fA-F]{1,6})$/.exec(body) ?? /^#([0-9]{1,7})$/.exec(body);
    if (ref) {
      const cp = parseInt(ref[1], body.startsWith('#x') ? 16 : 10);
      if (!isXmlChar(cp)) throw badXml(`the character reference ${match} is not an allowed XML character`);
      return String.fromCodePoint(cp);
    }
    throw badXml(`the entity ${match} is not defined; only &amp; &lt; &gt; &quot; &apos; and character references are allowed`);
  });
}

function badXml(message: string): FlexiError {
  return new FlexiError('bad-request', `The body is not a valid batch document: ${message}.`);
}

type RawNode = Record<string, unknown>;

function toElement(node: RawNode): XmlElement | undefined {
  const key = Object.keys(node).find((k) => k !== ':@');
  if (key === undefined || key === '#text' || key === '#cdata') return undefined;
  const attributes = new Map<string, string>();
  const rawAttributes = node[':@'] as Record<string, string> | undefined;
  if (rawAttributes) {
    for (const [name, value] of Object.entries(rawAttributes)) attributes.set(restoreName(name), decodeEntities(String(value)));
  }
  const element: XmlElement = { name: restoreName(key), attributes, children: [], text: '' };
  for (const child of node[key] as RawNode[]) {
    if (Object.hasOwn(child, '#text')) {
      element.text += decodeEntities(String(child['#text']));
    } else if (Object.hasOwn(child, '#cdata')) {
      for (const part of child['#cdata'] as RawNode[]) element.text += String(part['#text'] ?? '');
    } else {
      const sub = toElement(child);
      if (sub) element.children.push(sub);
    }
  }
  element.text = element.text.trim();
  return element;
}

/**
 * Well-formed XML in, the root element out. DOCTYPE and entity declarations are refused
 * before anything is parsed: a batch never needs them, and refusing them outright closes
 * entity expansion bombs and external entity fetches whatever the parser would do.
 */
export function parseXmlDocument(body: string): XmlElement {
  if (/<!\s*(DOCTYPE|ENTITY)/i.test(body)) {
    throw new FlexiError('bad-request', 'DOCTYPE and entity declarations are not allowed in a batch document.');
  }
  const valid = XMLValidator.validate(body);
  if (valid !== true) {
    const { msg, line, col } = valid.err;
    throw badXml(`${msg.replace(/\.$/, '')} (line ${line}, column ${col})`);
  }
  let nodes: RawNode[];
  try {
    nodes = parser.parse(body) as RawNode[];
  } catch (err) {
    const message = (err as Error).message;
    if (/nested/i.test(message)) throw badXml(`elements are nested deeper than ${MAX_DEPTH} levels`);
    throw badXml(message);
  }
  const roots = nodes.map(toElement).filter((e): e is XmlElement => e !== undefined);
  if (roots.length !== 1) throw badXml('a document has exactly one root element');
  return roots[0];
}
