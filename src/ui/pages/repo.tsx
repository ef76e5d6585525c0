import { useState } from 'preact/hooks';
import { ApiError, api, type SessionInfo, type TagSummary } from '../api.js';
import { Badge, ErrorBox, Loading, PullCommands, pullHost, say } from '../components.js';
import { bytes, iso, kind, shortDigest, when } from '../format.js';
import { useLoad } from '../load.js';
import { href } from '../router.js';

/** May this viewer remove this tag: delete for local tags, purge for mirrored ones (the server checks again). */
export function mayRemove(origin: 'local' | 'upstream', rights: string[], canPurge: boolean): boolean {
  return origin === 'local' ? rights.includes('delete') : canPurge;
}

export async function removeImage(name: string, ref: string, origin: 'local' | 'upstream'): Promise<boolean> {
  const verb = origin === 'local' ? 'Delete' : 'Purge';
  if (!confirm(`${verb} ${name}${ref.includes(':') && ref.startsWith('sha') ? '@' : ':'}${ref}?`)) return false;
  try {
    await api.deleteImage(name, ref);
    say(`${verb}d ${ref}`);
    return true;
  } catch (e) {
    say(e instanceof ApiError ? e.message : String(e));
    alert(e instanceof Error ? e.message : String(e));
    return false;
  }
}

export function RepoPage({ name, session }: { name: string; session: SessionInfo }) {
  const { data, error, reload } = useLoad(() => api.repository(name), [name]);
  const [open, setOpen] = useState<string | undefined>();
  if (error !== undefined) return <main><h1>{name}</h1><ErrorBox error={error} /></main>;
  if (!data) return <main><h1>{name}</h1><Loading /></main>;
  const host = pullHost(session.pullHost);
  const row = (t: TagSummary) => (
    <tr key={t.tag}>
      <td>
        <a href={href.image(name, t.tag)}>{t.tag}</a> {t.origin === 'local' ? <Badge kind="local">local</Badge> : null}
      </td>
      <td>
        <code title={t.digest}>{shortDigest(t.digest)}</code>
      </td>
      <td class="wide">{kind(t.mediaType)}</td>
      <td class="wide">{t.platforms?.join(', ') ?? ''}</td>
      <td class="num">{bytes(t.size)}</td>
      <td class="wide">
        <time dateTime={iso(t.updatedAt)}>{when(t.updatedAt)}</time>
      </td>
      <td class="wide">
        <time dateTime={iso(t.lastPulled)}>{when(t.lastPulled)}</time>
      </td>
      <td>
        <div class="actions">
        <button type="button" aria-expanded={open === t.tag} aria-label={`Pull commands for ${t.tag}`} onClick={() => setOpen(open === t.tag ? undefined : t.tag)}>
          Pull
        </button>
        {mayRemove(t.origin, data.rights, data.canPurge) && (
          <button type="button" class="danger" aria-label={`${t.origin === 'local' ? 'Delete' : 'Purge'} tag ${t.tag}`} onClick={async () => (await removeImage(name, t.tag, t.origin)) && reload()}>
            {t.origin === 'local' ? 'Delete' : 'Purge'}
          </button>
        )}
        </div>
      </td>
    </tr>
  );
  return (
    <main>
      <nav aria-label="Breadcrumb" class="crumbs">
        <a href={href.repos()}>Repositories</a> / <span>{data.name}</span>
      </nav>
      <h1>{data.name}</h1>
      <p>
        {data.local && <Badge kind="local">local</Badge>} {data.mirrored && <Badge kind="mirrored">mirrored from {data.upstream ?? 'upstream'}</Badge>}{' '}
        <span class="muted">
          {data.tags.length} tags · {bytes(data.bytes)}
        </span>
      </p>
      <div class="scroll">
        <table>
          <thead>
            <tr>
              <th scope="col">Tag</th>
              <th scope="col">Digest</th>
              <th scope="col" class="wide">Type</th>
              <th scope="col" class="wide">Platforms</th>
              <th scope="col" class="num">Size</th>
              <th scope="col" class="wide">Pushed / cached</th>
              <th scope="col" class="wide">Last pulled</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {data.tags.map((t) =>
              open === t.tag
                ? [
                    row(t),
                    <tr key={`${t.tag}-pull`} class="pullrow">
                      <td colSpan={8}>
                        <PullCommands host={host} name={data.name} tag={t.tag} digest={t.digest} />
                      </td>
                    </tr>,
                  ]
                : row(t),
            )}
          </tbody>
        </table>
      </div>
    </main>
  );
}
