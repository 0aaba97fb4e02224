import * as fs from 'node:fs';
import * as path from 'node:path';
import { assertValidXml } from '../support/xmllint';

const FIXTURES = path.resolve(__dirname, '..', '..', 'fixtures');
// The in-repository copies (fixtures/README.md): a fresh clone has no ../shared next to it.
const SEED_SAMPLES = path.join(FIXTURES, 'seed-samples');

/** Every *.xml under fixtures/, relative to it: results under an expected/ folder, batches elsewhere. */
function fixtureFiles(): string[] {
  const walk = (dir: string): string[] =>
    fs
      .readdirSync(dir, { withFileTypes: true })
      .flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : e.name.endsWith('.xml') ? [path.join(dir, e.name)] : []));
  return walk(FIXTURES)
    .map((file) => path.relative(FIXTURES, file))
    .sort();
}

const isResult = (file: string): boolean => file.split(path.sep).includes('expected');

const SPEC_RESULT_EXAMPLE = `<?xml version="1.0" encoding="UTF-8"?>
<flexibee-batch-result id="abc-123">
  <entry type="USER" action="CREATE_UPDATE" id="anna.mlada"><status>CREATED</status></entry>
  <entry type="COMPANY" action="CREATE_UPDATE" id="moje_firma_s_r_o_"><status>CREATED</status></entry>
  <entry type="COMPANY" action="DELETE" id="demo_a_s_"><status>SKIPPED</status><message>company does not exist</message></entry>
  <entry type="ACCESS_LIST" action="CREATE_UPDATE" id="anna.mlada@moje_firma_s_r_o_"><status>SKIPPED</status></entry>
  <stats created="2" updated="0" deleted="0" skipped="2" failed="0"/>
</flexibee-batch-result>
`;

function seedSamples(): string[] {
  return fs
    .readdirSync(SEED_SAMPLES)
    .filter((name) => name.endsWith('.xml'))
    .sort();
}

describe('batch.xsd', () => {
  it('when the seed samples are listed, then all eight are found (each is validated with every fixture below)', () => {
    expect(seedSamples()).toHaveLength(8);
  });

  it('when a batch has no id, then it is invalid', () => {
    expect(() => assertValidXml('<flexibee-batch><user><username>a</username></user></flexibee-batch>', 'batch')).toThrow(
      /'id' is required/,
    );
  });

  it('when a batch sets atomic and dry-run, then it is valid', () => {
    assertValidXml('<flexibee-batch id="x" atomic="true" dry-run="false"><access user="a" role="ADMIN">c</access></flexibee-batch>', 'batch');
  });

  it('when an action is neither create-update nor delete, then it is invalid', () => {
    expect(() => assertValidXml('<flexibee-batch id="x"><company action="remove"><id>c</id></company></flexibee-batch>', 'batch')).toThrow(
      /create-update/,
    );
  });

  it('when a user uses the licenseMgmt alias and a pbkdf2 password, then it is valid', () => {
    assertValidXml(
      `<flexibee-batch id="x"><user>
         <username>a</username>
         <password hash="pbkdf2" salt="s" iterations="600000">00ff</password>
         <permissions><licenseMgmt>true</licenseMgmt></permissions>
       </user></flexibee-batch>`,
      'batch',
    );
  });
});

describe('batch.xsd: <dateAction> (SPEC §10.3)', () => {
  const TRIAL_END = `<dateAction action="create-update">
    <id>trial-end</id>
    <entity>USER</entity>
    <field>validUntil</field>
    <offset unit="months">3</offset>
    <offset unit="days">-5</offset>
    <do>block</do>
    <message>Your trial has ended.</message>
    <licenseGroup>partner_a</licenseGroup>
    <active>true</active>
  </dateAction>`;
  const batch = (inner: string): string => `<flexibee-batch id="x">${inner}</flexibee-batch>`;

  it('when the example of SPEC §10.3 and a delete by id are validated, then they are valid', () => {
    assertValidXml(batch(TRIAL_END + '<dateAction action="delete"><id>trial-end</id></dateAction>'), 'batch');
  });

  it('when a date action has three offsets, an offset in years or an entity other than USER and COMPANY, then it is invalid', () => {
    const third = TRIAL_END.replace('<do>', '<offset unit="weeks">1</offset><do>');
    expect(() => assertValidXml(batch(third), 'batch')).toThrow(/offset/);
    expect(() => assertValidXml(batch(TRIAL_END.replace('unit="months"', 'unit="years"')), 'batch')).toThrow(/years/);
    expect(() => assertValidXml(batch(TRIAL_END.replace('<entity>USER', '<entity>GROUP')), 'batch')).toThrow(/GROUP/);
  });
});

describe('every fixture', () => {
  it('when fixtures/ is listed, then it holds batches and golden results', () => {
    expect(fixtureFiles().filter((f) => !isResult(f)).length).toBeGreaterThanOrEqual(8);
    expect(fixtureFiles().filter(isResult).length).toBeGreaterThanOrEqual(8);
  });

  it.each(fixtureFiles().filter((f) => !isResult(f)))('when the batch fixtures/%s is validated, then it is valid against batch.xsd', (file) => {
    assertValidXml(fs.readFileSync(path.join(FIXTURES, file), 'utf8'), 'batch');
  });

  it.each(fixtureFiles().filter(isResult))('when the result fixtures/%s is validated, then it is valid against batch-result.xsd', (file) => {
    assertValidXml(fs.readFileSync(path.join(FIXTURES, file), 'utf8'), 'batch-result');
  });
});

describe('batch-result.xsd', () => {
  it('when the example of SPEC §5.1 is validated, then it is valid', () => {
    assertValidXml(SPEC_RESULT_EXAMPLE, 'batch-result');
  });

  it('when a result has a DATE_ACTION entry, then it is valid', () => {
    assertValidXml(SPEC_RESULT_EXAMPLE.replace('type="USER"', 'type="DATE_ACTION"'), 'batch-result');
  });

  it('when an entry has a status outside the five known ones, then it is invalid', () => {
    const bad = SPEC_RESULT_EXAMPLE.replace('<status>CREATED</status>', '<status>DONE</status>');
    expect(() => assertValidXml(bad, 'batch-result')).toThrow(/DONE/);
  });

  it('when the stats element is missing, then it is invalid', () => {
    const bad = SPEC_RESULT_EXAMPLE.replace(/\s*<stats[^>]*\/>/, '');
    expect(() => assertValidXml(bad, 'batch-result')).toThrow(/stats/);
  });

  it('when a stats counter is negative, then it is invalid', () => {
    const bad = SPEC_RESULT_EXAMPLE.replace('failed="0"', 'failed="-1"');
    expect(() => assertValidXml(bad, 'batch-result')).toThrow(/failed/);
  });
});

describe('winstrom-error.xsd', () => {
  it('when the error envelope of SPEC §3 is validated, then it is valid', () => {
    assertValidXml(
      '<?xml version="1.0" encoding="UTF-8"?>\n<winstrom version="1.0"><success>false</success><message>The batch id is missing.</message></winstrom>',
      'winstrom-error',
    );
  });

  it('when the envelope has no message, then it is invalid', () => {
    expect(() => assertValidXml('<winstrom version="1.0"><success>false</success></winstrom>', 'winstrom-error')).toThrow(
      /message/,
    );
  });
});
