import { manifestAccept } from '../helpers/http.js';
import { startSwiftS3, type SwiftS3 } from '../helpers/swift-s3.js';
import { curlGets, getFollowing, pull, streamGet } from './client.js';
import { coldPullThrough, failureNote, measured, skopeoPull, timedPull } from './cold-pull.bench.js';
import { largest, MiB, type BenchContext } from './context.js';
import type { BenchImage } from './images.js';
import { median, sleep } from './measure.js';
import { row, type Row, type Subject } from './report.js';
import { startTarget, type Target, type TargetOptions } from './setup.js';

const CLIENTS = 8;
const SMALL_GETS = 200;
const BUCKET = 'wharf-bench';

/**
 * The `storage` section of a wharf on the bench's Swift: one bucket, a prefix per mirror (a wharf without Redis
 * claims its bucket and prefix for itself, and a cold pull needs a prefix nothing has filled).
 */
function s3Storage(swift: SwiftS3, prefix: string, redirect: boolean): TargetOptions {
  return {
    storage: {
      s3: {
        endpoint: swift.endpoint,
        region: swift.region,
        bucket: BUCKET,
        prefix,
        forcePathStyle: true,
        accessKeyId: swift.accessKeyId,
        secretAccessKey: swift.secretAccessKey,
        redirect,
      },
    },
  };
}

/**
 * The blob's bytes are right, and (`redirect`) come from the bucket. A download's last byte reaches its client
 * before the blob is committed and linked, so the GET after it may still be served by wharf: up to 10 s of retries.
 */
async function verify(url: string, want: { digest: string; size: number }, redirect: boolean): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const r = await getFollowing(url, 120_000);
    if (r.status !== 200 || r.digest !== want.digest || r.bytes !== want.size) {
      throw new Error(`${url}: HTTP ${r.status}, ${r.bytes} bytes ${r.digest} (want ${want.size} ${want.digest})`);
    }
    if (r.redirected === redirect) return;
    if (attempt >= 40) throw new Error(`${url}: ${r.redirected ? 'redirected' : 'served by wharf'}, want the other`);
    await sleep(250);
  }
}

/**
 * Object-storage reads wharf counted (`wharf_storage_requests_total`, op head or get): what serving a blob costs
 * (the sole-use claim's renewal PUT every 20 s is no GET's).
 */
async function storageRequests(base: string): Promise<Map<string, number>> {
  const r = await streamGet(`${base}/metrics`);
  if (r.status !== 200 || r.body === undefined) throw new Error(`${base}/metrics: HTTP ${r.status}`);
  const out = new Map<string, number>();
  for (const m of r.body.toString('utf8').matchAll(/^wharf_storage_requests_total\{([^}]*)\} (\S+)$/gm)) {
    const op = /op="([^"]+)"/.exec(m[1]!)?.[1] ?? '?';
    if (op !== 'head' && op !== 'get') continue;
    out.set(op, (out.get(op) ?? 0) + Number(m[2]));
  }
  return out;
}

function p99(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(s.length * 0.99) - 1)]!;
}

interface Mirror {
  subject: Subject;
  /** In measure labels: '' for the plain S3 mirror and the disk reference, else what differs. */
  label: string;
  target: Target;
  redirect: boolean;
}

/** The repository's manifest, then the blob twice: the first GET fills the cache, the second checks the warm copy. */
async function warmUp(m: Mirror, img: BenchImage, blob: { digest: string; size: number }): Promise<void> {
  const r = await streamGet(`${m.target.url}/v2/${img.repo}/manifests/${img.tag}`, { accept: manifestAccept });
  if (r.status !== 200) throw new Error(`${m.subject}: manifest HTTP ${r.status}`);
  await verify(`${m.target.url}/v2/${img.repo}/blobs/${blob.digest}`, blob, false);
  await verify(`${m.target.url}/v2/${img.repo}/blobs/${blob.digest}`, blob, m.redirect);
}

/**
 * 7. Object storage: wharf with its blobs in a single-node OpenStack Swift (s3api), beside wharf on its disk for
 * the same workloads: warm GETs of the 256 MiB layer (1 and 8 clients), warm GETs of a small blob one after
 * another (latency, and object-storage requests per GET), and cold pulls with skopeo; each with `redirect` off
 * and on (on: the client follows the 307 to Swift, the redirect's round trip counted).
 */
