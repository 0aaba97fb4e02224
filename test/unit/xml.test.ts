import { parseXmlDocument, type XmlElement } from '../../src/xml/reader';
import { FlexiError } from '../../src/errors';
import { isWellFormed } from '../support/xmllint';

function refused(body: string, limits?: Parameters<typeof parseXmlDocument>[1]): FlexiError {
  try {
    parseXmlDocument(body, limits);
  } catch (err) {
    if (err instanceof FlexiError) return err;
    throw err;
  }
  throw new Error(`accepted: ${body.slice(0, 80)}`);
}

/** Documents on both sides of every well-formedness rule the reader implements (none with a DOCTYPE). */
const DOCUMENTS = [
  '<a/>', '<a></a>', '<a>x</a>', '<a b="1"/>', "<a b='1'/>", '<a b="1" c="2"/>', '<a b="1"c="2"/>', '<a b=1/>', '<a b/>',
  '<a>&amp;&lt;&gt;&quot;&apos;</a>', '<a>&#65;&#x41;</a>', '<a>&#0;</a>', '<a>&#xFFFE;</a>', '<a>&#xD7FF;</a>', '<a>&foo;</a>', '<a>& </a>', '<a>&amp</a>',
  '<a><![CDATA[<>&]]></a>', '<a>]]></a>', '<a><!-- x --></a>', '<a><!-- x -- y --></a>', '<a><!-- x ---></a>', '<a><!----></a>', '<a><!---></a>',
  '<a><?pi x?></a>', '<a><?xml x?></a>', '<a><?pi?></a>', '<a><?xml-stylesheet x?></a>', '<?xml version="1.0"?><a/>', '<?xml version="1.0" standalone="yes"?><a/>',
  '<?xml version="1.0" encoding="UTF-8" standalone="no" ?><a/>', '<?xml  version = "1.0" ?><a/>', '<?xml version="1.0"encoding="UTF-8"?><a/>',
  ' <a/>', '<a/> ', '<a/>x', 'x<a/>', '<a/><b/>', '<a/><!-- c --><?p?>', '<a></b>', '<a></a >', '<a></ a>', '< a/>', '<a / >', '<a/ >',
  '<a:b/>', '<:a/>', '<a.b-c_d/>', '<-a/>', '<.a/>', '<1a/>', '<é/>', '<a\u00b7/>', '<\u00b7a/>', '<a b="<"/>', '<a b=">"/>', '<a b="&amp;"/>', '<a b="&"/>',
  '<a b="1" b="2"/>', '<a xmlns:x="u" x:b="1"/>', '<a>\t\r\n</a>', '<a><b><c/></b></a>', '<a><b></a></b>', '<a>', '', ' ', '<!-- only -->',
  '<a>x<![CDATA[y]]>z</a>', '<a><![CDATA[]]]]><![CDATA[>]]></a>', '<a b="\'"/>', "<a b='\"'/>", '<a>\uFFFD</a>', '<a>😀</a>', '<a b="&#60;"/>', '<a>&#60;</a>',
  '<a><![cdata[x]]></a>', '<a><!x></a>', '<a>&#x;</a>', '<a>&#;</a>', '<a>&#x110000;</a>', '<a>&#65</a>', '<a>&a-b;</a>', '<a>\u0001</a>', '<a>\u0000</a>',
];

describe('parseXmlDocument: well-formedness', () => {
  test('when each document of the table is read, then it is accepted exactly when xmllint accepts it', () => {
    const disagreements = DOCUMENTS.flatMap((doc) => {
      const xmllint = isWellFormed(doc);
      let ours = true;
      try {
        parseXmlDocument(doc);
      } catch {
        ours = false;
      }
      return ours === xmllint ? [] : [{ doc, ours, xmllint }];
    });
    expect(disagreements).toEqual([]);
  });

  test.each([
    ['<a><b></a>', 'the closing tag </a> does not match the open element <b> (line 1, column 7)'],
    ['<a>\n  <b>\n</a>', 'the closing tag </a> does not match the open element <b> (line 3, column 1)'],
    ['<a>\r\n\r\nx &y; </a>', 'the entity &y; is not defined; only &amp; &lt; &gt; &quot; &apos; and character references are allowed (line 3, column 3)'],
    ['<a><b>', 'the element <b> is never closed: the document ends first (line 1, column 4)'],
    ['<a b=c/>', "the value of the attribute 'b' of <a> must be in quotes (line 1, column 6)"],
    ['<a>\u0007</a>', 'the character U+0007 is not allowed in XML (line 1, column 4)'],
    ['  \n\t', 'it is empty or only whitespace; send the batch XML'],
  ])('when %j is read, then the message says what and where', (doc, message) => {
    const err = refused(doc);
    expect(err.status).toBe(400);
    expect(err.message).toBe(`The body is not a valid batch document: ${message}.`);
  });

  test.each([
    ['<!DOCTYPE a><a/>'],
    ['<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>'],
    ['<a><!ENTITY x "y"></a>'],
    ['<!doctype a><a/>'],
  ])('when %j declares a DOCTYPE or an entity, then it is refused whatever it contains', (doc) => {
    expect(refused(doc).message).toBe('DOCTYPE and entity declarations are not allowed in a batch document.');
  });

  test('when the XML declaration names an encoding other than UTF-8, then the answer is 415', () => {
    const err = refused('<?xml version="1.0" encoding="ISO-8859-2"?><a/>');
    expect(err.status).toBe(415);
    expect(err.message).toBe('The document declares encoding="ISO-8859-2"; only UTF-8 is accepted. Send it in UTF-8.');
    expect(() => parseXmlDocument('<?xml version="1.0" encoding="us-ascii"?><a/>')).not.toThrow();
  });
});

