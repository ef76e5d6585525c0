import { useEffect } from 'preact/hooks';
import { api } from '../api.js';
import { ErrorBox, Loading } from '../components.js';
import { bytes, percent } from '../format.js';
import { useLoad } from '../load.js';

const REFRESH_MS = 5000;

/** The cache dashboard, refreshed every few seconds. */
export function CachePage() {
  const { data, error, reload } = useLoad(() => api.stats(), []);
  useEffect(() => {
    const t = setInterval(reload, REFRESH_MS);
    return () => clearInterval(t);
  }, [reload]);
  if (error !== undefined && !data) return <main><h1>Cache</h1><ErrorBox error={error} /></main>;
  if (!data) return <main><h1>Cache</h1><Loading /></main>;
  const c = data.cache;
  const total = data.bytesFromCache + data.bytesFromUpstream;
  return (
    <main>
      <h1>Cache</h1>
      <p class="muted">Since this wharf process started; refreshed every {REFRESH_MS / 1000} s.</p>
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
          <p class="muted">upstream fetches running now</p>
        </section>
      </div>
      <h2>Upstreams</h2>
      {data.upstreams.length === 0 ? (
        <p class="muted">No upstreams configured: a plain registry.</p>
      ) : (
        <div class="scroll">
          <table>
            <thead>
              <tr>
                <th scope="col">Upstream</th>
                <th scope="col">Rate limit remaining</th>
              </tr>
            </thead>
            <tbody>
              {data.upstreams.map((u) => (
                <tr key={u.name}>
                  <td>{u.name}</td>
                  <td>
                    {u.rateLimit?.remaining !== undefined
                      ? `${u.rateLimit.remaining}${u.rateLimit.limit !== undefined ? ` of ${u.rateLimit.limit}` : ''}${u.rateLimit.windowSeconds ? ` per ${Math.round(u.rateLimit.windowSeconds / 3600)} h` : ''}`
                      : 'not reported yet'}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </main>
  );
}
