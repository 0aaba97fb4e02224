import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { devPkiPaths, ensureDevPki, issueCertificate } from '../../src/pki/dev-pki';

const ALL_FILES = ['ca.pem', 'ca-key.pem', 'server.pem', 'server-key.pem', 'client.pem', 'client-key.pem'];
const DAY_MS = 24 * 60 * 60 * 1000;

function readAll(dir: string): Record<string, Buffer> {
  return Object.fromEntries(ALL_FILES.map((name) => [name, fs.readFileSync(path.join(dir, name))]));
}

function cert(file: string): X509Certificate {
  return new X509Certificate(fs.readFileSync(file));
}

describe('ensureDevPki', () => {
  // Key generation dominates the run time, so one PKI is generated and copied per test.
  let root: string;
  let pristine: string;
  let firstRun: ReturnType<typeof ensureDevPki>;
  let dir: string;

  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'flexi-dev-pki-'));
    pristine = path.join(root, 'pristine', 'certs');
    firstRun = ensureDevPki(pristine);
  });

  afterAll(() => {
    fs.rmSync(root, { recursive: true, force: true });
  });

  let copies = 0;
  beforeEach(() => {
    dir = path.join(root, `copy-${++copies}`);
    fs.cpSync(pristine, dir, { recursive: true });
  });

  it('when the folder does not exist, then it creates it with the six files', () => {
    expect(firstRun.created).toEqual(ALL_FILES);
    expect(fs.readdirSync(pristine).sort()).toEqual([...ALL_FILES].sort());
    expect(firstRun.paths).toEqual(devPkiPaths(pristine));
  });

  it('when called a second time, then it creates nothing and leaves every file byte-identical', () => {
    const before = readAll(dir);

    const { created } = ensureDevPki(dir);

    expect(created).toEqual([]);
    const after = readAll(dir);
    for (const name of ALL_FILES) expect(after[name].equals(before[name])).toBe(true);
  });

  it('when only the client pair was deleted, then only it is issued again, signed by the existing CA', () => {
    const paths = devPkiPaths(dir);
    const before = readAll(dir);
    fs.rmSync(paths.client);
    fs.rmSync(paths.clientKey);

    const { created } = ensureDevPki(dir);

    expect(created).toEqual(['client.pem', 'client-key.pem']);
    const after = readAll(dir);
    for (const name of ['ca.pem', 'ca-key.pem', 'server.pem', 'server-key.pem']) {
      expect(after[name].equals(before[name])).toBe(true);
    }
    expect(after['client.pem'].equals(before['client.pem'])).toBe(false);

    const ca = cert(paths.ca);
    const client = cert(paths.client);
    expect(client.checkIssued(ca)).toBe(true);
    expect(client.verify(ca.publicKey)).toBe(true);
    expect(fs.statSync(paths.clientKey).mode & 0o777).toBe(0o600);
  });

  it('when the CA files are missing but the leaf pairs exist, then the pairs are kept and only the CA is created', () => {
    const paths = devPkiPaths(dir);
    const before = readAll(dir);
    fs.rmSync(paths.ca);
    fs.rmSync(paths.caKey);

    const { created } = ensureDevPki(dir);

    expect(created).toEqual(['ca.pem', 'ca-key.pem']);
    const after = readAll(dir);
    for (const name of ['server.pem', 'server-key.pem', 'client.pem', 'client-key.pem']) {
      expect(after[name].equals(before[name])).toBe(true);
    }
  });

  it('when a certificate exists without its key, then it refuses and names both files', () => {
    const paths = devPkiPaths(dir);
    fs.rmSync(paths.serverKey);

    expect(() => ensureDevPki(dir)).toThrow(/server\.pem exists but server-key\.pem does not/);
    expect(fs.existsSync(paths.serverKey)).toBe(false);
  });

  it('when the CA key is gone and a leaf must be issued, then it refuses instead of creating a new CA', () => {
    const paths = devPkiPaths(dir);
    fs.rmSync(paths.caKey);
    fs.rmSync(paths.client);
    fs.rmSync(paths.clientKey);

    expect(() => ensureDevPki(dir)).toThrow(/ca\.pem exists but ca-key\.pem does not/);
  });

  it('when the CA key is gone but nothing must be issued, then it succeeds and creates nothing', () => {
    fs.rmSync(devPkiPaths(dir).caKey);

    expect(ensureDevPki(dir).created).toEqual([]);
  });

  it('when files are created, then the key files are readable by the owner only', () => {
    const paths = firstRun.paths;

    for (const key of [paths.caKey, paths.serverKey, paths.clientKey]) {
      expect(fs.statSync(key).mode & 0o777).toBe(0o600);
    }
  });

  it('when files are created, then each key matches its certificate', () => {
    const paths = firstRun.paths;

    for (const [certFile, keyFile] of [
      [paths.ca, paths.caKey],
      [paths.server, paths.serverKey],
      [paths.client, paths.clientKey],
    ]) {
      expect(cert(certFile).checkPrivateKey(createPrivateKey(fs.readFileSync(keyFile)))).toBe(true);
    }
  });

  it('when the server certificate is created, then it is for localhost, 127.0.0.1 and ::1 and signed by the CA', () => {
    const server = cert(firstRun.paths.server);
    const ca = cert(firstRun.paths.ca);

    expect(server.subject).toBe('CN=localhost');
    expect(server.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    expect(server.checkHost('localhost')).toBe('localhost');
    expect(server.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(server.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(server.ca).toBe(false);
    expect(server.checkIssued(ca)).toBe(true);
    expect(server.verify(ca.publicKey)).toBe(true);
    expect(ca.ca).toBe(true);
    expect(ca.checkIssued(ca)).toBe(true);
  });

  it('when the client certificate is created, then it is a client-auth certificate of the dev client', () => {
    const client = cert(firstRun.paths.client);

    expect(client.subject).toBe('CN=flexi-admin dev client');
    expect(client.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
    expect(client.ca).toBe(false);
  });

  it('when files are created, then validity starts in the past and lasts 825 days for leaves, 10 years for the CA', () => {
    const paths = firstRun.paths;
    const now = Date.now();

    for (const [file, days] of [
      [paths.ca, 3650],
      [paths.server, 825],
      [paths.client, 825],
    ] as const) {
      const c = cert(file);
      const from = Date.parse(c.validFrom);
      const to = Date.parse(c.validTo);
      expect(from).toBeLessThan(now - 30 * 60 * 1000);
      expect(to - from).toBe(days * DAY_MS);
    }
  });

  it('when certificates are created, then their serial numbers are positive 16-byte values that differ', () => {
    const paths = firstRun.paths;
    const serials = [paths.ca, paths.server, paths.client].map((file) => cert(file).serialNumber);

    for (const serial of serials) {
      expect(serial).toMatch(/^[0-7][0-9A-F]{31}$/);
      expect(serial.startsWith('00')).toBe(false);
    }
    expect(new Set(serials).size).toBe(3);
  });
});

describe('issueCertificate', () => {
  it('when asked for an expired client certificate, then it is issued with the given dates', () => {
    const notBefore = new Date(Date.now() - 10 * DAY_MS);
    const notAfter = new Date(Date.now() - DAY_MS);

    const issued = issueCertificate({ commonName: 'expired', kind: 'client', notBefore, notAfter });
    const c = new X509Certificate(issued.certPem);

    expect(Date.parse(c.validTo)).toBeLessThan(Date.now());
    expect(Math.abs(Date.parse(c.validFrom) - notBefore.getTime())).toBeLessThan(1000);
    expect(Math.abs(Date.parse(c.validTo) - notAfter.getTime())).toBeLessThan(1000);
  });

  it('when asked for a certificate that is not yet valid, then its validity starts in the future', () => {
    const notBefore = new Date(Date.now() + DAY_MS);

    const c = new X509Certificate(issueCertificate({ commonName: 'future', kind: 'client', notBefore }).certPem);

    expect(Date.parse(c.validFrom)).toBeGreaterThan(Date.now());
    expect(Date.parse(c.validTo) - Date.parse(c.validFrom)).toBe(825 * DAY_MS);
  });

  it('when no CA is given, then the certificate is self-signed', () => {
    const issued = issueCertificate({ commonName: 'partner a', kind: 'client' });
    const c = new X509Certificate(issued.certPem);

    expect(c.issuer).toBe(c.subject);
    expect(c.subject).toBe('CN=partner a');
    expect(c.verify(createPublicKey(createPrivateKey(issued.keyPem)))).toBe(true);
  });

  it('when a CA is given, then the certificate verifies against it and not against another CA', () => {
    const ca = issueCertificate({ commonName: 'test CA', kind: 'ca' });
    const otherCa = issueCertificate({ commonName: 'other CA', kind: 'ca' });

    const leaf = new X509Certificate(issueCertificate({ ca, commonName: 'leaf', kind: 'client' }).certPem);

    expect(leaf.issuer).toBe('CN=test CA');
    expect(leaf.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
    expect(leaf.verify(new X509Certificate(otherCa.certPem).publicKey)).toBe(false);
  });

  it('when the CA key is not an RSA key in PEM, then it throws a clear error', () => {
    const ca = issueCertificate({ commonName: 'test CA', kind: 'ca' });

    expect(() => issueCertificate({ ca: { ...ca, keyPem: 'not a key' }, commonName: 'leaf', kind: 'client' })).toThrow(
      /Cannot sign with the CA key/,
    );
  });
});
