import { X509Certificate } from 'node:crypto';

const EXPECTED_FORMATS =
  'expected a SHA1 fingerprint as AB:CD:… (20 colon-separated hex pairs), as 40 hex digits, ' +
  'or as printed by `openssl x509 -noout -fingerprint -sha1` ("SHA1 Fingerprint=AB:CD:…")';

const PLAIN_HEX = /^[0-9a-f]{40}$/i;
const COLON_PAIRS = /^[0-9a-f]{2}(?::[0-9a-f]{2}){19}$/i;
const OPENSSL_PREFIX = /^(sha-?\d+)\s+fingerprint\s*=\s*/i;

/**
 * Canonical form is what node reports for a peer certificate
 * (`getPeerCertificate().fingerprint`), so a registered value can be compared with `===`.
 */
export function normalizeFingerprint(input: string): string {
  let value = input.trim();

  const prefix = OPENSSL_PREFIX.exec(value);
  if (prefix) {
    const algorithm = prefix[1].toLowerCase().replace('-', '');
    // A SHA-256 line is the most likely mix-up; say so instead of a generic format error.
    if (algorithm !== 'sha1') {
      throw new Error(`Invalid fingerprint: got a ${prefix[1]} fingerprint but ${EXPECTED_FORMATS}.`);
    }
    value = value.slice(prefix[0].length);
  }

  let hex: string;
  if (PLAIN_HEX.test(value)) {
    hex = value;
  } else if (COLON_PAIRS.test(value)) {
    hex = value.replace(/:/g, '');
  } else {
    throw new Error(`Invalid fingerprint: ${EXPECTED_FORMATS}.`);
  }

  return hex.toUpperCase().match(/../g)!.join(':');
}

export function fingerprintOfCertificate(pem: string): string {
  return new X509Certificate(pem).fingerprint;
}
