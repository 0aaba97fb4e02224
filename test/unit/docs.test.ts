import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { DEFAULTS, SETTINGS } from '../../src/config';
import { COMPANY_FIELDS } from '../../src/domain/companies';
import { ORG_TYPES_BY_COUNTRY } from '../../src/domain/org-types';
import { HASH_ALGORITHMS } from '../../src/domain/passwords';
import { PERMISSION_ALIASES, PERMISSION_NAMES } from '../../src/domain/permissions';
import { ROLE_CODES } from '../../src/domain/roles';
import { USER_FIELDS, USER_TYPES } from '../../src/domain/users';
import { createApp } from '../../src/server/app';
import type { AppDeps } from '../../src/server/context';

const REPO = resolve(__dirname, '..', '..');
/** Folders that hold no documentation of ours: dependencies, build output, local data. */
const NOT_DOCS = new Set(['node_modules', 'dist', 'dist-bench', 'data', 'coverage']);

/** Every Markdown file of the repository. */
function markdownFiles(dir = REPO): string[] {
  const found: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name.startsWith('.') || NOT_DOCS.has(name)) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...markdownFiles(path));
    else if (name.endsWith('.md')) found.push(path);
  }
  return found;
}

const shown = (path: string): string => relative(REPO, path) || '.';
const insideRepo = (path: string): boolean => path === REPO || path.startsWith(REPO + sep);

/** The text outside fenced code blocks, line by line (fenced lines become empty, so line numbers hold). */
function prose(text: string): string[] {
  let fenced = false;
  return text.split('\n').map((line) => {
    if (/^\s*```/.test(line)) {
      fenced = !fenced;
      return '';
    }
    return fenced ? '' : line;
  });
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens; repeats get -1, -2 … */
function anchorsOf(text: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of prose(text)) {
    const heading = /^#{1,6}\s+(.+?)\s*#*\s*$/.exec(line);
    if (!heading) continue;
    const slug = heading[1].toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    anchors.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return anchors;
}

/** What is wrong with the links and paths of one Markdown file: each problem as "file:line: …". */
function linkProblems(file: string, text = readFileSync(file, 'utf8')): string[] {
  const problems: string[] = [];
  const at = (index: number, problem: string): void => void problems.push(`${shown(file)}:${index + 1}: ${problem}`);
  text.split('\n').forEach((line, i) => {
    if (line.includes('../shared')) at(i, 'names ../shared, which a clone does not have');
    if (line.includes('/work/')) at(i, "names a path of this machine's workspace (/work/…)");
    // Any relative path, in prose or in code, that climbs above the repository root.
    for (const [path] of line.matchAll(/(?:\.\.\/)+[^\s`'")\]>|]*/g)) {
      if (!insideRepo(resolve(dirname(file), path))) at(i, `the path ${path} leads outside the repository`);
    }
  });
  prose(text).forEach((line, i) => {
    for (const [, target] of line.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue;
      const [path, anchor] = target.split('#', 2);
      const linked = path ? (path.startsWith('/') ? join(REPO, path) : resolve(dirname(file), path)) : file;
      if (!insideRepo(linked)) {
        at(i, `the link ${target} leads outside the repository`);
      } else if (path && !existsSync(linked)) {
        at(i, `the link ${target} names ${shown(linked)}, which does not exist`);
      } else if (anchor !== undefined && linked.endsWith('.md') && !anchorsOf(path ? readFileSync(linked, 'utf8') : text).has(anchor)) {
        at(i, `the link ${target} names a heading that ${shown(linked)} does not have`);
      }
    }
  });
  return problems;
}

const apiDoc = (): string => readFileSync(join(REPO, 'docs', 'api.md'), 'utf8');

