import fc from 'fast-check';
import { addDays, addOffsets, daysInMonth, fewestDays, localDateOf, mostDays, type DateOffset, type OffsetUnit } from '../../src/domain/dates';

const o = (amount: number, unit: OffsetUnit): DateOffset => ({ unit, amount });
const months = (n: number): DateOffset => o(n, 'months');
const days = (n: number): DateOffset => o(n, 'days');
const weeks = (n: number): DateOffset => o(n, 'weeks');

/** The due date arithmetic of SPEC §10.3: offsets in order, months clamped to the month's end. */
describe('due dates: a date plus offsets (SPEC §10.3)', () => {
  test.each<[string, string, DateOffset[], string | undefined]>([
    ['a date has no offset', '2026-11-26', [], '2026-11-26'],
    ['31 January + 1 month, common year', '2023-01-31', [months(1)], '2023-02-28'],
    ['31 January + 1 month, leap year', '2024-01-31', [months(1)], '2024-02-29'],
    ['30 November 2023 + 3 months − 5 days', '2023-11-30', [months(3), days(-5)], '2024-02-24'],
    ['29 February + 12 months', '2024-02-29', [months(12)], '2025-02-28'],
    ['29 February + 48 months', '2024-02-29', [months(48)], '2028-02-29'],
    ['31 March − 1 month, leap year', '2024-03-31', [months(-1)], '2024-02-29'],
    ['31 March − 1 month, common year', '2023-03-31', [months(-1)], '2023-02-28'],
    ['31 December + 2 months into a leap February', '2023-12-31', [months(2)], '2024-02-29'],
    ['31 August + 1 month (a 30-day month)', '2026-08-31', [months(1)], '2026-09-30'],
    ['15 January − 13 months', '2024-01-15', [months(-13)], '2022-12-15'],
    ['1 January − 1 day', '2024-01-01', [days(-1)], '2023-12-31'],
    ['28 December + 1 week', '2026-12-28', [weeks(1)], '2027-01-04'],
    ['10 March − 2 weeks', '2026-03-10', [weeks(-2)], '2026-02-24'],
    ['28 February 1900 + 1 day (1900 is no leap year)', '1900-02-28', [days(1)], '1900-03-01'],
    ['28 February 2000 + 1 day (2000 is one)', '2000-02-28', [days(1)], '2000-02-29'],
    ['30 January + 1 month + 1 day', '2023-01-30', [months(1), days(1)], '2023-03-01'],
    ['30 January + 1 day + 1 month: the order matters', '2023-01-30', [days(1), months(1)], '2023-02-28'],
    ['15 January of year 1 − 1 month leaves the calendar', '0001-01-15', [months(-1)], undefined],
    ['December 9999 + 1 month leaves the calendar', '9999-12-01', [months(1)], undefined],
    ['year 0099 + 1 month (no two-digit year trap)', '0099-12-31', [months(2)], '0100-02-28'],
  ])('when %s, then the due date is right', (_name, date, offsets, due) => {
    expect(addOffsets(date, offsets)).toBe(due);
  });

  test('when the date is not a calendar date, then addOffsets throws', () => {
    expect(() => addOffsets('2023-02-29', [])).toThrow(RangeError);
    expect(() => addOffsets('2023-2-1', [])).toThrow(RangeError);
  });

  test('when February is asked for, then leap years follow the Gregorian rules', () => {
    expect([1900, 2000, 2023, 2024, 2100, 2400].map((y) => daysInMonth(y, 2))).toEqual([28, 29, 28, 29, 28, 29]);
  });

  const dateArb = fc.date({ min: new Date(Date.UTC(1800, 0, 1)), max: new Date(Date.UTC(2300, 11, 31)), noInvalidDate: true }).map((d) => d.toISOString().slice(0, 10));
  const offsetArb = fc.record({ unit: fc.constantFrom<OffsetUnit>('days', 'weeks', 'months'), amount: fc.integer({ min: -1200, max: 1200 }) });

  test('when days are added, then the result agrees with UTC calendar arithmetic', () => {
    fc.assert(
      fc.property(dateArb, fc.integer({ min: -40000, max: 40000 }), (date, n) => {
        const expected = new Date(Date.parse(`${date}T00:00:00Z`) + n * 86_400_000).toISOString().slice(0, 10);
        expect(addDays(date, n)).toBe(expected);
      }),
    );
  });

  test('when months are added, then the day is kept or clamped to the month end, and never spills into the next month', () => {
    fc.assert(
      fc.property(dateArb, fc.integer({ min: -1200, max: 1200 }), (date, n) => {
        const due = addOffsets(date, [months(n)]) as string;
        const [y, m, d] = date.split('-').map(Number);
        const [dy, dm, dd] = due.split('-').map(Number);
        expect((dy * 12 + dm) - (y * 12 + m)).toBe(n);
        expect(dd).toBe(Math.min(d, daysInMonth(dy, dm)));
      }),
    );
  });

  test('when offsets are applied, then the due date lies between fewestDays and mostDays after the date (the store narrows its reads by them)', () => {
    fc.assert(
      fc.property(dateArb, fc.array(offsetArb, { maxLength: 2 }), (date, offsets) => {
        const due = addOffsets(date, offsets);
        if (due === undefined) return;
        expect(due >= (addDays(date, fewestDays(offsets)) as string)).toBe(true);
        expect(due <= (addDays(date, mostDays(offsets)) as string)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  test('when an instant is given, then its date is the calendar date in the server time zone', () => {
    const at = new Date(2026, 10, 26, 23, 59);
    expect(localDateOf(at)).toBe('2026-11-26');
    expect(localDateOf(at.toISOString())).toBe('2026-11-26');
  });
});
