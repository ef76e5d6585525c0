/** One `type:name:actions` item of a token request's `scope` (Distribution's token scope grammar). */
export interface ScopeItem {
  type: string;
  name: string;
  actions: string[];
}

/**
 * Parses `scope` values (repeated, or several space-separated in one as OAuth2 sends them). The name
 * sits between the first and the last colon, since it may hold a `host:port/` prefix; a resource class
 * (`repository(plugin)`) is dropped. Malformed items are skipped: they grant nothing anyway.
 */
export function parseScopes(values: readonly string[]): ScopeItem[] {
  const out: ScopeItem[] = [];
  for (const item of values.flatMap((v) => v.split(' ')).filter((v) => v !== '')) {
    const first = item.indexOf(':');
    const last = item.lastIndexOf(':');
    if (first <= 0 || last <= first) continue;
    const type = item.slice(0, first).replace(/\(.*\)$/, '');
    const name = item.slice(first + 1, last);
    const actions = item.slice(last + 1).split(',').filter((a) => a !== '');
    if (name !== '') out.push({ type, name, actions });
  }
  return out;
}

/** `Bearer realm="…",service="…"[,scope="…"][,error="…"]`; every value a quoted-string (RFC 9110 §5.6.4). */
export function bearerChallenge(realm: string, service: string, scope?: string, error?: 'insufficient_scope' | 'invalid_token'): string {
  const parts = [`realm=${quoted(realm)}`, `service=${quoted(service)}`];
  if (scope) parts.push(`scope=${quoted(scope)}`);
  if (error) parts.push(`error=${quoted(error)}`);
  return `Bearer ${parts.join(',')}`;
}

function quoted(value: string): string {
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}
