import * as path from 'node:path';
import { callSync } from './sync-call';

export type SchemaName = 'batch' | 'batch-result' | 'winstrom-error';

const REPO_ROOT = path.resolve(__dirname, '..', '..');

export function schemaPath(schema: SchemaName): string {
  return path.join(REPO_ROOT, 'schemas', `${schema}.xsd`);
}

interface Checked {
  ok: boolean;
  messages: string[];
}

/**
 * Validates with libxml2's own xmllint (compiled to WebAssembly, see workers/xmllint.js), so the
 * schemas are checked by the tool operators use, and no system package is needed.
 */
export function assertValidXml(xml: string, schema: SchemaName): void {
  const { ok, messages } = callSync<Checked>('xmllint.js', 'check', xml, schemaPath(schema));
  if (!ok) throw new Error(`Document is not valid against ${schema}.xsd:\n${messages.join('\n')}`);
}

/** Whether xmllint finds `xml` well-formed (no schema). */
export function isWellFormed(xml: string): boolean {
  return callSync<Checked>('xmllint.js', 'check', xml, null).ok;
}
