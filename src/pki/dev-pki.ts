import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { isIP } from 'node:net';
import * as path from 'node:path';
import forge from 'node-forge';

export interface DevPkiPaths {
  dir: string;
  ca: string;
  caKey: string;
  server: string;
  serverKey: string;
  client: string;
  clientKey: string;
}

export interface IssueCertificateOptions {
  /** Signing CA; without it the certificate is self-signed. */
  ca?: { certPem: string; keyPem: string };
  commonName: string;
  kind: 'server' | 'client' | 'ca';
  notBefore?: Date;
  notAfter?: Date;
  /** DNS names and IP addresses (told apart by `net.isIP`) for subjectAltName. */
  altNames?: string[];
}

export interface IssuedCertificate {
  certPem: string;
  keyPem: string;
}

export const DEV_CA_COMMON_NAME = 'flexi-admin dev CA';
export const DEV_SERVER_COMMON_NAME = 'localhost';
export const DEV_CLIENT_COMMON_NAME = 'flexi-admin dev client';
export const DEV_SERVER_ALT_NAMES = ['localhost', '127.0.0.1', '::1'];

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;
// Tolerates clients whose clock is a little behind the machine that issued the certificate.
const CLOCK_SKEW_MS = HOUR_MS;
const CA_VALIDITY_MS = 10 * 365 * DAY_MS;
// 825 days is the longest TLS server certificate lifetime macOS/iOS accept.
const LEAF_VALIDITY_MS = 825 * DAY_MS;

export function devPkiPaths(dir: string): DevPkiPaths {
  const resolved = path.resolve(dir);
  return {
    dir: resolved,
    ca: path.join(resolved, 'ca.pem'),
    caKey: path.join(resolved, 'ca-key.pem'),
    server: path.join(resolved, 'server.pem'),
    serverKey: path.join(resolved, 'server-key.pem'),
    client: path.join(resolved, 'client.pem'),
    clientKey: path.join(resolved, 'client-key.pem'),
  };
}

/**
 * Brings the development PKI in `dir` to completeness without touching anything that is
 * already there: an operator may have replaced any of the files with their own material.
 */
export function ensureDevPki(dir: string): { paths: DevPkiPaths; created: string[] } {
  const paths = devPkiPaths(dir);
  fs.mkdirSync(paths.dir, { recursive: true, mode: 0o700 });

  const created: string[] = [];
  const caState = pairState(paths.ca, paths.caKey);
  const serverState = pairState(paths.server, paths.serverKey);
  const clientState = pairState(paths.client, paths.clientKey);
  const needsSigning = serverState === 'missing' || clientState === 'missing';

  for (const [state, certPath, keyPath] of [
    [serverState, paths.server, paths.serverKey],
    [clientState, paths.client, paths.clientKey],
  ] as const) {
    if (state === 'partial') throw partialPairError(certPath, keyPath);
  }

  let ca: IssuedCertificate | undefined;
  if (caState === 'complete') {
    if (needsSigning) {
      ca = { certPem: fs.readFileSync(paths.ca, 'utf8'), keyPem: fs.readFileSync(paths.caKey, 'utf8') };
    }
  } else if (caState === 'missing') {
    // Existing server/client pairs are kept even though they cannot chain to a CA created
    // now: they are most likely the operator's own (e.g. a production server certificate),
    // and the new CA is still needed to issue the dev client and for client verification.
    ca = issueCertificate({ commonName: DEV_CA_COMMON_NAME, kind: 'ca' });
    writePair(paths.ca, paths.caKey, ca, created);
  } else if (needsSigning || !fs.existsSync(paths.ca)) {
    // Without the key nothing can be signed; without the certificate the key cannot be
    // trusted by anyone. Creating the missing half would silently break the chain.
    throw partialPairError(paths.ca, paths.caKey);
  }

  if (serverState === 'missing') {
    const server = issueCertificate({
      ca: requireCa(ca),
      commonName: DEV_SERVER_COMMON_NAME,
      kind: 'server',
      altNames: DEV_SERVER_ALT_NAMES,
    });
    writePair(paths.server, paths.serverKey, server, created);
  }
  if (clientState === 'missing') {
    const client = issueCertificate({ ca: requireCa(ca), commonName: DEV_CLIENT_COMMON_NAME, kind: 'client' });
    writePair(paths.client, paths.clientKey, client, created);
  }

  return { paths, created };
}

