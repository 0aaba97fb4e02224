import { addOffsets, OFFSET_UNITS, type DateOffset, type OffsetUnit } from './dates';
import type { GuardedOperation } from './permissions';

/**
 * Date actions (SPEC §10.3): "when an object's date plus these offsets has come, do this". The
 * record as a batch sets it and the store keeps it, and the rules that tie its parts together
 * (which fields and which actions belong to which entity). What fired is the task runner's
 * (src/tasks/date-actions.ts).
 */
export const DATE_ACTION_ID_PATTERN = /^[a-z0-9_-]{1,64}$/;

export const DATE_ACTION_ENTITIES = ['USER', 'COMPANY'] as const;
export type DateActionEntity = (typeof DATE_ACTION_ENTITIES)[number];

export const DATE_ACTION_FIELDS = ['validUntil', 'createdAt', 'lastLoginAt'] as const;
export type DateActionField = (typeof DATE_ACTION_FIELDS)[number];

export const DATE_ACTION_DOS = ['remind', 'block', 'hide', 'delete'] as const;
export type DateActionDo = (typeof DATE_ACTION_DOS)[number];

/** The fields and actions each entity has, in the order SPEC §10.3 lists them. */
export const FIELDS_OF: Readonly<Record<DateActionEntity, readonly DateActionField[]>> = {
  USER: ['validUntil', 'createdAt', 'lastLoginAt'],
  COMPANY: ['validUntil', 'createdAt'],
};
export const DOS_OF: Readonly<Record<DateActionEntity, readonly DateActionDo[]>> = {
  USER: ['remind', 'block', 'delete'],
  COMPANY: ['remind', 'hide', 'delete'],
};

/** None, one or two offsets (SPEC §10.3). */
export const MAX_OFFSETS = 2;
/** The largest amount of each unit: a century, far beyond any contract, and inside the calendar. */
export const OFFSET_LIMITS: Readonly<Record<OffsetUnit, number>> = { days: 36_600, weeks: 5_300, months: 1_200 };

export interface DateActionRecord {
  id: string;
  entity: DateActionEntity;
  field: DateActionField;
  /** Applied in order; an offset of 0 is left out (it moves no date). */
  offsets: DateOffset[];
  do: DateActionDo;
  /** The block message of `block`, the text of a `remind`'s REMINDER event. */
  message: string | null;
  licenseGroup: string;
  active: boolean;
}

export const isDateActionEntity = (text: string): text is DateActionEntity => (DATE_ACTION_ENTITIES as readonly string[]).includes(text);
export const isDateActionField = (text: string): text is DateActionField => (DATE_ACTION_FIELDS as readonly string[]).includes(text);
export const isDateActionDo = (text: string): text is DateActionDo => (DATE_ACTION_DOS as readonly string[]).includes(text);

/** Why an offset's amount is not one the server takes, or undefined. */
export function offsetProblem(unit: OffsetUnit, text: string): string | undefined {
  const limit = OFFSET_LIMITS[unit];
  if (/^[+-]?\d{1,6}$/.test(text) && Math.abs(Number(text)) <= limit) return undefined;
  return `<offset unit="${unit}"> must be a whole number from -${limit} to ${limit}, not '${text.slice(0, 40)}'`;
}

export const unknownUnitMessage = (unit: string): string => `unknown offset unit '${unit.slice(0, 40)}'; expected ${OFFSET_UNITS.join(', ')}`;

/** Why a date action, as it would be stored, does not hold together (a field or an action of another entity), or undefined. */
export function dateActionProblem(action: DateActionRecord): string | undefined {
  const fields = FIELDS_OF[action.entity];
  if (!fields.includes(action.field)) return `field ${action.field} does not belong to ${action.entity}; expected ${fields.join(', ')}`;
  const dos = DOS_OF[action.entity];
  if (!dos.includes(action.do)) return `do ${action.do} does not apply to ${action.entity}; expected ${dos.join(', ')}`;
  return undefined;
}

/** Offsets that move a date: zero amounts dropped, so `<offset unit="days">0</offset>` is the same action as none. */
export function normalOffsets(offsets: readonly DateOffset[]): DateOffset[] {
  return offsets.filter((o) => o.amount !== 0).map((o) => ({ unit: o.unit, amount: o.amount }));
}

export function sameDateAction(a: DateActionRecord, b: DateActionRecord): boolean {
  return (
    a.id === b.id &&
    a.entity === b.entity &&
    a.field === b.field &&
    a.offsets.length === b.offsets.length &&
    a.offsets.every((o, i) => o.unit === b.offsets[i].unit && o.amount === b.offsets[i].amount) &&
    a.do === b.do &&
    a.message === b.message &&
    a.licenseGroup === b.licenseGroup &&
    a.active === b.active
  );
}

/** The due date of an object whose field holds `date` (YYYY-MM-DD), or undefined when it falls outside the calendar. */
export function dueDateOf(action: Pick<DateActionRecord, 'offsets'>, date: string): string | undefined {
  return addOffsets(date, action.offsets);
}

/** "validUntil + 3 months − 5 days", for `tasks plan` and the logs. */
export function describeSchedule(action: Pick<DateActionRecord, 'field' | 'offsets'>): string {
  return [action.field, ...action.offsets.map((o) => `${o.amount < 0 ? '-' : '+'} ${Math.abs(o.amount)} ${o.unit}`)].join(' ');
}

/**
 * What an acting user must itself be allowed to do to set up an action that does this (SPEC §6):
 * the runs act with the task user's permissions, which may be more than the actor's, so without
 * it a user could schedule what it may not do. Reminders change nothing.
 */
export function scheduledOperation(action: Pick<DateActionRecord, 'entity' | 'do'>): GuardedOperation | undefined {
  if (action.do === 'block') return 'changeOthersFields';
  if (action.do === 'hide') return 'scheduleHide';
  if (action.do === 'delete') return action.entity === 'USER' ? 'deleteUser' : 'deleteCompany';
  return undefined;
}
