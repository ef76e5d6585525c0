import { useEffect, useState } from 'preact/hooks';
import { ApiError, type SessionInfo } from '../api.js';
import { ErrorBox, Loading, say } from '../components.js';
import { bytes, iso, shortDigest, when } from '../format.js';
import { jobsApi, type GcReport, type Job, type JobKind, type VerifyReport } from '../jobs-api.js';

/** how often a running job is asked for its progress */
const POLL_MS = 500;
/** entries of a report's lists shown before "and N more" */
const SHOWN = 100;

export function jobName(j: Pick<Job, 'kind' | 'dryRun'>): string {
  return j.kind === 'gc' ? (j.dryRun ? 'gc (dry run)' : 'gc') : 'verify';
}

/** Start gc or verify and watch it: progress polled while it runs, its report when done, recent jobs. */
export function MaintenancePage({ session }: { session: SessionInfo }) {
  const [jobs, setJobs] = useState<Job[]>();
  const [shown, setShown] = useState<Job>();
  const [error, setError] = useState<unknown>();
  const [starting, setStarting] = useState(false);
  const running = jobs?.find((j) => j.state === 'running');

  const refresh = async (select?: string) => {
    try {
      const list = await jobsApi.list();
      setJobs(list.jobs);
      const id = select ?? shown?.id ?? list.running?.id ?? list.jobs[0]?.id;
      if (id !== undefined) setShown(await jobsApi.get(id));
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => {
    void refresh();
  }, []);
  // Poll while something runs (a failed poll is tried again); the last poll sees it finish and fetches its report.
  useEffect(() => {
    if (!running && shown?.state !== 'running') return;
    const t = setTimeout(() => void refresh(), POLL_MS);
    return () => clearTimeout(t);
  }, [jobs, shown, error]);
  const [announced, setAnnounced] = useState<string>();
  useEffect(() => {
    if (shown && shown.state !== 'running' && announced !== shown.id && shown.finishedAt !== null && Date.now() - shown.finishedAt < 60_000) {
      setAnnounced(shown.id);
      say(`${jobName(shown)} ${shown.state === 'succeeded' ? 'finished' : 'failed'}`);
    }
  }, [shown]);

  if (!session.maintain) {
    return (
      <main>
        <h1>Maintenance</h1>
        <p class="error" role="alert">
          {session.authEnabled && !session.user ? 'Log in as a user named in ui.admins to run gc or verify.' : 'Only users named in ui.admins may run gc or verify.'}
        </p>
      </main>
    );
  }

  const start = async (kind: JobKind, dryRun: boolean) => {
    if (kind === 'gc' && !dryRun && !confirm('Remove every blob and upload nothing references now?')) return;
    setStarting(true);
    setError(undefined);
    try {
      const job = await jobsApi.start(kind, dryRun);
      say(`${jobName(job)} started`);
      await refresh(job.id);
      // The pressed button is disabled now: keyboard focus goes to the job it started.
      requestAnimationFrame(() => document.getElementById('job-h')?.focus());
    } catch (e) {
      // Another tab or user started one meanwhile: show that one.
      setError(e instanceof ApiError && e.status === 409 ? new Error('A gc or verify is already running: its progress is shown below.') : e);
      await refresh();
    } finally {
      setStarting(false);
    }
  };
  const busy = starting || running !== undefined;
  return (
    <main>
      <h1>Maintenance</h1>
      <p class="muted">
        gc removes blobs nothing references, expired uploads and orphaned temp files (blobs younger than 5 minutes are spared); verify re-hashes
        every stored blob and takes a corrupt one out of service. One runs at a time on this wharf process.
      </p>
      <div class="actions" role="group" aria-label="Start a job">
        <button type="button" onClick={() => void start('gc', true)} disabled={busy}>
          Run gc (dry run)
        </button>
        <button type="button" class="danger" onClick={() => void start('gc', false)} disabled={busy}>
          Run gc
        </button>
        <button type="button" onClick={() => void start('verify', false)} disabled={busy}>
          Verify
        </button>
      </div>
      {busy && <p class="muted">A job is running; the buttons come back when it ends.</p>}
      {error !== undefined && <ErrorBox error={error} />}
      {shown && <JobView job={shown} />}
      <h2 id="recent-h">Recent jobs</h2>
      {!jobs ? (
        <Loading />
      ) : jobs.length === 0 ? (
        <p class="muted">None since this wharf process started.</p>
      ) : (
        <div class="scroll">
          <table aria-labelledby="recent-h">
            <thead>
              <tr>
                <th scope="col">Job</th>
                <th scope="col">State</th>
                <th scope="col" class="wide">
                  Started by
                </th>
                <th scope="col">Started</th>
                <th scope="col" class="num wide">
                  Took
                </th>
                <th scope="col">
                  <span class="sr-only">Show</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {jobs.map((j) => (
                <tr key={j.id}>
                  <td>{jobName(j)}</td>
                  <td>{j.state}</td>
                  <td class="wide">{j.startedBy}</td>
                  <td>
                    <time dateTime={iso(j.startedAt)}>{when(j.startedAt)}</time>
                  </td>
                  <td class="num wide">{j.finishedAt !== null ? seconds(j.finishedAt - j.startedAt) : '…'}</td>
                  <td>
                    <button type="button" onClick={() => void refresh(j.id)} aria-label={`Show ${jobName(j)} started ${new Date(j.startedAt).toLocaleString()}`} aria-pressed={shown?.id === j.id}>
                      Show
                    </button>
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

function JobView({ job }: { job: Job }) {
  const p = job.progress;
  // Bytes measure the work best where they are known (verify hashes bytes); else items.
  const byBytes = p.totalBytes !== null && p.totalBytes > 0;
  const max = byBytes ? p.totalBytes! : (p.total ?? undefined);
  const value = job.state === 'running' ? (byBytes ? p.bytes : p.done) : max;
  const text =
    job.state === 'running'
      ? `${p.phase}: ${p.done}${p.total !== null ? ` of ${p.total}` : ''} · ${bytes(p.bytes)}${p.totalBytes !== null ? ` of ${bytes(p.totalBytes)}` : ''}`
      : job.state === 'succeeded'
        ? `finished in ${seconds((job.finishedAt ?? job.startedAt) - job.startedAt)}`
        : `failed: ${job.error ?? 'unknown error'}`;
  return (
    <section class="card job" aria-labelledby="job-h">
      <h2 id="job-h" tabIndex={-1}>
        {jobName(job)}: {job.state}
      </h2>
      <p class="muted">
        started by {job.startedBy}, <time dateTime={iso(job.startedAt)}>{when(job.startedAt)}</time>
      </p>
      {job.state === 'running' || job.state === 'succeeded' ? (
        <progress
          max={max ?? 1}
          value={job.state === 'succeeded' ? (max ?? 1) : max === undefined ? undefined : value}
          aria-label={`Progress of ${jobName(job)}`}
          aria-valuetext={text}
          aria-describedby="job-progress"
        />
      ) : null}
      <p id="job-progress" class={job.state === 'failed' ? 'error' : undefined} data-testid="job-progress">
        {text}
      </p>
      {job.report && (job.kind === 'gc' ? <GcReportView report={job.report as GcReport} /> : <VerifyReportView report={job.report as VerifyReport} />)}
    </section>
  );
}

function GcReportView({ report }: { report: GcReport }) {
  return (
    <section aria-labelledby="report-h">
      <h3 id="report-h">Report</h3>
      <dl class="facts">
        <dt>{report.dryRun ? 'Would free' : 'Freed'}</dt>
        <dd data-testid="gc-freed">{bytes(report.freedBytes)}</dd>
        <dt>Blobs</dt>
        <dd>{report.blobs.length}</dd>
        <dt>Expired uploads</dt>
        <dd>{report.uploads.length}</dd>
        <dt>Temp files</dt>
        <dd>{report.temps.length}</dd>
      </dl>
      {report.blobs.length > 0 && (
        <details>
          <summary>{report.dryRun ? 'Blobs gc would remove' : 'Blobs removed'}</summary>
          <ul class="plain">
            {report.blobs.slice(0, SHOWN).map((b) => (
              <li key={b.digest}>
                <code class="break" title={b.digest}>
                  {shortDigest(b.digest)}
                </code>{' '}
                <span class="muted">{bytes(b.size)}</span>
              </li>
            ))}
          </ul>
          {report.blobs.length > SHOWN && <p class="muted">and {report.blobs.length - SHOWN} more (`wharf gc --dry-run` lists them all)</p>}
        </details>
      )}
    </section>
  );
}

function VerifyReportView({ report }: { report: VerifyReport }) {
  return (
    <section aria-labelledby="report-h">
      <h3 id="report-h">Report</h3>
      <dl class="facts">
        <dt>Checked</dt>
        <dd data-testid="verify-checked">
          {report.checked} blobs, {bytes(report.bytes)}
        </dd>
        <dt>Corrupt</dt>
        <dd>{report.corrupt.length === 0 ? 'none' : report.corrupt.length}</dd>
        <dt>Skipped (being written)</dt>
        <dd>{report.skipped.length}</dd>
      </dl>
      {report.corrupt.length > 0 && (
        <div class="scroll">
          <table>
            <caption class="sr-only">Corrupt blobs, taken out of service</caption>
            <thead>
              <tr>
                <th scope="col">Digest</th>
                <th scope="col">Repositories</th>
                <th scope="col">Quarantined</th>
              </tr>
            </thead>
            <tbody>
              {report.corrupt.slice(0, SHOWN).map((c) => (
                <tr key={c.digest}>
                  <td>
                    <code class="break" title={`${c.digest} (bytes hash to ${c.actual})`}>
                      {shortDigest(c.digest)}
                    </code>
                  </td>
                  <td>{c.repositories.join(', ') || '–'}</td>
                  <td>{c.quarantined ? 'yes' : 'deleted'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function seconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}
