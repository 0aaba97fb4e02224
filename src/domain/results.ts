/** What the result document of a batch says of each operation (SPEC §5.1). */
export type EntityType = 'USER' | 'COMPANY' | 'ACCESS_LIST' | 'LICENSE_GROUP' | 'DATE_ACTION' | 'SUBSCRIPTION' | 'UNKNOWN';

export type Status = 'CREATED' | 'UPDATED' | 'DELETED' | 'FAILED' | 'SKIPPED';

export interface OperationResult {
  type: EntityType;
  action: 'CREATE_UPDATE' | 'DELETE';
  id: string;
  status: Status;
  message?: string;
}
