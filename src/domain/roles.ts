export const ROLE_CODES = [
  'ADMIN',
  'SUPERUZIVATEL',
  'UZIVATEL',
  'OBCHODNIK',
  'UCETNI',
  'MZDOVYUCETNI',
  'SKLADNIK',
  'SKLADNIKSPOKLADNOU',
  'JENCIST',
  'ZABLOKOVAN',
] as const;

export type RoleCode = (typeof ROLE_CODES)[number];

export const DEFAULT_ROLE: RoleCode = 'UZIVATEL';

/** Names from the translated copies of the original documentation. */
const ROLE_ALIASES: Readonly<Record<string, RoleCode>> = {
  SUPERUSER: 'SUPERUZIVATEL',
  USER: 'UZIVATEL',
  BENUTZER: 'UZIVATEL',
  HANDELSMANAGER: 'OBCHODNIK',
  LAGERHALTER: 'SKLADNIK',
  GESPERRT: 'ZABLOKOVAN',
};

const CODES = new Set<string>(ROLE_CODES);

export function findRole(text: string): RoleCode | undefined {
  if (CODES.has(text)) return text as RoleCode;
  return Object.hasOwn(ROLE_ALIASES, text) ? ROLE_ALIASES[text] : undefined;
}

export function unknownRoleMessage(text: string): string {
  return `unknown role '${text}'; expected one of ${ROLE_CODES.join(', ')}`;
}
