import { randomBytes } from 'node:crypto';

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * `count` ULIDs (26 characters: 48 bits of milliseconds, then 80 random bits, Crockford base32),
 * which sort by time: the ids of events (`evt_…`) and webhook deliveries (`msg_…`). One call draws
 * the randomness of all of them at once, as a batch may number thousands.
 */
export function ulids(count: number, now = Date.now()): string[] {
  let time = '';
  for (let t = now, i = 0; i < 10; i++, t = Math.floor(t / 32)) time = CROCKFORD[t % 32] + time;
  const random = randomBytes(count * 16);
  const out: string[] = new Array<string>(count);
  for (let n = 0; n < count; n++) {
    let id = time;
    // 16 characters of 5 bits each, one byte each (the top three bits dropped).
    for (let i = 0; i < 16; i++) id += CROCKFORD[random[n * 16 + i] & 31];
    out[n] = id;
  }
  return out;
}

export const ulid = (now?: number): string => ulids(1, now)[0];
