/**
 * The job runner behind /_wharf/api/jobs: one job at a time, its latest progress, its report or error, and a
 * bounded memory of finished jobs. gc and verify here are fakes the test finishes by hand (the real ones run
 * in test/ui/maintenance.test.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JobRunner } from '../../src/core/jobs.js';
import type { OnProgress } from '../../src/core/progress.js';
import { silentLogger } from '../../src/observability/types.js';

interface Pending {
  onProgress: OnProgress;
  resolve(report: object): void;
  reject(err: Error): void;
}

function fakeOps() {
  const calls: Array<Pending & { kind: string; dryRun?: boolean }> = [];
  const op = (kind: string, dryRun?: boolean) => (o: { onProgress: OnProgress }) =>
    new Promise<object>((resolve, reject) => calls.push({ kind, ...(dryRun !== undefined ? { dryRun } : {}), onProgress: o.onProgress, resolve, reject }));
  return {
    calls,
    gc: (o: { dryRun: boolean; onProgress: OnProgress }) => op('gc', o.dryRun)(o),
    verify: (o: { onProgress: OnProgress }) => op('verify')(o),
  };
}

const turn = () => new Promise((r) => setImmediate(r));

test('one job at a time: a second start answers the running job; progress and report are kept; the next may start after', async () => {
  const ops = fakeOps();
  let t = 1000;
  let n = 0;
  const runner = new JobRunner({ ...ops, now: () => t, newId: () => `j${++n}`, logger: silentLogger });
  const first = runner.start('gc', { dryRun: true }, 'ann');
  assert.ok('started' in first);
  assert.equal(first.started.state, 'running');
  const second = runner.start('verify', { dryRun: false }, 'bob');
  assert.ok('running' in second);
  assert.equal(second.running.id, 'j1');
  await turn();
  assert.equal(ops.calls.length, 1, 'the refused start ran nothing');
  assert.deepEqual([ops.calls[0]!.kind, ops.calls[0]!.dryRun], ['gc', true]);

  ops.calls[0]!.onProgress({ phase: 'blobs', done: 2, total: 5, bytes: 20, totalBytes: 50 });
  assert.deepEqual(runner.get('j1')!.progress, { phase: 'blobs', done: 2, total: 5, bytes: 20, totalBytes: 50 });
  t = 4000;
  ops.calls[0]!.resolve({ freedBytes: 7 });
  await turn();
  const done = runner.get('j1')!;
  assert.equal(done.state, 'succeeded');
  assert.deepEqual(done.report, { freedBytes: 7 });
  assert.equal(done.finishedAt, 4000);
  assert.equal(runner.running(), undefined);

  const next = runner.start('verify', { dryRun: true }, 'bob');
  assert.ok('started' in next);
  assert.equal(next.started.dryRun, false, 'dryRun means nothing to verify');
  await turn();
  ops.calls[1]!.reject(new Error('disk gone'));
  await turn();
  assert.equal(runner.get('j2')!.state, 'failed');
  assert.equal(runner.get('j2')!.error, 'disk gone');
  assert.deepEqual(runner.list().map((j) => [j.id, j.state]), [['j2', 'failed'], ['j1', 'succeeded']]);
  assert.equal('report' in runner.list()[1]!, false);
});

test('remembers only the latest jobs, and the reports of fewer still', async () => {
  const ops = fakeOps();
  let n = 0;
  const runner = new JobRunner({ ...ops, now: () => 0, newId: () => `j${++n}`, logger: silentLogger, keep: 3, keepReports: 2 });
  for (let i = 0; i < 4; i++) {
    runner.start('verify', { dryRun: false }, 'ann');
    await turn();
    ops.calls[i]!.resolve({ checked: i });
    await turn();
  }
  assert.deepEqual(runner.list().map((j) => j.id), ['j4', 'j3', 'j2']);
  assert.equal(runner.get('j1'), undefined);
  assert.deepEqual(['j4', 'j3', 'j2'].map((id) => runner.get(id)!.report), [{ checked: 3 }, { checked: 2 }, null]);
});

test('run (the admin API) waits for the report or the very error, and the runner is free once it settles', async () => {
  const ops = fakeOps();
  let n = 0;
  const runner = new JobRunner({ ...ops, now: () => 0, newId: () => `j${++n}`, logger: silentLogger });
  const ok = runner.run('gc', { dryRun: false, graceMs: 0 }, 'admin API');
  assert.ok('finished' in ok);
  await turn();
  assert.ok('running' in runner.run('verify', { dryRun: false }, 'admin API'), 'a second waits its turn');
  ops.calls[0]!.resolve({ freedBytes: 1 });
  assert.deepEqual(await ok.finished, { freedBytes: 1 });
  assert.equal(runner.running(), undefined);

  const boom = new Error('store unavailable');
  const bad = runner.run('verify', { dryRun: false }, 'admin API');
  assert.ok('finished' in bad);
  await turn();
  ops.calls[1]!.reject(boom);
  await assert.rejects(bad.finished, (e) => e === boom);
  assert.equal(runner.get('j2')!.error, 'store unavailable');
});
