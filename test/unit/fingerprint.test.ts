import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fingerprintOfCertificate, normalizeFingerprint } from '../../src/pki/fingerprint';
import { issueCertificate } from '../../src/pki/dev-pki';

const CANONICAL = '61:0F:F2:7E:AC:4A:66:55:8A:7A:CB:2C:46:34:37:0A:FA:13:52:C7';
const PLAIN = CANONICAL.replace(/:/g, '');

describe('normalizeFingerprint', () => {
  it.each([
    ['colon pairs in upper case', CANONICAL],
    ['colon pairs in lower case', CANONICAL.toLowerCase()],
    ['plain hex in lower case', PLAIN.toLowerCase()],
    ['plain hex in upper case', PLAIN],
    ['the OpenSSL 1.x line', `SHA1 Fingerprint=${CANONICAL}`],
    ['the OpenSSL 3 line', `sha1 Fingerprint=${CANONICAL}`],
    ['surrounding whitespace and a newline', `  \tSHA1 Fingerprint=${CANONICAL}\n`],
  ])('when given %s, then it returns the canonical upper-case colon form', (_label, input) => {
    expect(normalizeFingerprint(input)).toBe(CANONICAL);
  });

  it.each([
    ['an empty string', ''],
    ['39 hex digits', PLAIN.slice(1)],
    ['41 hex digits', `${PLAIN}0`],
    ['a non-hex character', `${PLAIN.slice(0, 39)}G`],
    ['colons in the wrong places', `${PLAIN.slice(0, 3)}:${PLAIN.slice(3)}`],
    ['a trailing colon', `${CANONICAL}:`],
    ['mixed colon and plain pairs', CANONICAL.replace(':0F:', ':0F')],
    ['whitespace inside the value', CANONICAL.replace(':', ': ')],
    ['a SHA-256 fingerprint', 'ab'.repeat(32)],
    ['a prefix without a value', 'SHA1 Fingerprint='],
  ])('when given %s, then it throws an error naming the expected formats', (_label, input) => {
    expect(() => normalizeFingerprint(input)).toThrow(/Invalid fingerprint: .*AB:CD:.*40 hex digits.*SHA1 Fingerprint=/);
  });

  it('when given an openssl SHA256 line, then the error says a SHA1 fingerprint is expected', () => {
    expect(() => normalizeFingerprint(`sha256 Fingerprint=${'AB:'.repeat(31)}AB`)).toThrow(
      /got a sha256 fingerprint but expected a SHA1 fingerprint/,
    );
  });
});

describe('fingerprintOfCertificate', () => {
  let dir: string;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flexi-fingerprint-'));
  });

  afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('when computed for a certificate, then it equals what openssl prints, normalized', () => {
    const { certPem } = issueCertificate({ commonName: 'partner a', kind: 'client' });
    const file = path.join(dir, 'partner.pem');
    fs.writeFileSync(file, certPem);

    const opensslLine = execFileSync('openssl', ['x509', '-noout', '-fingerprint', '-sha1', '-in', file], {
      encoding: 'utf8',
    });

    const fingerprint = fingerprintOfCertificate(certPem);
    expect(fingerprint).toMatch(/^[0-9A-F]{2}(:[0-9A-F]{2}){19}$/);
    expect(normalizeFingerprint(opensslLine)).toBe(fingerprint);
  });
});
