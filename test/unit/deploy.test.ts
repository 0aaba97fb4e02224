import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { tmpdir } from 'node:os';

const REPO = resolve(__dirname, '..', '..');
const UNITS = ['flexi-admin.service', 'flexi-admin-tasks.service'];
/** Where the units expect node and the release (README "Install as a service"). */
const NODE = '/usr/bin/node';
const INSTALLED = '/opt/flexi-admin';

const onPath = (program: string): string | undefined =>
  (process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, program)).find((path) => existsSync(path));
const analyze = onPath('systemd-analyze');

/** `Key=value` lines of one section of a unit file, repeated keys kept in order. */
function section(text: string, name: string): Array<[string, string]> {
  const lines = text.split('\n');
  const start = lines.indexOf(`[${name}]`);
  if (start < 0) return [];
  const out: Array<[string, string]> = [];
  for (const line of lines.slice(start + 1)) {
    if (line.startsWith('[')) break;
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) out.push([m[1], m[2]]);
  }
  return out;
}
const value = (text: string, name: string, key: string): string | undefined => section(text, name).find(([k]) => k === key)?.[1];
const unit = (name: string): string => readFileSync(join(REPO, 'deploy', name), 'utf8');

/** SPEC §10.4: deploy/ holds systemd units for the server and a separate task runner, which systemd-analyze verify accepts. */
describe('deploy/ systemd units (SPEC §10.4)', () => {
  test('when the units are read, then both run the installed release as the unprivileged user flexi-admin, restart on failure and stop with SIGTERM', () => {
    for (const name of UNITS) {
      const text = unit(name);
      expect({ name, user: value(text, 'Service', 'User'), restart: value(text, 'Service', 'Restart'), stop: value(text, 'Service', 'KillSignal') }).toEqual({
        name,
        user: 'flexi-admin',
        restart: 'on-failure',
        stop: 'SIGTERM',
      });
      expect(value(text, 'Install', 'WantedBy')).toBe('multi-user.target');
    }
    expect(value(unit('flexi-admin.service'), 'Service', 'ExecStart')).toBe(`${NODE} ${INSTALLED}/bin/flexi-admin.js serve --no-tasks`);
    expect(value(unit('flexi-admin-tasks.service'), 'Service', 'ExecStart')).toBe(`${NODE} ${INSTALLED}/bin/flexi-admin.js tasks`);
    // The server runs without its runner, so it brings the runner's unit along: the tasks are never left off.
    expect(value(unit('flexi-admin.service'), 'Unit', 'Wants')?.split(/\s+/)).toContain('flexi-admin-tasks.service');
    expect(existsSync(join(REPO, 'bin', 'flexi-admin.js'))).toBe(true);
  });

  // systemd-analyze checks that ExecStart's program exists. The copy points at this machine's node
  // and this checkout instead of /usr/bin/node and /opt/flexi-admin; every other line is verified as it is.
  (analyze ? test : test.skip)('when systemd-analyze verify checks the units (with the node and the release of this machine), then it accepts them without a complaint', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flexi-units-'));
    try {
      for (const name of UNITS) writeFileSync(join(dir, name), unit(name).replaceAll(NODE, process.execPath).replaceAll(INSTALLED, REPO));
      const result = await new Promise<{ code: number; output: string }>((done) => {
        execFile(analyze as string, ['verify', ...UNITS.map((name) => join(dir, name))], { encoding: 'utf8', timeout: 60_000 }, (error, stdout, stderr) => {
          done({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, output: `${stdout}${stderr}` });
        });
      });
      // Warnings about the host's own units are not ours; any line naming ours (an unknown key, a bad value) is.
      const ours = result.output.split('\n').filter((line) => UNITS.some((name) => line.includes(name)) || line.includes(dir));
      expect({ code: result.code, ours }).toEqual({ code: 0, ours: [] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
