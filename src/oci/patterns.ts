/**
 * Repository name globs (`push.overlay`, `auth.rules[].repositories`): `*` matches within one path
 * component, `**` across components. `library/*` matches `library/alpine` but not `library/a/b`.
 */
export function repoMatcher(patterns: readonly string[]): (name: string) => boolean {
  const res = patterns.map((p) => {
    const src = p
      .split('**')
      .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*'))
      .join('.*');
    return new RegExp(`^${src}$`);
  });
  return (name) => res.some((r) => r.test(name));
}
