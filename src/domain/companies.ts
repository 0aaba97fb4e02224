import type { Country } from './org-types';

export interface CompanyRecord {
  id: string;
  name: string;
  country: Country;
  regNo: string | null;
  vatId: string | null;
  type: string;
  show: boolean;
  licenseGroup: string;
}
