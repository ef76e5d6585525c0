import { createHash, type Hash } from 'node:crypto';
import { ErrorCode, RegistryError } from './errors.js';

/** A validated `algorithm:hex` content digest. Only values from parseDigest/digestOf carry the brand. */
export type Digest = string & { readonly __brand: 'Digest' };
export type DigestAlgorithm = 'sha256' | 'sha512';

const hexLength: Readonly<Record<DigestAlgorithm, number>> = { sha256: 64, sha512: 128 };
const DIGEST_RE = /^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

/** Parses and validates a digest string; throws DIGEST_INVALID (or UNSUPPORTED for an unknown algorithm). */
export function parseDigest(value: string): Digest {
  const m = DIGEST_RE.exec(value);
  if (!m) throw new RegistryError(ErrorCode.DIGEST_INVALID, 'invalid digest', { detail: { digest: value } });
  const alg = m[1] as string;
  const hex = m[2] as string;
  if (alg !== 'sha256' && alg !== 'sha512') {
    throw new RegistryError(ErrorCode.DIGEST_INVALID, `unsupported digest algorithm ${alg}`, { detail: { digest: value } });
  }
  if (hex.length !== hexLength[alg] || !/^[a-f0-9]+$/.test(hex)) {
    throw new RegistryError(ErrorCode.DIGEST_INVALID, 'invalid digest', { detail: { digest: value } });
  }
  return value as Digest;
}

export function isDigest(value: string): value is Digest {
  try {
    parseDigest(value);
    return true;
  } catch {
    return false;
  }
}

export function algorithmOf(d: Digest): DigestAlgorithm {
  return d.slice(0, d.indexOf(':')) as DigestAlgorithm;
}

export function hexOf(d: Digest): string {
  return d.slice(d.indexOf(':') + 1);
}

export function digestOf(data: Uint8Array | string, alg: DigestAlgorithm = 'sha256'): Digest {
  return `${alg}:${createHash(alg).update(data).digest('hex')}` as Digest;
}

/** Incremental digester for streamed content. */
export class Digester {
  private readonly hash: Hash;
  constructor(readonly algorithm: DigestAlgorithm = 'sha256', from?: Hash) {
    this.hash = from ?? createHash(algorithm);
  }
  /** An independent digester in the same state (to roll back an update). */
  copy(): Digester {
    return new Digester(this.algorithm, this.hash.copy());
  }
  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
  }
  /** Digest of everything so far, without ending the digester. */
  peek(): Digest {
    return `${this.algorithm}:${this.hash.copy().digest('hex')}` as Digest;
  }
}
