import type { Readable } from 'node:stream';
import type { BlobFileHandle } from './blob-fs.js';

/**
 * Offsets and lengths of writes that bypass the page cache are multiples of this: 4 KiB covers devices with
 * 512-byte and with 4 KiB logical blocks.
 */
export const DIRECT_ALIGN = 4096;

/** What writing past the page cache takes: an O_DIRECT handle on the file and an aligned slot (returned with giveBack). */
export interface Bypass {
  direct: BlobFileHandle;
  slot: Buffer;
  giveBack(): void;
}

/**
 * A temp file written front to back; from `bypassFrom` on, without going through the page cache. Up to
 * there it is an ordinary file. Past it, bytes are copied into an aligned slot; whole blocks go from there
 * straight to the disk through the O_DIRECT handle, and the partial last block stays in the slot (readable
 * from there) until a sync or close writes it through the ordinary handle.
 *
 * Why: a download written through the page cache costs the kernel a fresh page per 4 KiB, a copy, and later
 * the writeback; on a VM that hands free memory back to its host, fresh pages cost more than everything
 * else the download does (1 GiB: ~0.12 s of CPU with recycled pages, ~1.0 s with fresh ones). A large layer
 * is written once, streamed to its clients from memory, and read back only by a later pull: keeping it out
 * of the page cache also keeps it from evicting what is being served. A small one (most config blobs and
 * many layers) stays cached: prefetch often has it complete before its client asks, and reading it back
 * from the disk would cost that client more than the pages cost.
 */
export class DirectAppendHandle implements BlobFileHandle {
  /** Where the file ends while it is still written through the page cache. */
  private buffered = 0;
  /** Past bypassFrom: bytes [0, onDisk) are in the file; onDisk is block-aligned. */
  private onDisk = 0;
  /** Bytes [onDisk, onDisk + staged) are in the slot. */
  private staged = 0;
  private bypass: Bypass | undefined;
  private closed = false;
  /** The staged tail is in the file as it stands (written by a sync, nothing appended since). */
  private tailInFile = false;

  /**
   * `bypassFrom` (block-aligned) is where writes leave the page cache; `openBypass` gets what that takes,
   * or undefined, in which case the whole file is written through the page cache.
   */
  constructor(
    private readonly file: BlobFileHandle,
    private bypassFrom: number,
    private readonly openBypass: () => Promise<Bypass | undefined>,
  ) {
    if (bypassFrom % DIRECT_ALIGN !== 0) throw new Error('direct append: bypassFrom must be block-aligned');
  }

  private get end(): number {
    return this.bypass ? this.onDisk + this.staged : this.buffered;
  }

  /** Once past bypassFrom: what is written from then on leaves nothing dirty to flush ahead of a sync. */
  get bypassesCache(): boolean {
    return this.bypass !== undefined;
  }

  write(buf: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesWritten: number }> {
    return this.append([buf.subarray(offset, offset + length)], position);
  }

  writev(bufs: readonly Uint8Array[], position: number): Promise<{ bytesWritten: number }> {
    return this.append(bufs, position);
  }

  /**
   * Before bypassFrom: an ordinary write, cut at bypassFrom (a short write; the caller goes on from there).
   * After it: everything given is in the file or in the slot when this resolves; whole blocks are on the disk.
   */
  private async append(parts: readonly Uint8Array[], position: number): Promise<{ bytesWritten: number }> {
    if (this.closed) throw new Error('direct append: the file is closed');
    if (position !== this.end) throw new Error(`direct append: write at ${position}, but the file ends at ${this.end}`);
    if (!this.bypass && position >= this.bypassFrom) {
      this.bypass = await this.openBypass();
      if (this.bypass) this.onDisk = position;
      else this.bypassFrom = Infinity;
    }
    if (!this.bypass) {
      const room = this.bypassFrom - position;
      const cut = cutAt(parts, room);
      const { bytesWritten } = cut.length === 1 ? await this.file.write(cut[0]!, 0, cut[0]!.byteLength, position) : await this.file.writev(cut, position);
      this.buffered = position + bytesWritten;
      return { bytesWritten };
    }
    const slot = this.open();
    this.tailInFile = false;
    let total = 0;
    for (const part of parts) {
      for (let off = 0; off < part.byteLength; ) {
        const n = Math.min(part.byteLength - off, slot.length - this.staged);
        slot.set(part.subarray(off, off + n), this.staged);
        this.staged += n;
        off += n;
        if (this.staged === slot.length) await this.writeBlocks(slot.length);
      }
      total += part.byteLength;
    }
    await this.writeBlocks(this.staged - (this.staged % DIRECT_ALIGN));
    return { bytesWritten: total };
  }

