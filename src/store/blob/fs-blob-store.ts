import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import {
  algorithmOf,
  Digester,
  ErrorCode,
  hexOf,
  parseDigest,
  RegistryError,
  type Digest,
} from '../../oci/index.js';
import type { BlobStat, BlobStore, BlobWriter, ByteRange, CreateOptions } from '../types.js';
import { AlignedSlots } from './aligned-slots.js';
import { errnoOf, nodeBlobFs, type BlobFileHandle, type BlobFs } from './blob-fs.js';
import { DIRECT_ALIGN, DirectAppendHandle, type Bypass } from './direct-append.js';
import { FsBlobWriter, type WriterHost } from './fs-blob-writer.js';

export interface FsBlobStoreOptions {
  root: string;
  /** New temp-file ids; must match WRITER_ID_RE. */
  randomId?: () => string;
  fs?: BlobFs;
  now?: () => number;
  /**
   * Writers created with `{ direct: true }` bypass the page cache when the file system allows it (checked
   * by open()); default false.
   */
  directWrites?: boolean;
  /** Where a direct writer's file leaves the page cache (block-aligned; default 16 MiB). */
  directFrom?: number;
}

/** Whether writers asked to bypass the page cache do, and why (for the start-up log). */
export interface DirectWrites {
  enabled: boolean;
  reason: string;
}

/** File systems on local block devices, where O_DIRECT is a plain disk write (on NFS it is a synchronous round trip). */
const DIRECT_FS = new Set(['ext4', 'xfs', 'btrfs']);
/** Bytes a direct writer stages between disk writes (a download's batches are about 1 MiB). */
const SLOT = 2 << 20;
/**
 * A direct writer's first bytes still go through the page cache: a blob this small is often read back at once
 * (prefetch finishes it before its client asks), and its pages cost little. Past this, a layer bypasses it.
 */
const BYPASS_FROM = 16 << 20;

/** Temp-file ids are one safe path component: an upload id can never name a file outside tmp/. */
export const WRITER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
const ALGS = ['sha256', 'sha512'] as const;

export function isWriterId(id: string): boolean {
  return WRITER_ID_RE.test(id);
}

/**
 * Content-addressed files: `<root>/blobs/<alg>/<hex[0:2]>/<hex>`, written under `<root>/tmp/<id>`
 * and published by rename after verification.
 */
export class FsBlobStore implements BlobStore {
  readonly root: string;
  private readonly fs: BlobFs;
  private readonly randomId: () => string;
  private readonly now: () => number;
  /** Temp files of writers holding an open file in this process (sealed ones too); sweepTemp never removes these. */
  private readonly openWriters = new Set<string>();
  private readonly host: WriterHost;
  readonly directWrites: DirectWrites;
  private readonly slots: AlignedSlots;
  private readonly directFrom: number;

  /** `direct`: what open() found out about bypassing the page cache (without it: never). */
  constructor(opts: FsBlobStoreOptions, direct?: { writes: DirectWrites; slots: AlignedSlots }) {
    this.directWrites = direct?.writes ?? { enabled: false, reason: 'turned off' };
    this.slots = direct?.slots ?? new AlignedSlots(SLOT);
    this.directFrom = opts.directFrom ?? BYPASS_FROM;
    this.root = opts.root;
    this.fs = opts.fs ?? nodeBlobFs;
    this.randomId = opts.randomId ?? (() => randomBytes(16).toString('hex'));
    this.now = opts.now ?? Date.now;
    this.host = {
      fs: this.fs,
      tempPath: (id) => this.tempPath(id),
      blobPath: (d) => this.blobPath(d),
      released: (id) => {
        this.openWriters.delete(id);
      },
      sealId: () => {
        const id = `${this.randomId()}-sealed`;
        this.openWriters.add(id);
        return id;
      },
      finished: (id, fileId) => {
        this.openWriters.delete(id);
        this.openWriters.delete(fileId);
      },
    };
  }

  /**
   * Creates (or validates) `<root>/blobs` and `<root>/tmp`. Fails with one readable sentence naming the path
   * and the cause, since this is usually the first thing an operator sees go wrong with a volume.
   */
  static async open(root: string, opts: Omit<FsBlobStoreOptions, 'root'> & { create?: boolean } = {}): Promise<FsBlobStore> {
    const fs = opts.fs ?? nodeBlobFs;
    const create = opts.create ?? true;
    await checkDir(fs, root, create);
    for (const sub of ['blobs', 'tmp']) await checkDir(fs, join(root, sub), true);
    await probeWritable(fs, join(root, 'tmp'));
    const slots = new AlignedSlots(SLOT);
    const direct = opts.directWrites ? await probeDirect(fs, join(root, 'tmp'), slots) : { enabled: false, reason: 'turned off' };
    return new FsBlobStore({ ...opts, root, fs }, { writes: direct, slots });
  }

