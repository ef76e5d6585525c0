import { ErrorCode, RegistryError } from '../oci/index.js';
import type { Namespaces, RepoRef } from './types.js';

export interface NamespaceUpstream {
  name: string;
  /** host[:port] of the upstream URL */
  host: string;
  aliases: string[];
  default: boolean;
  libraryPrefix: boolean;
}

/** A first path component that names a registry host rather than a repository namespace. */
function looksLikeHost(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost';
}

/**
 * Maps request names to canonical repositories (DESIGN "Names"). Only configured upstreams can ever be
 * selected, so an unknown `ns` or host prefix can never cause an outbound connection.
 */
export class UpstreamNamespaces implements Namespaces {
  private readonly byHost = new Map<string, NamespaceUpstream>();
  private readonly byName = new Map<string, NamespaceUpstream>();
  private readonly fallback?: NamespaceUpstream;

  constructor(upstreams: NamespaceUpstream[]) {
    for (const u of upstreams) {
      this.byName.set(u.name, u);
      for (const h of [u.host, ...u.aliases]) this.byHost.set(h.toLowerCase(), u);
    }
    this.fallback = upstreams.find((u) => u.default);
  }

  resolve(name: string, ns?: string): RepoRef {
    if (this.byName.size === 0) return { key: name, path: name };
    if (ns !== undefined && ns !== '') {
      const u = this.byHost.get(ns.toLowerCase()) ?? this.byName.get(ns);
      if (!u) throw new RegistryError(ErrorCode.NAME_UNKNOWN, `registry ${ns} is not configured on this mirror`, { detail: { ns } });
      const slash = name.indexOf('/');
      // containerd sends the path without the host; a client that also prefixes the host means the same repository
      const path = slash > 0 && this.byHost.get(name.slice(0, slash)) === u ? name.slice(slash + 1) : name;
      return this.ref(u, path);
    }
    const slash = name.indexOf('/');
    if (slash > 0) {
      const first = name.slice(0, slash);
      const u = this.byHost.get(first);
      if (u) return this.ref(u, name.slice(slash + 1));
      if (looksLikeHost(first)) {
        throw new RegistryError(ErrorCode.NAME_UNKNOWN, `registry ${first} is not configured on this mirror`, { detail: { name } });
      }
    }
    if (!this.fallback) throw new RegistryError(ErrorCode.NAME_UNKNOWN, 'no default upstream is configured; prefix the name with a registry host', { detail: { name } });
    return this.ref(this.fallback, name);
  }

  displayName(key: string): string {
    const slash = key.indexOf('/');
    const u = slash > 0 ? this.byName.get(key.slice(0, slash)) : undefined;
    if (!u) return key;
    const path = key.slice(slash + 1);
    return u === this.fallback ? path : `${u.aliases[0] ?? u.host}/${path}`;
  }

  private ref(u: NamespaceUpstream, path: string): RepoRef {
    const full = u.libraryPrefix && !path.includes('/') ? `library/${path}` : path;
    return { key: `${u.name}/${full}`, upstream: u.name, path: full };
  }
}
