import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

/** One request a webhook endpoint received. */
export interface Received {
  path: string;
  headers: Record<string, string>;
  body: string;
  /** Epoch ms when it arrived. */
  at: number;
}

/** What the endpoint answers; `hold` keeps the request unanswered until it resolves. */
export interface Answer {
  status: number;
  headers?: Record<string, string>;
  hold?: Promise<void>;
}

/** Answers the n-th request (0-based) of a path. */
export type Responder = (request: Received, n: number) => Answer;

/** The body of a delivery (SPEC §10.2). */
export interface DeliveryBody {
  type: string;
  timestamp: string;
  data: { events: Array<{ seq: number; id: string; type: string; group: string; entity: { type: string; id: string }; actor: { credential: string; user: string | null } } & Record<string, unknown>> };
}

const answerAtOnce: Responder = () => ({ status: 204 });

export const newSecret = (bytes = 24): string => `whsec_${randomBytes(bytes).toString('base64')}`;

/** Verifies a delivery as a receiver would, with the Standard Webhooks library (an independent implementation); throws when it does not verify. */
export function verified(delivery: Received, secret: string): DeliveryBody {
  return new Webhook(secret).verify(delivery.body, delivery.headers) as DeliveryBody;
}

export const eventsOf = (delivery: Received): DeliveryBody['data']['events'] => (JSON.parse(delivery.body) as DeliveryBody).data.events;

/**
 * A webhook endpoint on 127.0.0.1 in the test process: it records every request, answers each path
 * with its responder (204 by default), and counts how many requests of a path were open at once.
 */
export class WebhookReceiver {
  readonly received: Received[] = [];
  private readonly responders = new Map<string, Responder>();
  private readonly open = new Map<string, number>();
  private readonly mostOpen = new Map<string, number>();
  private readonly releases: Array<() => void> = [];

  private constructor(private readonly server: Server) {}

  static async start(): Promise<WebhookReceiver> {
    const server = createServer();
    const receiver = new WebhookReceiver(server);
    server.on('request', (req, res) => receiver.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return receiver;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  url(path: string, host = '127.0.0.1'): string {
    return `http://${host}:${this.port}${path}`;
  }

  respond(path: string, responder: Responder): void {
    this.responders.set(path, responder);
  }

  /** A promise the test resolves later, for `hold`; every one still pending is released at close. */
  gate(): { hold: Promise<void>; release: () => void } {
    let release = (): void => undefined;
    const hold = new Promise<void>((resolve) => (release = resolve));
    this.releases.push(release);
    return { hold, release };
  }

  at(path: string): Received[] {
    return this.received.filter((r) => r.path === path);
  }

  /** The most requests of `path` that were open (received, not yet answered) at one time. */
  mostOpenAt(path: string): number {
    return this.mostOpen.get(path) ?? 0;
  }

  /** Waits until `probe` gives a value (not undefined or false), looking every 20 ms; the test's own timeout bounds it. */
  async waitFor<T>(probe: () => T | undefined | false | Promise<T | undefined | false>): Promise<T> {
    for (;;) {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Waits until `path` has received at least `n` requests, and gives them. */
  waitForRequests(path: string, n: number): Promise<Received[]> {
    return this.waitFor(() => {
      const got = this.at(path);
      return got.length >= n ? got : undefined;
    });
  }

  async close(): Promise<void> {
    for (const release of this.releases) release();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = req.url ?? '';
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) if (typeof value === 'string') headers[name] = value;
      const request: Received = { path, headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() };
      const n = this.at(path).length;
      this.received.push(request);
      const open = (this.open.get(path) ?? 0) + 1;
      this.open.set(path, open);
      this.mostOpen.set(path, Math.max(open, this.mostOpen.get(path) ?? 0));
      // Open until answered, or until the sender gives up on it (a timeout closes the connection).
      let closed = false;
      const close = (): void => {
        if (closed) return;
        closed = true;
        this.open.set(path, (this.open.get(path) ?? 1) - 1);
      };
      res.on('close', close);
      const answer = (this.responders.get(path) ?? answerAtOnce)(request, n);
      void (answer.hold ?? Promise.resolve()).then(() => {
        if (res.destroyed) return;
        close();
        res.writeHead(answer.status, answer.headers);
        res.end();
      });
    });
  }
}
