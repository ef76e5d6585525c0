import { api, type SessionInfo } from '../api.js';
import { Badge, ErrorBox, Loading, PullCommands, pullHost } from '../components.js';
import { bytes, kind, platformName, shortDigest } from '../format.js';
import { useLoad } from '../load.js';
import { href } from '../router.js';
import { mayRemove, removeImage } from './repo.js';

function List({ items }: { items?: string[] }) {
  return items && items.length > 0 ? <code>{items.join(' ')}</code> : <span class="muted">–</span>;
}

export function ImagePage({ name, reference, session }: { name: string; reference: string; session: SessionInfo }) {
  const { data, error } = useLoad(() => api.image(name, reference), [name, reference]);
  const title = `${name}${reference.startsWith('sha') && reference.includes(':') ? '@' : ':'}${reference}`;
  const crumbs = (
    <nav aria-label="Breadcrumb" class="crumbs">
      <a href={href.repos()}>Repositories</a> / <a href={href.repo(name)}>{name}</a> / <span>{reference.includes(':') ? shortDigest(reference) : reference}</span>
    </nav>
  );
  if (error !== undefined) return <main>{crumbs}<h1>{title}</h1><ErrorBox error={error} /></main>;
  if (!data) return <main>{crumbs}<h1>{title}</h1><Loading /></main>;
  const tag = reference.includes(':') ? undefined : reference;
  const c = data.config?.content;
  return (
    <main>
      {crumbs}
      <h1 class="break">{title}</h1>
      <dl class="facts">
        <dt>Digest</dt>
        <dd>
          <code class="break">{data.digest}</code>
        </dd>
        <dt>Type</dt>
        <dd>{kind(data.mediaType)}</dd>
        <dt>Source</dt>
        <dd>{data.origin === 'local' ? <Badge kind="local">pushed here</Badge> : <Badge kind="mirrored">mirrored</Badge>}</dd>
        {data.tags.length > 0 && (
          <>
            <dt>Tags</dt>
            <dd>{data.tags.join(', ')}</dd>
          </>
        )}
      </dl>
      <h2>Pull</h2>
      <PullCommands host={pullHost(session.pullHost)} name={data.repository} {...(tag ? { tag } : {})} digest={data.digest} />
      {mayRemove(data.origin, data.rights, data.canPurge) && (
        <p>
          <button
            type="button"
            class="danger"
            onClick={async () => {
              if (await removeImage(name, reference, data.origin)) location.hash = href.repo(name);
            }}
          >
            {data.origin === 'local' ? 'Delete' : 'Purge'} {tag ? `tag ${tag}` : 'manifest'}
          </button>
        </p>
      )}
      {data.manifests && (
        <>
          <h2>Platforms</h2>
          <div class="scroll">
            <table>
              <thead>
                <tr>
                  <th scope="col">Platform</th>
                  <th scope="col">Digest</th>
                  <th scope="col" class="num">Manifest size</th>
                  <th scope="col">Cached</th>
                </tr>
              </thead>
              <tbody>
                {data.manifests.map((m) => (
                  <tr key={m.digest}>
                    <td>{m.cached ? <a href={href.image(name, m.digest)}>{platformName(m.platform)}</a> : platformName(m.platform)}</td>
                    <td>
                      <code title={m.digest}>{shortDigest(m.digest)}</code>
                    </td>
                    <td class="num">{bytes(m.size)}</td>
                    <td>{m.cached ? 'yes' : 'not yet pulled'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
      {data.layers && (
        <>
          <h2>Layers</h2>
          <p class="muted">
            {data.layers.length} layers · {bytes(data.layers.reduce((a, l) => a + l.size, 0))} compressed
          </p>
          <div class="scroll">
            <table>
              <thead>
                <tr>
                  <th scope="col">#</th>
                  <th scope="col">Digest</th>
                  <th scope="col" class="wide">Media type</th>
                  <th scope="col" class="num">Size</th>
                </tr>
              </thead>
              <tbody>
                {data.layers.map((l, i) => (
                  <tr key={`${l.digest}-${i}`}>
                    <td>{i + 1}</td>
                    <td>
                      <code title={l.digest}>{shortDigest(l.digest)}</code>
                    </td>
                    <td class="wide">{l.mediaType}</td>
                    <td class="num">{bytes(l.size)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
      {data.config && (
        <>
          <h2>Config</h2>
          {!c ? (
            <p class="muted">The config blob is not cached here.</p>
          ) : (
            <dl class="facts">
              <dt>Created</dt>
              <dd>{c.created ?? '–'}</dd>
              <dt>Platform</dt>
              <dd>{platformName(c.os && c.architecture ? { os: c.os, architecture: c.architecture, ...(c.variant ? { variant: c.variant } : {}) } : undefined)}</dd>
              <dt>Entrypoint</dt>
              <dd>
                <List items={c.entrypoint} />
              </dd>
              <dt>Cmd</dt>
              <dd>
                <List items={c.cmd} />
              </dd>
              {c.workingDir && (
                <>
                  <dt>Working dir</dt>
                  <dd>{c.workingDir}</dd>
                </>
              )}
              {c.user && (
                <>
                  <dt>User</dt>
                  <dd>{c.user}</dd>
                </>
              )}
              <dt>Env</dt>
              <dd>
                {c.env && c.env.length > 0 ? (
                  <ul class="plain">
                    {c.env.map((e) => (
                      <li key={e}>
                        <code class="break">{e}</code>
                      </li>
                    ))}
                  </ul>
                ) : (
                  '–'
                )}
              </dd>
              <dt>Labels</dt>
              <dd>
                {c.labels && Object.keys(c.labels).length > 0 ? (
                  <ul class="plain">
                    {Object.entries(c.labels).map(([k, v]) => (
                      <li key={k}>
                        <code class="break">
                          {k}={v}
                        </code>
                      </li>
                    ))}
                  </ul>
                ) : (
                  '–'
                )}
              </dd>
            </dl>
          )}
          {c?.history && c.history.length > 0 && (
            <details>
              <summary>History ({c.history.length} steps)</summary>
              <ol class="history">
                {c.history.map((h, i) => (
                  <li key={i}>
                    <code class="break">{h.createdBy ?? h.comment ?? ''}</code>
                    {h.emptyLayer ? <span class="muted"> (no layer)</span> : null}
                  </li>
                ))}
              </ol>
            </details>
          )}
        </>
      )}
      {data.subject && (
        <p>
          Refers to <a href={href.image(name, data.subject.digest)}>{shortDigest(data.subject.digest)}</a> <span class="muted">({kind(data.subject.mediaType)})</span>
        </p>
      )}
      {data.referrers.length > 0 && (
        <>
          <h2 id="referrers-h">Referrers</h2>
          <div class="scroll">
            <table aria-labelledby="referrers-h">
              <caption class="sr-only">Signatures, SBOMs and other artifacts that refer to this image</caption>
              <thead>
                <tr>
                  <th scope="col">Artifact type</th>
                  <th scope="col">Digest</th>
                  <th scope="col" class="num">Size</th>
                </tr>
              </thead>
              <tbody>
                {data.referrers.map((r) => (
                  <tr key={r.digest}>
                    <th scope="row">
                      <a href={href.image(name, r.digest)}>{r.artifactType ?? kind(r.mediaType)}</a>
                    </th>
                    <td>
                      <code title={r.digest}>{shortDigest(r.digest)}</code>
                    </td>
                    <td class="num">{bytes(r.size)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </main>
  );
}
