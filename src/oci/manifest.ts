import { ErrorCode, RegistryError } from './errors.js';
import { isDigest, type Digest } from './digest.js';
import type { Descriptor } from './descriptor.js';
import { MAX_JSON_DEPTH, isStringMap, jsonDepthWithin } from './json.js';
import { MediaType, bareMediaType, isIndexType, manifestMediaTypes } from './media-types.js';

export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** What wharf needs to know of a manifest; the bytes themselves are stored untouched. */
export interface ParsedManifest {
  mediaType: string;
  /** config + layers of an image manifest */
  blobs: Descriptor[];
  /** children of an index / manifest list */
  manifests: Descriptor[];
  subject?: Descriptor;
  /** artifactType for the referrers API: the manifest's own, else its config media type */
  artifactType?: string;
  annotations?: Record<string, string>;
}

function invalid(message: string, detail?: unknown): RegistryError {
  return new RegistryError(ErrorCode.MANIFEST_INVALID, message, { detail });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** OCI annotations are string → string: absent, or an object of strings; anything else is refused. */
function parseAnnotations(v: unknown, where: string): Record<string, string> | undefined {
  if (v === undefined) return undefined;
  if (!isStringMap(v)) throw invalid(`${where}annotations must be an object of string values`);
  return v;
}

function parseDescriptor(v: unknown, where: string): Descriptor {
  if (!isObject(v)) throw invalid(`${where}: descriptor must be an object`);
  const { mediaType, digest, size } = v;
  if (typeof mediaType !== 'string' || mediaType.length === 0) throw invalid(`${where}: mediaType missing`);
  if (typeof digest !== 'string' || !isDigest(digest)) throw invalid(`${where}: invalid digest`, { digest });
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw invalid(`${where}: invalid size`);
  const d: Descriptor = { mediaType, digest: digest as Digest, size };
  if (typeof v.artifactType === 'string') d.artifactType = v.artifactType;
  const annotations = parseAnnotations(v.annotations, `${where}: `);
  if (annotations) d.annotations = annotations;
  if (isObject(v.platform)) d.platform = v.platform as unknown as Descriptor['platform'];
  return d;
}

/**
 * Works out the manifest's media type from the request Content-Type and the body's own `mediaType`,
 * the way Distribution does: an explicit, known Content-Type wins; otherwise the body decides.
 */
export function resolveMediaType(contentType: string | undefined, body: Record<string, unknown>): string {
  const declared = bareMediaType(contentType);
  const own = typeof body.mediaType === 'string' ? body.mediaType : undefined;
  if (manifestMediaTypes.includes(declared)) {
    if (own !== undefined && own !== declared) throw invalid('mediaType in manifest does not match Content-Type', { contentType: declared, mediaType: own });
    return declared;
  }
  if (own !== undefined) return own;
  // OCI allows mediaType to be omitted; tell the two OCI kinds apart by shape.
  if (Array.isArray(body.manifests)) return MediaType.ociIndex;
  if (isObject(body.config)) return MediaType.ociManifest;
  throw invalid('cannot determine manifest media type');
}

/** Parses and validates manifest bytes. Throws MANIFEST_INVALID for anything wharf would not serve. */
export function parseManifest(bytes: Uint8Array, contentType?: string): ParsedManifest {
  if (bytes.byteLength > MAX_MANIFEST_BYTES) throw invalid('manifest too large', { limit: MAX_MANIFEST_BYTES });
  // Checked before parsing: whatever reads these bytes or what they parse to later must never recurse
  // itself into a RangeError.
  if (!jsonDepthWithin(bytes, MAX_JSON_DEPTH)) throw invalid('manifest nests deeper than allowed', { limit: MAX_JSON_DEPTH });
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    throw invalid('manifest is not valid JSON');
  }
  if (!isObject(body)) throw invalid('manifest must be a JSON object');
  if (body.schemaVersion !== 2) throw invalid('unsupported schemaVersion', { schemaVersion: body.schemaVersion });
  const mediaType = resolveMediaType(contentType, body);
  if (!manifestMediaTypes.includes(mediaType)) throw invalid(`unsupported manifest media type ${mediaType}`);

  const parsed: ParsedManifest = { mediaType, blobs: [], manifests: [] };
  if (isIndexType(mediaType)) {
    if (!Array.isArray(body.manifests)) throw invalid('index must have a manifests array');
    parsed.manifests = body.manifests.map((m, i) => parseDescriptor(m, `manifests[${i}]`));
  } else {
    const config = parseDescriptor(body.config, 'config');
    if (!Array.isArray(body.layers)) throw invalid('manifest must have a layers array');
    parsed.blobs = [config, ...body.layers.map((l, i) => parseDescriptor(l, `layers[${i}]`))];
    parsed.artifactType = config.mediaType;
  }
  if (body.subject !== undefined) parsed.subject = parseDescriptor(body.subject, 'subject');
  if (typeof body.artifactType === 'string') parsed.artifactType = body.artifactType;
  const annotations = parseAnnotations(body.annotations, '');
  if (annotations) parsed.annotations = annotations;
  return parsed;
}
