import type { Logger } from '../observability/types.js';
import type { OnProgress, Progress } from './progress.js';

export type JobKind = 'gc' | 'verify';
export const JOB_KINDS: readonly JobKind[] = ['gc', 'verify'];
export type JobState = 'running' | 'succeeded' | 'failed';

/** One maintenance operation started from the web UI's API, as the API shows it. */
export interface Job {
  id: string;
  kind: JobKind;
  /** gc only: list what would go, remove nothing */
  dryRun: boolean;
  state: JobState;
  /** the user who started it, or `local` (a caller on this host, on a registry without auth) */
  startedBy: string;
  /** ms since epoch */
  startedAt: number;
  finishedAt: number | null;
  /** the latest the operation reported (progress.ts) */
  progress: Progress;
  /** when it succeeded: the same report the admin API's gc / verify return (null again once it is old, see keepReports) */
  report: object | null;
  /** when it failed: why */
  error: string | null;
}

/** What a job is asked to do: gc's dry run and grace period (the admin API's `graceMs`). */
export interface JobOptions {
  dryRun: boolean;
  graceMs?: number;
}

export interface JobRunnerDeps {
  gc(opts: { dryRun: boolean; graceMs?: number; onProgress: OnProgress }): Promise<object>;
  verify(opts: { onProgress: OnProgress }): Promise<object>;
  now: () => number;
  newId: () => string;
  logger: Logger;
  /** jobs remembered for the list (default 20); older ones are forgotten */
  keep?: number;
  /** of those, how many newest keep their report (default 5): a gc report lists every blob it removed */
  keepReports?: number;
}

const DEFAULT_KEEP = 20;
const DEFAULT_KEEP_REPORTS = 5;

/**
 * Runs gc and verify, one at a time in this process (both walk every blob, and two at once would only race
 * each other to the same result), whether the web UI started them in the background or the admin API (the
 * CLI) waits for one, and remembers the recent ones with their progress and report. In memory: each
 * replica knows the jobs it ran itself, and a restart forgets them.
 */
export class JobRunner {
  /** newest first */
  private readonly jobs: Job[] = [];
  private current: Job | undefined;

  constructor(private readonly d: JobRunnerDeps) {}

  /** Starts a job in the background, or answers the one running (nothing new starts while it runs). */
  start(kind: JobKind, opts: JobOptions, startedBy: string): { started: Job } | { running: Job } {
    const r = this.launch(kind, opts, startedBy);
    if ('running' in r) return r;
    r.finished.catch(() => {}); // the job records its failure
    return { started: r.started };
  }

  /** Runs a job to its end (the admin API's gc / verify): its report, or its error; or the job already running. */
  run(kind: JobKind, opts: JobOptions, startedBy: string): { running: Job } | { finished: Promise<object> } {
    const r = this.launch(kind, opts, startedBy);
    return 'running' in r ? r : { finished: r.finished };
  }

  private launch(kind: JobKind, opts: JobOptions, startedBy: string): { running: Job } | { started: Job; finished: Promise<object> } {
    if (this.current) return { running: copy(this.current) };
    const dryRun = kind === 'gc' && opts.dryRun;
    const job: Job = {
      id: this.d.newId(),
      kind,
      dryRun,
      state: 'running',
      startedBy,
      startedAt: this.d.now(),
      finishedAt: null,
      progress: { phase: 'starting', done: 0, total: null, bytes: 0, totalBytes: null },
      report: null,
      error: null,
    };
    this.current = job;
    this.jobs.unshift(job);
    this.jobs.splice(this.d.keep ?? DEFAULT_KEEP);
    for (const old of this.jobs.slice(this.d.keepReports ?? DEFAULT_KEEP_REPORTS)) old.report = null;
    this.d.logger.info({ job: job.id, kind, dryRun, startedBy }, 'maintenance job started');
    const onProgress: OnProgress = (p) => {
      job.progress = p;
    };
    // Started on the next turn, so the answer goes out (202) before a long synchronous stretch could begin.
    const gcOpts = { dryRun, onProgress, ...(opts.graceMs !== undefined ? { graceMs: opts.graceMs } : {}) };
    const work = new Promise<void>((r) => setImmediate(r)).then(() => (kind === 'gc' ? this.d.gc(gcOpts) : this.d.verify({ onProgress })));
    let failure: unknown;
    const settled = work
      .then(
        (report) => {
          job.state = 'succeeded';
          job.report = report;
        },
        (err: unknown) => {
          failure = err;
          job.state = 'failed';
          job.error = err instanceof Error ? err.message : String(err);
        },
      )
      .finally(() => {
        job.finishedAt = this.d.now();
        this.current = undefined;
        const fields = { job: job.id, kind, dryRun, state: job.state, ms: job.finishedAt - job.startedAt };
        if (job.state === 'failed') this.d.logger.error({ ...fields, err: job.error }, 'maintenance job failed');
        else this.d.logger.info(fields, 'maintenance job finished');
      });
    // Settles once the job's record is final, so whoever waits sees the runner free again.
    const finished = settled.then(() => {
      if (job.state === 'failed') throw failure;
      return job.report ?? {};
    });
    return { started: copy(job), finished };
  }

  get(id: string): Job | undefined {
    const job = this.jobs.find((j) => j.id === id);
    return job && copy(job);
  }

  /** Recent jobs, newest first, without their reports (a gc report lists every blob; ask for one job to see it). */
  list(): Array<Omit<Job, 'report'>> {
    return this.jobs.map(({ report: _, ...rest }) => ({ ...rest, progress: { ...rest.progress } }));
  }

  running(): Job | undefined {
    return this.current && copy(this.current);
  }
}

function copy(job: Job): Job {
  return { ...job, progress: { ...job.progress } };
}
