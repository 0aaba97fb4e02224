/** The license group every object lives in until license groups (SPEC §7) land. */
export const ROOT_GROUP = 'root';

export type CredentialKind = 'certificate' | 'password' | 'session' | 'cli' | 'tasks';

/**
 * Who sends a request. `scope` is the license group the credential is bound to (the root
 * for now); `actingUser` is set when the request runs as a stored user (impersonation or
 * session) and then that user's permissions apply.
 */
export interface Principal {
  kind: CredentialKind;
  /** The credential itself: fingerprint, server username, session user or "cli". */
  name: string;
  label?: string;
  scope: string;
  actingUser?: string;
}

export function describePrincipal(p: Principal): string {
  const who = `${p.kind}:${p.label ?? p.name}`;
  return p.actingUser ? `${who} as ${p.actingUser}` : who;
}

/**
 * The credential as events name it (SPEC §10.1 `actor.credential`): `certificate AB:CD:…`,
 * `server NAME`, `session`, `cli` or `tasks`.
 */
export function eventCredential(p: Principal): string {
  switch (p.kind) {
    case 'certificate':
      return `certificate ${p.name}`;
    case 'password':
      return `server ${p.name}`;
    default:
      return p.kind;
  }
}
