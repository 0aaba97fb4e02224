/**
 * Which network addresses a webhook may not reach (SPEC §10.2): a delivery is a request the server
 * makes on a partner's behalf, so without these rules a partner could make it reach the server's
 * own loopback services, the private network it runs in, or a cloud metadata endpoint
 * (169.254.169.254). Pure functions over the text of one address, as WHATWG URL parsing leaves a
 * host (`2130706433` and `0x7f.1` are already `127.0.0.1` then) or as DNS answers it.
 */

/** The four bytes of a dotted-quad IPv4 address, or undefined. */
export function ipv4Bytes(text: string): number[] | undefined {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255)) return undefined;
  return parts.map(Number);
}

/** The sixteen bytes of an IPv6 address (a zone such as `%eth0` ignored, a dotted IPv4 tail allowed), or undefined. */
export function ipv6Bytes(text: string): number[] | undefined {
  let s = text.split('%')[0];
  if (!s.includes(':')) return undefined;
  const lastColon = s.lastIndexOf(':');
  const tail = s.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = ipv4Bytes(tail);
    if (!v4) return undefined;
    s = `${s.slice(0, lastColon + 1)}${((v4[0] << 8) | v4[1]).toString(16)}:${((v4[2] << 8) | v4[3]).toString(16)}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const groupsOf = (part: string): string[] => (part === '' ? [] : part.split(':'));
  const head = groupsOf(halves[0]);
  const rest = halves.length === 2 ? groupsOf(halves[1]) : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...rest];
  if (!groups.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  return groups.flatMap((g) => {
    const n = parseInt(g, 16);
    return [n >> 8, n & 0xff];
  });
}

const isZero = (bytes: readonly number[]): boolean => bytes.every((b) => b === 0);

/** Why an IPv4 address may not be reached, or undefined when it may. */
function ipv4Rule([a, b]: readonly number[], whole: readonly number[]): string | undefined {
  if (a === 0) return isZero(whole) ? 'the unspecified address' : 'an unspecified ("this network", 0.0.0.0/8) address';
  if (a === 127) return 'a loopback address';
  if (a === 10 || (a === 172 && (b & 0xf0) === 16) || (a === 192 && b === 168)) return 'a private address';
  if (a === 100 && (b & 0xc0) === 64) return 'a private (carrier-grade NAT, 100.64.0.0/10) address';
  if (a === 169 && b === 254) return 'a link-local address';
  if (a >= 224 && a <= 239) return 'a multicast address';
  if (a >= 240) return 'a reserved address';
  return undefined;
}

const v4Text = (bytes: readonly number[]): string => bytes.join('.');

/** Why an IPv6 address may not be reached, or undefined when it may; IPv4 embedded in it is judged as IPv4. */
function ipv6Rule(bytes: readonly number[]): string | undefined {
  const first10Zero = isZero(bytes.slice(0, 10));
  if (isZero(bytes)) return 'the unspecified address';
  if (isZero(bytes.slice(0, 15)) && bytes[15] === 1) return 'a loopback address';
  const embedded = (v4: readonly number[], form: string): string | undefined => {
    const rule = ipv4Rule(v4, v4);
    return rule && `${rule} (${form} ${v4Text(v4)})`;
  };
  if (first10Zero && bytes[10] === 0xff && bytes[11] === 0xff) return embedded(bytes.slice(12), 'IPv4-mapped');
  // ::a.b.c.d, IPv4-compatible: deprecated (RFC 4291), never a webhook's address whatever it embeds.
  if (first10Zero && bytes[10] === 0 && bytes[11] === 0) return embedded(bytes.slice(12), 'IPv4-compatible') ?? 'a reserved (IPv4-compatible) address';
  // 64:ff9b::/96, the NAT64 prefix: a gateway turns it into the IPv4 address it embeds.
  if (bytes[0] === 0 && bytes[1] === 0x64 && bytes[2] === 0xff && bytes[3] === 0x9b && isZero(bytes.slice(4, 12))) return embedded(bytes.slice(12), 'NAT64');
  if (bytes[0] === 0 && bytes[1] === 0x64 && bytes[2] === 0xff && bytes[3] === 0x9b && bytes[4] === 0 && bytes[5] === 1) return 'a private (local-use NAT64) address';
  // 2002::/16, 6to4: the IPv4 address of the relay's other end.
  if (bytes[0] === 0x20 && bytes[1] === 0x02) return embedded(bytes.slice(2, 6), '6to4');
  if (bytes[0] === 0xfe && (bytes[1] & 0xc0) === 0x80) return 'a link-local address';
  if (bytes[0] === 0xfe && (bytes[1] & 0xc0) === 0xc0) return 'a private (site-local) address';
  if ((bytes[0] & 0xfe) === 0xfc) return 'a private (unique local) address';
  if (bytes[0] === 0xff) return 'a multicast address';
  if (bytes[0] === 0x01 && isZero(bytes.slice(1, 8))) return 'a reserved (discard-only) address';
  return undefined;
}

/**
 * Why a webhook may not reach `address` — "a loopback address", "a private address", "a
 * link-local address", "the unspecified address", … — or undefined when it may. Text that is no
 * IP address at all is refused too: only an address can be checked.
 */
export function forbiddenAddress(address: string): string | undefined {
  const text = address.replace(/^\[(.*)\]$/, '$1');
  const v4 = ipv4Bytes(text);
  if (v4) return ipv4Rule(v4, v4);
  const v6 = ipv6Bytes(text);
  if (v6) return ipv6Rule(v6);
  return 'not an IP address';
}

/** Whether `host` (as a URL has it; IPv6 in brackets or not) is an IP address rather than a name. */
export function isAddressLiteral(host: string): boolean {
  const text = host.replace(/^\[(.*)\]$/, '$1');
  return ipv4Bytes(text) !== undefined || ipv6Bytes(text) !== undefined;
}

/** A name that is loopback by definition (RFC 6761: `localhost` and every name under it), whatever DNS says. */
export function isLoopbackName(host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  return name === 'localhost' || name.endsWith('.localhost');
}
