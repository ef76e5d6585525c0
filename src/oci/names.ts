import { ErrorCode, RegistryError } from './errors.js';
import { isDigest, parseDigest, type Digest } from './digest.js';

/** Spec grammar for a repository name (path components joined by `/`). */
const NAME_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
export const MAX_NAME_LENGTH = 255;

export function isValidName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_NAME_LENGTH && NAME_RE.test(name);
}

export function parseName(name: string): string {
  if (!isValidName(name)) throw new RegistryError(ErrorCode.NAME_INVALID, 'invalid repository name', { detail: { name } });
  return name;
}

export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

export function parseTag(tag: string): string {
  if (!isValidTag(tag)) throw new RegistryError(ErrorCode.TAG_INVALID, 'invalid tag', { detail: { tag } });
  return tag;
}

/** A manifest reference: a tag or a digest. */
export type Reference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: Digest };

export function parseReference(ref: string): Reference {
  if (ref.includes(':')) return { kind: 'digest', digest: parseDigest(ref) };
  return { kind: 'tag', tag: parseTag(ref) };
}

export function referenceString(ref: Reference): string {
  return ref.kind === 'tag' ? ref.tag : ref.digest;
}

export { isDigest };

/** An upload session's `Range` header: the bytes received so far, `0-<last>` (`0-0` when empty, as Distribution sends). */
export function uploadRange(size: number): string {
  return `0-${Math.max(0, size - 1)}`;
}
