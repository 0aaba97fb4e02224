import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { bit } from '../src/store/rows';
import type { BaselineRows } from './sqlite-baseline';
import { PostgresStore, withDefaultUser } from '../src/store/postgres/postgres-store';

/**
 * The PostgreSQL floor of the batch benchmark (`npm run bench --db postgres://…`, phase E), the
 * twin of writeBaseline in sqlite-baseline.ts: the same rows written straight into an empty,
 * migrated database with node-postgres, plain INSERTs in one transaction, nothing else (no HTTP,
 * no XML, no snapshot, no planning, no journal, no lock). Each table is one multi-row INSERT over
 * unnest() of one array per column, the fastest plain way over the wire; a round trip per row
 * would measure the network rather than the store.
 *
 * The rows go into a scratch database created for this next to the one `url` names (on the same
 * server, so the role needs CREATEDB) and dropped afterwards; the database of `url` is not touched.
 * Resolves with the milliseconds from the first INSERT to the end of the commit.
 */
export async function writePostgresBaseline(url: string, rows: BaselineRows): Promise<number> {
  const scratch = `flexi_baseline_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: withDefaultUser(url) });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${scratch}`);
    try {
      const target = new URL(withDefaultUser(url));
      target.pathname = `/${scratch}`;
      return await insertRows(target.toString(), rows);
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${scratch} WITH (FORCE)`);
    }
  } finally {
    await admin.end();
  }
}

async function insertRows(url: string, rows: BaselineRows): Promise<number> {
  await (await PostgresStore.open(url, { poolSize: 1 })).close();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const now = new Date().toISOString();
    const started = process.hrtime.bigint();
    await client.query('BEGIN');
    const users = rows.users;
    await client.query(
      `INSERT INTO users (key, username, email, given_name, family_name, password_hash,
          perm_manage_all, perm_create_company, perm_delete_company, perm_create_user,
          perm_change_password, perm_grant_permission, perm_license_management,
          default_role, blocked, block_message, user_type, deleted, license_group, created_at, updated_at)
        SELECT *, $19::text, $19::text FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
          $7::int[], $8::int[], $9::int[], $10::int[], $11::int[], $12::int[], $13::int[],
          $14::text[], $15::int[], $16::text[], $17::text[], $18::int[], $20::text[])`,
      [
        users.map((u) => u.key), users.map((u) => u.username), users.map((u) => u.email), users.map((u) => u.givenName),
        users.map((u) => u.familyName), users.map((u) => u.passwordHash),
        users.map((u) => bit(u.permissions.manageAll)), users.map((u) => bit(u.permissions.createCompany)),
        users.map((u) => bit(u.permissions.deleteCompany)), users.map((u) => bit(u.permissions.createUser)),
        users.map((u) => bit(u.permissions.changePassword)), users.map((u) => bit(u.permissions.grantPermission)),
        users.map((u) => bit(u.permissions.licenseManagement)),
        users.map((u) => u.defaultRole), users.map((u) => bit(u.blocked)), users.map((u) => u.blockMessage),
        users.map((u) => u.userType), users.map((u) => bit(u.deleted)), now, users.map((u) => u.licenseGroup),
      ],
    );
    const companies = rows.companies;
    await client.query(
      `INSERT INTO companies (id, name, country, reg_no, vat_id, type, show, license_group, created_at, updated_at)
        SELECT *, $9::text, $9::text FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[], $8::text[])`,
      [
        companies.map((c) => c.id), companies.map((c) => c.name), companies.map((c) => c.country), companies.map((c) => c.regNo),
        companies.map((c) => c.vatId), companies.map((c) => c.type), companies.map((c) => bit(c.show)), companies.map((c) => c.licenseGroup), now,
      ],
    );
    const access = rows.access;
    await client.query(
      `INSERT INTO access (user_key, company_id, role, created_at, updated_at)
        SELECT *, $4::text, $4::text FROM unnest($1::text[], $2::text[], $3::text[])`,
      [access.map((a) => a.userKey), access.map((a) => a.companyId), access.map((a) => a.role), now],
    );
    await client.query('COMMIT');
    return Number(process.hrtime.bigint() - started) / 1e6;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    await client.end();
  }
}
