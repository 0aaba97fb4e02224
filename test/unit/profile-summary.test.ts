import { stageOf, summarize } from '../../bench/profile-summary';

describe('bench/profile-summary: where a profiled server spent its time', () => {
  const frame = (functionName: string, url: string) => ({ functionName, url });

  test('when functions come from the batch path, then each is counted in its stage', () => {
    expect(stageOf(frame('startTag', 'file:///r/dist-bench/src/xml/reader.js'))).toBe('XML reading (xml/reader.ts)');
    expect(stageOf(frame('renderResult', 'file:///r/dist-bench/src/xml/result.js'))).toBe('writing the answer (xml/, answer.ts)');
    expect(stageOf(frame('readUser', 'file:///r/dist-bench/src/batch/parse.js'))).toBe('operation reading (parse.ts)');
    expect(stageOf(frame('grant', 'file:///r/dist-bench/src/batch/plan.js'))).toBe('planning (plan.ts, domain)');
    expect(stageOf(frame('exec', 'file:///r/node_modules/better-sqlite3/lib/methods/wrappers.js'))).toBe('SQLite BEGIN/COMMIT (the durable commit)');
    expect(stageOf(frame('apply', 'file:///r/dist-bench/src/store/sql-store.js'))).toBe('store: snapshot, writes, journal (and the pg driver)');
    expect(stageOf(frame('insert', 'file:///r/dist-bench/src/store/sqlite/sqlite-driver.js'))).toBe('store: snapshot, writes, journal (and the pg driver)');
    expect(stageOf(frame('writeHead', 'node:_http_server'))).toBe('HTTP, TLS, express and the rest');
  });

  test('when a profile has start-up and idle samples, then they are left out and the shares of the rest add up to 100 %', () => {
    const summary = summarize({
      nodes: [
        { id: 1, callFrame: frame('generateKeyPairSync', 'node:internal/crypto/keygen') },
        { id: 2, callFrame: frame('(idle)', '') },
        { id: 3, callFrame: frame('startTag', 'file:///r/src/xml/reader.js') },
        { id: 4, callFrame: frame('(garbage collector)', '') },
      ],
      samples: [1, 2, 3, 3, 4],
      timeDeltas: [5000, 7000, 1000, 2000, 1000],
    });
    expect(summary).toEqual({
      busyMs: 4,
      stages: [
        { stage: 'XML reading (xml/reader.ts)', ms: 3, share: 75 },
        { stage: 'garbage collection', ms: 1, share: 25 },
      ],
    });
  });
});
