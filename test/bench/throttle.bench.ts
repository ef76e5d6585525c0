import { manifestAccept } from '../helpers/http.js';
import { streamGet, type Fetched } from './client.js';
import { makeImage, pushImage } from '../helpers/oci-image.js';
import type { BenchContext } from './context.js';
import { errorCode, sleep } from './measure.js';
import { startTarget, type TargetKind, type UpstreamWindow } from './setup.js';

/** Extra scenarios' outcomes for one mirror: row label → cell text, in display order. */
export type Figures = Map<string, string>;

/** wharf's tag freshness in this scenario: short, so a cached tag can be taken past it in seconds. */
const WHARF_FRESHNESS_S = 2;

const RETRY_AFTER = 3;

function describe(r: Fetched, cachedDigest?: string): string {
  const parts = [`${r.status}`];
  const code = errorCode(r.head);
  if (r.status >= 400) parts.push(code ?? JSON.stringify(r.head.slice(0, 80)));
  if (r.headers['retry-after'] !== undefined) parts.push(`Retry-After: ${r.headers['retry-after']}`);
  if (r.status === 200 && cachedDigest !== undefined) parts.push(r.digest === cachedDigest ? '(cached manifest)' : '(other manifest)');
  return parts.join(' ');
}

/** The upstream answers 429 to every manifest request: what does the client see? */
export async function upstream429({ hub }: BenchContext, kind: TargetKind): Promise<Figures> {
  const repo = `bench/stale-${kind}`;
  const v1 = makeImage({ layers: 1, layerSize: 4096 });
  await pushImage(hub.registry.url, repo, 'v1', v1);
  await pushImage(hub.registry.url, repo, 'v2', makeImage({ layers: 1, layerSize: 4096 }));
  const target = await startTarget(kind, hub.link, { tagFreshness: `${WHARF_FRESHNESS_S}s` });
  try {
    return await throttled(hub, target.url, repo, v1.manifestDigest);
  } finally {
    await target.stop();
  }
}

async function throttled(hub: BenchContext['hub'], base: string, repo: string, cachedDigest: string): Promise<Figures> {
  const get = (tag: string): Promise<Fetched> => streamGet(`${base}/v2/${repo}/manifests/${tag}`, { accept: manifestAccept });
  const first = await get('v1');
  if (first.status !== 200) throw new Error(`caching bench/stale:v1: HTTP ${first.status} ${first.head.slice(0, 200)}`);
  // Past wharf's freshness window, so it must ask upstream; Distribution asks on every request anyway.
  await sleep(WHARF_FRESHNESS_S * 1000 + 700);
  hub.proxy.inject({
    match: { path: new RegExp(`^/v2/${repo}/manifests/`) },
    action: {
      kind: 'status',
      status: 429,
      headers: { 'content-type': 'application/json', 'retry-after': String(RETRY_AFTER) },
      body: '{"errors":[{"code":"TOOMANYREQUESTS","message":"pull rate limit exceeded"}]}',
    },
  });
  try {
    const throttled = (w: UpstreamWindow): number => w.requests().filter((r) => r.fault === 'status').length;
    const w1 = hub.mark();
    const cached = await get('v1');
    const sent1 = throttled(w1);
    // A mirror may hold back every request to a throttled upstream until Retry-After has passed;
    // waiting it out makes the second case ask upstream on its own.
    await sleep(RETRY_AFTER * 1000 + 300);
    const w2 = hub.mark();
    const uncached = await get('v2');
    const sent2 = throttled(w2);
    const f: Figures = new Map();
    f.set('cached tag past freshness: client sees', describe(cached, cachedDigest));
    f.set(`uncached tag: client sees (upstream sent Retry-After: ${RETRY_AFTER})`, describe(uncached));
    f.set('upstream 429s sent: cached / uncached case', `${sent1} / ${sent2}`);
    return f;
  } finally {
    hub.proxy.clearFaults();
  }
}