  tempPath(id: string): string {
    return join(this.root, 'tmp', id);
  }

  blobPath(digest: Digest): string {
    const d = parseDigest(digest);
    const hex = hexOf(d);
    return join(this.root, 'blobs', algorithmOf(d), hex.slice(0, 2), hex);
  }

  async stat(digest: Digest): Promise<BlobStat | undefined> {
    const path = this.blobPath(digest);
    try {
      const st = await this.fs.stat(path);
      return st.isFile() ? { digest, size: st.size } : undefined;
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return undefined;
      throw e;
    }
  }

  async statTime(digest: Digest): Promise<number | undefined> {
    try {
      const st = await this.fs.stat(this.blobPath(digest));
      return st.isFile() ? st.mtimeMs : undefined;
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return undefined;
      throw e;
    }
  }

  async read(digest: Digest, range?: ByteRange): Promise<Readable | undefined> {
    let fh: BlobFileHandle;
    try {
      fh = await this.fs.open(this.blobPath(digest), 'r');
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return undefined;
      throw e;
    }
    if (!range) return fh.createReadStream({});
    const { size } = await fh.stat();
    if (!Number.isInteger(range.start) || !Number.isInteger(range.end) || range.start < 0 || range.end < range.start || range.end >= size) {
      await fh.close();
      throw new RegistryError(ErrorCode.RANGE_INVALID, undefined, { detail: { range, size } });
    }
    return fh.createReadStream({ start: range.start, end: range.end });
  }

  async create(id?: string, opts: CreateOptions = {}): Promise<BlobWriter> {
    const wid = id ?? this.randomId();
    assertWriterId(wid);
    const path = this.tempPath(wid);
    const fh = await this.fs.open(path, 'wx+');
    const handle = opts.direct && this.directWrites.enabled ? new DirectAppendHandle(fh, this.directFrom, () => this.bypass(path)) : fh;
    this.openWriters.add(wid);
    return new FsBlobWriter(wid, this.host, handle, new Digester('sha256'), 0);
  }

  /** An aligned slot and an O_DIRECT handle on `path`; undefined (the page cache, then) when either is not to be had. */
  private async bypass(path: string): Promise<Bypass | undefined> {
    const slot = this.slots.take();
    if (!slot) return undefined;
    try {
      const direct = await this.fs.openDirect!(path);
      return { direct, slot, giveBack: () => this.slots.give(slot) };
    } catch {
      this.slots.give(slot);
      return undefined;
    }
  }

  async resume(id: string): Promise<BlobWriter | undefined> {
    assertWriterId(id);
    let fh: BlobFileHandle;
    try {
      fh = await this.fs.open(this.tempPath(id), 'r+');
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return undefined;
      throw e;
    }
    try {
      const { size } = await fh.stat();
      this.openWriters.add(id);
      // No running hash: the file is shared (another replica may have written it since), so commit hashes
      // the bytes it publishes, once, from the file.
      return new FsBlobWriter(id, this.host, fh, undefined, size);
    } catch (e) {
      await fh.close().catch(() => undefined);
      throw e;
    }
  }

  async delete(digest: Digest): Promise<boolean> {
    try {
      await this.fs.unlink(this.blobPath(digest));
      return true;
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return false;
      throw e;
    }
  }

  /** Moves a committed blob to `<root>/quarantine/<alg>-<hex>`: no longer served or listed, still there to inspect. */
  async quarantine(digest: Digest): Promise<boolean> {
    const d = parseDigest(digest);
    const dir = join(this.root, 'quarantine');
    await checkDir(this.fs, dir, true);
    try {
      await this.fs.rename(this.blobPath(d), join(dir, `${algorithmOf(d)}-${hexOf(d)}`));
      return true;
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return false;
      throw e;
    }
  }

  async *list(): AsyncIterable<BlobStat> {
    for (const alg of ALGS) {
      const hexLen = alg === 'sha256' ? 64 : 128;
      const algDir = join(this.root, 'blobs', alg);
      for (const prefix of await readdirOrEmpty(this.fs, algDir)) {
        if (!/^[a-f0-9]{2}$/.test(prefix)) continue;
        for (const name of await readdirOrEmpty(this.fs, join(algDir, prefix))) {
          if (name.length !== hexLen || !name.startsWith(prefix) || !/^[a-f0-9]+$/.test(name)) continue;
          try {
            const st = await this.fs.stat(join(algDir, prefix, name));
            if (st.isFile()) yield { digest: `${alg}:${name}` as Digest, size: st.size };
          } catch (e) {
            if (errnoOf(e) !== 'ENOENT') throw e; // deleted while listing
          }
        }
      }
    }
  }

