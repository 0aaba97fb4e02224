'use strict';
// Queries for the synchronous PostgreSQL test helpers (test/support/postgres-dump.ts), run in this
// worker thread with node-postgres: no psql, and one connection per database kept across calls.
const pg = require('pg');

// BIGINT (count(*), sequences, epoch milliseconds) as JS numbers, as the store reads them.
const types = { getTypeParser: (oid, format) => (oid === 20 ? (v) => Number(v) : pg.types.getTypeParser(oid, format)) };

const clients = new Map();

async function clientOf(url) {
  let client = clients.get(url);
  if (!client) {
    client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000, types });
    // A connection the server ended (a database dropped WITH (FORCE), a cluster stopped) is made anew next time.
    client.on('error', () => clients.delete(url));
    clients.set(url, client);
    try {
      await client.connect();
    } catch (err) {
      clients.delete(url);
      throw err;
    }
  }
  return client;
}

// Codes of a connection the server ended: terminated by pg_terminate_backend (the helpers end
// other connections to a database before emptying it), or a server that restarted.
const ENDED = new Set(['57P01', '57P02', '57P03']);

async function run(url, sql, params) {
  const client = await clientOf(url);
  try {
    const result = await client.query(sql, params && params.length ? params : undefined);
    const last = Array.isArray(result) ? result[result.length - 1] : result;
    return last.rows;
  } catch (err) {
    if (!err.severity || ENDED.has(err.code)) {
      clients.delete(url);
      client.end().catch(() => undefined);
      err.connectionEnded = true;
    }
    throw err;
  }
}

/** The rows of one statement (or of the last of several, without parameters); once more on a new connection when the kept one was ended. */
async function query(url, sql, params) {
  try {
    return await run(url, sql, params);
  } catch (err) {
    if (!err.connectionEnded) throw err;
    return run(url, sql, params);
  }
}

/** Closes the connection to one database, before it is dropped. */
async function disconnect(url) {
  const client = clients.get(url);
  clients.delete(url);
  if (client) await client.end().catch(() => undefined);
}

module.exports = { query, disconnect };
