import { dateField, textField, type PlainValues } from './fields';
import type { Country } from './org-types';

/** The fields of a company that a batch only sets and the listings only show (domain/fields.ts). */
export const COMPANY_FIELDS = [
  textField('regNo', 'reg_no', { max: 32, pattern: /^[0-9A-Za-z]+$/, mismatch: (text) => `regNo '${text}' must contain only digits and letters` }),
  textField('vatId', 'vat_id', {
    max: 16,
    normalize: (text) => text.toUpperCase(),
    pattern: /^[A-Z]{2}[0-9A-Z]{1,14}$/,
    mismatch: (text) => `vatId '${text}' is not valid: a country code followed by digits, such as CZ12345678`,
  }),
  dateField('validUntil', 'valid_until'),
] as const;

export type CompanyFieldValues = PlainValues<typeof COMPANY_FIELDS>;

export interface CompanyRecord extends CompanyFieldValues {
  id: string;
  name: string;
  country: Country;
  type: string;
  show: boolean;
  licenseGroup: string;
}