  /** Writes the slot's first `n` bytes (whole blocks) to the disk and moves the rest to the slot's start. */
  private async writeBlocks(n: number): Promise<void> {
    const slot = this.open();
    let done = 0;
    try {
      while (done < n) {
        const { bytesWritten } = await this.bypass!.direct.write(slot, done, n - done, this.onDisk + done);
        if (bytesWritten <= 0) throw new Error('direct append: the disk took no bytes');
        done += bytesWritten;
      }
    } finally {
      // A write cut short (ENOSPC) keeps the unwritten bytes staged from the last whole block on.
      const kept = done - (done % DIRECT_ALIGN);
      if (kept > 0) {
        slot.copy(slot, 0, kept, this.staged);
        this.onDisk += kept;
        this.staged -= kept;
      }
    }
  }

  async read(buf: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    if (!this.bypass) return this.file.read(buf, offset, length, position);
    if (position < this.onDisk) return this.file.read(buf, offset, Math.min(length, this.onDisk - position), position);
    const n = Math.max(0, Math.min(length, this.end - position));
    if (n > 0) this.open().copy(buf, offset, position - this.onDisk, position - this.onDisk + n);
    return { bytesRead: n };
  }

  /** Shortens to `len` bytes; bytes of the block `len` falls in come back into the slot from the disk. */
  async truncate(len: number): Promise<void> {
    if (!this.bypass) {
      await this.file.truncate(len);
      this.buffered = Math.min(this.buffered, len);
      return;
    }
    const slot = this.open();
    if (len > this.end) throw new Error(`direct append: cannot extend to ${len} (the file ends at ${this.end})`);
    if (len < this.onDisk) {
      const base = len - (len % DIRECT_ALIGN);
      for (let got = 0; got < len - base; ) {
        const { bytesRead } = await this.file.read(slot, got, len - base - got, base + got);
        if (bytesRead === 0) throw new Error(`direct append: the file is shorter than ${len}`);
        got += bytesRead;
      }
      this.onDisk = base;
    }
    this.staged = len - this.onDisk;
    this.tailInFile = false;
    await this.file.truncate(len);
  }

  /**
   * Puts the partial last block into the file through the ordinary handle. It stays in the slot too: a
   * later append rewrites that block whole from there, so the O_DIRECT writes stay aligned.
   */
  private async writeTail(): Promise<void> {
    if (this.staged === 0 || !this.bypass || this.tailInFile) return;
    for (let done = 0; done < this.staged; ) {
      const { bytesWritten } = await this.file.write(this.bypass.slot, done, this.staged - done, this.onDisk + done);
      done += bytesWritten;
    }
    this.tailInFile = true;
  }

  async sync(): Promise<void> {
    await this.writeTail();
    await this.file.sync();
  }

  async datasync(): Promise<void> {
    await this.writeTail();
    await this.file.datasync();
  }

  async stat(): Promise<{ size: number }> {
    await this.writeTail();
    return this.file.stat();
  }

  /** Writes the tail, closes both handles and returns the slot, even when the tail could not be written. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.writeTail();
    } finally {
      const bypass = this.bypass;
      this.bypass = undefined;
      bypass?.giveBack();
      await Promise.allSettled([bypass?.direct.close(), this.file.close()]).then(([d, f]) => {
        if (f.status === 'rejected') throw f.reason;
        if (d.status === 'rejected') throw d.reason;
      });
    }
  }

  createReadStream(opts: { start?: number; end?: number }): Readable {
    return this.file.createReadStream(opts);
  }

  private open(): Buffer {
    if (!this.bypass) throw new Error('direct append: the file is closed');
    return this.bypass.slot;
  }
}

/** The first `n` bytes of `parts` (all of them when there are fewer). */
function cutAt(parts: readonly Uint8Array[], n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const p of parts) {
    if (n <= 0) break;
    out.push(p.byteLength <= n ? p : p.subarray(0, n));
    n -= p.byteLength;
  }
  return out;
}
