import { manifestAccept } from '../helpers/http.js';
import { streamGet, type Fetched } from './client.js';
import { errorCode, sleep, type Figures, type ScenarioContext } from './measure.js';
import { WHARF_FRESHNESS_S, type UpstreamWindow } from './setup.js';

const RETRY_AFTER = 3;

function describe(r: Fetched, cachedDigest?: string): string {
  const parts = [`${r.status}`];
  const code = errorCode(r.head);
  if (r.status >= 400) parts.push(code ?? JSON.stringify(r.head.slice(0, 80)));
  if (r.headers['retry-after'] !== undefined) parts.push(`Retry-After: ${r.headers['retry-after']}`);
  if (r.status === 200 && cachedDigest !== undefined) parts.push(r.digest === cachedDigest ? '(cached manifest)' : '(other manifest)');
  return parts.join(' ');
}

/** 4. The upstream answers 429 to every manifest request: what does the client see? */
export async function upstream429({ target, hub, images }: ScenarioContext): Promise<Figures> {
  const get = (tag: string): Promise<Fetched> => streamGet(`${target.url}/v2/bench/stale/manifests/${tag}`, { accept: manifestAccept });
  const first = await get('v1');
  if (first.status !== 200) throw new Error(`caching bench/stale:v1: HTTP ${first.status} ${first.head.slice(0, 200)}`);
  // Past wharf's freshness window, so it must ask upstream; Distribution asks on every request anyway.
  await sleep(WHARF_FRESHNESS_S * 1000 + 700);
  hub.proxy.inject({
    match: { path: /^\/v2\/bench\/stale\/manifests\// },
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
    f.set('cached tag past freshness: client sees', describe(cached, images.staleV1.manifestDigest));
    f.set(`uncached tag: client sees (upstream sent Retry-After: ${RETRY_AFTER})`, describe(uncached));
    f.set('upstream 429s sent: cached / uncached case', `${sent1} / ${sent2}`);
    return f;
  } finally {
    hub.proxy.clearFaults();
  }
}
