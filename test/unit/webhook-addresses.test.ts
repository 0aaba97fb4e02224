import { forbiddenAddress, ipv6Bytes, isAddressLiteral, isLoopbackName } from '../../src/domain/addresses';

/** The host as WHATWG URL parsing leaves it, which is what the rules see of a webhook URL. */
const hostOf = (url: string): string => new URL(url).hostname;

describe('addresses a webhook may not reach (SPEC §10.2)', () => {
  test.each([
    ['127.0.0.1', 'a loopback address'],
    ['127.255.0.9', 'a loopback address'],
    ['10.1.2.3', 'a private address'],
    ['172.16.0.1', 'a private address'],
    ['172.31.255.255', 'a private address'],
    ['192.168.1.1', 'a private address'],
    ['100.64.0.1', 'a private (carrier-grade NAT, 100.64.0.0/10) address'],
    ['169.254.169.254', 'a link-local address'],
    ['0.0.0.0', 'the unspecified address'],
    ['0.1.2.3', 'an unspecified ("this network", 0.0.0.0/8) address'],
    ['224.0.0.1', 'a multicast address'],
    ['255.255.255.255', 'a reserved address'],
    ['::1', 'a loopback address'],
    ['0:0:0:0:0:0:0:1', 'a loopback address'],
    ['::', 'the unspecified address'],
    ['fe80::1', 'a link-local address'],
    ['febf::1', 'a link-local address'],
    ['fe80::1%eth0', 'a link-local address'],
    ['fc00::1', 'a private (unique local) address'],
    ['fd12:3456::1', 'a private (unique local) address'],
    ['fec0::1', 'a private (site-local) address'],
    ['ff02::1', 'a multicast address'],
    ['::ffff:127.0.0.1', 'a loopback address (IPv4-mapped 127.0.0.1)'],
    ['::ffff:7f00:1', 'a loopback address (IPv4-mapped 127.0.0.1)'],
    ['::ffff:a00:1', 'a private address (IPv4-mapped 10.0.0.1)'],
    ['::127.0.0.1', 'a loopback address (IPv4-compatible 127.0.0.1)'],
    ['::8.8.8.8', 'a reserved (IPv4-compatible) address'],
    ['64:ff9b::a9fe:a9fe', 'a link-local address (NAT64 169.254.169.254)'],
    ['2002:c0a8:101::1', 'a private address (6to4 192.168.1.1)'],
    ['[::1]', 'a loopback address'],
  ])('when the address is %s, then it is refused as %s', (address, rule) => {
    expect(forbiddenAddress(address)).toBe(rule);
  });

  test.each(['8.8.8.8', '93.184.216.34', '172.32.0.1', '100.128.0.1', '169.255.0.1', '2001:4860:4860::8888', '2606:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808', '2a00::1'])(
    'when the address is the public %s, then it may be reached',
    (address) => {
      expect(forbiddenAddress(address)).toBeUndefined();
    },
  );

  test.each([
    ['https://2130706433/hook', '127.0.0.1', 'a loopback address'],
    ['https://0x7f.1/hook', '127.0.0.1', 'a loopback address'],
    ['https://0177.0.0.1/hook', '127.0.0.1', 'a loopback address'],
    ['https://127.1/hook', '127.0.0.1', 'a loopback address'],
    ['https://0/hook', '0.0.0.0', 'the unspecified address'],
    ['https://[::ffff:127.0.0.1]/hook', '[::ffff:7f00:1]', 'a loopback address (IPv4-mapped 127.0.0.1)'],
    ['https://[0:0:0:0:0:0:0:1]/hook', '[::1]', 'a loopback address'],
    ['https://[::]/hook', '[::]', 'the unspecified address'],
    ['https://[FE80::1]/hook', '[fe80::1]', 'a link-local address'],
  ])('when a URL names %s, then WHATWG parsing makes it %s and it is refused as %s', (url, host, rule) => {
    expect(hostOf(url)).toBe(host);
    expect(isAddressLiteral(host)).toBe(true);
    expect(forbiddenAddress(host)).toBe(rule);
  });

  test('when the text is no IP address, then it is refused rather than passed', () => {
    expect(forbiddenAddress('example.com')).toBe('not an IP address');
    expect(forbiddenAddress('1.2.3')).toBe('not an IP address');
    expect(forbiddenAddress('1::2::3')).toBe('not an IP address');
    expect(forbiddenAddress('1:2:3:4:5:6:7:8:9')).toBe('not an IP address');
    expect(isAddressLiteral('hooks.example.com')).toBe(false);
  });

  test('when an IPv6 address is written in any of its forms, then it reads as the same sixteen bytes', () => {
    const loopback = [...Array<number>(15).fill(0), 1];
    expect(ipv6Bytes('::1')).toEqual(loopback);
    expect(ipv6Bytes('0:0:0:0:0:0:0:1')).toEqual(loopback);
    expect(ipv6Bytes('::0.0.0.1')).toEqual(loopback);
    expect(ipv6Bytes('1:2:3:4:5:6:7::')).toEqual([0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 0]);
    expect(ipv6Bytes('1:2:3:4:5:6:7:8::')).toBeUndefined();
  });

  test('when a name is localhost or below it, then it is loopback without asking DNS', () => {
    for (const name of ['localhost', 'LOCALHOST', 'localhost.', 'api.localhost']) expect(isLoopbackName(name)).toBe(true);
    for (const name of ['localhost.example.com', 'mylocalhost', 'example.com']) expect(isLoopbackName(name)).toBe(false);
  });
});
