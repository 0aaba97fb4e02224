import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A webhook endpoint of phase G: answers 204 at once and counts what arrives. */
export interface BenchReceiver {
  url: string;
  /** Resolves when `events` events have arrived (or rejects after `timeoutMs`): the time they had, from `since`, and how many deliveries carried them. */
  waitFor(events: number, since: bigint, timeoutMs: number): Promise<{ seconds: number; deliveries: number }>;
  close(): Promise<void>;
}

export async function startBenchReceiver(): Promise<BenchReceiver> {
  let events = 0;
  let deliveries = 0;
  let lastSeq = 0;
  let problem: string | undefined;
  let notify = (): void => undefined;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.writeHead(204).end();
      const seqs = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data: { events: Array<{ seq: number }> } }).data.events.map((e) => e.seq);
      // The bench's endpoint answers at once, so nothing is ever sent twice: every seq comes once, in order.
      if (seqs.some((seq, i) => seq <= (i === 0 ? lastSeq : seqs[i - 1]))) problem ??= `delivery ${deliveries + 1} is out of order: after ${lastSeq} came ${seqs.join(',')}`;
      lastSeq = seqs.at(-1) ?? lastSeq;
      events += seqs.length;
      deliveries += 1;
      notify();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/bench-hook`,
    waitFor: (wanted, since, timeoutMs) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`phase G: ${events} of ${wanted} events arrived within ${timeoutMs / 1000} s`)), timeoutMs);
        notify = () => {
          if (problem) {
            clearTimeout(timer);
            reject(new Error(`phase G: ${problem}`));
          } else if (events >= wanted) {
            clearTimeout(timer);
            resolve({ seconds: Number(process.hrtime.bigint() - since) / 1e9, deliveries });
          }
        };
        notify();
      }),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
