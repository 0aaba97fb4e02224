/**
 * Calendar dates of the date actions (SPEC §10.3): YYYY-MM-DD in the server's time zone, with
 * offsets of days, weeks and months applied in order. Computed here rather than in SQL, where
 * SQLite's date('2023-01-31', '+1 month') is 3 March: adding months keeps the day of the month,
 * clamped to the last day of the month it lands in (31 January + 1 month = 28 or 29 February).
 *
 * The arithmetic is on whole days counted from a fixed day (the proleptic Gregorian calendar), so
 * no time zone, daylight saving switch or JavaScript Date quirk (years 0–99) can move a date.
 */
export const OFFSET_UNITS = ['days', 'weeks', 'months'] as const;
export type OffsetUnit = (typeof OFFSET_UNITS)[number];

export interface DateOffset {
  unit: OffsetUnit;
  /** May be negative. */
  amount: number;
}

export function isOffsetUnit(text: string): text is OffsetUnit {
  return (OFFSET_UNITS as readonly string[]).includes(text);
}

/** The dates the arithmetic keeps: years 1–9999, which YYYY-MM-DD can write and compare as text. */
const MIN_YEAR = 1;
const MAX_YEAR = 9999;

interface Civil {
  year: number;
  month: number;
  day: number;
}

function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

export function daysInMonth(year: number, month: number): number {
  return month === 2 ? (isLeapYear(year) ? 29 : 28) : [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/** Days since 1970-01-01 of a civil date (H. Hinnant's days_from_civil). */
function toDayNumber({ year, month, day }: Civil): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** The civil date of a day number (H. Hinnant's civil_from_days). */
function fromDayNumber(days: number): Civil {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  return { year: yoe + era * 400 + (month <= 2 ? 1 : 0), month, day };
}

function parse(date: string): Civil {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (!m) throw new RangeError(`not a date YYYY-MM-DD: ${date}`);
  const civil = { year: Number(m[1]), month: Number(m[2]), day: Number(m[3]) };
  if (civil.year < MIN_YEAR || civil.month < 1 || civil.month > 12 || civil.day < 1 || civil.day > daysInMonth(civil.year, civil.month)) {
    throw new RangeError(`not a calendar date: ${date}`);
  }
  return civil;
}

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

function format({ year, month, day }: Civil): string | undefined {
  if (year < MIN_YEAR || year > MAX_YEAR) return undefined;
  return `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}`;
}

function addMonthsTo(date: Civil, months: number): Civil {
  const total = date.year * 12 + (date.month - 1) + months;
  const year = Math.floor(total / 12);
  const month = total - year * 12 + 1;
  return { year, month, day: Math.min(date.day, daysInMonth(year, month)) };
}

function addDaysTo(date: Civil, days: number): Civil {
  return fromDayNumber(toDayNumber(date) + days);
}

/**
 * `date` plus each offset in turn: months keep the day, clamped to the month's end; weeks are 7
 * days. Undefined when the result lies outside the years 1–9999 (a due date that never comes, or
 * one that lies before anything the server can have seen).
 */
export function addOffsets(date: string, offsets: readonly DateOffset[]): string | undefined {
  let at = parse(date);
  for (const { unit, amount } of offsets) {
    at = unit === 'months' ? addMonthsTo(at, amount) : addDaysTo(at, unit === 'weeks' ? amount * 7 : amount);
    if (at.year < MIN_YEAR || at.year > MAX_YEAR) return undefined;
  }
  return format(at);
}

/** `date` plus `days` (negative: minus). */
export function addDays(date: string, days: number): string | undefined {
  return format(addDaysTo(parse(date), days));
}

/** The calendar date of an instant in the server's time zone, YYYY-MM-DD. */
export function localDateOf(instant: Date | string | number): string {
  const at = instant instanceof Date ? instant : new Date(instant);
  return `${pad(at.getFullYear(), 4)}-${pad(at.getMonth() + 1, 2)}-${pad(at.getDate(), 2)}`;
}

/**
 * The fewest days `offsets` can move a date (months are 28 to 31 days, and a clamp takes up to 3
 * off): a date more than that many days before `date` cannot reach it. Lets a store narrow the
 * objects it reads to those that may be due, before the exact arithmetic above decides.
 */
export function fewestDays(offsets: readonly DateOffset[]): number {
  let days = 0;
  for (const { unit, amount } of offsets) {
    if (unit === 'days') days += amount;
    else if (unit === 'weeks') days += amount * 7;
    else days += amount > 0 ? amount * 28 - 3 : amount * 31 - 3;
  }
  return days;
}

/** The most days `offsets` can move a date (the counterpart of fewestDays, for a lower bound). */
export function mostDays(offsets: readonly DateOffset[]): number {
  let days = 0;
  for (const { unit, amount } of offsets) {
    if (unit === 'days') days += amount;
    else if (unit === 'weeks') days += amount * 7;
    else days += amount > 0 ? amount * 31 + 3 : amount * 28 + 3;
  }
  return days;
}
