/**
 * The items' values in lists by key, each list in the items' order; keys in order of first
 * appearance after those `into` already holds (which it is, filled in).
 */
export function groupBy<T, K, V>(items: Iterable<T>, key: (item: T) => K, value: (item: T) => V, into = new Map<K, V[]>()): Map<K, V[]> {
  for (const item of items) {
    const k = key(item);
    const list = into.get(k);
    if (list) list.push(value(item));
    else into.set(k, [value(item)]);
  }
  return into;
}
