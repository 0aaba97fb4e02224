import { parseCompareOptions } from '../../bench/compare';
import { parseOptions } from '../../bench/run';
import { groupChain, groupChainBatch } from '../../bench/workload';

/**
 * The bench's options for issue 11's speed comparison: objects in a group N levels deep, and
 * options for one build of a comparison only (the previous release knows no --group-depth).
 */
describe('npm run bench -- --group-depth', () => {
  it('when no depth is given, then every object stays in root', () => {
    expect(parseOptions([])).toMatchObject({ groupDepth: 0 });
    expect(groupChain(0)).toEqual([]);
  });

  it('when a depth of three is given, then the chain has three groups, each the child of the one before', () => {
    expect(parseOptions(['--group-depth', '3'])).toMatchObject({ groupDepth: 3 });
    expect(groupChain(3)).toEqual(['bench_1', 'bench_2', 'bench_3']);
    const batch = groupChainBatch('b', groupChain(3));
    expect(batch).toContain('<id>bench_1</id><name>Bench level 1</name><parent>root</parent>');
    expect(batch).toContain('<id>bench_3</id><name>Bench level 3</name><parent>bench_2</parent>');
  });

  it.each(['-1', '1.5', 'deep', '65'])('when the depth is %s, then the command says what it takes', (depth) => {
    expect(() => parseOptions([`--group-depth=${depth}`])).toThrow(/--group-depth must be a whole number from 0 to 64/);
  });
});

describe('npm run bench -- --subscription', () => {
  it('when it is not given, then no subscription is made; when it is, then W to D run with one', () => {
    expect(parseOptions([])).toMatchObject({ subscription: false });
    expect(parseOptions(['--subscription'])).toMatchObject({ subscription: true });
    expect(parseCompareOptions(['--base', 'HEAD', '--head-args', '--subscription'])).toMatchObject({ sideArgs: { head: ['--subscription'] } });
  });
});

describe('npm run bench:compare -- --head-args / --base-args', () => {
  it('when head-only options are given, then they go to the head only and the rest to both', () => {
    const options = parseCompareOptions(['--base', 'HEAD', '--head-args', '--group-depth 3', '--scale', '0.1']);
    expect(options).toMatchObject({ passthrough: ['--scale', '0.1'], sideArgs: { base: [], head: ['--group-depth', '3'] } });
  });

  it('when the options are given with =, then they are split on spaces', () => {
    const options = parseCompareOptions(['--base=HEAD', '--base-args=--duration  5', '--head-args=--group-depth 2']);
    expect(options).toMatchObject({ sideArgs: { base: ['--duration', '5'], head: ['--group-depth', '2'] } });
  });

  it('when a side is given an option the bench does not know, then the command names the side', () => {
    expect(() => parseCompareOptions(['--base', 'HEAD', '--head-args', '--no-such-thing'])).toThrow(/^--head-args: .*no-such-thing/);
  });
});
