import { constants } from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { FileReadable } from './file-readable.js';

/**
 * The slice of the file system the blob store needs. It exists so tests can inject failures
 * (ENOSPC, EACCES) at exactly the call that would fail on a full or read-only disk.
 */
export interface BlobFileHandle {
  write(buf: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
  /** Several buffers in one system call (may write fewer bytes than given, as write may). */
  writev(bufs: readonly Uint8Array[], position: number): Promise<{ bytesWritten: number }>;
  read(buf: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  truncate(len: number): Promise<void>;
  sync(): Promise<void>;
  /** Flushes the file's data (not its metadata) to disk. */
  datasync(): Promise<void>;
  stat(): Promise<{ size: number }>;
  close(): Promise<void>;
  /** Stream [start, end] (inclusive); closes the handle when the stream ends or is destroyed. */
  createReadStream(opts: { start?: number; end?: number }): Readable;
  /** true while writes go to the disk, not to the page cache: there is nothing dirty to flush ahead of a sync. */
  readonly bypassesCache?: boolean;
}

export interface BlobStatResult {
  size: number;
  mtimeMs: number;
  isDirectory(): boolean;
  isFile(): boolean;
}

export interface BlobFs {
  open(path: string, flags: 'r' | 'r+' | 'wx+'): Promise<BlobFileHandle>;
  mkdir(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  stat(path: string): Promise<BlobStatResult>;
  readdir(path: string): Promise<string[]>;
  /** Throws when the path is not writable by this process. */
  assertWritable(path: string): Promise<void>;
  /**
   * A second, write-only handle on an existing file that bypasses the page cache (O_DIRECT): it takes only
   * block-aligned memory, lengths and offsets. Absent: this file system layer never bypasses the cache.
   */
  openDirect?(path: string): Promise<BlobFileHandle>;
  /** The kind of file system `path` is on (ext4, xfs, nfs, tmpfs…, or its statfs magic in hex). */
  fsType?(path: string): Promise<string>;
}

/** statfs(2) f_type values of the file systems wharf tells apart (linux/magic.h). */
const FS_TYPES: Record<number, string> = {
  0xef53: 'ext4',
  0x58465342: 'xfs',
  0x9123683e: 'btrfs',
  0x6969: 'nfs',
  0xff534d42: 'cifs',
  0xfe534d42: 'smb2',
  0x65735546: 'fuse',
  0x01021994: 'tmpfs',
  0x794c7630: 'overlay',
  0x2fc12fc1: 'zfs',
  0x00c36400: 'ceph',
};

class NodeFileHandle implements BlobFileHandle {
  constructor(private readonly fh: fsp.FileHandle) {}
  write(buf: Uint8Array, offset: number, length: number, position: number) {
    return this.fh.write(buf, offset, length, position);
  }
  writev(bufs: readonly Uint8Array[], position: number) {
    return this.fh.writev(bufs as Uint8Array[], position);
  }
  read(buf: Uint8Array, offset: number, length: number, position: number) {
    return this.fh.read(buf, offset, length, position);
  }
  truncate(len: number) {
    return this.fh.truncate(len);
  }
  sync() {
    return this.fh.sync();
  }
  datasync() {
    return this.fh.datasync();
  }
  stat() {
    return this.fh.stat();
  }
  close() {
    return this.fh.close();
  }
  createReadStream(opts: { start?: number; end?: number }): Readable {
    // Handle-based so a concurrent delete (eviction) cannot break a read that already opened the file.
    // 1 MiB reads: layers are large and read front to back; 64 KiB (the default) costs 16× the syscalls.
    return new FileReadable(this, opts.start ?? 0, opts.end);
  }
}

export const nodeBlobFs: BlobFs = {
  async open(path, flags) {
    return new NodeFileHandle(await fsp.open(path, flags, 0o644));
  },
  async mkdir(path) {
    await fsp.mkdir(path, { recursive: true });
  },
  rename: (from, to) => fsp.rename(from, to),
  unlink: (path) => fsp.unlink(path),
  stat: (path) => fsp.stat(path),
  readdir: (path) => fsp.readdir(path),
  assertWritable: (path) => fsp.access(path, constants.W_OK),
  async openDirect(path) {
    return new NodeFileHandle(await fsp.open(path, constants.O_WRONLY | constants.O_DIRECT));
  },
  async fsType(path) {
    const { type } = await fsp.statfs(path);
    return FS_TYPES[type] ?? `0x${type.toString(16)}`;
  },
};

export function errnoOf(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' ? e.code : undefined;
}