export async function objectStorage(ctx: BenchContext): Promise<Row[]> {
  const swift = await startSwiftS3();
  const stops: Array<() => Promise<void>> = [() => swift.stop()];
  try {
    await swift.createBucket(BUCKET);
    const plain = await startTarget('wharf', ctx.hub.link, s3Storage(swift, 'warm/', false));
    stops.push(() => plain.stop());
    const redirecting = await startTarget('wharf', ctx.hub.link, s3Storage(swift, 'warm-redirect/', true));
    stops.push(() => redirecting.stop());
    const mirrors: Mirror[] = [
      { subject: 'disk', label: '', target: ctx.warm.wharf, redirect: false },
      { subject: 'wharf', label: '', target: plain, redirect: false },
      { subject: 'wharf', label: 'redirect: true, the client following the 307 to Swift', target: redirecting, redirect: true },
    ];
    return [...(await warmLayer(ctx, mirrors)), ...(await smallBlob(ctx, mirrors)), ...(await coldPulls(ctx, swift))];
  } finally {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  }
}

/** Values for one measure: the disk reference and the S3 mirror(s) with `label`. */
function pick(mirrors: Mirror[], label: string, series: Map<Mirror, number[]>): Partial<Record<Subject, number[]>> {
  const out: Partial<Record<Subject, number[]>> = {};
  for (const m of mirrors) if (m.subject === 'disk' || m.label === label) out[m.subject] = series.get(m) ?? [];
  return out;
}

function measureName(label: string, what: string): string {
  return label ? `${label}: ${what}` : what;
}

async function warmLayer(ctx: BenchContext, mirrors: Mirror[]): Promise<Row[]> {
  const img = ctx.images.big256;
  const layer = largest(img);
  for (const m of mirrors) await warmUp(m, img, layer);
  const one = new Map<Mirror, number[]>(mirrors.map((m) => [m, []]));
  const many = new Map<Mirror, number[]>(mirrors.map((m) => [m, []]));
  for (let i = 0; i < ctx.reps; i++) {
    for (const m of mirrors) {
      const url = `${m.target.url}/v2/${img.repo}/blobs/${layer.digest}`;
      const r1 = await curlGets(url, 1, 120_000, { follow: m.redirect });
      if (r1.statuses.some((x) => x !== 200) || r1.bytes !== layer.size) throw new Error(`${m.subject} ${m.label}: single GET ${r1.statuses.join(',')} ${r1.bytes} bytes`);
      one.get(m)!.push(r1.bytes / MiB / (r1.wallMs / 1000));
      const r8 = await curlGets(url, CLIENTS, 120_000, { follow: m.redirect });
      if (r8.statuses.some((x) => x !== 200) || r8.bytes !== layer.size * CLIENTS) throw new Error(`${m.subject} ${m.label}: ${CLIENTS} GETs ${r8.statuses.join(',')} ${r8.bytes} bytes`);
      many.get(m)!.push(r8.bytes / MiB / (r8.wallMs / 1000));
    }
    ctx.log(`S3 warm layer rep ${i + 1}: 1 client ${mirrors.map((m) => one.get(m)!.at(-1)!.toFixed(0)).join(' / ')} MiB/s; ${CLIENTS} clients ${mirrors.map((m) => many.get(m)!.at(-1)!.toFixed(0)).join(' / ')} MiB/s (disk / S3 / S3 redirect)`);
  }
  const scenario = '7. Object storage (Swift s3api): warm blob GET, 256 MiB layer';
  const rows: Row[] = [];
  for (const label of ['', mirrors[2]!.label]) {
    rows.push(row({ scenario, measure: measureName(label, '1 client'), unit: 'MiB/s', values: pick(mirrors, label, one), ratios: [['wharf', 'disk']] }));
    rows.push(row({ scenario, measure: measureName(label, `${CLIENTS} concurrent clients, total`), unit: 'MiB/s', values: pick(mirrors, label, many), ratios: [['wharf', 'disk']] }));
  }
  return rows;
}

