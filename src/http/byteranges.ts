import { Readable } from 'node:stream';
import type { ResolvedRange as ByteRange } from '../oci/ranges.js';

/**
 * A `206 multipart/byteranges` body (RFC 9110 §14.6) cut from one pass over a whole blob: `ranges` must
 * be ascending and apart (core/ranges.ts resolveRanges). Framed as Go's http.ServeContent frames it.
 */
export interface Byteranges {
  contentType: string;
  length: number;
  stream: Readable;
}

/**
 * The boundary comes from the digest: nothing random to inject, and a blob cannot contain a long piece of
 * its own digest.
 */
export function byteranges(source: Readable, ranges: readonly ByteRange[], size: number, digestHex: string, partType: string): Byteranges {
  const boundary = `wharf-${digestHex.slice(0, 40)}`;
  const heads = ranges.map((r, i) => Buffer.from(`${i === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: ${partType}\r\nContent-Range: bytes ${r.start}-${r.end}/${size}\r\n\r\n`));
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const length = heads.reduce((n, h, i) => n + h.length + ranges[i]!.end - ranges[i]!.start + 1, tail.length);
  return { contentType: `multipart/byteranges; boundary=${boundary}`, length, stream: Readable.from(parts(source, ranges, heads, tail)) };
}

/** One range of a whole blob's stream (a multi-range request that resolved to one range). */
export function slice(source: Readable, range: ByteRange): Readable {
  return Readable.from(parts(source, [range], [EMPTY], EMPTY));
}

const EMPTY = Buffer.alloc(0);

async function* parts(source: Readable, ranges: readonly ByteRange[], heads: Buffer[], tail: Buffer): AsyncGenerator<Buffer> {
  let offset = 0;
  let i = 0;
  let started = false;
  for await (const chunk of source as AsyncIterable<Buffer>) {
    const chunkEnd = offset + chunk.length; // exclusive
    while (i < ranges.length) {
      const r = ranges[i]!;
      if (r.start >= chunkEnd) break;
      if (!started) {
        if (heads[i]!.length > 0) yield heads[i]!;
        started = true;
      }
      const from = Math.max(r.start, offset) - offset;
      const to = Math.min(r.end + 1, chunkEnd) - offset;
      if (to > from) yield chunk.subarray(from, to);
      if (r.end + 1 > chunkEnd) break;
      i++;
      started = false;
    }
    offset = chunkEnd;
    if (i === ranges.length) break; // the rest of the blob is not asked for: stop reading it
  }
  if (i < ranges.length) throw new Error('blob ended before its requested ranges');
  if (tail.length > 0) yield tail;
}
