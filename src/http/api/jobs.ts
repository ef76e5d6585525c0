import type { Context } from 'koa';
import { ErrorCode, RegistryError } from '../../oci/index.js';
import { fromLoopback, jobBusy } from '../admin.js';
import type { EndpointHandler } from '../endpoints.js';
import { query } from '../request.js';
import { badRequest, readJson } from './body.js';
import type { Sessions } from './session.js';
import { checkCsrf, loginRequired, userOf, type Viewer } from './viewer.js';

export type JobKind = 'gc' | 'verify';
const KINDS: readonly JobKind[] = ['gc', 'verify'];

/** What the jobs endpoints call (core/jobs.ts's JobRunner implements it); jobs are sent as JSON. */
export interface JobsApi {
  start(kind: JobKind, opts: { dryRun: boolean }, startedBy: string): { started: object } | { running: object };
  get(id: string): object | undefined;
  list(): object[];
  running(): object | undefined;
}

export interface MaintenanceDeps {
  jobs: JobsApi;
  /** `ui.admins`: users of `auth` who may run gc and verify from the UI */
  admins: readonly string[];
}

export interface JobEndpointDeps {
  /** absent: nothing to run here (no serving lifecycle); every call is refused */
  maintenance?: MaintenanceDeps;
  /** whether clients authenticate (`auth` configured) */
  authEnabled: boolean;
  sessions?: Sessions;
  viewer: (ctx: Context) => Promise<Viewer>;
}

/**
 * Who may start and watch gc / verify: a user named in `ui.admins` when clients authenticate; on an open
 * registry (no `auth`) the admin API's rule, callers on this host only, as for purge. Job reports name
 * repositories and digests, so reading them takes the same right as starting them.
 */
export function mayMaintain(ctx: Context, d: Pick<JobEndpointDeps, 'maintenance' | 'authEnabled'>, v: Viewer): boolean {
  if (!d.maintenance) return false;
  if (!d.authEnabled) return fromLoopback(ctx);
  const user = userOf(v);
  return user !== undefined && d.maintenance.admins.includes(user);
}

/** `/_wharf/api/jobs`: start gc or verify (POST) and watch it (GET, `?id=` for one job with its report). */
export function jobEndpoints(d: JobEndpointDeps): Record<string, EndpointHandler> {
  const allowed = async (ctx: Context): Promise<{ v: Viewer; m: MaintenanceDeps }> => {
    const v = await d.viewer(ctx);
    if (!d.maintenance || !mayMaintain(ctx, d, v)) {
      if (d.authEnabled && v.caller.kind === 'anonymous') throw loginRequired('log in to run maintenance');
      throw new RegistryError(ErrorCode.DENIED, d.authEnabled ? 'only users named in ui.admins may run gc or verify' : 'gc and verify answer callers on this host only on a registry without auth');
    }
    return { v, m: d.maintenance };
  };
  return {
    GET: async (ctx) => {
      const { m } = await allowed(ctx);
      const id = query(ctx).get('id');
      if (id === null || id === '') {
        ctx.body = { running: m.jobs.running() ?? null, jobs: m.jobs.list() };
        return;
      }
      const job = m.jobs.get(id);
      if (!job) throw new RegistryError(ErrorCode.UNSUPPORTED, 'no such job (jobs are kept in memory by the replica that ran them)', { status: 404, detail: { id } });
      ctx.body = job;
    },
    POST: async (ctx) => {
      const { v, m } = await allowed(ctx);
      checkCsrf(ctx, v, d.sessions);
      const body = await readJson(ctx);
      const kind = body.kind;
      if (typeof kind !== 'string' || !(KINDS as readonly string[]).includes(kind)) throw badRequest(`kind must be one of ${KINDS.join(', ')}`);
      if (body.dryRun !== undefined && typeof body.dryRun !== 'boolean') throw badRequest('dryRun must be true or false');
      const r = m.jobs.start(kind as JobKind, { dryRun: body.dryRun === true }, userOf(v) ?? 'local');
      if ('running' in r) throw jobBusy(r.running);
      ctx.status = 202;
      ctx.body = r.started;
    },
  };
}
