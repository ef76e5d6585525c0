import { useEffect, useState } from 'preact/hooks';
import { api, type SessionInfo } from '../api.js';
import { Badge, ErrorBox, Loading } from '../components.js';
import { bytes, iso, when } from '../format.js';
import { useLoad } from '../load.js';
import { href } from '../router.js';

const PER_PAGE = 50;

/** The repositories list: instant search over repository and tag names, filters, sort, paging. */
export function ReposPage({ session }: { session: SessionInfo }) {
  const [q, setQ] = useState('');
  const [query, setQuery] = useState('');
  const [kind, setKind] = useState('');
  const [upstream, setUpstream] = useState('');
  const [sort, setSort] = useState('name');
  const [order, setOrder] = useState('asc');
  const [page, setPage] = useState(1);
  // Each keystroke narrows the list after a short pause, not on every key.
  useEffect(() => {
    const t = setTimeout(() => {
      setQuery(q);
      setPage(1);
    }, 120);
    return () => clearTimeout(t);
  }, [q]);
  const { data, error } = useLoad(() => api.repositories({ q: query, kind, upstream, sort, order, page, perPage: PER_PAGE }), [query, kind, upstream, sort, order, page]);
  const pages = data ? Math.max(1, Math.ceil(data.total / data.perPage)) : 1;
  return (
    <main>
      <h1>Repositories</h1>
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <label>
          <span>Search</span>
          <input type="search" name="q" value={q} placeholder="repository or tag" autoFocus onInput={(e) => setQ(e.currentTarget.value)} />
        </label>
        <label>
          <span>Kind</span>
          <select value={kind} onChange={(e) => (setKind(e.currentTarget.value), setPage(1))}>
            <option value="">all</option>
            <option value="local">local (pushed)</option>
            <option value="mirrored">mirrored</option>
          </select>
        </label>
        {session.upstreams.length > 0 && (
          <label>
            <span>Upstream</span>
            <select value={upstream} onChange={(e) => (setUpstream(e.currentTarget.value), setPage(1))}>
              <option value="">any</option>
              {session.upstreams.map((u) => (
                <option key={u} value={u}>
                  {u}
                </option>
              ))}
            </select>
          </label>
        )}
        <label>
          <span>Sort by</span>
          <select value={sort} onChange={(e) => {
            const s = e.currentTarget.value;
            setSort(s);
            setOrder(s === 'name' ? 'asc' : 'desc');
          }}>
            <option value="name">name</option>
            <option value="size">size</option>
            <option value="tags">tags</option>
            <option value="updated">last pushed/cached</option>
            <option value="pulled">last pulled</option>
            <option value="pulls">pulls (24 h)</option>
          </select>
        </label>
        <button type="button" onClick={() => setOrder(order === 'asc' ? 'desc' : 'asc')} aria-label={`Order: ${order === 'asc' ? 'ascending' : 'descending'}; switch`}>
          {order === 'asc' ? '↑' : '↓'}
        </button>
      </form>
      {error !== undefined ? (
        <ErrorBox error={error} />
      ) : !data ? (
        <Loading />
      ) : (
        <>
          <p class="muted" aria-live="polite">
            {data.total} {data.total === 1 ? 'repository' : 'repositories'}
          </p>
          <div class="scroll">
            <table class="repos">
              <thead>
                <tr>
                  <th scope="col">Repository</th>
                  <th scope="col">Source</th>
                  <th scope="col" class="num">Tags</th>
                  <th scope="col" class="num">Size</th>
                  <th scope="col" class="wide">Pushed / cached</th>
                  <th scope="col" class="wide">Last pulled</th>
                  <th scope="col" class="num" title="manifest pulls over the last 24 hours, all replicas">Pulls (24 h)</th>
                </tr>
              </thead>
              <tbody>
                {data.items.map((r) => (
                  <tr key={r.name}>
                    <td>
                      <a href={href.repo(r.name)}>{r.name}</a>
                      {r.matchedTags && (
                        <div class="tags-hit">
                          {r.matchedTags.map((t) => (
                            <a key={t} href={href.image(r.name, t)} class="tag">
                              {t}
                            </a>
                          ))}
                        </div>
                      )}
                    </td>
                    <td>
                      {r.local && <Badge kind="local">local</Badge>} {r.mirrored && <Badge kind="mirrored">{r.upstream ?? 'mirrored'}</Badge>}
                    </td>
                    <td class="num">{r.tagCount}</td>
                    <td class="num">{bytes(r.bytes)}</td>
                    <td class="wide">
                      <time dateTime={iso(r.updatedAt)}>{when(r.updatedAt)}</time>
                    </td>
                    <td class="wide">
                      <time dateTime={iso(r.lastPulled)}>{when(r.lastPulled)}</time>
                    </td>
                    <td class="num">{r.pulls}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <nav class="pager" aria-label="Pages">
            <button type="button" disabled={page <= 1} onClick={() => setPage(page - 1)}>
              Previous
            </button>
            <span>
              Page {page} of {pages}
            </span>
            <button type="button" disabled={page >= pages} onClick={() => setPage(page + 1)}>
              Next
            </button>
          </nav>
        </>
      )}
    </main>
  );
}