/** Sequential GETs of the smallest blob of the 20-layer image (its config): what each warm GET costs besides bytes. */
async function smallBlob(ctx: BenchContext, mirrors: Mirror[]): Promise<Row[]> {
  const img = ctx.images.layers20;
  const blob = img.blobs.reduce((a, b) => (b.size < a.size ? b : a));
  for (const m of mirrors) {
    // A pull fills the cache and links the blobs to the repository; the next GET of one is warm.
    const first = await pull(m.target.url, img.repo, img.tag);
    if (!first.ok) throw new Error(`${m.subject} ${m.label}: pull: ${first.problem ?? ''}`);
    await verify(`${m.target.url}/v2/${img.repo}/blobs/${blob.digest}`, blob, m.redirect);
  }
  const medians = new Map<Mirror, number[]>(mirrors.map((m) => [m, []]));
  const tails = new Map<Mirror, number[]>(mirrors.map((m) => [m, []]));
  const perGet = new Map<Mirror, number[]>(mirrors.map((m) => [m, []]));
  const ops = new Map<Mirror, Map<string, number>>();
  for (let i = 0; i < ctx.reps; i++) {
    for (const m of mirrors) {
      const url = `${m.target.url}/v2/${img.repo}/blobs/${blob.digest}`;
      const before = m.subject === 'disk' ? undefined : await storageRequests(m.target.url);
      const ms: number[] = [];
      for (let n = 0; n < SMALL_GETS; n++) {
        const r = await getFollowing(url);
        if (r.status !== 200 || r.digest !== blob.digest || r.redirected !== m.redirect) throw new Error(`${m.subject} ${m.label}: GET ${n + 1}: HTTP ${r.status} ${r.digest}`);
        ms.push(r.ms);
      }
      medians.get(m)!.push(median(ms));
      tails.get(m)!.push(p99(ms));
      if (before) {
        const after = await storageRequests(m.target.url);
        const delta = new Map([...after].map(([op, v]) => [op, (v - (before.get(op) ?? 0)) / SMALL_GETS] as const).filter(([, v]) => v > 0));
        perGet.get(m)!.push([...delta.values()].reduce((a, b) => a + b, 0));
        ops.set(m, delta);
      }
    }
    ctx.log(`S3 small blob rep ${i + 1}: median ${mirrors.map((m) => medians.get(m)!.at(-1)!.toFixed(2)).join(' / ')} ms; S3 requests per GET ${mirrors.slice(1).map((m) => perGet.get(m)!.at(-1)!.toFixed(2)).join(' / ')} (disk / S3 / S3 redirect)`);
  }
  const scenario = `7. Object storage (Swift s3api): warm GET of a ${blob.size}-byte blob, ${SMALL_GETS} one after another, a new connection each`;
  const rows: Row[] = [];
  for (const label of ['', mirrors[2]!.label]) {
    rows.push(row({ scenario, measure: measureName(label, 'median latency'), unit: 'ms', values: pick(mirrors, label, medians), ratios: [['wharf', 'disk']] }));
    rows.push(row({ scenario, measure: measureName(label, 'p99 latency'), unit: 'ms', values: pick(mirrors, label, tails), ratios: [['wharf', 'disk']] }));
    const m = mirrors.find((x) => x.subject === 'wharf' && x.label === label)!;
    const r = row({ scenario, measure: measureName(label, 'object-storage requests per GET'), unit: '', values: { wharf: perGet.get(m)! } });
    r.note = `by operation, last repetition: ${[...(ops.get(m) ?? new Map<string, number>())].map(([op, v]) => `${op} ${v.toFixed(2)}`).join(', ') || 'none'}`;
    rows.push(r);
  }
  return rows;
}

/**
 * Cold pulls through a fresh wharf on an empty prefix of the bucket (the warm-up image first, as in scenario 3),
 * beside a fresh wharf on its disk and skopeo pulling directly from the upstream, unthrottled.
 */
async function coldPulls(ctx: BenchContext, swift: SwiftS3): Promise<Row[]> {
  const rows: Row[] = [];
  let n = 0;
  for (const redirect of [false, true]) {
    for (const img of [ctx.images.big256, ctx.images.layers20]) {
      const times: Record<string, number[]> = { wharf: [], disk: [], direct: [] };
      const failures = new Map<string, string[]>();
      for (let i = 0; i < ctx.reps; i++) {
        times.disk!.push((await timedPull(ctx, 'wharf on disk', failures, () => coldPullThrough(ctx, 'wharf', img))) / 1000);
        times.wharf!.push((await timedPull(ctx, 'wharf on S3', failures, () => coldPullThrough(ctx, 'wharf', img, false, s3Storage(swift, `cold-${++n}/`, redirect)))) / 1000);
        times.direct!.push((await timedPull(ctx, 'direct', failures, () => skopeoPull(ctx.hub.link.url, img))) / 1000);
        ctx.log(`S3 cold pull ${img.label}, redirect ${redirect}, rep ${i + 1}: ${Object.entries(times).map(([k, v]) => `${k} ${v.at(-1)!.toFixed(2)} s`).join(', ')}`);
      }
      const measure = redirect ? `redirect: true: ${img.label}` : img.label;
      const r = row({ scenario: '7. Object storage (Swift s3api): cold pull (skopeo), unthrottled', measure, unit: 's', values: measured(times), ratios: [['wharf', 'disk'], ['wharf', 'direct']] });
      if (failures.size > 0) r.note = failureNote(failures);
      rows.push(r);
    }
  }
  return rows;
}