export function issueCertificate(opts: IssueCertificateOptions): IssuedCertificate {
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = randomSerialNumber();

  const notBefore = opts.notBefore ?? new Date(Date.now() - CLOCK_SKEW_MS);
  const validity = opts.kind === 'ca' ? CA_VALIDITY_MS : LEAF_VALIDITY_MS;
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = opts.notAfter ?? new Date(notBefore.getTime() + validity);

  const subject = [{ name: 'commonName', value: opts.commonName }];
  cert.setSubject(subject);

  let signingKey: forge.pki.rsa.PrivateKey = keys.privateKey;
  let authorityKeyId: string;
  if (opts.ca) {
    const caCert = forge.pki.certificateFromPem(opts.ca.certPem);
    signingKey = loadRsaPrivateKey(opts.ca.keyPem);
    cert.setIssuer(caCert.subject.attributes);
    authorityKeyId = subjectKeyIdentifierOf(caCert);
  } else {
    cert.setIssuer(subject);
    authorityKeyId = cert.generateSubjectKeyIdentifier().getBytes();
  }

  cert.setExtensions([
    ...kindExtensions(opts.kind),
    ...(opts.altNames && opts.altNames.length > 0
      ? [{ name: 'subjectAltName', altNames: opts.altNames.map(toAltName) }]
      : []),
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: authorityKeyId },
  ]);

  cert.sign(signingKey, forge.md.sha256.create());

  return {
    certPem: forge.pki.certificateToPem(cert),
    // PKCS#8 rather than forge's default PKCS#1: the generic format every TLS stack reads.
    keyPem: forge.pki.privateKeyInfoToPem(forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(keys.privateKey))),
  };
}

type PairState = 'complete' | 'missing' | 'partial';

function pairState(certPath: string, keyPath: string): PairState {
  const cert = fs.existsSync(certPath);
  const key = fs.existsSync(keyPath);
  if (cert && key) return 'complete';
  if (!cert && !key) return 'missing';
  return 'partial';
}

function partialPairError(certPath: string, keyPath: string): Error {
  const [present, absent] = fs.existsSync(certPath) ? [certPath, keyPath] : [keyPath, certPath];
  return new Error(
    `Cannot complete the certificate folder: ${path.basename(present)} exists but ` +
      `${path.basename(absent)} does not; restore ${path.basename(absent)} or remove ` +
      `${path.basename(present)} so that both are generated (in ${path.dirname(present)}).`,
  );
}

function requireCa(ca: IssuedCertificate | undefined): IssuedCertificate {
  if (!ca) throw new Error('The dev CA was not loaded although a certificate has to be signed.');
  return ca;
}

function writePair(certPath: string, keyPath: string, pair: IssuedCertificate, created: string[]): void {
  // The key goes first, so an interruption leaves a key without a certificate (refused with a
  // clear message next time) rather than a certificate whose key is lost.
  writeNew(keyPath, pair.keyPem, 0o600);
  writeNew(certPath, pair.certPem, 0o644);
  created.push(path.basename(certPath), path.basename(keyPath));
}

function writeNew(filePath: string, content: string, mode: number): void {
  // 'wx' makes "never overwrite" hold even when `serve` and `certs init` race.
  fs.writeFileSync(filePath, content, { flag: 'wx', mode });
  // The umask may have narrowed the mode; key files must be exactly owner-only.
  fs.chmodSync(filePath, mode);
}

function randomSerialNumber(): string {
  const bytes = randomBytes(16);
  // DER INTEGER: a set top bit would make it negative, a leading zero byte makes the
  // encoding non-minimal, which OpenSSL 3 rejects.
  bytes[0] &= 0x7f;
  if (bytes[0] === 0) bytes[0] = 0x01;
  return bytes.toString('hex');
}

function kindExtensions(kind: IssueCertificateOptions['kind']): object[] {
  switch (kind) {
    case 'ca':
      return [
        { name: 'basicConstraints', cA: true, critical: true },
        { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
      ];
    case 'server':
      return [
        { name: 'basicConstraints', cA: false, critical: true },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        { name: 'extKeyUsage', serverAuth: true },
      ];
    case 'client':
      return [
        { name: 'basicConstraints', cA: false, critical: true },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        { name: 'extKeyUsage', clientAuth: true },
      ];
  }
}

function toAltName(name: string): { type: number; value?: string; ip?: string } {
  // GeneralName tags: 2 = dNSName, 7 = iPAddress.
  return isIP(name) ? { type: 7, ip: name } : { type: 2, value: name };
}

function subjectKeyIdentifierOf(cert: forge.pki.Certificate): string {
  // Prefer the CA's own identifier (it may not have been made by forge, so its method of
  // deriving the identifier may differ); AKI must match it byte for byte for chain building.
  const ext = cert.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | undefined;
  if (ext?.subjectKeyIdentifier) return forge.util.hexToBytes(ext.subjectKeyIdentifier);
  return cert.generateSubjectKeyIdentifier().getBytes();
}

function loadRsaPrivateKey(pem: string): forge.pki.rsa.PrivateKey {
  try {
    return forge.pki.privateKeyFromPem(pem) as forge.pki.rsa.PrivateKey;
  } catch (err) {
    throw new Error(
      `Cannot sign with the CA key: only unencrypted RSA keys in PEM are supported (${(err as Error).message}).`,
    );
  }
}
