import { nodeBlobFs, type BlobFs, type BlobFileHandle } from '../../src/store/blob/blob-fs.js';

type Faults = (real: BlobFileHandle) => Partial<BlobFileHandle>;

function wrap(real: BlobFileHandle, faults: Faults): BlobFileHandle {
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
}

/**
 * An fs whose opened handles pass every call to the real one, except those `faults` replaces (given the real
 * handle); `directFaults` does the same for the O_DIRECT handles of downloads that bypass the page cache.
 */
export function faultyFs(faults: Faults, directFaults: Faults = () => ({})): BlobFs {
  return {
    ...nodeBlobFs,
    async open(path, flags) {
      return wrap(await nodeBlobFs.open(path, flags), faults);
    },
    async openDirect(path) {
      return wrap(await nodeBlobFs.openDirect!(path), directFaults);
    },
  };
}

/**
 * A disk whose fsyncs (a commit's `sync()`) wait for `release()`, then pass or fail with EIO. Held from the
 * start, or (`heldFrom: 'hold'`) only from a call to `hold()` on.
 */
export function heldSyncFs(
  then: 'pass' | 'fail',
  opts: { heldFrom?: 'start' | 'hold' } = {},
): { fs: BlobFs; syncing: Promise<void>; hold: () => void; release: () => void } {
  let held = opts.heldFrom !== 'hold';
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let started!: () => void;
  const syncing = new Promise<void>((r) => (started = r));
  const fs = faultyFs((real) => ({
    async sync() {
      if (held) {
        started();
        await gate;
        if (then === 'fail') throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
      }
      await real.sync();
    },
  }));
  return { fs, syncing, hold: () => (held = true), release };
}
