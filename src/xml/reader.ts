import { FlexiError } from '../errors';

/** One element of a parsed document, with entities decoded. */
export interface XmlElement {
  readonly name: string;
  /** Read-only: elements without attributes share one empty map. */
  readonly attributes: ReadonlyMap<string, string>;
  /** Read-only: elements without children share one empty list. */
  readonly children: readonly XmlElement[];
  /** Character data directly inside the element (text and CDATA), concatenated and trimmed. */
  readonly text: string;
}

/** What the reader builds: the same, writable while the element is open. */
interface Building {
  name: string;
  attributes: Map<string, string>;
  children: Building[];
  text: string;
}

/**
 * Most elements of a batch are leaves without attributes: they share these two (nothing ever
 * writes to them), which more than halves the memory of a large tree.
 */
const NO_ATTRIBUTES: Map<string, string> = new Map();
const NO_CHILDREN: Building[] = [];

export interface XmlLimits {
  /** Deepest element nesting accepted (the root is level 1). */
  maxDepth: number;
  /**
   * Most nodes (elements, attributes, entity and character references, comments, processing
   * instructions, CDATA sections and pieces of text) in one document. The tree costs memory per node, so this, not the body
   * size alone, is what bounds the memory a document can take.
   */
  maxNodes: number;
  /** Most attributes on one element (a batch element has at most four). */
  maxAttributes: number;
}

export const MAX_DEPTH = 32;
/**
 * The densest real batch (every field of a user given, in the shortest spelling) has about
 * one node per 20 bytes, so a 32 MiB body of real operations stays under 1.7 million nodes;
 * `<a/><a/>…` reaches 8 million. Two million keep every real batch and bound the tree to a
 * few hundred MB.
 */
export const MAX_NODES = 2_000_000;

export const MAX_ATTRIBUTES = 64;

const DEFAULT_LIMITS: XmlLimits = { maxDepth: MAX_DEPTH, maxNodes: MAX_NODES, maxAttributes: MAX_ATTRIBUTES };

const PREDEFINED: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function isXmlChar(cp: number): boolean {
  return (
    cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff)
  );
}

/**
 * Characters XML 1.0 forbids anywhere in a document: C0 controls but tab, LF and CR, and
 * U+FFFE/U+FFFF. Lone surrogates (which UTF-8 cannot even encode) are found by isWellFormed.
 */
// eslint-disable-next-line no-control-regex
const FORBIDDEN_CHAR = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/;
/** XML 1.0 (fifth edition) names; ':' is an ordinary name character here, there are no namespaces. */
const NAME_START = ':A-Z_a-z\\u00c0-\\u00d6\\u00d8-\\u00f6\\u00f8-\\u02ff\\u0370-\\u037d\\u037f-\\u1fff\\u200c\\u200d\\u2070-\\u218f\\u2c00-\\u2fef\\u3001-\\ud7ff\\uf900-\\ufdcf\\ufdf0-\\ufffd\\u{10000}-\\u{effff}';
// The name classes of the XML spec include combining marks and the zero-width (non-)joiner on purpose.
// eslint-disable-next-line no-misleading-character-class
const NAME = new RegExp(`[${NAME_START}][${NAME_START}\\-.0-9\\u00b7\\u0300-\\u036f\\u203f\\u2040]*`, 'uy');
const SPACE = /[ \t\r\n]*/y;
const XML_DECLARATION = /<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*(["'])(1\.[0-9]+)\1(?:[ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*(["'])([A-Za-z][A-Za-z0-9._-]*)\3)?(?:[ \t\r\n]+standalone[ \t\r\n]*=[ \t\r\n]*(["'])(?:yes|no)\5)?[ \t\r\n]*\?>/y;
/** The body is decoded as UTF-8 before it gets here; US-ASCII is a subset of it. */
const UTF8_NAMES = /^(utf-?8|us-ascii|ascii)$/i;

const DOCTYPE_REFUSED = 'DOCTYPE and entity declarations are not allowed in a batch document.';

