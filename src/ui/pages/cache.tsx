import { api, type Download, type PullCount, type UpstreamStatus } from '../api.js';
import { ErrorBox, Loading } from '../components.js';
import { bytes, iso, percent, shortDigest, when } from '../format.js';
import { useLoad } from '../load.js';
import { usePolling } from '../poll.js';
import { href } from '../router.js';

const REFRESH_MS = 5000;

/** The cache dashboard, refreshed every few seconds while the tab is visible. */
export function CachePage() {
  const { data, error, reload } = useLoad(() => api.stats(), []);
  usePolling(reload, REFRESH_MS);
  if (error !== undefined && !data) return <main><h1>Cache</h1><ErrorBox error={error} /></main>;
  if (!data) return <main><h1>Cache</h1><Loading /></main>;
  const c = data.cache;
  const total = data.bytesFromCache + data.bytesFromUpstream;
  return (
    <main>
      <h1>Cache</h1>
      <p class="muted">Traffic since this wharf process started; refreshed every {REFRESH_MS / 1000} s while this tab is visible.</p>
      {error !== undefined && <ErrorBox error={error} />}
      <div class="cards">
        <section class="card" aria-labelledby="hit-h">
          <h2 id="hit-h">Hit ratio</h2>
          <p class="big" data-testid="hit-ratio">
            {percent(data.hitRatio)}
          </p>
          <p class="muted">
            {data.hits} of {data.requests} cache lookups answered without a new upstream fetch
          </p>
        </section>
        <section class="card" aria-labelledby="bytes-h">
          <h2 id="bytes-h">Bytes served</h2>
          <p class="big">{bytes(data.bytesFromCache)}</p>
          <p class="muted">
            from cache (bandwidth saved) · {bytes(data.bytesFromUpstream)} passed through from upstream
          </p>
          {total > 0 && <meter min={0} max={total} value={data.bytesFromCache} aria-label="Share of bytes served from cache" />}
        </section>
        <section class="card" aria-labelledby="size-h">
          <h2 id="size-h">Cache size</h2>
          <p class="big">{bytes(c.mirroredBytes)}</p>
          <p class="muted">
            mirrored{c.maxSize !== undefined ? ` of ${bytes(c.maxSize)} (cache.maxSize)` : ' (no cache.maxSize)'} · {bytes(c.localBytes)} pushed here · {c.blobs} blobs
          </p>
          {c.maxSize !== undefined && <meter min={0} max={c.maxSize} high={c.maxSize * c.highWatermark} value={c.mirroredBytes} aria-label="Cache size against its limit" />}
        </section>
        <section class="card" aria-labelledby="fly-h">
          <h2 id="fly-h">Downloads in flight</h2>
          <p class="big">{data.inflightFetches}</p>
          <p class="muted">upstream fetches running on this replica now</p>
        </section>
      </div>
      <Downloads downloads={data.downloads} />
      <h2 id="top-h">Most pulled</h2>
      <p class="muted">Manifest pulls on every replica (a multi-platform pull counts once), of repositories you may pull.</p>
      <div class="pair">
        <TopPulls caption="Last hour" items={data.topPulls.hour} />
        <TopPulls caption="Last day" items={data.topPulls.day} />
      </div>
      <Upstreams upstreams={data.upstreams} />
    </main>
  );
}

