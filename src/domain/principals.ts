/** The license group every object lives in until license groups (SPEC §7) land. */
export const ROOT_GROUP = 'root';

export type CredentialKind = 'certificate' | 'password' | 'session' | 'cli';

/**
 * Who sends a request. `scope` is the license group the credential is bound to (the root
 * for now); `actingUser` is set when the request runs as a stored user (impersonation or
 * session) and then that user's permissions apply.
 */
export interface Principal {
  kind: CredentialKind;
  name: string;
  scope: string;
  actingUser?: string;
}

export function describePrincipal(p: Principal): string {
  return p.actingUser ? `${p.kind}:${p.name} as ${p.actingUser}` : `${p.kind}:${p.name}`;
}
