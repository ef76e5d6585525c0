import type { Context } from 'koa';
import type { EventSink, RegistryEvent, RegistryEventAction, Registry, RepoRef } from '../core/types.js';
import { parseManifest, type Descriptor } from '../oci/index.js';
import { publicOrigin, viaTrustedProxy } from './forwarded.js';

type Target = RegistryEvent['target'];

/** The request part of an event, as Distribution records it (addr: the client's ip:port, or the forwarded ip). */
function requestRecord(ctx: Context): NonNullable<RegistryEvent['request']> {
  const socket = ctx.req.socket;
  const host = ctx.ip.includes(':') ? `[${ctx.ip}]` : ctx.ip; // Go's host:port form, IPv6 in brackets
  const addr = viaTrustedProxy(ctx) || socket.remotePort === undefined ? ctx.ip : `${host}:${socket.remotePort}`;
  return {
    id: typeof ctx.state.requestId === 'string' ? ctx.state.requestId : '',
    addr,
    host: ctx.host,
    method: ctx.method,
    useragent: ctx.get('user-agent'),
    baseUrl: publicOrigin(ctx),
  };
}

/**
 * Queues events caused by this request (durably: it is answered after). One call per handler, so
 * the /v2 handlers stay as they were; nothing is built when no endpoint takes the action.
 */
export async function emitEvents(
  ctx: Context,
  sink: EventSink | undefined,
  registry: Registry,
  action: RegistryEventAction,
  repo: RepoRef,
  targets: Target[],
): Promise<void> {
  if (!sink || targets.length === 0 || !sink.wants(action)) return;
  const request = requestRecord(ctx);
  const repository = registry.namespaces.displayName(repo.key);
  const actor = typeof ctx.state.user === 'string' ? ctx.state.user : undefined;
  await sink.emit(targets.map((target) => ({ action, repository, key: repo.key, target, request, ...(actor ? { actor } : {}) })));
}

/** A manifest target: its descriptor, the tag it was addressed by, and what it refers to. */
export function manifestTarget(d: Descriptor, tag: string | undefined, bytes: Buffer | undefined): Target {
  const t: Target = { kind: 'manifest', mediaType: d.mediaType, size: d.size, digest: d.digest };
  if (tag !== undefined) t.tag = tag;
  if (bytes && bytes.length > 0) {
    try {
      const m = parseManifest(bytes, d.mediaType);
      const refs = [...m.blobs, ...m.manifests];
      if (refs.length > 0) t.references = refs;
    } catch {
      // served bytes are valid manifests; a schema wharf does not parse simply has no references
    }
  }
  return t;
}
