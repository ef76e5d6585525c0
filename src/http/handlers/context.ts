import type { Context } from 'koa';
import type { EventSink, PullSink, Registry, RepoRef } from '../../core/types.js';
import type { Metrics } from '../../observability/types.js';

export interface HandlerDeps {
  registry: Registry;
  metrics: Metrics;
  maxManifestBytes: number;
  /** webhooks (absent: no notifications configured) */
  events?: EventSink;
  /** manifest pulls counted for the dashboard's top images (absent: not counted) */
  pulls?: PullSink;
}

/** What a handler may note for the access log. */
export interface RequestState {
  route?: string;
  cache?: string;
  /** for the access log: canonical repository key and its upstream (set by repoOf), the reference in the path, the authenticated user */
  repo?: string;
  upstream?: string;
  ref?: string;
  user?: string;
  /** set by client auth: whether the caller may pull a repository (catalog, cross-repo mount); absent = open */
  mayPull?: (repo: RepoRef) => boolean;
}

export type Handler = (ctx: Context, deps: HandlerDeps, name: string, ref: string | undefined) => Promise<void>;
