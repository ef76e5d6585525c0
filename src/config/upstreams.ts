import type { z } from 'zod';
import { findProfile, PROFILES, type RegistryProfile } from './profiles.js';
import { UPSTREAM_DEFAULTS, upstreamSchema } from './schema.js';
import type { UpstreamConfig } from './types.js';

export type ParsedUpstream = z.output<typeof upstreamSchema>;

function must<T>(v: T | undefined): T {
  if (v === undefined) throw new Error('upstream defaults table is incomplete');
  return v;
}

/** UPSTREAM_DEFAULTS parsed by the same schema as user input, so both are written the same way. */
const G = upstreamSchema.parse(UPSTREAM_DEFAULTS);

function profileFor(p: ParsedUpstream): RegistryProfile | undefined {
  return (p.url ? findProfile(new URL(p.url).host) : undefined) ?? (p.name ? findProfile(p.name) : undefined);
}

function credentialProblems(p: ParsedUpstream, at: string): string[] {
  const c = p.credentials;
  if (!c) return [];
  const out: string[] = [];
  const hasPassword = c.password !== undefined || c.passwordFile !== undefined;
  const hasToken = c.token !== undefined || c.tokenFile !== undefined;
  if (c.password !== undefined && c.passwordFile !== undefined) out.push(`${at}.credentials: set password or passwordFile, not both`);
  if (c.token !== undefined && c.tokenFile !== undefined) out.push(`${at}.credentials: set token or tokenFile, not both`);
  if (hasToken && (hasPassword || c.username !== undefined)) out.push(`${at}.credentials: use either token or username/password, not both`);
  else if (c.username !== undefined && !hasPassword) out.push(`${at}.credentials: username needs password or passwordFile`);
  else if (hasPassword && c.username === undefined) out.push(`${at}.credentials: password needs username`);
  return out;
}

function withoutUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function resolveOne(p: ParsedUpstream, at: string, problems: string[]): { u: UpstreamConfig; profile?: RegistryProfile } | undefined {
  const profile = profileFor(p);
  const url = p.url ?? profile?.url;
  if (url === undefined) {
    const names = PROFILES.map((x) => x.name).join(', ');
    problems.push(`${at}.url: required (or name a built-in profile: ${names})`);
    return undefined;
  }
  const urlHost = new URL(url).host;
  const u: UpstreamConfig = {
    name: p.name ?? profile?.name ?? urlHost,
    url,
    default: false,
    aliases: [...new Set([...(p.aliases ?? profile?.aliases ?? must(G.aliases)), urlHost])],
    libraryPrefix: p.libraryPrefix ?? profile?.libraryPrefix ?? must(G.libraryPrefix),
    tagFreshness: p.tagFreshness ?? must(G.tagFreshness),
    notFoundTtl: p.notFoundTtl ?? must(G.notFoundTtl),
    quotaProbeInterval: p.quotaProbeInterval ?? must(G.quotaProbeInterval),
    maxConnections: p.maxConnections ?? must(G.maxConnections),
    maxConcurrentFetches: p.maxConcurrentFetches ?? must(G.maxConcurrentFetches),
    prefetch: p.prefetch ?? must(G.prefetch),
    timeouts: {
      connect: p.timeouts?.connect ?? must(G.timeouts?.connect),
      headers: p.timeouts?.headers ?? must(G.timeouts?.headers),
      body: p.timeouts?.body ?? must(G.timeouts?.body),
    },
    tls: withoutUndefined({
      caFile: p.tls?.caFile,
      insecureSkipVerify: p.tls?.insecureSkipVerify ?? must(G.tls?.insecureSkipVerify),
      servername: p.tls?.servername,
    }),
    redirectHosts: [...(p.redirectHosts ?? profile?.redirectHosts ?? must(G.redirectHosts))],
    redirectPublicHttps: p.redirectPublicHttps ?? profile?.redirectPublicHttps ?? must(G.redirectPublicHttps),
    tokenRealmHosts: [...(p.tokenRealmHosts ?? profile?.tokenRealmHosts ?? must(G.tokenRealmHosts))],
  };
  if (p.credentials && Object.keys(withoutUndefined(p.credentials)).length > 0) u.credentials = withoutUndefined(p.credentials);
  problems.push(...credentialProblems(p, at));
  return profile ? { u, profile } : { u };
}

/**
 * Applies profiles and defaults, picks the default upstream and rejects ambiguity.
 * `parsed[i]` is undefined when item i failed validation (its problems are already listed).
 *
 * Default rule: an upstream marked `default: true` is the default (at most one may be). With none
 * marked, the only upstream is the default, else the docker.io-profile upstream is (what daemon.json
 * `registry-mirrors` clients expect), else there is none and unprefixed names are local repositories.
 * `default: false` opts an upstream out of being picked.
 */
export function resolveUpstreams(parsed: Array<ParsedUpstream | undefined>, problems: string[]): UpstreamConfig[] {
  const items: Array<{ i: number; u: UpstreamConfig; p: ParsedUpstream; profile?: RegistryProfile }> = [];
  parsed.forEach((p, i) => {
    if (!p) return;
    const r = resolveOne(p, `upstreams.${i}`, problems);
    if (r) items.push({ i, p, ...r });
  });

  const names = new Map<string, number>();
  const hosts = new Map<string, number>();
  for (const { i, u } of items) {
    const seen = names.get(u.name);
    if (seen !== undefined) problems.push(`upstreams.${i}.name: "${u.name}" is already used by upstreams.${seen}`);
    else names.set(u.name, i);
    for (const h of u.aliases) {
      const owner = hosts.get(h);
      if (owner !== undefined && owner !== i) problems.push(`upstreams.${i}.aliases: host "${h}" is already answered by upstreams.${owner}`);
      else hosts.set(h, i);
    }
  }

  const marked = items.filter((x) => x.p.default === true);
  if (marked.length > 1) {
    problems.push(`upstreams: only one upstream may be default: true (found ${marked.map((x) => x.u.name).join(', ')})`);
  }
  const eligible = items.filter((x) => x.p.default !== false);
  const chosen =
    marked[0] ??
    (parsed.length === 1 ? eligible[0] : undefined) ??
    eligible.find((x) => x.profile?.name === 'docker.io');
  if (chosen) chosen.u.default = true;
  return items.map((x) => x.u);
}
