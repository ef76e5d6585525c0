/** The JSON of /_wharf/api/ (README "Web UI"). The UI talks to nothing else but /v2. */

export interface SessionInfo {
  authEnabled: boolean;
  user: string | null;
  csrf: string | null;
  pullHost: string | null;
  upstreams: string[];
  /** whether this viewer may run gc and verify (the Maintenance page) */
  maintain: boolean;
}

export interface RepositoryListItem {
  name: string;
  upstream?: string;
  local: boolean;
  mirrored: boolean;
  tagCount: number;
  bytes: number;
  updatedAt?: number;
  lastPulled?: number;
  matchedTags?: string[];
}

export interface RepositoryPage {
  total: number;
  page: number;
  perPage: number;
  items: RepositoryListItem[];
}

export interface TagSummary {
  tag: string;
  digest: string;
  mediaType: string;
  origin: 'local' | 'upstream';
  size: number;
  updatedAt: number;
  lastPulled?: number;
  platforms?: string[];
}

export interface RepositoryDetail {
  name: string;
  upstream?: string;
  local: boolean;
  mirrored: boolean;
  tags: TagSummary[];
  bytes: number;
  rights: string[];
  canPurge: boolean;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface ImageBlob {
  digest: string;
  mediaType: string;
  size: number;
}

export interface ImageDetail {
  repository: string;
  digest: string;
  mediaType: string;
  size: number;
  origin: 'local' | 'upstream';
  tags: string[];
  manifests?: Array<ImageBlob & { platform?: Platform; cached: boolean }>;
  config?: ImageBlob & {
    content?: {
      created?: string;
      os?: string;
      architecture?: string;
      variant?: string;
      entrypoint?: string[];
      cmd?: string[];
      env?: string[];
      workingDir?: string;
      user?: string;
      labels?: Record<string, string>;
      history?: Array<{ created?: string; createdBy?: string; emptyLayer?: boolean; comment?: string }>;
    };
  };
  layers?: ImageBlob[];
  annotations?: Record<string, string>;
  referrers: Array<{ digest: string; mediaType: string; artifactType?: string; size: number }>;
  /** set when this manifest is itself a referrer (a signature, an SBOM): what it refers to */
  subject?: { digest: string; mediaType: string; size: number };
  rights: string[];
  canPurge: boolean;
}

export interface Stats {
  hits: number;
  requests: number;
  hitRatio: number | null;
  bytesFromCache: number;
  bytesFromUpstream: number;
  inflightFetches: number;
  cache: { usedBytes: number; localBytes: number; mirroredBytes: number; blobs: number; maxSize?: number; highWatermark: number };
  upstreams: UpstreamStatus[];
  downloads: Download[];
  topPulls: { hour: PullCount[]; day: PullCount[] };
}

export interface UpstreamStatus {
  name: string;
  rateLimit?: { limit?: number; remaining?: number; windowSeconds?: number; observedAt?: number };
  health?: { state: 'ok' | 'failing' | 'unknown'; lastSuccess?: number; lastError?: { at: number; message: string }; failures: number };
  throttledUntil?: number;
}

export interface Download {
  repository: string;
  digest: string;
  upstream: string;
  received: number;
  size?: number;
  clients: number;
  startedAt: number;
}

export interface PullCount {
  repository: string;
  pulls: number;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

let csrf: string | null = null;
export function setCsrf(token: string | null): void {
  csrf = token;
}

const BASE = '/_wharf/api/';

export async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (method !== 'GET') headers['x-wharf-csrf'] = csrf ?? 'wharf-ui';
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(BASE + path, { method, headers, credentials: 'same-origin', ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  if (res.status === 204) return undefined as T;
  const json: unknown = await res.json().catch(() => undefined);
  if (!res.ok) {
    const err = (json as { errors?: Array<{ message?: string }> } | undefined)?.errors?.[0];
    throw new ApiError(res.status, err?.message ?? `HTTP ${res.status}`);
  }
  return json as T;
}

const qs = (params: Record<string, string | number | undefined>): string =>
  new URLSearchParams(Object.entries(params).flatMap(([k, v]) => (v === undefined || v === '' ? [] : [[k, String(v)]]))).toString();

export const api = {
  session: () => call<SessionInfo>('GET', 'session'),
  login: (username: string, password: string) => call<{ user: string; csrf: string }>('POST', 'session', { username, password }),
  logout: () => call<void>('DELETE', 'session'),
  repositories: (p: { q: string; kind: string; upstream: string; sort: string; order: string; page: number; perPage: number }) =>
    call<RepositoryPage>('GET', `repositories?${qs(p)}`),
  repository: (name: string) => call<RepositoryDetail>('GET', `repository?${qs({ name })}`),
  image: (name: string, ref: string) => call<ImageDetail>('GET', `image?${qs({ name, ref })}`),
  deleteImage: (name: string, ref: string) => call<object>('DELETE', `image?${qs({ name, ref })}`),
  stats: () => call<Stats>('GET', 'stats'),
};