function codePointName(cp: number): string {
  return `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
}

function quoted(text: string, max = 40): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** One reference without its '&' and ';' (`amp`, `#196`, `#xC4`) → its text, or a reason it is refused. */
function referenceText(body: string): string | { refused: string } {
  if (Object.hasOwn(PREDEFINED, body)) return PREDEFINED[body];
  const ref = /^#x([0-9a-fA-F]{1,6})$/.exec(body) ?? /^#([0-9]{1,7})$/.exec(body);
  if (ref) {
    const cp = parseInt(ref[1], body.startsWith('#x') ? 16 : 10);
    if (!isXmlChar(cp)) return { refused: `the character reference &${body}; (${codePointName(cp)}) is not an allowed XML character` };
    return String.fromCodePoint(cp);
  }
  return { refused: `the entity &${body}; is not defined; only &amp; &lt; &gt; &quot; &apos; and character references are allowed` };
}

/** XML line-end handling of literal text: CRLF and lone CR become LF. */
const textLineEnds = (literal: string): string => (literal.includes('\r') ? literal.replace(/\r\n?/g, '\n') : literal);
/** Attribute-value normalisation: literal line ends and tabs become one space each. */
const attributeLineEnds = (literal: string): string => literal.replace(/\r\n|[\t\n\r]/g, ' ');

/**
 * Decodes the five predefined entities and character references; anything else is refused.
 * `literal` normalises the text between references (never what a reference stands for, so
 * `&#13;` stays a CR); `fail` reports a problem at an offset of `raw`; `counted` is called once
 * per reference. A loop over indexOf rather than a replace callback: millions of references
 * stay linear.
 */
function decodeReferences(
  raw: string,
  literal: (text: string) => string,
  fail: (message: string, offset: number) => never,
  counted: () => void = () => undefined,
): string {
  let amp = raw.indexOf('&');
  if (amp < 0) return literal(raw);
  const parts: string[] = [];
  let last = 0;
  for (; amp >= 0; amp = raw.indexOf('&', last)) {
    counted();
    if (amp > last) parts.push(literal(raw.slice(last, amp)));
    const semi = raw.indexOf(';', amp + 1);
    const body = semi < 0 || semi - amp > 33 ? undefined : raw.slice(amp + 1, semi);
    if (body === undefined || body === '' || /[&\s<]/.test(body)) {
      fail(`'&' must be written as &amp; (near '${quoted(raw.slice(amp, amp + 20), 20)}')`, amp);
    }
    const text = referenceText(body);
    if (typeof text !== 'string') fail(text.refused, amp);
    parts.push(text);
    last = semi + 1;
  }
  if (last < raw.length) parts.push(literal(raw.slice(last)));
  return parts.join('');
}

function badXml(message: string): FlexiError {
  return new FlexiError('bad-request', `The body is not a valid batch document: ${message}.`);
}

/** Decodes the five predefined entities and character references; anything else is refused. */
export function decodeEntities(raw: string): string {
  return decodeReferences(raw, textLineEnds, (message) => {
    throw badXml(message);
  });
}

interface Open {
  element: Building;
  /** Offset of the start tag, for "not closed" messages. */
  start: number;
  /** Pieces of character data; leading whitespace-only pieces are not kept. */
  text: string[];
}

/**
 * A small, strict XML 1.0 reader for batch documents: elements, attributes, character data,
 * CDATA, comments and processing instructions. It scans the string once, without recursion,
 * with indexOf and sticky regular expressions, so its time is linear in the body and its
 * memory is bounded by `maxNodes`. DOCTYPE and entity declarations are refused: a batch never
 * needs them, and refusing them closes entity expansion bombs and external entity fetches
 * whatever they contain. Reserved JavaScript names (`__proto__`, `constructor`…) are ordinary
 * names: elements are plain objects with a fixed shape and attributes live in a Map.
 */
class Reader {
  private pos = 0;
  private nodes = 0;
  /** Whether the start tag read last was also its end (`<a/>`). */
  private closed = false;

  constructor(
    private readonly src: string,
    private readonly limits: XmlLimits,
  ) {}

  private fail(message: string, at = this.pos): never {
    const before = this.src.slice(0, at);
    let line = 1;
    for (let i = before.indexOf('\n'); i >= 0; i = before.indexOf('\n', i + 1)) line++;
    const column = at - before.lastIndexOf('\n');
    throw badXml(`${message} (line ${line}, column ${column})`);
  }

  private count(): void {
    if (++this.nodes > this.limits.maxNodes) {
      throw new FlexiError(
        'payload-too-large',
        `The document has more than ${this.limits.maxNodes} XML nodes (elements, attributes, references, comments, pieces of text); split it into smaller batches. Nothing was applied.`,
      );
    }
  }

  document(): XmlElement {
    const src = this.src;
    const forbidden = src.search(FORBIDDEN_CHAR);
    if (forbidden >= 0) this.fail(`the character ${codePointName(src.charCodeAt(forbidden))} is not allowed in XML`, forbidden);
    if (!(src as string & { isWellFormed(): boolean }).isWellFormed()) this.fail('the text contains a lone UTF-16 surrogate', 0);
    if (src.charCodeAt(0) === 0xfeff) this.pos = 1;
    if (src.startsWith('<?xml', this.pos) && /[ \t\r\n?]/.test(src[this.pos + 5] ?? '')) this.declaration();
    this.misc();
    if (this.pos >= src.length) {
      if (/^\uFEFF?[ \t\r\n]*$/.test(src)) throw badXml('it is empty or only whitespace; send the batch XML');
      this.fail('the document has no root element');
    }
    if (src[this.pos] !== '<') this.fail(`it does not start with an element but with the text '${quoted(src.slice(this.pos, this.pos + 20), 20)}'`);
    const root = this.elements();
    this.misc();
    if (this.pos < src.length) {
      this.fail(src[this.pos] === '<' ? 'a document has exactly one root element' : 'text is not allowed after the root element');
    }
    return root;
  }

  /** `<?xml version="1.0" encoding="…"?>`, only at the very start. */
  private declaration(): void {
    XML_DECLARATION.lastIndex = this.pos;
    const m = XML_DECLARATION.exec(this.src);
    if (!m) this.fail('the XML declaration is malformed; write <?xml version="1.0" encoding="UTF-8"?>');
    const encoding = m[4];
    if (encoding !== undefined && !UTF8_NAMES.test(encoding)) {
      throw new FlexiError('unsupported-media-type', `The document declares encoding="${encoding}"; only UTF-8 is accepted. Send it in UTF-8.`);
    }
    this.pos = XML_DECLARATION.lastIndex;
  }

  /** Whitespace, comments and processing instructions before and after the root element. */
  private misc(): void {
    const src = this.src;
    for (;;) {
      this.space();
      if (src.startsWith('<!--', this.pos)) this.comment();
      else if (src.startsWith('<?', this.pos)) this.instruction();
      else if (src.startsWith('<![CDATA[', this.pos)) this.fail('a CDATA section is not allowed outside the root element');
      else if (src.startsWith('<!', this.pos)) this.markupDeclaration();
      else return;
    }
  }

  private markupDeclaration(): never {
    if (/^<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)/i.test(this.src.slice(this.pos, this.pos + 16))) {
      throw new FlexiError('bad-request', DOCTYPE_REFUSED);
    }
    return this.fail("'<!' must start a comment (<!--) or a CDATA section (<![CDATA[)");
  }

  private comment(): void {
    this.count();
    const start = this.pos;
    const end = this.src.indexOf('--', start + 4);
    if (end < 0) this.fail('a comment is not closed with -->', start);
    if (this.src[end + 2] !== '>') this.fail("'--' is not allowed inside a comment", end);
    this.pos = end + 3;
  }

  private instruction(): void {
    this.count();
    const start = this.pos;
    this.pos += 2;
    const target = this.name('a processing instruction needs a target name');
    if (target.toLowerCase() === 'xml') this.fail('the XML declaration is only allowed at the very start of the document', start);
    const end = this.src.indexOf('?>', this.pos);
    if (end < 0) this.fail('a processing instruction is not closed with ?>', start);
    if (end > this.pos && !this.space()) this.fail(`the processing instruction <?${target} needs a space after its name`);
    this.pos = end + 2;
  }

  /** The end of an all-ASCII name at `pos` (the common case), or -1 when the regular expression must decide. */
  private asciiNameEnd(): number {
    const src = this.src;
    let i = this.pos;
    const first = src.charCodeAt(i);
    // [A-Za-z_:]
    if (!((first >= 97 && first <= 122) || (first >= 65 && first <= 90) || first === 95 || first === 58)) return -1;
    for (i++; i < src.length; i++) {
      const c = src.charCodeAt(i);
      // [A-Za-z0-9_:.-]
      if ((c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 58) || c === 95 || c === 45 || c === 46) continue;
      return c < 128 ? i : -1;
    }
    return i;
  }

  private name(expected: string): string {
    const end = this.asciiNameEnd();
    if (end > 0) {
      const name = this.src.slice(this.pos, end);
      this.pos = end;
      return name;
    }
    NAME.lastIndex = this.pos;
    const m = NAME.exec(this.src);
    if (!m) {
      const found = this.src[this.pos];
      this.fail(found === undefined ? `${expected}, but the document ends` : `${expected}, not '${found}'`);
    }
    this.pos = NAME.lastIndex;
    return m[0];
  }

  private space(): boolean {
    SPACE.lastIndex = this.pos;
    SPACE.test(this.src);
    const moved = SPACE.lastIndex > this.pos;
    this.pos = SPACE.lastIndex;
    return moved;
  }

  private decode(raw: string, at: number, literal: (text: string) => string): string {
    if (!raw.includes('&')) return literal(raw);
    return decodeReferences(
      raw,
      literal,
      (message, offset) => this.fail(message, at + offset),
      () => this.count(),
    );
  }

  /** The start tag at `pos`; `closed` tells whether it is also the end (`<a/>`). */
  private startTag(depth: number): Building {
    const src = this.src;
    const start = this.pos;
    if (depth > this.limits.maxDepth) this.fail(`elements are nested deeper than ${this.limits.maxDepth} levels`);
    this.count();
    this.pos++;
    let name: string;
    const asciiEnd = this.asciiNameEnd();
    if (asciiEnd > 0) {
      name = src.slice(this.pos, asciiEnd);
      this.pos = asciiEnd;
    } else {
      NAME.lastIndex = this.pos;
      const m = NAME.exec(src);
      if (!m) {
        const shown = /^[^\s<]{0,10}/.exec(src.slice(this.pos, this.pos + 10))?.[0] ?? '';
        this.fail(`'<' must start an element, a comment or a CDATA section, not '<${shown}'; write a literal '<' as &lt;`, start);
      }
      name = m[0];
      this.pos = NAME.lastIndex;
    }
    let attributes = NO_ATTRIBUTES;
    for (;;) {
      const spaced = this.space();
      const ch = src[this.pos];
      if (ch === '>' || ch === '/') break;
      if (ch === undefined) this.fail(`the start tag <${name}> is not closed`, start);
      if (!spaced) this.fail(`the attributes of <${name}> must be separated by whitespace`);
      const attribute = this.name(`an attribute name or '>' was expected in <${name}>`);
      this.space();
      if (src[this.pos] !== '=') this.fail(`the attribute '${attribute}' of <${name}> has no value; write ${attribute}="…"`);
      this.pos++;
      this.space();
      const quote = src[this.pos];
      if (quote !== '"' && quote !== "'") this.fail(`the value of the attribute '${attribute}' of <${name}> must be in quotes`);
      const end = src.indexOf(quote, this.pos + 1);
      if (end < 0) this.fail(`the value of the attribute '${attribute}' of <${name}> is not closed`);
      const raw = src.slice(this.pos + 1, end);
      const lt = raw.indexOf('<');
      if (lt >= 0) this.fail(`'<' is not allowed in the value of the attribute '${attribute}'; write &lt;`, this.pos + 1 + lt);
      if (attributes.has(attribute)) this.fail(`the attribute '${attribute}' is given twice on <${name}>`);
      if (attributes.size >= this.limits.maxAttributes) this.fail(`the element <${name}> has more than ${this.limits.maxAttributes} attributes`);
      this.count();
      if (attributes === NO_ATTRIBUTES) attributes = new Map();
      attributes.set(attribute, this.decode(raw, this.pos + 1, attributeLineEnds));
      this.pos = end + 1;
    }
    const element: Building = { name, attributes, children: NO_CHILDREN, text: '' };
    this.closed = src[this.pos] === '/';
    if (this.closed && src[this.pos + 1] !== '>') this.fail(`'/' in the start tag <${name}> must be followed by '>'`);
    this.pos += this.closed ? 2 : 1;
    return element;
  }

  /** The root element and everything inside it, with an explicit stack (no recursion). */
  private elements(): Building {
    const src = this.src;
    const rootStart = this.pos;
    const root = this.startTag(1);
    if (this.closed) return root;
    const stack: Open[] = [{ element: root, start: rootStart, text: [] }];
    for (;;) {
      const open = stack[stack.length - 1];
      const lt = src.indexOf('<', this.pos);
      if (lt < 0) this.fail(`the element <${open.element.name}> is never closed: the document ends first`, open.start);
      if (lt > this.pos) {
        const raw = src.slice(this.pos, lt);
        const cdataEnd = raw.indexOf(']]>');
        if (cdataEnd >= 0) this.fail("']]>' is not allowed in text; write ]]&gt;", this.pos + cdataEnd);
        if (open.text.length || /[^ \t\r\n]/.test(raw)) {
          this.count();
          open.text.push(this.decode(raw, this.pos, textLineEnds));
        }
      }
      this.pos = lt;
      if (src.startsWith('</', lt)) {
        this.pos += 2;
        const name = this.name('a closing tag needs a name');
        if (name !== open.element.name) {
          this.fail(`the closing tag </${name}> does not match the open element <${open.element.name}>`, lt);
        }
        this.space();
        if (src[this.pos] !== '>') this.fail(`the closing tag </${name}> is not closed with '>'`);
        this.pos++;
        stack.pop();
        open.element.text = (open.text.length === 1 ? open.text[0] : open.text.join('')).trim();
        if (!stack.length) return open.element;
      } else if (src.startsWith('<!--', lt)) {
        this.comment();
      } else if (src.startsWith('<![CDATA[', lt)) {
        this.count();
        const end = src.indexOf(']]>', lt + 9);
        if (end < 0) this.fail('a CDATA section is not closed with ]]>', lt);
        open.text.push(textLineEnds(src.slice(lt + 9, end)));
        this.pos = end + 3;
      } else if (src.startsWith('<?', lt)) {
        this.instruction();
      } else if (src.startsWith('<!', lt)) {
        this.markupDeclaration();
      } else {
        const element = this.startTag(stack.length + 1);
        if (open.element.children === NO_CHILDREN) open.element.children = [element];
        else open.element.children.push(element);
        if (!this.closed) stack.push({ element, start: lt, text: [] });
      }
    }
  }
}

/**
 * Well-formed XML in, the root element out. Request-level problems are FlexiErrors: 400 for
 * a document that is not well-formed (with line and column), DOCTYPE or entity declarations,
 * undefined entities and forbidden characters; 413 beyond `maxNodes`; 415 for a declared
 * encoding other than UTF-8.
 */
export function parseXmlDocument(body: string, limits: Partial<XmlLimits> = {}): XmlElement {
  return new Reader(body, { ...DEFAULT_LIMITS, ...limits }).document();
}
