import type { Response } from './server';
import { queryRows } from './stores';

/**
 * Helpers of the license-group tests (SPEC §7): batch documents, the group rows and the closure
 * table as the store holds them, and the seat use of every subtree counted from the users' rows —
 * independently of the closure table and of the seats_used counters the tests check.
 */

export const batchDoc = (id: string, ...operations: string[]): string =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<flexibee-batch id="${id}">\n${operations.map((o) => `  ${o}\n`).join('')}</flexibee-batch>\n`;

export interface GroupSpec {
  name?: string;
  parent?: string;
  /** null writes an empty `<seats/>` (no limit). */
  seats?: number | null;
  /** null writes an empty `<param name="X"/>` (removes the group's own value). */
  params?: Record<string, string | null>;
}

export function groupOp(id: string, spec: GroupSpec = {}): string {
  const parts = [`<id>${id}</id>`];
  if (spec.name !== undefined) parts.push(`<name>${spec.name}</name>`);
  if (spec.parent !== undefined) parts.push(`<parent>${spec.parent}</parent>`);
  if (spec.seats !== undefined) parts.push(spec.seats === null ? '<seats/>' : `<seats>${spec.seats}</seats>`);
  for (const [name, value] of Object.entries(spec.params ?? {})) parts.push(value === null ? `<param name="${name}"/>` : `<param name="${name}">${value}</param>`);
  return `<licenseGroup>${parts.join('')}</licenseGroup>`;
}

export const deleteGroupOp = (id: string): string => `<licenseGroup action="delete"><id>${id}</id></licenseGroup>`;

export function userOp(username: string, fields: Record<string, string> = {}): string {
  return `<user><username>${username}</username>${Object.entries(fields)
    .map(([k, v]) => `<${k}>${v}</${k}>`)
    .join('')}</user>`;
}

export const deleteUserOp = (username: string): string => `<user action="delete"><username>${username}</username></user>`;

export function companyOp(id: string, fields: Record<string, string> = {}): string {
  return `<company><id>${id}</id>${Object.entries(fields)
    .map(([k, v]) => `<${k}>${v}</${k}>`)
    .join('')}</company>`;
}

/** The parsed JSON of a 200 answer; anything else fails with the answer in the message. */
export function okJson<T = Record<string, unknown>>(res: Response): T {
  if (res.status !== 200) throw new Error(`expected 200, got ${res.status}: ${res.body}`);
  return JSON.parse(res.body) as T;
}

/** The rows of a JSON listing (`{"winstrom": {key: [...]}}`). */
export function listed<T = Record<string, unknown>>(res: Response, key: string): T[] {
  return okJson<{ winstrom: Record<string, T[]> }>(res).winstrom[key];
}

/** The message of an error envelope, XML or JSON. */
export function envelopeMessage(res: Response): string {
  if (String(res.headers['content-type']).includes('json')) return (JSON.parse(res.body) as { winstrom: { message: string } }).winstrom.message;
  const m = /<message>([^<]*)<\/message>/.exec(res.body);
  if (!m) throw new Error(`not an error envelope: ${res.body}`);
  return m[1];
}

export interface GroupRow {
  id: string;
  name: string;
  parent_id: string | null;
  seats: number | null;
  seats_used: number;
  params: Record<string, string>;
}

/** Every license group as stored, in id order, with its params parsed. */
export function groupRows(db: string): GroupRow[] {
  return queryRows(db, 'SELECT id, name, parent_id, seats, seats_used, params FROM license_groups ORDER BY id').map((r) => ({
    id: r.id as string,
    name: r.name as string,
    parent_id: r.parent_id as string | null,
    seats: r.seats === null ? null : Number(r.seats),
    seats_used: Number(r.seats_used),
    params: JSON.parse(r.params as string) as Record<string, string>,
  }));
}

/** The closure table as `ancestor>descendant@depth`, sorted. */
export function closureRows(db: string): string[] {
  return queryRows(db, 'SELECT ancestor, descendant, depth FROM license_group_closure')
    .map((r) => `${String(r.ancestor)}>${String(r.descendant)}@${Number(r.depth)}`)
    .sort();
}

/** The closure table a tree of parent links must have: every (ancestor, descendant, depth), the group itself at depth 0. */
export function closureOf(groups: ReadonlyArray<Pick<GroupRow, 'id' | 'parent_id'>>): string[] {
  const parent = new Map(groups.map((g) => [g.id, g.parent_id]));
  const out: string[] = [];
  for (const g of groups) {
    let depth = 0;
    for (let at: string | null | undefined = g.id; at; at = parent.get(at), depth++) out.push(`${at}>${g.id}@${depth}`);
  }
  return out.sort();
}

/**
 * Seats in use per group (SPEC §7.2: active users of type NORMAL or REST_API in the group and
 * everything below it), counted from the users' rows and the groups' parent links alone.
 */
export function seatsInUse(db: string): Record<string, number> {
  const groups = queryRows(db, 'SELECT id, parent_id FROM license_groups');
  const parent = new Map(groups.map((g) => [g.id as string, g.parent_id as string | null]));
  const counts: Record<string, number> = Object.fromEntries(groups.map((g) => [g.id as string, 0]));
  for (const u of queryRows(db, "SELECT license_group FROM users WHERE deleted = 0 AND user_type <> 'READ_ONLY'")) {
    for (let at: string | null | undefined = u.license_group as string; at; at = parent.get(at)) counts[at] += 1;
  }
  return counts;
}

/** seats_used of every group as the store keeps it. */
export function seatsUsed(db: string): Record<string, number> {
  return Object.fromEntries(groupRows(db).map((g) => [g.id, g.seats_used]));
}
