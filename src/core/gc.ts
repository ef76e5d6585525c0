import type { Digest } from '../oci/index.js';
import type { BlobStore, MetadataStore, UploadRecord } from '../store/types.js';
import { closure, maybeYield, scanLinks, type GcReport } from './lifecycle-types.js';
import { PhaseProgress, noProgress, type OnProgress } from './progress.js';

export interface TempSweeper {
  sweepTemp?(olderThanMs: number, isLive?: (id: string) => boolean | Promise<boolean>): Promise<{ removed: string[]; bytes: number }>;
}

export interface GcDeps {
  store: BlobStore & TempSweeper;
  meta: MetadataStore;
  now: () => number;
  /** upload sessions idle longer than this are removed with their temp files */
  uploadExpiryMs: number;
  /** temp files and committed blobs younger than this are never touched (pushes and fetches in progress) */
  tempGraceMs: number;
  dryRun: boolean;
  /** told at every upload, temp sweep and blob examined (the UI's maintenance jobs) */
  onProgress?: OnProgress;
}

/**
 * `wharf gc`: removes committed blobs nothing links or references, expired upload sessions with their temp
 * files, and temp files no session owns. Safe while wharf serves: anything younger than tempGraceMs is
 * left alone, and every blob is re-checked for links just before it is removed.
 */
export async function collectGarbage(deps: GcDeps): Promise<GcReport> {
  const report: GcReport = { blobs: [], uploads: [], temps: [], freedBytes: 0, dryRun: deps.dryRun };
  const on = deps.onProgress ?? noProgress;
  const { live, expired } = await partitionUploads(deps);
  await removeUploads(deps, expired, report, new PhaseProgress(on, 'uploads', expired.length, null));
  const temps = new PhaseProgress(on, 'temp files', 1, null);
  await sweepTemps(deps, live, new Set(expired.map((u) => u.writerId)), report);
  temps.step();
  await removeBlobs(deps, report, on);
  report.uploads.sort((a, b) => cmp(a.id, b.id));
  report.temps.sort(cmp);
  report.blobs.sort((a, b) => cmp(a.digest, b.digest));
  return report;
}

async function partitionUploads(deps: GcDeps): Promise<{ live: Set<string>; expired: UploadRecord[] }> {
  const live = new Set<string>();
  const expired: UploadRecord[] = [];
  const cutoff = deps.now() - deps.uploadExpiryMs;
  for await (const u of deps.meta.listUploads()) {
    if (u.updatedAt < cutoff) expired.push(u);
    else live.add(u.writerId);
  }
  return { live, expired };
}

async function removeUploads(deps: GcDeps, expired: UploadRecord[], report: GcReport, progress: PhaseProgress): Promise<void> {
  for (const u of expired) {
    await removeUpload(deps, u, report);
    progress.step(u.size);
  }
}

async function removeUpload(deps: GcDeps, u: UploadRecord, report: GcReport): Promise<void> {
  if (deps.dryRun) {
    report.uploads.push({ id: u.id, repo: u.repo, size: u.size });
    report.freedBytes += u.size;
    return;
  }
  // A PATCH may have revived it since the listing: only an upload still idle is removed.
  const cur = await deps.meta.getUpload(u.id);
  if (!cur || cur.updatedAt >= deps.now() - deps.uploadExpiryMs) return;
  await deps.meta.deleteUpload(u.id);
  const w = await deps.store.resume(cur.writerId).catch(() => undefined);
  if (w) {
    report.freedBytes += w.size;
    await w.cancel();
  }
  report.uploads.push({ id: cur.id, repo: cur.repo, size: cur.size });
}

async function sweepTemps(deps: GcDeps, live: Set<string>, expiredWriters: Set<string>, report: GcReport): Promise<void> {
  if (!deps.store.sweepTemp) return;
  // Expired sessions' files are reported under uploads; a dry run lists instead of removing by answering
  // "live" for every file old enough to go.
  const owned = (id: string) => live.has(id) || expiredWriters.has(id);
  const isLive = async (id: string) => {
    if (owned(id)) return true;
    if (deps.dryRun) {
      report.temps.push(id);
      return true;
    }
    return false;
  };
  const swept = await deps.store.sweepTemp(deps.tempGraceMs, isLive);
  report.temps.push(...swept.removed);
  report.freedBytes += swept.bytes;
}

async function removeBlobs(deps: GcDeps, report: GcReport, on: OnProgress): Promise<void> {
  const links = new PhaseProgress(on, 'links', null, null);
  const graph = await scanLinks(deps.meta);
  links.step();
  // Linked digests and everything linked manifests reference, even where the reference is not linked itself.
  const referenced = closure(graph, graph.keys());
  const young = deps.now() - deps.tempGraceMs;
  // Listed first, so the blobs phase has a total to report against (a blob committed meanwhile is young anyway).
  const blobs = await listBlobs(deps.store, on);
  const progress = new PhaseProgress(on, 'blobs', blobs.length, blobs.reduce((n, b) => n + b.size, 0));
  let i = 0;
  for (const { digest, size } of blobs) {
    await maybeYield(++i);
    if (await removeBlob(deps, referenced, young, digest)) {
      report.blobs.push({ digest, size });
      report.freedBytes += size;
    }
    progress.step(size);
  }
}

/** Every committed blob with its size, reported as a phase of its own (an S3 listing takes a while). */
export async function listBlobs(store: Pick<BlobStore, 'list'>, on: OnProgress): Promise<Array<{ digest: Digest; size: number }>> {
  const progress = new PhaseProgress(on, 'listing blobs', null, null);
  const out: Array<{ digest: Digest; size: number }> = [];
  for await (const { digest, size } of store.list()) {
    out.push({ digest, size });
    progress.step(size);
    await maybeYield(out.length);
  }
  return out;
}

/** Whether this blob went (or, in a dry run, would go). */
async function removeBlob(deps: GcDeps, referenced: Set<Digest>, young: number, digest: Digest): Promise<boolean> {
  if (referenced.has(digest)) return false;
  if (await isYoung(deps, digest, young)) return false;
  // A push or pull may have linked it since the scan.
  if ((await deps.meta.linksOf(digest)).length > 0) return false;
  if (!deps.dryRun) {
    await deps.meta.forgetAccess(digest);
    if (!(await deps.store.delete(digest))) return false;
  }
  return true;
}

/** Written or read within the grace period: a push in progress links its blobs right after commit. */
async function isYoung(deps: GcDeps, digest: Digest, cutoff: number): Promise<boolean> {
  if (deps.store.statTime) {
    const t = await deps.store.statTime(digest);
    if (t === undefined || t > cutoff) return true;
  }
  const accessed = await deps.meta.lastAccess(digest);
  return accessed !== undefined && accessed > cutoff;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