function Downloads({ downloads }: { downloads: Download[] }) {
  return (
    <>
      <h2 id="dl-h">Downloads from upstreams</h2>
      {downloads.length === 0 ? (
        <p class="muted">Nothing is being fetched from an upstream on this replica right now.</p>
      ) : (
        <div class="scroll">
          <table aria-labelledby="dl-h">
            <caption class="sr-only">Blobs being fetched from upstreams by this replica, with progress</caption>
            <thead>
              <tr>
                <th scope="col">Repository</th>
                <th scope="col">Blob</th>
                <th scope="col">Progress</th>
                <th scope="col">Clients</th>
                <th scope="col" class="wide">Upstream</th>
                <th scope="col" class="wide">Started</th>
              </tr>
            </thead>
            <tbody>
              {downloads.map((d) => {
                const label = `${bytes(d.received)} of ${d.size !== undefined ? bytes(d.size) : 'unknown size'}`;
                return (
                  <tr key={d.digest}>
                    <th scope="row">
                      <a href={href.repo(d.repository)}>{d.repository}</a>
                    </th>
                    <td>
                      <code title={d.digest}>{shortDigest(d.digest)}</code>
                    </td>
                    <td class="progress-cell">
                      {d.size !== undefined && d.size > 0 ? (
                        <progress max={d.size} value={d.received} aria-label={`${d.repository} ${shortDigest(d.digest)}: ${label}`} />
                      ) : (
                        <progress aria-label={`${d.repository} ${shortDigest(d.digest)}: ${label}`} />
                      )}
                      <span class="muted">{label}</span>
                    </td>
                    <td>{d.clients}</td>
                    <td class="wide">{d.upstream}</td>
                    <td class="wide">
                      <time dateTime={iso(d.startedAt)}>{when(d.startedAt)}</time>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

function TopPulls({ caption, items }: { caption: string; items: PullCount[] }) {
  return (
    <div class="scroll">
      <table>
        <caption>{caption}</caption>
        <thead>
          <tr>
            <th scope="col">Repository</th>
            <th scope="col" class="num">Pulls</th>
          </tr>
        </thead>
        <tbody>
          {items.length === 0 ? (
            <tr>
              <td colSpan={2} class="muted">
                No pulls
              </td>
            </tr>
          ) : (
            items.map((p) => (
              <tr key={p.repository}>
                <th scope="row">
                  <a href={href.repo(p.repository)}>{p.repository}</a>
                </th>
                <td class="num">{p.pulls}</td>
              </tr>
            ))
          )}
        </tbody>
      </table>
    </div>
  );
}

const STATE: Record<string, string> = { ok: 'Reachable', failing: 'Unreachable', unknown: 'Not contacted yet' };

function Upstreams({ upstreams }: { upstreams: UpstreamStatus[] }) {
  return (
    <>
      <h2 id="up-h">Upstreams</h2>
      {upstreams.length === 0 ? (
        <p class="muted">No upstreams configured: a plain registry.</p>
      ) : (
        <div class="scroll">
          <table aria-labelledby="up-h">
            <caption class="sr-only">Health and rate-limit headroom of each upstream, as this replica saw them</caption>
            <thead>
              <tr>
                <th scope="col">Upstream</th>
                <th scope="col">Health</th>
                <th scope="col">Last contact</th>
                <th scope="col">Last error</th>
                <th scope="col">Rate limit remaining</th>
              </tr>
            </thead>
            <tbody>
              {upstreams.map((u) => {
                const state = u.health?.state ?? 'unknown';
                const rl = u.rateLimit;
                return (
                  <tr key={u.name} data-upstream={u.name}>
                    <th scope="row">{u.name}</th>
                    <td>
                      <span class={`health ${state}`}>{STATE[state]}</span>
                      {u.throttledUntil !== undefined && u.throttledUntil > Date.now() && (
                        <span class="muted"> · held back until <time dateTime={iso(u.throttledUntil)}>{new Date(u.throttledUntil).toLocaleTimeString()}</time> (429)</span>
                      )}
                    </td>
                    <td>
                      <time dateTime={iso(u.health?.lastSuccess)}>{when(u.health?.lastSuccess)}</time>
                    </td>
                    <td>
                      {u.health?.lastError ? (
                        <>
                          <span class="break">{u.health.lastError.message}</span>{' '}
                          <span class="muted">
                            (<time dateTime={iso(u.health.lastError.at)}>{when(u.health.lastError.at)}</time>
                            {u.health.failures > 1 ? `, ${u.health.failures} failures in a row` : ''})
                          </span>
                        </>
                      ) : (
                        <span class="muted">none</span>
                      )}
                    </td>
                    <td>
                      {rl?.remaining !== undefined ? (
                        <>
                          {`${rl.remaining}${rl.limit !== undefined ? ` of ${rl.limit}` : ''}${rl.windowSeconds ? ` per ${Math.round(rl.windowSeconds / 3600)} h` : ''}`}
                          {rl.limit !== undefined && rl.limit > 0 && (
                            <meter min={0} max={rl.limit} low={rl.limit * 0.2} high={rl.limit * 0.5} optimum={rl.limit} value={rl.remaining} aria-label={`${u.name} rate-limit headroom`} />
                          )}
                        </>
                      ) : (
                        <span class="muted">not reported</span>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
