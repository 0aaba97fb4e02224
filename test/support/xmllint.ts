import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export type SchemaName = 'batch' | 'batch-result' | 'winstrom-error';

const REPO_ROOT = path.resolve(__dirname, '..', '..');

export function schemaPath(schema: SchemaName): string {
  return path.join(REPO_ROOT, 'schemas', `${schema}.xsd`);
}

/** Validates with the real xmllint, so the schemas are checked by the tool operators use. */
export function assertValidXml(xml: string, schema: SchemaName): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flexi-xmllint-'));
  const file = path.join(dir, 'document.xml');
  try {
    fs.writeFileSync(file, xml);
    execFileSync('xmllint', ['--noout', '--nonet', '--schema', schemaPath(schema), file], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    const error = err as NodeJS.ErrnoException & { stderr?: Buffer };
    if (error.code === 'ENOENT') {
      throw new Error('xmllint is not installed (apt-get install libxml2-utils).');
    }
    const stderr = error.stderr?.toString().trim();
    throw new Error(`Document is not valid against ${schema}.xsd:\n${stderr || error.message}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
