import { nodeBlobFs, type BlobFs, type BlobFileHandle } from '../../src/store/blob/blob-fs.js';

/** An fs whose opened handles pass every call to the real one, except those `faults` replaces (given the real handle). */
export function faultyFs(faults: (real: BlobFileHandle) => Partial<BlobFileHandle>): BlobFs {
  return {
    ...nodeBlobFs,
    async open(path, flags) {
      const real = await nodeBlobFs.open(path, flags);
      const passThrough: BlobFileHandle = {
        write: (b, o, l, p) => real.write(b, o, l, p),
        writev: (bufs, p) => real.writev(bufs, p),
        read: (b, o, l, p) => real.read(b, o, l, p),
        truncate: (n) => real.truncate(n),
        sync: () => real.sync(),
        datasync: () => real.datasync(),
        stat: () => real.stat(),
        close: () => real.close(),
        createReadStream: (o) => real.createReadStream(o),
      };
      return { ...passThrough, ...faults(real) };
    },
  };
}

/** A disk whose every fsync (a commit's `sync()`) waits for `release()`, then passes or fails with EIO. */
export function heldSyncFs(then: 'pass' | 'fail'): { fs: BlobFs; syncing: Promise<void>; release: () => void } {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let started!: () => void;
  const syncing = new Promise<void>((r) => (started = r));
  const fs = faultyFs((real) => ({
    async sync() {
      started();
      await gate;
      if (then === 'fail') throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
      await real.sync();
    },
  }));
  return { fs, syncing, release };
}
