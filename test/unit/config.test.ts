import { loadConfig, parseDuration } from '../../src/config';
import { FlexiError } from '../../src/errors';

describe('durations (SPEC §1: a number of milliseconds, or a number with ms, s, m, h or d)', () => {
  test.each([
    ['3000', 3000],
    ['3s', 3000],
    ['3000ms', 3000],
    ['1.5s', 1500],
    ['5m', 300_000],
    ['2h', 7_200_000],
    ['1d', 86_400_000],
    [' 30 S ', 30_000],
  ])('when %p is read, then it is %p milliseconds', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  test.each(['', 's', '3x', '-3s', '3 s s', '1e3', '3,5s'])('when %p is read, then it is not a duration', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });

  test('when the same duration is given as 3000 and as 3s, then the setting is the same', () => {
    const a = loadConfig({ flags: { 'request-timeout': '30000' }, env: {} });
    const b = loadConfig({ flags: {}, env: { FLEXI_REQUEST_TIMEOUT: '30s' } });
    expect(a.requestTimeoutMs).toBe(30_000);
    expect(b.requestTimeoutMs).toBe(30_000);
    expect(loadConfig({ flags: { 'session-idle': '15m', 'auth-failure-window': '2m', 'shutdown-timeout': '0' }, env: {} })).toMatchObject({
      sessionIdleMs: 900_000,
      authFailureWindowMs: 120_000,
      shutdownTimeoutMs: 0,
    });
  });

  test('when a duration is not one, or below the least the setting takes, then the usage error names the setting, the least and the forms', () => {
    const refused = (flags: Record<string, string>): FlexiError => {
      try {
        loadConfig({ flags, env: {} });
      } catch (err) {
        if (err instanceof FlexiError) return err;
      }
      throw new Error('loadConfig accepted it');
    };
    expect(refused({ 'request-timeout': 'soon' })).toMatchObject({
      code: 'usage',
      message: "request-timeout must be a duration of at least 1000 ms, such as 3000, 3s, 5m, 2h or 1d, not 'soon'",
    });
    expect(refused({ 'session-idle': '500ms' }).message).toMatch(/^session-idle must be a duration of at least 1000 ms/);
  });
});
