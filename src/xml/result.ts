import type { OperationResult, Status } from '../domain/results';
import { escapeXml, escapeXmlAttribute, XML_DECLARATION } from './writer';

export type Stats = Record<Lowercase<Status>, number>;

const STAT_OF: Readonly<Record<Status, Lowercase<Status>>> = { CREATED: 'created', UPDATED: 'updated', DELETED: 'deleted', SKIPPED: 'skipped', FAILED: 'failed' };

export function countResults(results: readonly OperationResult[]): Stats {
  const stats: Stats = { created: 0, updated: 0, deleted: 0, skipped: 0, failed: 0 };
  for (const r of results) stats[STAT_OF[r.status]]++;
  return stats;
}

/** How many operations of each entity type ended in each status (keyed `${type}\u0000${status}`), for the metrics. */
export function countByEntity(results: readonly OperationResult[]): Map<string, number> {
  // Counted per type and status first: a key string per operation would be ten thousand allocations for a large batch.
  const byType = new Map<string, Stats>();
  for (const r of results) {
    let stats = byType.get(r.type);
    if (!stats) byType.set(r.type, (stats = { created: 0, updated: 0, deleted: 0, skipped: 0, failed: 0 }));
    stats[STAT_OF[r.status]]++;
  }
  const counts = new Map<string, number>();
  for (const [type, stats] of byType) {
    for (const status of Object.keys(STAT_OF) as Status[]) if (stats[STAT_OF[status]] > 0) counts.set(`${type}\u0000${status}`, stats[STAT_OF[status]]);
  }
  return counts;
}

export interface ResultHeader {
  id: string;
  dryRun?: boolean;
}

/** The `<flexibee-batch-result>` of SPEC §5.1, one entry per operation in document order; `stats` are countResults(results). */
export function renderResult(header: ResultHeader, results: readonly OperationResult[], stats: Stats = countResults(results)): string {
  const parts: string[] = [XML_DECLARATION];
  const dryRun = header.dryRun ? ' dry-run="true"' : '';
  parts.push(`<flexibee-batch-result id="${escapeXmlAttribute(header.id)}"${dryRun}>\n`);
  for (const r of results) {
    const message = r.message === undefined ? '' : `<message>${escapeXml(r.message)}</message>`;
    parts.push(
      `  <entry type="${r.type}" action="${r.action}" id="${escapeXmlAttribute(r.id)}"><status>${r.status}</status>${message}</entry>\n`,
    );
  }
  parts.push(
    `  <stats created="${stats.created}" updated="${stats.updated}" deleted="${stats.deleted}" skipped="${stats.skipped}" failed="${stats.failed}"/>\n`,
  );
  parts.push('</flexibee-batch-result>\n');
  return parts.join('');
}
