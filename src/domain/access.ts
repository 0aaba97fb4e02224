import type { RoleCode } from './roles';

export interface AccessRecord {
  userKey: string;
  companyId: string;
  role: RoleCode;
}
