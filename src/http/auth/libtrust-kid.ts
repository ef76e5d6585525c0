import { createHash, type KeyObject } from 'node:crypto';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 without padding. */
function base32(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/**
 * The libtrust key ID of a public key, the `kid` Distribution, Portus and docker_auth use: SHA-256 of the
 * DER SubjectPublicKeyInfo, its first 240 bits in base32, as 12 groups of 4 joined by ':'.
 */
export function libtrustKeyId(key: KeyObject): string {
  const spki = key.export({ type: 'spki', format: 'der' });
  const id = base32(createHash('sha256').update(spki).digest().subarray(0, 30));
  return id.match(/.{4}/g)!.join(':');
}