  /** Removes temp files untouched for `olderThanMs` (crash leftovers, abandoned uploads). */
  async sweepTemp(
    olderThanMs: number,
    isLive?: (id: string) => boolean | Promise<boolean>,
  ): Promise<{ removed: string[]; bytes: number }> {
    const removed: string[] = [];
    let bytes = 0;
    const cutoff = this.now() - olderThanMs;
    for (const id of await readdirOrEmpty(this.fs, join(this.root, 'tmp'))) {
      if (!isWriterId(id) || this.openWriters.has(id)) continue;
      let st;
      try {
        st = await this.fs.stat(this.tempPath(id));
      } catch (e) {
        if (errnoOf(e) === 'ENOENT') continue;
        throw e;
      }
      if (!st.isFile() || st.mtimeMs > cutoff) continue;
      if (isLive && (await isLive(id))) continue;
      try {
        await this.fs.unlink(this.tempPath(id));
      } catch (e) {
        if (errnoOf(e) === 'ENOENT') continue;
        throw e;
      }
      removed.push(id);
      bytes += st.size;
    }
    return { removed, bytes };
  }
}

function assertWriterId(id: string): void {
  if (!isWriterId(id)) {
    throw new RegistryError(ErrorCode.BLOB_UPLOAD_INVALID, 'invalid upload id', { detail: { id } });
  }
}

async function readdirOrEmpty(fs: BlobFs, path: string): Promise<string[]> {
  try {
    return await fs.readdir(path);
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return [];
    throw e;
  }
}

function describe(e: unknown): string {
  const code = errnoOf(e);
  const msg = e instanceof Error ? e.message : String(e);
  return code ? `${code}: ${msg}` : msg;
}

async function checkDir(fs: BlobFs, path: string, create: boolean): Promise<void> {
  let st;
  try {
    st = await fs.stat(path);
  } catch (e) {
    const code = errnoOf(e);
    if (code === 'ENOTDIR') throw new Error(`blob store: ${path} is not a directory (a parent path is a file)`, { cause: e });
    if (code !== 'ENOENT') throw new Error(`blob store: cannot access ${path} (${describe(e)})`, { cause: e });
    if (!create) throw new Error(`blob store: ${path} does not exist`, { cause: e });
    try {
      await fs.mkdir(path);
    } catch (e2) {
      const c2 = errnoOf(e2);
      const why = c2 === 'EACCES' || c2 === 'EPERM' || c2 === 'EROFS' ? 'its parent is not writable' : c2 === 'ENOTDIR' ? 'a parent path is not a directory' : 'mkdir failed';
      throw new Error(`blob store: cannot create ${path}: ${why} (${describe(e2)})`, { cause: e2 });
    }
    return;
  }
  if (!st.isDirectory()) throw new Error(`blob store: ${path} is not a directory`);
}

/** Direct writes only on a local block file system that accepts an aligned O_DIRECT write. */
async function probeDirect(fs: BlobFs, dir: string, slots: AlignedSlots): Promise<DirectWrites> {
  if (!fs.openDirect || !fs.fsType) return { enabled: false, reason: 'not supported by this file system layer' };
  const type = await fs.fsType(dir).catch((e: unknown) => `unknown (${describe(e)})`);
  if (!DIRECT_FS.has(type)) return { enabled: false, reason: `${type} is not a local block file system (ext4, xfs, btrfs)` };
  const slot = slots.take();
  if (!slot) return { enabled: false, reason: 'no aligned memory' };
  const probe = join(dir, `.probe-direct-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await (await fs.open(probe, 'wx+')).close();
    const fh = await fs.openDirect(probe);
    try {
      await fh.write(slot, 0, DIRECT_ALIGN, 0);
    } finally {
      await fh.close();
    }
    return { enabled: true, reason: `${type} takes O_DIRECT writes` };
  } catch (e) {
    return { enabled: false, reason: `${type} refused an O_DIRECT write (${describe(e)})` };
  } finally {
    slots.give(slot);
    await fs.unlink(probe).catch(() => undefined);
  }
}

/** access(W_OK) lies on read-only mounts for root, so really create and remove a file. */
async function probeWritable(fs: BlobFs, dir: string): Promise<void> {
  const probe = join(dir, `.probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await fs.assertWritable(dir);
    const fh = await fs.open(probe, 'wx+');
    await fh.close();
    await fs.unlink(probe);
  } catch (e) {
    throw new Error(`blob store: ${dir} is not writable (${describe(e)})`, { cause: e });
  }
}
