/**
 * Plain fields: values a batch only sets, the store only keeps and the listings only show. Each
 * is described once here — its element (also its record property and listing key), its column,
 * and how its text is read — and the batch reader, the planner, the store and the views all go
 * through these lists. Adding such a field to users or companies is an entry in USER_FIELDS or
 * COMPANY_FIELDS plus a migration that adds its column (docs/architecture.md).
 */
export type FieldReading = { value: string | null } | { error: string };

export interface PlainField<N extends string = string> {
  /** The element in a batch, the record property, and the key in listings. */
  readonly name: N;
  readonly column: string;
  /** The stored value of the element's text (already trimmed; empty clears the field), or why it is not valid. */
  readonly read: (text: string) => FieldReading;
}

export const MAX_TEXT = 255;

interface TextRule {
  max?: number;
  pattern?: RegExp;
  /** Why a text that does not match `pattern` is wrong, with the text quoted. */
  mismatch?: (text: string) => string;
  normalize?: (text: string) => string;
}

export function textField<N extends string>(name: N, column: string, rule: TextRule = {}): PlainField<N> {
  const max = rule.max ?? MAX_TEXT;
  return {
    name,
    column,
    read(raw) {
      if (raw.length > max) return { error: `<${name}> is longer than ${max} characters` };
      const text = rule.normalize ? rule.normalize(raw) : raw;
      if (!text) return { value: null };
      if (rule.pattern && !rule.pattern.test(text)) return { error: rule.mismatch?.(raw) ?? `<${name}> '${raw}' is not valid` };
      return { value: text };
    },
  };
}

/** A calendar date, YYYY-MM-DD, that exists (2023-02-29 does not). */
export function isCalendarDate(text: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!m) return false;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const date = new Date(Date.UTC(year, month - 1, day));
  return year >= 1 && date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

export function dateField<N extends string>(name: N, column: string): PlainField<N> {
  return {
    name,
    column,
    read(text) {
      if (!text) return { value: null };
      if (!isCalendarDate(text)) return { error: `<${name}> '${text.slice(0, 40)}' is not a date; expected YYYY-MM-DD, such as 2026-12-31` };
      return { value: text };
    },
  };
}

export type PlainValues<F extends readonly PlainField[]> = { [K in F[number]['name']]: string | null };

const empties = new WeakMap<readonly PlainField[], Readonly<Record<string, null>>>();

/** Every field of `fields` as null: a record as it is first created (a fresh object each time; the template is made once per list). */
export function emptyValues<F extends readonly PlainField[]>(fields: F): PlainValues<F> {
  let template = empties.get(fields);
  if (!template) empties.set(fields, (template = Object.freeze(Object.fromEntries(fields.map((f) => [f.name, null])))));
  return { ...template } as PlainValues<F>;
}

/** Whether two records agree in every field of `fields`. */
export function sameValues<F extends readonly PlainField[]>(fields: F, a: PlainValues<F>, b: PlainValues<F>): boolean {
  return fields.every((f) => a[f.name as F[number]['name']] === b[f.name as F[number]['name']]);
}

/** Sets on `record` each field that `given` names (undefined: not given, left as it is). */
export function assignValues<F extends readonly PlainField[]>(fields: F, record: PlainValues<F>, given: Partial<PlainValues<F>>): void {
  for (const f of fields) {
    const name = f.name as F[number]['name'];
    const value = given[name];
    if (value !== undefined) record[name] = value;
  }
}