/** The Markdown section that starts at the heading `title` and ends at the next heading of its level or above. */
function section(text: string, title: string): string {
  const lines = text.split('\n');
  const start = lines.findIndex((line) => line.replace(/^#+\s+/, '') === title && line.startsWith('#'));
  if (start < 0) throw new Error(`docs/api.md has no section "${title}"`);
  const level = /^#+/.exec(lines[start])?.[0].length ?? 1;
  const end = lines.findIndex((line, i) => i > start && new RegExp(`^#{1,${level}}\\s`).test(line));
  return lines.slice(start, end < 0 ? undefined : end).join('\n');
}

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

interface RouteLayer {
  route?: { path: string; methods: Record<string, boolean> };
  handle?: { stack?: RouteLayer[] };
}

/** Every method and path the app answers, from express's own router. */
function routesOf(stack: RouteLayer[]): Array<{ method: string; path: string }> {
  return stack.flatMap((layer) => {
    if (layer.route) {
      const { path, methods } = layer.route;
      return Object.keys(methods)
        .filter((m) => methods[m] && m !== '_all')
        .map((m) => ({ method: m.toUpperCase(), path }));
    }
    return layer.handle?.stack ? routesOf(layer.handle.stack) : [];
  });
}

describe('docs that travel with the code', () => {
  test('when every Markdown file of the repository is read, then none links or points outside the repository, and every relative link names a file and heading that exist', () => {
    const files = markdownFiles();
    expect(files.map(shown)).toEqual(expect.arrayContaining(['README.md', join('docs', 'api.md'), join('docs', 'architecture.md'), join('docs', 'security.md')]));
    expect(files.flatMap((file) => linkProblems(file))).toEqual([]);
  });

  test('when a Markdown file names ../shared, climbs above the repository root or links to what does not exist, then the check reports each', () => {
    const text = [
      '# A doc',
      '',
      'The contract is [the spec](../../shared/SPEC.md).',
      '',
      '```sh',
      'cat ../../notes/x.md   # in a code block too',
      '```',
      '',
      'Fine: [api](api.md#first-call), [readme](../README.md#configuration), [here](#a-doc).',
      'Not: [readme](../README.md#no-such-heading), [gone](missing.md), [anchor](#nowhere).',
    ].join('\n');
    expect(linkProblems(join(REPO, 'docs', 'example.md'), text)).toEqual([
      'docs/example.md:3: names ../shared, which a clone does not have',
      'docs/example.md:3: the path ../../shared/SPEC.md leads outside the repository',
      'docs/example.md:6: the path ../../notes/x.md leads outside the repository',
      'docs/example.md:3: the link ../../shared/SPEC.md leads outside the repository',
      'docs/example.md:10: the link ../README.md#no-such-heading names a heading that README.md does not have',
      'docs/example.md:10: the link missing.md names docs/missing.md, which does not exist',
      'docs/example.md:10: the link #nowhere names a heading that docs/example.md does not have',
    ]);
  });

  test('when the server is built, then docs/api.md lists every method and path it answers in its endpoints table', () => {
    const app = createApp({ config: DEFAULTS } as unknown as AppDeps) as unknown as { router: { stack: RouteLayer[] } };
    const routes = routesOf(app.router.stack);
    expect(routes.length).toBeGreaterThan(10);
    const rows = section(apiDoc(), 'Endpoints')
      .split('\n')
      .filter((line) => line.startsWith('| `'))
      .map((line) => line.split('|').map((cell) => cell.trim()));
    const undocumented = routes.filter(({ method, path }) => {
      // `:id` in a route is written `{id}` (or another name in braces) in the doc.
      const pattern = new RegExp(`\`${path.split(/:\w+/).map(escapeRegExp).join('\\{\\w+\\}[^`]*')}\``);
      return !rows.some(([, methods, paths]) => methods.includes(`\`${method}\``) && pattern.test(paths));
    });
    expect(undocumented).toEqual([]);
  });

  test('when the settings are listed, then docs/api.md and the README name each flag and environment variable', () => {
    for (const [name, text] of [['docs/api.md', section(apiDoc(), 'Configuration')], ['README.md', readFileSync(join(REPO, 'README.md'), 'utf8')]]) {
      const missing = Object.values(SETTINGS)
        .filter((s) => !(text.includes(`\`--${s.flag}\``) || (s.boolean && text.includes(`\`--no-${s.flag}\``))) || !text.includes(`\`${s.env}`))
        .map((s) => `${name}: --${s.flag} / ${s.env}`);
      expect(missing).toEqual([]);
    }
    expect(section(apiDoc(), 'Configuration')).toMatch(/`--config` \| `FLEXI_CONFIG`/);
  });

  test('when the domain lists are read, then docs/api.md names every field, permission, role, organisation type, user type and hash algorithm', () => {
    const doc = apiDoc();
    const names = [
      ...USER_FIELDS.map((f) => f.name),
      ...COMPANY_FIELDS.map((f) => f.name),
      ...PERMISSION_NAMES,
      ...Object.keys(PERMISSION_ALIASES),
      ...ROLE_CODES,
      ...Object.values(ORG_TYPES_BY_COUNTRY).flat(),
      ...USER_TYPES,
      ...HASH_ALGORITHMS,
    ];
    expect(names.filter((name) => !doc.includes(`\`${name}\``))).toEqual([]);
  });
});
