import type { Page } from '../types.js';

/** Registry-style paging over lexically sorted keys: items after `last`, at most `n`. */
export function pageOf(sorted: readonly string[], n?: number, last?: string): Page<string> {
  let from = 0;
  if (last !== undefined) {
    // binary search for the first key > last
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((sorted[mid] as string) <= last) lo = mid + 1;
      else hi = mid;
    }
    from = lo;
  }
  if (n === undefined) return { items: sorted.slice(from) };
  const items = sorted.slice(from, from + Math.max(0, n));
  const more = from + items.length < sorted.length;
  return more && items.length > 0 ? { items, next: items[items.length - 1] as string } : { items };
}

/** Byte-wise ordering (as Redis ZRANGEBYLEX), which for the ASCII name/tag grammar equals code-unit order. */
export function lexCompare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
