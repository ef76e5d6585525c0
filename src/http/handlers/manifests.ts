import { ErrorCode, RegistryError, parseReference } from '../../oci/index.js';
import { acceptList, readBody, repoOf } from '../request.js';
import { contentHeaders } from '../respond.js';
import { emitEvents, manifestTarget } from '../events.js';
import type { Handler } from './context.js';

function reference(ref: string | undefined) {
  if (ref === undefined) throw new RegistryError(ErrorCode.MANIFEST_INVALID, 'missing reference');
  return parseReference(ref);
}

/**
 * The reference of a GET, HEAD or DELETE: one that is not a valid tag or digest names no manifest, and the
 * spec answers a manifest that is not found with 404 (MANIFEST_UNKNOWN; TAG_INVALID is not in its code table).
 * Only a PUT to such a reference is refused as invalid input (400).
 */
function existingReference(ref: string | undefined) {
  try {
    return reference(ref);
  } catch (e) {
    throw new RegistryError(ErrorCode.MANIFEST_UNKNOWN, undefined, { detail: { reference: ref ?? '' }, cause: e });
  }
}

/** end-3: GET/HEAD /v2/<name>/manifests/<reference> */
export const getManifest: Handler = async (ctx, { registry, metrics, events, pulls }, name, ref) => {
  const repo = repoOf(ctx, registry, name);
  const r = existingReference(ref);
  const res = ctx.method === 'HEAD' ? await registry.manifests.head(repo, r, acceptList(ctx)) : await registry.manifests.get(repo, r, acceptList(ctx));
  ctx.state.cache = res.outcome;
  await emitEvents(ctx, events, registry, 'pull', repo, [manifestTarget(res.descriptor, r.kind === 'tag' ? r.tag : undefined, res.bytes)]);
  contentHeaders(ctx, res.descriptor);
  ctx.status = 200;
  if (ctx.method === 'HEAD') return;
  pulls?.pulled(repo, r, res);
  ctx.body = res.bytes;
  ctx.set('Content-Type', res.descriptor.mediaType);
  metrics.bytesServed(res.outcome, res.bytes.length);
};

/** end-7: PUT /v2/<name>/manifests/<reference> */
export const putManifest: Handler = async (ctx, { registry, maxManifestBytes, events }, name, ref) => {
  const repo = repoOf(ctx, registry, name);
  const r = reference(ref);
  const bytes = await readBody(ctx, maxManifestBytes);
  const { descriptor, subject } = await registry.manifests.put(repo, r, ctx.get('content-type') || undefined, bytes);
  await emitEvents(ctx, events, registry, 'push', repo, [manifestTarget(descriptor, r.kind === 'tag' ? r.tag : undefined, bytes)]);
  ctx.status = 201;
  ctx.set('Location', `/v2/${name}/manifests/${descriptor.digest}`);
  ctx.set('Docker-Content-Digest', descriptor.digest);
  if (subject) ctx.set('OCI-Subject', subject);
};

/** end-9: DELETE /v2/<name>/manifests/<reference> */
export const deleteManifest: Handler = async (ctx, { registry, events }, name, ref) => {
  const repo = repoOf(ctx, registry, name);
  const r = existingReference(ref);
  const tags = await registry.manifests.delete(repo, r);
  // As Distribution: the digest's delete, then one per tag it took with it (a tag delete: that tag only).
  const targets = [...(r.kind === 'digest' ? [{ kind: 'manifest' as const, digest: r.digest }] : []), ...tags.map((tag) => ({ kind: 'manifest' as const, tag }))];
  await emitEvents(ctx, events, registry, 'delete', repo, targets);
  ctx.status = 202;
};
