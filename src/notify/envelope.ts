import type { Descriptor } from '../oci/index.js';
import type { RegistryEvent } from '../core/types.js';

/** Distribution's events media type (`Content-Type` of every `distribution`-format request). */
export const EVENTS_MEDIA_TYPE = 'application/vnd.docker.distribution.events.v1+json';

/** Distribution's media type for a blob target: blob events never carry the layer's own media type. */
const BLOB_MEDIA_TYPE = 'application/octet-stream';

/**
 * One event as Distribution 2.8 serialises it (notifications/event.go): empty fields are left out
 * exactly where Go's `omitempty` leaves them out; `actor` and `source` are always objects.
 */
export interface DistributionEvent {
  id: string;
  timestamp: string;
  action: string;
  target: {
    mediaType?: string;
    size?: number;
    digest?: string;
    length?: number;
    repository?: string;
    fromRepository?: string;
    url?: string;
    tag?: string;
    references?: Array<Pick<Descriptor, 'mediaType' | 'size' | 'digest' | 'annotations' | 'platform'>>;
    /** wharf's own: the upstream that content came from (`cache`, `tag-moved`, `evict`, `purge`) */
    upstream?: string;
  };
  request: { id?: string; addr?: string; host?: string; method?: string; useragent?: string };
  actor: { name?: string };
  source: { addr?: string; instanceID?: string };
}

export interface SourceRecord {
  /** host:port of this registry (Distribution: hostname and listen port) */
  addr: string;
  /** random per process start, as Distribution */
  instanceID: string;
}

/** A queued event: the envelope plus what endpoint filters need. */
export interface QueuedEvent {
  event: DistributionEvent;
  /** canonical repository key (filters match it, and the name clients use) */
  key: string;
  /** a re-sent copy (`wharf events resend`): for this endpoint only */
  only?: string;
}

/**
 * Builds Distribution's envelope for one wharf event. Which fields each action carries follows what
 * Distribution 2.8 sends (test/integration/notify-envelope.test.ts compares them field by field):
 * deletes carry only repository and digest (or tag); pushes, pulls and mounts the full descriptor and url;
 * wharf's `evict` and `purge` what is known of the removed content (no url: it is gone).
 */
export function toDistributionEvent(e: RegistryEvent, ctx: { id: string; now: number; source: SourceRecord; includeReferences: boolean }): DistributionEvent {
  const t = e.target;
  const target: DistributionEvent['target'] = {};
  if (e.action === 'delete') {
    if (t.digest) target.digest = t.digest;
    target.repository = e.repository;
    if (t.tag) target.tag = t.tag;
  } else {
    target.mediaType = t.kind === 'blob' ? BLOB_MEDIA_TYPE : t.mediaType;
    if (t.size !== undefined) target.size = t.size;
    if (t.digest) target.digest = t.digest;
    if (t.size !== undefined) target.length = t.size;
    target.repository = e.repository;
    if (t.fromRepository) target.fromRepository = t.fromRepository;
    if (t.digest && e.request) target.url = `${e.request.baseUrl}/v2/${e.repository}/${t.kind === 'blob' ? 'blobs' : 'manifests'}/${t.digest}`;
    if (t.tag) target.tag = t.tag;
    if (ctx.includeReferences && t.references && t.references.length > 0) {
      target.references = t.references.map((r) => ({
        mediaType: r.mediaType,
        size: r.size,
        digest: r.digest,
        ...(r.annotations ? { annotations: r.annotations } : {}),
        ...(r.platform ? { platform: r.platform } : {}),
      }));
    }
  }
  if (t.upstream) target.upstream = t.upstream;
  const r = e.request;
  return {
    id: ctx.id,
    timestamp: new Date(ctx.now).toISOString(),
    action: e.action,
    target,
    request: r ? { id: r.id, addr: r.addr, host: r.host, method: r.method, useragent: r.useragent } : {},
    actor: e.actor ? { name: e.actor } : {},
    source: { addr: ctx.source.addr, instanceID: ctx.source.instanceID },
  };
}

/** The request body for one delivery of `events` in the endpoint's format. */
export function renderBody(format: 'distribution' | 'cloudevents', events: DistributionEvent[]): { contentType: string; body: Buffer } {
  if (format === 'distribution') return { contentType: EVENTS_MEDIA_TYPE, body: Buffer.from(JSON.stringify({ events })) };
  const e = events[0];
  if (!e || events.length !== 1) throw new Error('cloudevents: exactly one event per request');
  const ce = {
    specversion: '1.0',
    id: e.id,
    source: `wharf://${e.source.addr ?? ''}`,
    type: `io.github.wharf.registry.${e.action}`,
    subject: e.target.repository,
    time: e.timestamp,
    datacontenttype: 'application/json',
    data: e,
  };
  return { contentType: 'application/cloudevents+json', body: Buffer.from(JSON.stringify(ce)) };
}
