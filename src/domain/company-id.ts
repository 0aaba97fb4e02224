export const COMPANY_ID_PATTERN = /^[a-z0-9_]{1,64}$/;
export const COMPANY_ID_MAX = 64;

/** Letters that Unicode does not decompose into a base letter plus a combining mark. */
const FOLDED: Readonly<Record<string, string>> = {
  ß: 'ss',
  ł: 'l',
  đ: 'd',
  ø: 'o',
  æ: 'ae',
  œ: 'oe',
  þ: 'th',
  ı: 'i',
};

/**
 * "Digital Media s.r.o." → "digital_media_s_r_o_": lowercase, diacritics removed, every
 * character outside [a-z0-9] replaced by "_" (one per character, as the original does).
 */
export function deriveCompanyId(name: string): string {
  const folded = name
    .toLowerCase()
    .normalize('NFD')
    .replace(/\p{M}/gu, '')
    .replace(/[ßłđøæœþı]/g, (ch) => FOLDED[ch] ?? '_');
  let id = '';
  for (const ch of folded) id += /[a-z0-9]/.test(ch) ? ch : '_';
  return id.slice(0, COMPANY_ID_MAX);
}

/** The n-th candidate for a derived id: base, base_1, base_2, … always within 64 chars. */
export function companyIdCandidate(base: string, n: number): string {
  if (n === 0) return base;
  const suffix = `_${n}`;
  return base.slice(0, COMPANY_ID_MAX - suffix.length) + suffix;
}

/** Which n makes companyIdCandidate(base, n) equal to id, or undefined when id is not a candidate of base. */
export function companyIdCandidateIndex(base: string, id: string): number | undefined {
  if (id === base) return 0;
  const match = /_([1-9][0-9]{0,8})$/.exec(id);
  if (!match) return undefined;
  const n = Number(match[1]);
  return companyIdCandidate(base, n) === id ? n : undefined;
}
