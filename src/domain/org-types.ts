export const COUNTRIES = ['CZ', 'SK'] as const;
export type Country = (typeof COUNTRIES)[number];

export const ORG_TYPES_BY_COUNTRY: Readonly<Record<Country, readonly string[]>> = {
  CZ: ['PODNIKATELE+PU', 'PODNIKATELE+DE', 'NEZISKOVE', 'ROZPOCTOVE'],
  SK: ['PODNIKATELIA+PU'],
};

export const DEFAULT_COUNTRY: Country = 'CZ';

const TYPE_ALIASES: Readonly<Record<string, string>> = { PODNIKATELE: 'PODNIKATELE+PU' };

const ALL_TYPES = new Set(Object.values(ORG_TYPES_BY_COUNTRY).flat());

export function isCountry(text: string): text is Country {
  return (COUNTRIES as readonly string[]).includes(text);
}

export function findOrgType(text: string): string | undefined {
  if (ALL_TYPES.has(text)) return text;
  return Object.hasOwn(TYPE_ALIASES, text) ? TYPE_ALIASES[text] : undefined;
}

export function defaultOrgType(country: Country): string {
  return ORG_TYPES_BY_COUNTRY[country][0];
}

export function orgTypeFits(type: string, country: Country): boolean {
  return ORG_TYPES_BY_COUNTRY[country].includes(type);
}

export function unknownOrgTypeMessage(text: string): string {
  const known = COUNTRIES.map((c) => `${c}: ${ORG_TYPES_BY_COUNTRY[c].join(', ')}`).join('; ');
  return `unknown organisation type '${text}'; expected one of ${known}`;
}