describe('parseXmlDocument: the tree', () => {
  test('when text mixes references, CDATA, comments and line ends, then it is decoded as XML says and trimmed', () => {
    const root = parseXmlDocument('<a b="x\r\ny\tz&#10;w">\r\n a\r\nb&#13;\nc<!-- no --><![CDATA[ d\r\ne&amp; ]]>\n</a>');
    expect(root.attributes.get('b')).toBe('x y z\nw');
    expect(root.text).toBe('a\nb\r\nc d\ne&amp;');
  });

  test('when reserved JavaScript names are element and attribute names, then they are ordinary names and Object.prototype is untouched', () => {
    const root = parseXmlDocument('<__proto__ constructor="1" prototype="2" __proto__="3"><constructor><polluted>yes</polluted></constructor><hasOwnProperty/></__proto__>');
    const shape = (e: XmlElement): unknown => ({ name: e.name, attributes: Object.fromEntries(e.attributes), children: e.children.map(shape), text: e.text });
    expect(shape(root)).toEqual({
      name: '__proto__',
      attributes: Object.fromEntries([['constructor', '1'], ['prototype', '2'], ['__proto__', '3']]),
      children: [
        { name: 'constructor', attributes: {}, children: [{ name: 'polluted', attributes: {}, children: [], text: 'yes' }], text: '' },
        { name: 'hasOwnProperty', attributes: {}, children: [], text: '' },
      ],
      text: '',
    });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('parseXmlDocument: limits', () => {
  test('when elements nest deeper than the limit, then the document is refused with 400 without recursion', () => {
    expect(() => parseXmlDocument(`${'<a>'.repeat(32)}${'</a>'.repeat(32)}`)).not.toThrow();
    const err = refused(`${'<a>'.repeat(100_000)}`);
    expect(err.status).toBe(400);
    expect(err.message).toMatch(/elements are nested deeper than 32 levels \(line 1, column 97\)/);
  });

  test('when a document has more nodes than the limit, then it is refused with 413 before the tree grows further', () => {
    const doc = `<r>${'<a/>'.repeat(10)}</r>`;
    expect(() => parseXmlDocument(doc, { maxNodes: 11 })).not.toThrow();
    const err = refused(doc, { maxNodes: 10 });
    expect(err.status).toBe(413);
    expect(err.message).toBe('The document has more than 10 XML nodes (elements, attributes, references, comments, pieces of text); split it into smaller batches. Nothing was applied.');
    expect(refused(`<r>${'&amp;'.repeat(10)}</r>`, { maxNodes: 10 }).status).toBe(413);
    expect(refused(`<r>x${'<!---->y'.repeat(10)}</r>`, { maxNodes: 10 }).status).toBe(413);
    expect(refused(`<r ${Array.from({ length: 10 }, (_, i) => `a${i}="1"`).join(' ')}/>`, { maxNodes: 10 }).status).toBe(413);
  });

  test('when an element has more attributes than the limit, then the document is refused with 400', () => {
    const attributes = (n: number): string => Array.from({ length: n }, (_, i) => `a${i}="1"`).join(' ');
    expect(parseXmlDocument(`<r ${attributes(64)}/>`).attributes.size).toBe(64);
    expect(refused(`<r ${attributes(65)}/>`).message).toMatch(/the element <r> has more than 64 attributes/);
  });
});
